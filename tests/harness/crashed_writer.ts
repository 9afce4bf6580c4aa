/**
 * @module
 * The crash tests' writer: a process of its own, killed -9, and what a new process does with the
 * file it left before DuckDB opens it.
 */
import { Native, openDuckDB, Replicator } from "@haduck/duckdb-fs-bridge";
import type { BlockStore } from "@haduck/s3-block-store";

/**
 * A writer in a process of its own: started, waited for until it prints "ready" (at most 60 s; its
 * stderr is the error otherwise), and killed -9, answering everything it printed.
 */
export async function startReadyChild(args: string[], env: Record<string, string | undefined> = {}):
  Promise<{ kill: () => Promise<string> }> {
  const child = Bun.spawn([process.execPath, ...args], { stdout: "pipe", stderr: "pipe", env: { ...process.env, ...env } });
  let output = "";
  const reader = (async () => {
    for await (const chunk of child.stdout) output += new TextDecoder().decode(chunk);
  })();
  const deadline = Date.now() + 60_000;
  while (!output.includes("ready") && Date.now() < deadline && child.exitCode === null) await Bun.sleep(5);
  if (!output.includes("ready")) throw new Error(`the writer did not start: ${await new Response(child.stderr).text()}`);
  return {
    kill: async () => {
      child.kill("SIGKILL");
      await child.exited;
      await reader;
      return output;
    },
  };
}

/** What a new process does before DuckDB opens the file (and replays the WAL): reconcile ships what the WAL still holds. */
export async function reconcileLeftFile(dbPath: string, store: BlockStore, dbKey: string): Promise<string | null> {
  await openDuckDB();
  const replicator = new Replicator({ native: new Native(), dbPath, store, dbKey });
  await replicator.start();
  await replicator.reconcile();
  await replicator.stop();
  return replicator.status.lastError;
}
