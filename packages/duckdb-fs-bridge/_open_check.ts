/**
 * @module
 * Opens a restored file with stock DuckDB in a child process before anyone relies on it. DuckDB
 * 1.4.4 can crash (SIGSEGV) rather than raise on a damaged file, so the check never runs in the
 * process that restores (or serves): a refusal and a crash are both an answer here.
 *
 * The child opens the file read-only, lists every table and column, and reads every table's
 * rows (an aggregate over every column), so a block that no table can reach is the only thing left
 * unread: the manifest's checksums cover those.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { ReplicationError } from "@haduck/duckblock";

const CHILD = fileURLToPath(new URL("./_open_check_child.ts", import.meta.url));

/** The command line that runs a TypeScript file in this runtime (Bun or Deno). */
function runtimeCommand(script: string, args: string[]): string[] {
  const deno = (globalThis as { Deno?: { execPath(): string } }).Deno;
  return deno ? [deno.execPath(), "run", "-A", "--quiet", script, ...args] : [process.execPath, script, ...args];
}

export interface OpenCheckResult {
  tables: number;
  rows: number;
}

/**
 * Throws ReplicationError("INTEGRITY") naming `what` when stock DuckDB refuses the file or dies opening it.
 * With `replay`, DuckDB first replays `<path>.wal` into the file and checkpoints (a restore with WAL frames).
 */
export async function checkOpensInDuckDB(path: string, what: string, options: { replay?: boolean } = {}):
  Promise<OpenCheckResult> {
  const [command, ...args] = runtimeCommand(CHILD, options.replay ? [path, "--replay"] : [path]);
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (chunk) => output += chunk);
  child.stderr.on("data", (chunk) => output += chunk);
  const { code, signal } = await new Promise<{ code: number | null; signal: string | null }>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code, signal) => resolve({ code, signal }));
  });
  const last = output.trim().split("\n").pop() ?? "";
  if (code === 0 && last.startsWith("{")) return JSON.parse(last) as OpenCheckResult;
  const why = signal ? `DuckDB died with ${signal} opening it` : `DuckDB refused it: ${last || `exit ${code}`}`;
  throw new ReplicationError("INTEGRITY", `${what} does not open in DuckDB (${why}); nothing was written to the ` +
    "target. Run `haduck verify`, and restore an older generation with --generation");
}
