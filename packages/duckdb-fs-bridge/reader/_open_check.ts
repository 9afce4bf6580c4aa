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
import { CHECK_EXIT_UNAVAILABLE, isResourceFailure } from "./_resource_failure.ts";

// Beside this file: the source under Bun, or its JavaScript build beside dist/mod.js (Node and Deno).
const CHILD = fileURLToPath(new URL(import.meta.url.endsWith(".js") ? "./_open_check_child.js" : "./_open_check_child.ts",
  import.meta.url));

/** The command line that runs a TypeScript file in this runtime (Bun or Deno). */
function runtimeCommand(script: string, args: string[]): string[] {
  const deno = (globalThis as { Deno?: { execPath(): string } }).Deno;
  return deno ? [deno.execPath(), "run", "-A", "--quiet", script, ...args] : [process.execPath, script, ...args];
}

export interface OpenCheckResult {
  tables: number;
  rows: number;
  /** The memory limit the check needed in the end, MiB. */
  memoryLimitMb: number;
  /** The child's peak resident memory, MiB. */
  peakRssMb: number;
}

export interface OpenCheckOptions {
  /** DuckDB first replays `<path>.wal` into the file and checkpoints (a restore with WAL frames). */
  replay?: boolean;
  /**
   * The ceiling of the child's DuckDB memory limit, MiB: it starts at 16 and grows four times at a
   * time while DuckDB runs out. Default `HADUCK_CHECK_MEMORY_MB`, else 1024.
   */
  memoryMaxMb?: number;
  /** The command that checks the store's copy, complete (a refusal suggests it). Default `haduck verify`. */
  verifyCommand?: string;
}

/** The ceiling of the open check's memory, MiB: `HADUCK_CHECK_MEMORY_MB`, else 1024; RangeError names a bad one. */
export function checkMemoryMaxMb(env: Record<string, string | undefined> = process.env): number {
  const raw = env.HADUCK_CHECK_MEMORY_MB;
  if (raw === undefined || raw === "") return 1024;
  const mb = Number(raw);
  if (!Number.isSafeInteger(mb) || mb < 16) {
    throw new RangeError(`HADUCK_CHECK_MEMORY_MB=${raw} is not a number of MiB of at least 16, e.g. 4096`);
  }
  return mb;
}

/**
 * Throws ReplicationError("INTEGRITY") naming `what` when stock DuckDB refuses the file or crashes
 * opening it, and ReplicationError("CHECK_UNAVAILABLE") when the check itself could not run (out of
 * memory at the ceiling, a full disk, the child killed or not started): that is the machine's
 * condition, never the store's, and the message says how to give the check more memory.
 */
export async function checkOpensInDuckDB(path: string, what: string, options: OpenCheckOptions = {}):
  Promise<OpenCheckResult> {
  const memoryMaxMb = options.memoryMaxMb ?? checkMemoryMaxMb();
  const [command, ...args] = runtimeCommand(CHILD, [path, ...(options.replay ? ["--replay"] : []),
    "--memory-max-mb", String(memoryMaxMb)]);
  const unavailable = (why: string) => new ReplicationError("CHECK_UNAVAILABLE", `${what} could not be checked ` +
    `in DuckDB here (${why}); nothing was written to the target. This says nothing about the store: give the ` +
    `check more memory (HADUCK_CHECK_MEMORY_MB, now ${memoryMaxMb}) or disk for its temp files, and run it again`);
  let output = "";
  let ended: { code: number | null; signal: string | null };
  try {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    child.stdout.on("data", (chunk) => output += chunk);
    child.stderr.on("data", (chunk) => output += chunk);
    ended = await new Promise((resolve, reject) => {
      child.once("error", reject);
      child.once("close", (code, signal) => resolve({ code, signal }));
    });
  } catch (error) {
    throw unavailable(`the check's process did not start: ${(error as Error).message}`);
  }
  const { code, signal } = ended;
  const last = output.trim().split("\n").pop() ?? "";
  if (code === 0 && last.startsWith("{")) return JSON.parse(last) as OpenCheckResult;
  if (code === CHECK_EXIT_UNAVAILABLE && last.startsWith("{")) throw unavailable(JSON.parse(last).unavailable);
  // Killed from outside (the kernel's out-of-memory killer sends SIGKILL) is the machine's doing; a
  // crash (SIGSEGV, SIGABRT, SIGBUS) opening the file is DuckDB's answer to it.
  if (signal === "SIGKILL" || signal === "SIGTERM" || signal === "SIGINT") {
    throw unavailable(`the check's process was killed with ${signal}, by the out-of-memory killer or an operator`);
  }
  if (code === 1 && isResourceFailure(last)) throw unavailable(last); // the child's classification missed a step
  const why = signal ? `DuckDB died with ${signal} opening it` : `DuckDB refused it: ${last || `exit ${code}`}`;
  throw new ReplicationError("INTEGRITY", `${what} does not open in DuckDB (${why}); nothing was written to the ` +
    `target. Run ${options.verifyCommand ?? "`haduck verify`"}, and restore an older generation with --generation`);
}
