import { expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { acquireReplicatorLock, replicatorLockPath } from "./_replicator_lock.ts";

const dir = mkdtempSync(join(tmpdir(), "haduck-lock-"));

test("a lock whose process is gone (kill -9) is taken over; release removes only our own", async () => {
  const dbPath = join(dir, "dead.duckdb");
  const child = Bun.spawn(["true"]);
  await child.exited;
  writeFileSync(replicatorLockPath(dbPath), JSON.stringify({ pid: child.pid, started: 1, stopping: false }));
  const lock = await acquireReplicatorLock(dbPath, { graceMs: 100 });
  expect(JSON.parse(readFileSync(replicatorLockPath(dbPath), "utf8")).pid).toBe(process.pid);
  lock.release();
  expect(existsSync(replicatorLockPath(dbPath))).toBe(false);
});

test("a running replicator is refused by name after the grace; a stopping one is waited for", async () => {
  const dbPath = join(dir, "busy.duckdb");
  const first = await acquireReplicatorLock(dbPath);
  const refused = await acquireReplicatorLock(dbPath, { graceMs: 100 }).catch((error) => error);
  expect(refused.code).toBe("BUSY");
  expect(refused.message).toContain(`pid ${process.pid}`);
  first.stopping();
  const waiting = acquireReplicatorLock(dbPath, { graceMs: 100 });
  await Bun.sleep(300); // past the grace: a stopping holder is waited for, not refused
  first.release();
  const second = await waiting;
  expect(JSON.parse(readFileSync(replicatorLockPath(dbPath), "utf8")).stopping).toBe(false);
  second.release();
  rmSync(dir, { recursive: true, force: true });
});
