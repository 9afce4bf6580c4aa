/**
 * Store faults while WAL frames ship, on frames only (the narrow case whole-host faults miss): frame
 * PUTs refused for a while, then performed with their answers lost. Commits made durable one by one
 * (`flush()`, `--sync`'s way) wait through the outage and none is lost; the lag shows in status while
 * the store refuses and goes back to 0; a lost answer is looked up and adopted, never written twice
 * (the chain stays one chain); the latest restore holds every acknowledged commit, in order.
 */
import { afterAll, expect } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { attach, restore, verify } from "@haduck/duckdb-fs-bridge";
import type { BlockStore } from "@haduck/s3-block-store";
import { queryFile } from "./harness/duckdb.ts";
import { FrameFaults } from "./harness/frame_faults.ts";
import { testOnEachStore } from "./harness/each_store.ts";

const dir = mkdtempSync(join(tmpdir(), "haduck-wal-faults-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function outage(inner: BlockStore, label: string) {
  const store = new FrameFaults(inner);
  const dbKey = `${label}.duckdb`;
  const db = await attach({ dbPath: join(dir, dbKey), store, walFlushMs: 50 });
  await db.connection.run("CREATE TABLE t (i INT PRIMARY KEY)");
  const acked: number[] = [];
  let stop = false;
  let lagMsMax = 0;
  const writer = (async () => {
    for (let i = 0; !stop; i++) {
      await db.connection.run(`INSERT INTO t VALUES (${i})`);
      expect(await db.flush()).toBe(true);
      acked.push(i);
    }
  })();
  const watch = async (ms: number) => {
    for (const end = performance.now() + ms; performance.now() < end;) {
      lagMsMax = Math.max(lagMsMax, db.replicator.status.walLagMs);
      await Bun.sleep(20);
    }
  };
  await watch(300);
  const beforeOutage = acked.length;
  store.mode = "refuse";
  await watch(1500);
  const duringOutage = acked.length;
  expect(duringOutage - beforeOutage).toBeLessThanOrEqual(1); // the commit in flight at most: nothing durable
  expect(lagMsMax).toBeGreaterThan(1000);
  store.mode = "lose-answer";
  await watch(600);
  store.mode = "ok";
  await watch(2000);
  stop = true;
  await writer;
  expect(acked.length).toBeGreaterThan(duringOutage + 5); // writing went on after the outage
  expect(store.faults).toBeGreaterThan(2);
  const status = db.replicator.status;
  expect(status.walLagMs).toBe(0);
  expect(status.framesStopped).toBeNull();
  // Gone without a last checkpoint: the frames are what holds the acknowledged commits.
  db.replicator.options.native.detach();
  await db.replicator.stop({ deadlineMs: 1 }).catch(() => {});
  const to = join(dir, `${label}-restored.duckdb`);
  const result = await restore({ store: inner, dbKey, to });
  expect(result.warning).toBeNull();
  const rows = (await queryFile(to, "SELECT i FROM t ORDER BY i")).map((row) => row.i);
  expect(rows).toEqual(acked);
  expect((await verify(inner, dbKey)).problems).toEqual([]);
  console.log(`wal fault figures (${label}): ${JSON.stringify({ acked: acked.length, faults: store.faults,
    lagMsMax: Math.round(lagMsMax), frames: result.frames })}`);
}

testOnEachStore("frame PUTs refused, then answers lost: no acknowledged commit lost, lag shows and recovers",
  { dir, label: "wal-faults", timeoutMs: 120_000 }, outage);
