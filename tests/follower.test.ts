/**
 * `follow()`: an in-process read replica. A writer (`attach()`) commits with and without
 * checkpoints; the follower shows each commit within a few polls, every read sees one committed
 * state (commits insert pairs of rows: a read never sees an odd count), and a query running while
 * the follower switches to a newer commit finishes on its own snapshot.
 */
import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { attach, follow } from "@haduck/duckdb-fs-bridge";
import { openStore } from "@haduck/s3-block-store";

const dir = mkdtempSync(join(tmpdir(), "haduck-follower-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function until(what: string, condition: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!await condition()) {
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs} ms`);
    await Bun.sleep(25);
  }
}

test("a follower shows the writer's commits, frames and checkpoints alike, each read one committed state", async () => {
  const store = openStore(`file://${join(dir, "store")}`);
  const writer = await attach({ dbPath: join(dir, "primary.duckdb"), store, dbKey: "f.duckdb" });
  await writer.connection.run("CREATE TABLE db.pairs(i INTEGER)");
  await writer.checkpoint();
  const replicaDir = join(dir, "replica");
  const replica = await follow({ store, dbKey: "f.duckdb", dir: replicaDir, pollMs: 50 });
  const count = async () => Number((await replica.query("SELECT count(*) AS n FROM pairs"))[0].n);
  try {
    expect(await count()).toBe(0);
    const reads: number[] = [];
    for (let i = 0; i < 20; i++) {
      await writer.connection.run(`INSERT INTO db.pairs VALUES (${2 * i}), (${2 * i + 1})`);
      if (i % 7 === 6) await writer.checkpoint(); // some commits arrive in a generation, most in frames
      reads.push(await count());
    }
    expect(await writer.flush()).toBe(true);
    await until("the follower shows all 40 rows", async () => await count() === 40);
    expect(reads.every((n) => n % 2 === 0)).toBe(true);
    expect(reads.at(-1)! <= 40).toBe(true);
    expect(replica.position!.frames + replica.position!.generation).toBeGreaterThan(0);
    expect(replica.lastError).toBeNull();
    expect(replica.lagMs).toBe(0);
  } finally {
    await replica.close();
    await writer.close();
  }
  // Closed: the replica's files are gone.
  expect(readdirSync(replicaDir).filter((name) => name.endsWith(".duckdb"))).toEqual([]);
}, 120_000);

test("a query running while the follower switches to a newer commit finishes on its own snapshot", async () => {
  const store = openStore(`file://${join(dir, "store2")}`);
  const writer = await attach({ dbPath: join(dir, "primary2.duckdb"), store, dbKey: "g.duckdb" });
  await writer.connection.run("CREATE TABLE db.t AS SELECT * FROM range(20000) r(i)");
  await writer.checkpoint();
  let appliedAt = 0;
  const replica = await follow({ store, dbKey: "g.duckdb", dir: join(dir, "replica2"), pollMs: 50,
    onApply: () => appliedAt = performance.now() });
  try {
    const before = replica.position!;
    // A slow read of the old snapshot (a cross join), started before the writer changes anything.
    let finishedAt = 0;
    const slow = replica.query("SELECT count(*) AS n, sum(a.i) AS s FROM t a, range(100000) b")
      .finally(() => finishedAt = performance.now());
    await writer.connection.run("DELETE FROM db.t WHERE i < 10000");
    await writer.checkpoint();
    await until("the follower applies the delete", async () => replica.position!.generation > before.generation);
    const [row] = await slow;
    expect(appliedAt).toBeLessThan(finishedAt); // the switch happened while the query ran
    expect(Number(row.n)).toBe(20000 * 100000); // the snapshot it started on, whole
    expect(Number((await replica.query("SELECT count(*) AS n FROM t"))[0].n)).toBe(10000);
  } finally {
    await replica.close();
    await writer.close();
  }
}, 120_000);

test("following a key the store has nothing for fails by name", async () => {
  const store = openStore(`file://${join(dir, "empty-store")}`);
  const error = await follow({ store, dbKey: "none.duckdb", dir: join(dir, "replica3") }).catch((e) => e);
  expect(error.code).toBe("NO_GENERATIONS");
  expect(existsSync(join(dir, "replica3", "replica-1.duckdb"))).toBe(false);
});

test("a follower shows the WAL shapes DuckDB 1.4.4 replays wrongly read-only: bulk inserts, indexes, ALTERs", async () => {
  const store = openStore(`file://${join(dir, "store4")}`);
  const writer = await attach({ dbPath: join(dir, "primary4.duckdb"), store, dbKey: "shapes.duckdb" });
  await writer.connection.run("CREATE TABLE db.base(i INTEGER)");
  await writer.checkpoint();
  const replica = await follow({ store, dbKey: "shapes.duckdb", dir: join(dir, "replica4"), pollMs: 50 });
  const statements = [
    // Optimistic writes: row groups written into free blocks before the WAL names them.
    "CREATE TABLE db.bulk AS SELECT range AS i, 'row ' || range AS s FROM range(300000)",
    "INSERT INTO db.bulk SELECT range + 300000, 'more' FROM range(200000)",
    "CREATE INDEX bulk_i ON db.bulk(i)",
    "CREATE TABLE db.altered(a INTEGER, b VARCHAR, s STRUCT(x INTEGER, y VARCHAR))",
    "INSERT INTO db.altered VALUES (1, '10', {'x': 1, 'y': 'one'}), (2, '20', {'x': 2, 'y': 'two'})",
    "ALTER TABLE db.altered ALTER b TYPE INTEGER USING b::INTEGER * 2",
    "ALTER TABLE db.altered ADD COLUMN c INTEGER DEFAULT 7",
    "ALTER TABLE db.altered ALTER s TYPE STRUCT(x INTEGER, y VARCHAR, z INTEGER)",
    "UPDATE db.bulk SET s = 'updated' WHERE i % 1000 = 0",
    "DELETE FROM db.bulk WHERE i % 7 = 3",
  ];
  const checks = [
    "SELECT count(*)::BIGINT AS n, sum(i)::BIGINT AS s, count(*) FILTER (WHERE s = 'updated')::BIGINT AS u FROM bulk",
    "SELECT i FROM bulk WHERE i = 123456",
    "SELECT a, b, c, s::VARCHAR AS s FROM altered ORDER BY a",
  ];
  try {
    for (const statement of statements) await writer.connection.run(statement);
    expect(await writer.flush()).toBe(true); // in frames, no checkpoint
    const expected = [];
    for (const check of checks) expected.push((await writer.connection.runAndReadAll(check)).getRowObjectsJson());
    await until("the follower shows every statement", async () => {
      await replica.refresh();
      const rows = await replica.withConnection(async (connection) =>
        (await connection.runAndReadAll(checks[0])).getRowObjectsJson()).catch(() => undefined);
      return JSON.stringify(rows) === JSON.stringify(expected[0]);
    });
    for (const [index, check] of checks.entries()) {
      const rows = await replica.withConnection(async (connection) => (await connection.runAndReadAll(check)).getRowObjectsJson());
      expect(rows).toEqual(expected[index]);
    }
    expect(replica.position!.frames).toBeGreaterThan(0);
  } finally {
    await replica.close();
    await writer.close();
  }
}, 120_000);
