/**
 * One process attaches a database, closes it, finds another file renamed into place at the same
 * path (a restore, as a promoted node does), and attaches again: the extension tracked the old file
 * at that path, and once announced its commits under the old file's iteration, so the shipper
 * took them as already in a generation and `flush()` answered true for commits the store never got.
 * Every commit flushed after the second attach must be in the store (`flush()` checks the shipper's
 * answer against the WAL and checkpoints when frames do not cover it).
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { attach, follow, restore } from "@haduck/duckdb-fs-bridge";
import { openStore } from "@haduck/s3-block-store";
import { DuckDBInstance } from "@duckdb/node-api";
import { queryFile } from "./harness/duckdb.ts";

const dir = mkdtempSync(join(tmpdir(), "haduck-reattach-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function flushedCommitsReachTheStore(store: ReturnType<typeof openStore>, path: string, dbKey: string,
  first: number, last: number, total: number): Promise<void> {
  const db = await attach({ dbPath: path, store, dbKey });
  try {
    for (let i = first; i <= last; i++) {
      await db.connection.run(`INSERT INTO db.t VALUES (${i})`);
      expect(await db.flush()).toBe(true);
    }
    const check = join(dir, `check-${dbKey}`);
    await restore({ store, dbKey, to: check, force: true });
    expect((await queryFile(check, "SELECT count(*) AS n FROM t")).map((row) => Number(row.n))).toEqual([total]);
  } finally {
    await db.close();
  }
}

test("attach, close, attach the same file again in the same process: every flushed commit is in the store", async () => {
  const store = openStore(`file://${join(dir, "store-same")}`);
  const path = join(dir, "same.duckdb");
  const db = await attach({ dbPath: path, store, dbKey: "same.duckdb" });
  await db.connection.run("CREATE TABLE db.t(i INTEGER)");
  await db.connection.run("INSERT INTO db.t VALUES (0)");
  expect(await db.flush()).toBe(true);
  await db.close();
  await flushedCommitsReachTheStore(store, path, "same.duckdb", 1, 10, 11);
  await flushedCommitsReachTheStore(store, path, "same.duckdb", 11, 15, 16);
}, 120_000);

test("attach, close, another file renamed into place, attach again: every flushed commit is in the store", async () => {
  const store = openStore(`file://${join(dir, "store")}`);
  const path = join(dir, "db.duckdb");
  let db = await attach({ dbPath: path, store, dbKey: "r.duckdb" });
  await db.connection.run("CREATE TABLE db.t(i INTEGER)");
  for (let i = 1; i <= 5; i++) await db.connection.run(`INSERT INTO db.t VALUES (${i})`);
  expect(await db.flush()).toBe(true);
  await db.connection.run("CHECKPOINT db");
  for (let i = 6; i <= 8; i++) await db.connection.run(`INSERT INTO db.t VALUES (${i})`);
  await db.close();
  // A restore takes the path's place while nothing has it open, its header some iterations further
  // on than the file this process tracked there (as a promoted node's file is: another leader wrote).
  await restore({ store, dbKey: "r.duckdb", to: join(dir, "restored.duckdb") });
  const other = await DuckDBInstance.create(join(dir, "restored.duckdb"));
  const connection = await other.connect();
  for (let i = 0; i < 4; i++) await connection.run("CREATE OR REPLACE TABLE scratch AS SELECT 1 AS x; CHECKPOINT");
  await connection.run("DROP TABLE scratch; CHECKPOINT");
  connection.closeSync();
  other.closeSync();
  renameSync(path, `${path}.aside`);
  renameSync(join(dir, "restored.duckdb"), path);
  renameSync(join(dir, "restored.duckdb.haduck-identity"), `${path}.haduck-identity`);
  db = await attach({ dbPath: path, store, dbKey: "r.duckdb" });
  try {
    for (let i = 9; i <= 20; i++) {
      await db.connection.run(`INSERT INTO db.t VALUES (${i})`);
      expect(await db.flush()).toBe(true);
    }
    const check = join(dir, "check.duckdb");
    await restore({ store, dbKey: "r.duckdb", to: check });
    expect((await queryFile(check, "SELECT count(*) AS n FROM t")).map((row) => Number(row.n))).toEqual([20]);
  } finally {
    await db.close();
  }
}, 120_000);

/** A cluster's writer at epoch 1 that commits 1..5 durably, is deposed (its later commits stay local), and closes. */
async function deposedWriter(store: ReturnType<typeof openStore>, path: string, dbKey: string): Promise<void> {
  let allowed = true;
  const fence = { epoch: 1, mayWrite: () => allowed, signal: () => new AbortController().signal, fenced: () => {} };
  const db = await attach({ dbPath: path, store, dbKey, fence });
  await db.connection.run("CREATE TABLE db.t(i INTEGER)");
  for (let i = 1; i <= 5; i++) {
    await db.connection.run(`INSERT INTO db.t VALUES (${i})`);
    expect(await db.flush()).toBe(true);
  }
  // Deposed: nothing more is written; commits it makes now stay local; it closes without shipping.
  allowed = false;
  for (let i = 100; i <= 103; i++) await db.connection.run(`INSERT INTO db.t VALUES (${i})`);
  await db.connection.run("CHECKPOINT db");
  db.replicator.cancelRequests("fenced");
  await db.close();
}

test("a writer fenced (its store requests cancelled), then the same process leads again on a restored file: every flushed commit is in the store", async () => {
  const store = openStore(`file://${join(dir, "store-fenced")}`);
  const path = join(dir, "fenced.duckdb");
  await deposedWriter(store, path, "fenced.duckdb");
  await restore({ store, dbKey: "fenced.duckdb", to: join(dir, "fenced-restored.duckdb") });
  renameSync(path, `${path}.aside`);
  renameSync(join(dir, "fenced-restored.duckdb"), path);
  renameSync(join(dir, "fenced-restored.duckdb.haduck-identity"), `${path}.haduck-identity`);
  await flushedCommitsReachTheStore(store, path, "fenced.duckdb", 6, 20, 20);
}, 120_000);

test("a writer deposed, then the same process leads again on its follower's materialized replica: every flushed commit is in the store", async () => {
  const store = openStore(`file://${join(dir, "store-promoted")}`);
  const path = join(dir, "promoted.duckdb");
  await deposedWriter(store, path, "promoted.duckdb");
  renameSync(path, `${path}.aside`);
  // As a cluster node: it follows for a while, then takes over and turns its replica into the file.
  const replica = await follow({ store, dbKey: "promoted.duckdb", dir: join(dir, "promoted-replica"), pollMs: 50 });
  await replica.materialize(path);
  await flushedCommitsReachTheStore(store, path, "promoted.duckdb", 6, 20, 20);
}, 120_000);
