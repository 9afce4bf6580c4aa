/**
 * @module
 * One fault schedule: a seeded random workload with a checkpoint after every statement runs on a
 * `FaultyStore`; then, with the faults off, the database closes (shipping what is left) and every
 * published generation is restored (opened in stock DuckDB by restore itself) and compared with a
 * reference DuckDB fed the same statements up to that generation. Used by
 * tests/fault_schedule.test.ts (dozens of seeds) and bench/fault_schedule.ts (hundreds).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import { attach, listGenerations, restore, verify } from "@haduck/duckdb-fs-bridge";
import type { BlockStore } from "@haduck/s3-block-store";
import { readFileInfo } from "../../packages/duckdb-fs-bridge/local/_block_source.ts";
import { queryFile } from "./duckdb.ts";
import { FaultyStore, randomSchedule } from "./faulty_store.ts";
import { digest, workload } from "./workload.ts";

export interface ScheduleResult {
  seed: number;
  faults: number;
  generations: number;
  /** Generations whose restore equals the reference at that point. */
  matched: number;
  /** What did not hold, one line each (empty when the promise held). */
  mismatches: string[];
  verifyProblems: string[];
  holdTimeouts: number;
}

export async function runSchedule(options: { seed: number; steps: number; store: BlockStore; dir: string }):
  Promise<ScheduleResult> {
  const { seed, steps } = options;
  const dbKey = `schedule-${seed}`;
  const dir = mkdtempSync(join(options.dir, `${dbKey}-`));
  const dbPath = join(dir, `${dbKey}.duckdb`);
  const faulty = new FaultyStore(options.store, randomSchedule(seed, steps * 4), seed);
  faulty.enabled = false;
  const db = await attach({ dbPath, store: faulty, dbKey, catchUpDelayMs: 20 });
  faulty.enabled = true;
  const reference = await DuckDBInstance.create(":memory:");
  const referenceConnection = await reference.connect();
  const referenceRows = async (sql: string) => (await referenceConnection.runAndReadAll(sql)).getRowObjectsJS() as
    Record<string, unknown>[];
  const expected = new Map<number, string>();
  // The state a generation holds is the reference's when that header was first seen (a statement
  // that leaves the file's header alone changes only the WAL, which no generation holds).
  const note = async () => {
    const iteration = readFileInfo(dbPath)!.generation;
    if (!expected.has(iteration)) expected.set(iteration, await digest(referenceRows));
  };
  await note();
  const next = workload(seed);
  for (let step = 0; step < steps; step++) {
    const sql = next();
    await db.connection.run(sql);
    await referenceConnection.run(sql);
    await note(); // DuckDB may have checkpointed by itself at this commit
    await db.connection.run("CHECKPOINT db");
    await db.replicator.idle();
    await note();
  }
  faulty.enabled = false;
  await db.close();
  referenceConnection.closeSync();
  reference.closeSync();
  const holdTimeouts = db.replicator.options.native.holdStats().timeouts;

  const result: ScheduleResult = { seed, faults: faulty.faults.length, generations: 0, matched: 0, mismatches: [],
    verifyProblems: [], holdTimeouts };
  const local = readFileInfo(dbPath)!.generation;
  const generations = await listGenerations(options.store, dbKey);
  result.generations = generations.length;
  if (generations[generations.length - 1] !== local) {
    result.mismatches.push(`the latest generation is ${generations[generations.length - 1]}, the local file's ${local}`);
  }
  for (const generation of generations) {
    const to = join(dir, `${dbKey}-restored-${generation}.duckdb`);
    try {
      await restore({ store: options.store, dbKey, to, generation });
      const restored = await digest((sql) => queryFile(to, sql) as Promise<Record<string, unknown>[]>);
      const want = expected.get(generation);
      if (restored === want) result.matched++;
      else result.mismatches.push(`generation ${generation}: restored ${restored}, reference ${want ?? "(none)"}`);
    } catch (error) {
      result.mismatches.push(`generation ${generation}: ${(error as Error).message}`);
    } finally {
      rmSync(to, { force: true });
      rmSync(`${to}.haduck-identity`, { force: true });
    }
  }
  result.verifyProblems = (await verify(options.store, dbKey)).problems;
  rmSync(dir, { recursive: true, force: true });
  return result;
}
