/**
 * @module
 * The process's open files against its limit, for the HTTP server's flood guard. A client needs no
 * token to open a connection and send half a request's headers, and Bun's server keeps such a
 * connection open (its idle cutoff does not apply before the headers end). Thousands of them took
 * every file descriptor: the lease's renewal could open neither its file nor a socket, and the
 * leader lost its lease (attack of 2026-12-07). The guard counts the process's open files a few
 * times a second; past three quarters of the limit it closes every HTTP connection (the listener
 * serves again a second later), so the lease, the store and the database keep theirs. A proxy with
 * connection limits in front is still the way to serve the open internet (docs/SECURITY.md).
 * Bun raises its soft limit to the hard one when it starts (tested), as Go's runtime does.
 */
import { readdirSync, readFileSync } from "node:fs";

/** RLIMIT_NOFILE's soft limit, from /proc/self/limits; undefined where there is none (not Linux). */
export function openFilesLimit(): number | undefined {
  try {
    const line = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync("/proc/self/limits", "utf8"));
    return line && line[1] !== "unlimited" ? Number(line[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The files (and sockets) this process holds open now, from /proc/self/fd; undefined off Linux.
 * With every descriptor taken the directory itself cannot be opened: that is `Infinity`.
 */
export function openFiles(): number | undefined {
  try {
    return readdirSync("/proc/self/fd").length;
  } catch (error) {
    const code = (error as { code?: string }).code;
    return code === "EMFILE" || code === "ENFILE" ? Infinity : undefined;
  }
}

/** How often the guard counts (a count of 20,000 descriptors takes a few ms). */
const GUARD_INTERVAL_MS = 250;

/**
 * Calls `onFlood(open, limit)` when the process holds more than three quarters of its open-file
 * limit, at most once per check; returns the function that stops the guard. Does nothing where the
 * limit or the count cannot be read.
 */
export function guardOpenFiles(onFlood: (open: number, limit: number) => void): () => void {
  const limit = openFilesLimit();
  if (limit === undefined || openFiles() === undefined) return () => {};
  const threshold = Math.floor(limit * 0.75);
  const timer = setInterval(() => {
    const open = openFiles();
    if (open !== undefined && open > threshold) onFlood(Math.min(open, limit), limit);
  }, GUARD_INTERVAL_MS);
  (timer as { unref?: () => void }).unref?.();
  return () => clearInterval(timer);
}
