/**
 * A seeded random workload (inserts, updates, deletes, DDL, several tables) replicated to radosgw
 * with a checkpoint after every step. A plain DuckDB database fed the same statements is the
 * reference: every generation restores to a file whose tables match the reference's at that
 * point, row for row (by count and an order-independent sum of whole-row hashes).
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import { attach, listGenerations, restore } from "@haduck/duckdb-fs-bridge";
import { queryFile } from "./harness/duckdb.ts";
import { freshBucket } from "./harness/s3.ts";
import { digest, workload } from "./harness/workload.ts";

const SEED = Number(process.env.HADUCK_WORKLOAD_SEED ?? 20261125);
const STEPS = Number(process.env.HADUCK_WORKLOAD_STEPS ?? 14);
const dir = mkdtempSync(join(tmpdir(), "haduck-random-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

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
