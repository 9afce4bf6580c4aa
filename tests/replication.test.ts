/**
 * Replication end to end against radosgw and the filesystem store: generations carry DuckDB's
 * iteration and exactly the changed blocks; every generation restores to a file that stock DuckDB
 * opens with the same query results; corruption is detected by name and never applied.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { queryFile } from "./harness/duckdb.ts";
import { attach, listGenerations, loadManifest, restore, verify } from "@haduck/duckdb-fs-bridge";
import { FsBlockStore } from "@haduck/s3-block-store";
import { freshBucket } from "./harness/s3.ts";

const dir = mkdtempSync(join(tmpdir(), "haduck-repl-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function query(path: string, sql: string) {
  const rows = await queryFile(path, sql);
  return JSON.stringify(rows, (_, value) => typeof value === "bigint" ? value.toString() : value);
}

function changedBlocks(before: Uint8Array, after: Uint8Array, blockSize: number): number[] {
  const changed: number[] = [];
  const blocks = Math.ceil((Math.max(before.length, after.length) - 12288) / blockSize);
  for (let block = 0; block < blocks; block++) {
    const start = 12288 + block * blockSize;
    const a = before.subarray(start, start + blockSize);
    const b = after.subarray(start, start + blockSize);
    if (a.length !== b.length || !a.every((byte, i) => byte === b[i])) changed.push(block);
  }
  return changed;
}

test("a one-row update ships DuckDB's iteration and exactly the blocks that changed (radosgw)", async () => {
  const { store } = await freshBucket("repl-blocks");
  const dbPath = join(dir, "blocks.duckdb");
  const shipped: { generation: number; blocksShipped: number }[] = [];
  const db = await attach({ dbPath, store, onGeneration: (event) => shipped.push(event) });
  await db.connection.run("CREATE TABLE t AS SELECT * FROM range(1000000) r(i)");
  await db.checkpoint();
  const before = readFileSync(dbPath);
  await db.connection.run("UPDATE t SET i = -1 WHERE i = 5");
  await db.checkpoint();
  const after = readFileSync(dbPath);
  await db.close();
  const generations = await listGenerations(store, db.dbKey);
  const last = generations[generations.length - 2]; // close() may add an empty generation
  const { manifest } = await loadManifest(store, db.dbKey, shipped[shipped.length - 1].generation);
  const iteration = Number(new DataView(after.buffer, after.byteOffset).getBigUint64(4096 + 8, true)) >
      Number(new DataView(after.buffer, after.byteOffset).getBigUint64(8192 + 8, true))
    ? Number(new DataView(after.buffer, after.byteOffset).getBigUint64(4096 + 8, true))
    : Number(new DataView(after.buffer, after.byteOffset).getBigUint64(8192 + 8, true));
  expect(generations).toContain(iteration);
  expect(last).toBeGreaterThan(0);
  const updateGeneration = shipped.find((event) => event.generation === iteration)!;
  const diff = changedBlocks(before, after, 262144);
  expect(diff.length).toBeGreaterThan(0);
  // Shipped blocks are the changed ones (unchanged-content blocks are skipped, so never more).
  expect(updateGeneration.blocksShipped).toBe(diff.length);
  expect(manifest.generation).toBeGreaterThanOrEqual(iteration);
});

test("every generation restores to a file stock DuckDB opens with the same results (radosgw)", async () => {
  const { store } = await freshBucket("repl-restore");
  const dbPath = join(dir, "history.duckdb");
  const db = await attach({ dbPath, store });
  const expected = new Map<number, string>();
  const snapshot = "SELECT (SELECT count(*) FROM a)::INT AS a, (SELECT coalesce(sum(v), 0) FROM a)::BIGINT AS s, " +
    "(SELECT count(*) FROM b)::INT AS b";
  const statements = [
    "CREATE TABLE a (k INT, v BIGINT); CREATE TABLE b (name VARCHAR)",
    "INSERT INTO a SELECT i, i * 3 FROM range(200000) r(i)",
    "UPDATE a SET v = -v WHERE k % 7 = 0; INSERT INTO b VALUES ('x'), ('y')",
    "DELETE FROM a WHERE k < 50000; ALTER TABLE b ADD COLUMN n INT DEFAULT 4",
    "INSERT INTO a SELECT i, i FROM range(300000, 400000) r(i); DROP TABLE b; CREATE TABLE b AS SELECT 'z' AS name",
  ];
  for (const sql of statements) {
    await db.connection.run(sql);
    await db.checkpoint();
    const rows = (await db.connection.runAndReadAll(snapshot)).getRowObjects();
    expected.set(db.replicator.status.lastGeneration!, JSON.stringify(rows, (_, v) => typeof v === "bigint" ? `${v}` : v));
  }
  await db.close();
  expect(db.replicator.status.lastError).toBeNull();
  for (const [generation, rows] of expected) {
    const to = join(dir, `restored-${generation}.duckdb`);
    const result = await restore({ store, dbKey: db.dbKey, to, generation });
    expect(result.generation).toBe(generation);
    expect(await query(to, snapshot)).toBe(rows);
  }
  const report = await verify(store, db.dbKey);
  expect(report.problems).toEqual([]);
  expect(report.generations).toBeGreaterThanOrEqual(expected.size);
  await expect(restore({ store, dbKey: db.dbKey, to: join(dir, `restored-${[...expected.keys()][0]}.duckdb`) }))
    .rejects.toThrow("--force");
});

test("a flipped bit in a segment is detected by restore and verify, naming the object, and nothing is applied", async () => {
  const root = join(dir, "store-flip");
  const store = new FsBlockStore(root);
  const dbPath = join(dir, "flip.duckdb");
  const db = await attach({ dbPath, store });
  await db.connection.run("CREATE TABLE t AS SELECT i, i::VARCHAR AS s FROM range(100000) r(i)");
  await db.close();
  const generations = await listGenerations(store, db.dbKey);
  const { manifest } = await loadManifest(store, db.dbKey, generations[generations.length - 1]);
  const victim = manifest.blocks[0];
  const segment = manifest.segments[victim[1]].key;
  const bytes = await store.get(segment);
  bytes[victim[2] + 5] ^= 0x10;
  await store.put(segment, bytes);
  const to = join(dir, "flip-restored.duckdb");
  await expect(restore({ store, dbKey: db.dbKey, to })).rejects.toThrow(segment);
  expect(() => readFileSync(to)).toThrow();
  const report = await verify(store, db.dbKey);
  expect(report.problems.join("\n")).toContain(segment);
});
