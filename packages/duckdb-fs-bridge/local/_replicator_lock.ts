/**
 * @module
 * One replicator per database file at a time: `<db>.haduck-replicator` names the process that
 * replicates the file (pid and the kernel's start time of that pid, so a reused pid is not taken
 * for it) and whether it is stopping.
 *
 * Why: a host that exits hands its file to its sidecar, which goes on shipping the commits the
 * file holds (its stop()); a host started again at once starts a second replicator for the same
 * file and key. Before this lock the two raced for the same manifest and frame keys (create-only
 * kept the store safe, but the second one's commits waited for seconds behind the first's chain).
 * Now the new one waits while the old one is stopping, takes over a lock whose process is gone (a
 * kill -9), and refuses by name a replicator that is running: another process has the database.
 */
import { closeSync, linkSync, openSync, readFileSync, renameSync, rmSync, writeSync } from "node:fs";
import { ReplicationError } from "@haduck/duckblock";

export const replicatorLockPath = (dbPath: string) => `${dbPath}.haduck-replicator`;

interface LockRecord {
  pid: number;
  /** The pid's start time in clock ticks since boot (/proc/<pid>/stat field 22); 0 where unknown. */
  started: number;
  stopping: boolean;
}

/** How often a waiter looks again while the holder stops. */
const POLL_MS = 50;
/** How long a running holder may take to start stopping (its host just died) before we call it busy. */
const RUNNING_GRACE_MS = 5_000;

/** State and start time of a pid (/proc/<pid>/stat fields 3 and 22), or undefined where unknown. */
function procStat(pid: number): { state: string; started: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces and parentheses: count fields after its last ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { state: fields[0], started: Number(fields[19]) || 0 };
  } catch {
    return undefined;
  }
}

function alive(record: LockRecord): boolean {
  try {
    process.kill(record.pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ESRCH") return false;
  }
  const stat = procStat(record.pid);
  if (stat && (stat.state === "Z" || stat.state === "X")) return false; // killed, not yet reaped
  return record.started === 0 || !stat || stat.started === record.started;
}

function readRaw(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined; // gone meanwhile
  }
}

function parse(raw: string | undefined): LockRecord | undefined {
  try {
    const parsed = raw === undefined ? undefined : JSON.parse(raw);
    return Number.isSafeInteger(parsed?.pid) ? parsed as LockRecord : undefined;
  } catch {
    return undefined; // not ours to read: treated as a dead holder's
  }
}

/** Writes `record` to a temp file beside `path`; returns its name. */
function writeTemp(path: string, record: LockRecord): string {
  const temp = `${path}.${process.pid}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  const fd = openSync(temp, "wx");
  try {
    writeSync(fd, JSON.stringify(record));
  } finally {
    closeSync(fd);
  }
  return temp;
}

export interface ReplicatorLock {
  /** Says the holder is stopping: a replicator started now waits for it instead of failing. */
  stopping(): void;
  release(): void;
}

/**
 * Takes the lock of `dbPath`, waiting up to `waitMs` (default 120 s) for a holder that is stopping,
 * and up to `graceMs` (default 5 s) for a running one to start stopping. Throws
 * ReplicationError("BUSY") naming the holder when it is still running then, or still stopping at the deadline.
 */
export async function acquireReplicatorLock(dbPath: string, options: { waitMs?: number; graceMs?: number } = {}):
  Promise<ReplicatorLock> {
  const path = replicatorLockPath(dbPath);
  const record: LockRecord = { pid: process.pid, started: procStat(process.pid)?.started ?? 0, stopping: false };
  const started = performance.now();
  const deadline = started + (options.waitMs ?? 120_000);
  let said = false;
  for (;;) {
    // Written whole, then linked into place: the lock never exists empty or half-written.
    const temp = writeTemp(path, record);
    try {
      linkSync(temp, path);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    } finally {
      rmSync(temp, { force: true });
    }
    const raw = readRaw(path);
    const holder = parse(raw);
    if (raw === undefined) continue; // released meanwhile
    if (!holder || !alive(holder)) {
      // Its process is gone (kill -9, a crash): nobody ships through it. Removed only if it is still
      // that record (another waiter may have taken over meanwhile; the window left is DuckDB's own
      // file lock's to close: two replicators need two writers of the file).
      if (readRaw(path) === raw) rmSync(path, { force: true });
      continue;
    }
    // A holder whose host just died has not seen the end of its input yet: give it a moment to start stopping.
    if (!holder.stopping && performance.now() - started > (options.graceMs ?? RUNNING_GRACE_MS)) {
      throw new ReplicationError("BUSY", `Another haduck replicator (pid ${holder.pid}) replicates ${dbPath}: ` +
        "is the database open in another process? Close it there, or wait for it to exit");
    }
    if (performance.now() > deadline) {
      throw new ReplicationError("BUSY", `The haduck replicator of the last process that wrote ${dbPath} (pid ` +
        `${holder.pid}) is still shipping its commits after ${options.waitMs ?? 120_000} ms: wait for it to exit, ` +
        "or stop it (what it has not shipped stays in the file and ships at the next start)");
    }
    if (!said && holder.stopping) {
      console.error(`haduck: waiting for the replicator of the last process that wrote ${dbPath} (pid ` +
        `${holder.pid}) to finish shipping`);
      said = true;
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  let held = true;
  return {
    stopping() {
      if (!held) return;
      renameSync(writeTemp(path, { ...record, stopping: true }), path); // a reader sees the old record or the new one
    },
    release() {
      if (!held) return;
      held = false;
      const current = parse(readRaw(path));
      if (current?.pid === record.pid && current.started === record.started) rmSync(path, { force: true });
    },
  };
}
