/**
 * Concurrency stress: 4 connections insert, update and delete for 10 s with DuckDB's automatic
 * checkpoints (at 1 MB of WAL) and manual ones, on radosgw and on the filesystem store. No
 * checkpoint waits for the hold to time out; generations keep being published while checkpoints
 * keep coming; after close the latest generation equals the local file row for row, every
 * generation sampled restores (restore opens it in stock DuckDB and reads every row), verify is
 * clean, and the lag is back to 0. `bun bench/concurrency.ts` runs it longer with more connections.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { attach, checkpointWhenQuiet, listGenerations, restore, verify } from "@haduck/duckdb-fs-bridge";
import { type BlockStore, openStore } from "@haduck/s3-block-store";
import { prepareLoad, runLoad } from "./harness/concurrent_load.ts";
import { queryFile } from "./harness/duckdb.ts";
import { freshBucket } from "./harness/s3.ts";
import { digest } from "./harness/workload.ts";

const dir = mkdtempSync(join(tmpdir(), "haduck-concurrency-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function stress(store: BlockStore, label: string) {
  const dbPath = join(dir, `${label}.duckdb`);
  const db = await attach({ dbPath, store });
  const native = db.replicator.options.native;
  const timeoutsBefore = native.holdStats().timeouts;
  await db.connection.run("SET checkpoint_threshold = '1MB'");
  await prepareLoad(db.instance, "db.t");
  let lagMsMax = 0;
  const published: number[] = [];
  const figures = await runLoad({ instance: db.instance, table: "db.t", connections: 4, durationMs: 10_000,
    checkpointAlias: "db", until: () => published.length >= 3, maxDurationMs: 90_000, onSample: () => {
      const status = db.replicator.status;
      lagMsMax = Math.max(lagMsMax, status.lagMs);
      if (status.lastGeneration !== null && status.lastGeneration !== published.at(-1)) {
        published.push(status.lastGeneration);
      }
    } });
  await db.close();
  const status = db.replicator.status;
  const holdTimeouts = native.holdStats().timeouts - timeoutsBefore;
  console.log(`${label}: ${JSON.stringify(figures)}; generations published while writing ${published.length}, ` +
    `committed ${status.generationsCommitted}, deferred ${status.generationsDeferred}, lag max ${lagMsMax.toFixed(0)} ms`);
  expect(holdTimeouts).toBe(0);
  expect(figures.commits).toBeGreaterThan(20);
  // Publishing went on while checkpoints kept coming (the load goes on until it has, for at most
  // 90 s: the filesystem store fsyncs every object, and a slow disk makes each generation slower).
  expect(published.length).toBeGreaterThanOrEqual(3);
  expect({ lastError: status.lastError, lagMs: status.lagMs, carried: status.blocksCarried })
    .toEqual({ lastError: null, lagMs: 0, carried: 0 });

  const local = await digest((sql) => queryFile(dbPath, sql) as Promise<Record<string, unknown>[]>);
  const generations = await listGenerations(store, db.dbKey);
  const step = Math.max(1, Math.floor(generations.length / 8));
  const sampled = generations.filter((_, index) => index % step === 0 || index === generations.length - 1);
  for (const generation of sampled) {
    const to = join(dir, `${label}-${generation}.duckdb`);
    await restore({ store, dbKey: db.dbKey, to, generation }); // opens it in DuckDB, reading every row
    if (generation === generations.at(-1)) {
      expect(await digest((sql) => queryFile(to, sql) as Promise<Record<string, unknown>[]>)).toBe(local);
    }
    rmSync(to);
  }
  expect(local).toMatch(/^t:\d+:/);
  expect((await verify(store, db.dbKey)).problems).toEqual([]);
}

test("4 connections writing for 10 s with automatic and manual checkpoints (radosgw)", async () => {
  const { store } = await freshBucket("concurrency");
  await stress(store, "radosgw");
}, 180_000);

test("4 connections writing for 10 s with automatic and manual checkpoints (filesystem store)", async () => {
  await stress(openStore(`file://${join(dir, "store")}`), "filesystem");
}, 180_000);

test("a CHECKPOINT refused while another connection writes is retried, then named BUSY; close() still ships", async () => {
  const store = openStore(`file://${join(dir, "busy-store")}`);
  const dbPath = join(dir, "busy.duckdb");
  const db = await attach({ dbPath, store });
  await db.connection.run("CREATE TABLE t AS SELECT * FROM range(1000) r(i)");
  const other = await db.instance.connect();
  await other.run("BEGIN TRANSACTION");
  await other.run("INSERT INTO db.t SELECT * FROM range(10)");
  // DuckDB refuses a manual CHECKPOINT while the other transaction is open: retried, then named.
  const error = await checkpointWhenQuiet(db.connection, "db", { timeoutMs: 300 }).catch((e) => e);
  expect(error.code).toBe("BUSY");
  expect(error.message).toContain("other connections");
  // Once the other connection commits, the same call succeeds while still retrying.
  const retried = checkpointWhenQuiet(db.connection, "db", { timeoutMs: 10_000 });
  await other.run("COMMIT");
  await retried;
  other.closeSync();
  await db.close();
  const to = join(dir, "busy-restored.duckdb");
  await restore({ store, dbKey: db.dbKey, to });
  expect((await queryFile(to, "SELECT count(*)::INT AS n FROM t"))[0].n).toBe(1010);
});
