/**
 * A seeded random workload (inserts, updates, deletes, DDL, several tables) replicated to radosgw
 * with a checkpoint after every step. A plain DuckDB database fed the same statements is the
 * reference: every generation restores to a file whose tables match the reference's at that
 * point, row for row (by count and an order-independent hash of whole rows).
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import { attach, listGenerations, restore } from "@haduck/duckdb-fs-bridge";
import { queryFile } from "./harness/duckdb.ts";
import { freshBucket } from "./harness/s3.ts";

const SEED = Number(process.env.HADUCK_WORKLOAD_SEED ?? 20261125);
const STEPS = Number(process.env.HADUCK_WORKLOAD_STEPS ?? 14);
const dir = mkdtempSync(join(tmpdir(), "haduck-random-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The next statement of the workload, keeping track of the tables it made. */
function workload(seed: number) {
  let state = seed;
  const random = (n: number) => Math.floor((state = (state * 1103515245 + 12345) % 2147483648) / 2147483648 * n);
  const tables: { name: string; rows: number; columns: number }[] = [];
  let made = 0;
  return (): string => {
    const roll = random(100);
    if (tables.length === 0 || (roll < 12 && tables.length < 4)) {
      const name = `t${made++}`;
      tables.push({ name, rows: 0, columns: 0 });
      return `CREATE TABLE ${name} (id BIGINT, v BIGINT, s VARCHAR)`;
    }
    const table = tables[random(tables.length)];
    if (roll < 50) {
      const count = 1 + random(30000);
      const offset = table.rows;
      table.rows += count;
      return `INSERT INTO ${table.name} (id, v, s) SELECT i + ${offset}, (i * ${1 + random(97)}) % 1000, ` +
        `md5((i + ${offset})::VARCHAR) FROM range(${count}) r(i)`;
    }
    if (roll < 70) return `UPDATE ${table.name} SET v = v + ${1 + random(9)}, s = 'u' || s WHERE id % ${2 + random(40)} = 0`;
    if (roll < 85) return `DELETE FROM ${table.name} WHERE id % ${3 + random(50)} = ${random(3)}`;
    if (roll < 95) return `ALTER TABLE ${table.name} ADD COLUMN c${table.columns++} INT DEFAULT ${random(1000)}`;
    if (tables.length > 1) {
      tables.splice(tables.indexOf(table), 1);
      return `DROP TABLE ${table.name}`;
    }
    return `DELETE FROM ${table.name} WHERE v < ${random(200)}`;
  };
}

/** Every table's row count and an order-independent hash of its whole rows. */
const DIGEST_TABLES = "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' ORDER BY table_name";
async function digest(run: (sql: string) => Promise<Record<string, unknown>[]>): Promise<string> {
  const parts: string[] = [];
  for (const { table_name } of await run(DIGEST_TABLES)) {
    const [row] = await run(`SELECT count(*)::BIGINT AS n, coalesce(bit_xor(hash(t)), 0)::UBIGINT AS h FROM ${table_name} t`);
    parts.push(`${table_name}:${row.n}:${row.h}`);
  }
  return parts.join(" ");
}

test(`a random workload (seed ${SEED}, ${STEPS} steps): every generation restores to the reference's state`, async () => {
  const { store } = await freshBucket("random");
  const db = await attach({ dbPath: join(dir, "random.duckdb"), store });
  const reference = await DuckDBInstance.create(":memory:");
  const referenceConnection = await reference.connect();
  const referenceRows = async (sql: string) => (await referenceConnection.runAndReadAll(sql)).getRowObjectsJS() as
    Record<string, unknown>[];
  const next = workload(SEED);
  const expected = new Map<number, string>();
  for (let step = 0; step < STEPS; step++) {
    const sql = next();
    await db.connection.run(sql);
    await referenceConnection.run(sql);
    await db.checkpoint();
    expect(db.replicator.status.lastError).toBeNull();
    expected.set(db.replicator.status.lastGeneration!, await digest(referenceRows));
  }
  await db.close();
  referenceConnection.closeSync();
  reference.closeSync();

  const generations = await listGenerations(store, db.dbKey);
  let compared = 0;
  for (const generation of generations) {
    const to = join(dir, `generation-${generation}.duckdb`);
    await restore({ store, dbKey: db.dbKey, to, generation });
    const restored = await digest((sql) => queryFile(to, sql) as Promise<Record<string, unknown>[]>);
    if (expected.has(generation)) {
      expect({ generation, tables: restored }).toEqual({ generation, tables: expected.get(generation)! });
      compared++;
    }
    rmSync(to);
  }
  if (process.env.HADUCK_WORKLOAD_VERBOSE) console.log([...expected].map(([g, d]) => `${g} ${d}`).join("\n"));
  expect(compared).toBe(new Set(expected.keys()).size);
  expect(compared).toBeGreaterThanOrEqual(STEPS / 2);
}, 300_000);
