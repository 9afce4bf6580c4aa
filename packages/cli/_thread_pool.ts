/**
 * @module
 * Bun runs `@duckdb/node-api`'s statements on the same small thread pool as its file system calls
 * (measured here: one thread per core, two on this machine). Two long statements then hold every
 * thread, and a lease renew on a filesystem store, a WAL frame read, or a follower's apply waits
 * seconds for a statement to end (`bun bench/sql_abuse.ts`: an fsync waited 2.4 s behind two
 * queries). Bun sizes its pool from `UV_THREADPOOL_SIZE`, read once when the process starts, so
 * `serve` gives itself a pool larger than the statements it lets run at once by replacing its own
 * image (`execve`: the same process id, standard streams and arguments, so signals, kill -9 and
 * whoever waits on it see one process) with the variable set.
 */
import { platform } from "node:process";

/** Sets the marker that stops a second replacement, whatever happens. */
const MARKER = "HADUCK_THREAD_POOL_SET";

/**
 * Makes sure this Bun process runs with a thread pool of at least `size`: returns at once when it
 * does (or when it cannot tell: not Bun, not Linux), else replaces the process with itself, the
 * variable set. Call it before the process starts any work.
 */
export async function ensureThreadPool(size: number): Promise<void> {
  const bun = (globalThis as { Bun?: unknown }).Bun;
  const current = Number(process.env.UV_THREADPOOL_SIZE ?? 0);
  if (!bun || platform !== "linux" || current >= size || process.env[MARKER] === "1") return;
  const { dlopen, FFIType, ptr } = await import("bun:ffi");
  const libc = dlopen("libc.so.6", { execve: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 } });
  const cString = (text: string) => Buffer.from(`${text}\0`, "utf8");
  const keep: Buffer[] = [];
  const array = (values: string[]) => {
    const pointers = new BigUint64Array(values.length + 1);
    values.forEach((value, index) => {
      const bytes = cString(value);
      keep.push(bytes);
      pointers[index] = BigInt(ptr(bytes));
    });
    return pointers;
  };
  const env = { ...process.env, UV_THREADPOOL_SIZE: String(size), [MARKER]: "1" };
  const path = cString(process.execPath);
  const argv = array([process.execPath, ...process.argv.slice(1)]);
  const envp = array(Object.entries(env).filter(([, value]) => value !== undefined).map(([k, v]) => `${k}=${v}`));
  libc.symbols.execve(ptr(path), ptr(argv), ptr(envp));
  // Only a failed execve returns: go on with the pool there is (reads may then slow the lease; said once).
  console.error(`haduck: warning: could not set UV_THREADPOOL_SIZE=${size} for this process; long statements may ` +
    "delay lease renewals: start haduck with UV_THREADPOOL_SIZE set");
  keep.length = 0;
}
