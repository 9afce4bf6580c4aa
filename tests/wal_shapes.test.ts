/**
 * WAL frames carry exactly what DuckDB committed, for the shapes that are hard to replay: a 200k-row
 * insert into a primary-key table (DuckDB 1.4.4 gets it wrong replaying read-only), a bulk insert
 * without one (optimistic writes: blocks written before a WAL entry that only points at them), CREATE INDEX (1.4.4's read-only replay fails on it), DDL,
 * deletes, updates, a rolled-back bulk insert, a commit racing a checkpoint, and a WAL deleted and
 * recreated by many checkpoints. After each step the commits are made durable (`flush()`) and the
 * content recorded; the latest restore and restores `--time` at several of those moments must equal
 * the content recorded then. Then the narrow failures: a flipped bit in a frame is refused by name
 * (restore and verify), a missing frame stops the restore at the last contiguous one and says so.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { attach, listGenerations, restore, verify } from "@haduck/duckdb-fs-bridge";
import { readFileInfo } from "../packages/duckdb-fs-bridge/local/_block_source.ts";
import { type BlockStore, openStore } from "@haduck/s3-block-store";
import { queryFile } from "./harness/duckdb.ts";
import { testOnEachStore } from "./harness/each_store.ts";
import { digest } from "./harness/workload.ts";

const dir = mkdtempSync(join(tmpdir(), "haduck-wal-shapes-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Run = (sql: string) => Promise<Record<string, unknown>[]>;

/** Tables (rows and content), indexes and views: what a restore must give back. */
async function content(run: Run): Promise<string> {
  const indexes = await run("SELECT index_name, table_name FROM duckdb_indexes() WHERE database_name = " +
    "current_database() ORDER BY ALL");
  const views = await run("SELECT view_name FROM duckdb_views() WHERE NOT internal AND database_name = " +
    "current_database() ORDER BY ALL");
  return `${await digest(run)} | indexes ${JSON.stringify(indexes)} | views ${JSON.stringify(views)}`;
}

const fileContent = (path: string) => content((sql) => queryFile(path, sql) as Promise<Record<string, unknown>[]>);

async function shapes(store: BlockStore, label: string) {
  const dbKey = `${label}.duckdb`;
  const db = await attach({ dbPath: join(dir, dbKey), store });
  const run: Run = async (sql) => (await db.connection.runAndReadAll(sql)).getRowObjects();
  const points: { name: string; time: string; content: string }[] = [];
  const point = async (name: string) => {
    expect(await db.flush()).toBe(true);
    points.push({ name, time: new Date().toISOString(), content: await content(run) });
    await Bun.sleep(5); // the next commit is strictly later than this moment
  };
  await run("CREATE TABLE pk (id BIGINT PRIMARY KEY, v VARCHAR)");
  await run("INSERT INTO pk SELECT i, 'v' || i FROM range(200000) r(i)");
  await point("200k rows into a primary-key table");
  // Without a primary key a bulk insert writes its row groups into free blocks before the commit,
  // and the WAL only points at them: the frame must carry those blocks.
  await run("CREATE TABLE bulk (id BIGINT, v VARCHAR)");
  await run("INSERT INTO bulk SELECT i, md5(i::VARCHAR) FROM range(300000) r(i)");
  await point("300k rows written optimistically");
  await run("CREATE TABLE small AS SELECT i, i % 7 AS g FROM range(1000) r(i)");
  await run("CREATE INDEX small_g ON small (g)");
  await point("CREATE INDEX");
  await run("ALTER TABLE small ADD COLUMN note VARCHAR DEFAULT 'n'");
  await run("CREATE VIEW big_ids AS SELECT id FROM pk WHERE id > 100000");
  await run("CREATE TABLE doomed AS SELECT 1 AS x");
  await run("DROP TABLE doomed");
  await point("DDL");
  await run("DELETE FROM pk WHERE id % 3 = 0");
  await run("UPDATE pk SET v = 'u' || v WHERE id % 5 = 0");
  await point("deletes and updates");
  await run("BEGIN");
  await run("INSERT INTO pk SELECT i, 'rolled back' FROM range(300000, 500000) r(i)"); // optimistic writes, then...
  await run("ROLLBACK");
  await run("INSERT INTO small VALUES (5000, 1, 'after rollback')");
  await point("rolled back");
  const other = await db.instance.connect();
  await other.run("USE db");
  await Promise.all([
    other.run("INSERT INTO pk SELECT i, 'raced' FROM range(600000, 650000) r(i)"),
    db.connection.run("CHECKPOINT").catch(() => {}), // refused while the insert runs: fine either way
  ]);
  other.closeSync();
  await point("a commit racing a checkpoint");
  for (let round = 0; round < 8; round++) {
    await run(`INSERT INTO small VALUES (${10000 + round}, ${round}, 'round')`);
    if (round === 4) await point("between checkpoints");
    await run("CHECKPOINT"); // deletes the WAL; the next commit creates it again
  }
  await run("UPDATE small SET note = 'last' WHERE i < 10");
  await run("INSERT INTO pk SELECT i, 'tail' FROM range(700000, 700100) r(i)");
  await point("after the WAL was recreated");
  const status = db.replicator.status;
  expect(status.framesShipped).toBeGreaterThan(5);
  expect(status.framesStopped).toBeNull();
  expect(status.walLagMs).toBe(0);
  // Kill-like end: the local process goes away without a last checkpoint.
  const final = points.at(-1)!;
  const latest = join(dir, `${label}-latest.duckdb`);
  const result = await restore({ store, dbKey, to: latest });
  expect(result.commits).toBeGreaterThan(0);
  expect(await fileContent(latest)).toBe(final.content);
  for (const index of [0, 1, 2, 4, 5, 7]) {
    const at = points[index];
    const to = join(dir, `${label}-at-${index}.duckdb`);
    await restore({ store, dbKey, to, time: at.time });
    expect({ point: at.name, content: await fileContent(to) }).toEqual({ point: at.name, content: at.content });
  }
  await db.close();
  const report = await verify(store, dbKey);
  expect(report.problems).toEqual([]);
  expect(report.frames).toBeGreaterThan(5);
}

testOnEachStore("WAL shapes restore exactly, latest and --time", { dir, label: "shapes", timeoutMs: 300_000 }, shapes);

test("a flipped bit in a frame is refused by name; a missing frame stops the restore at the one before", async () => {
  const root = join(dir, "damage-store");
  const store = openStore(`file://${root}`);
  const db = await attach({ dbPath: join(dir, "damage.duckdb"), store });
  await db.connection.run("CREATE TABLE t (i INT)");
  expect(await db.flush()).toBe(true);
  for (let i = 0; i < 3; i++) {
    await db.connection.run(`INSERT INTO t VALUES (${i})`);
    expect(await db.flush()).toBe(true); // one frame each
  }
  const frames: string[] = [];
  for await (const object of store.list("damage.duckdb/frames/")) frames.push(object.key);
  db.replicator.options.native.detach(); // no last checkpoint: the frames are all there is after generation 0
  await db.replicator.stop({ deadlineMs: 1 }).catch(() => {});
  expect(frames.length).toBe(4); // CREATE TABLE and three inserts
  const path = (key: string) => join(root, key);
  const original = readFileSync(path(frames[2]));
  const flipped = Buffer.from(original);
  flipped[flipped.length - 40] ^= 0x04;
  writeFileSync(path(frames[2]), flipped);
  const to = join(dir, "damage-restored.duckdb");
  await expect(restore({ store, dbKey: "damage.duckdb", to })).rejects.toThrow(`WAL frame ${frames[2]} is damaged`);
  expect((await verify(store, "damage.duckdb")).problems.join("\n")).toContain(`WAL frame ${frames[2]} is damaged`);
  // A missing frame: the restore keeps what comes before it and says what it left out.
  writeFileSync(path(frames[2]), original);
  rmSync(path(frames[2]));
  const result = await restore({ store, dbKey: "damage.duckdb", to });
  expect(result.frames).toBe(2);
  expect(result.warning).toContain("frame 3 of generation");
  expect(result.warning).toContain("missing");
  expect((await queryFile(to, "SELECT i FROM t ORDER BY i")).map((row) => row.i)).toEqual([0]);
  // verify names what the history leaves out: frames past a missing one are what a writer killed
  // with frames in flight leaves (never acknowledged), not damage.
  const report = await verify(store, "damage.duckdb");
  expect(report.problems).toEqual([]);
  expect(report.skipped.join("\n")).toContain("frame 3 of generation");
  expect(report.skipped.join("\n")).toContain("frames 4..4 were written past it and not applied");
}, 120_000);

test("flush() waits for a commit DuckDB checkpointed instead of logging (a large insert on an empty WAL)", async () => {
  const store = openStore(`file://${join(dir, "checkpointed-store")}`);
  const dbPath = join(dir, "checkpointed.duckdb");
  const db = await attach({ dbPath, store, catchUpDelayMs: 0 });
  await db.connection.run("CREATE TABLE t (i BIGINT, v VARCHAR)");
  await db.connection.run("CHECKPOINT");
  expect(await db.flush()).toBe(true);
  const before = readFileInfo(dbPath)!.generation;
  await db.connection.run("SET checkpoint_threshold = '1KB'"); // DuckDB checkpoints at the commit instead
  await db.connection.run("INSERT INTO t SELECT i, md5(i::VARCHAR) FROM range(100000) r(i)");
  const local = readFileInfo(dbPath)!.generation;
  expect(local).toBeGreaterThan(before); // the insert is in a new header, not in the WAL
  expect(await db.flush()).toBe(true);
  // Durable means: the store holds a generation at least as new as the header that holds the insert.
  expect((await listGenerations(store, "checkpointed.duckdb")).at(-1)!).toBeGreaterThanOrEqual(local);
  await db.close();
}, 60_000);
