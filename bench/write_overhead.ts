/**
 * Write-path overhead and bytes shipped, in one run (ratios, since machines are noisy):
 *  - the same bulk load + updates + checkpoints on a plain path and on a haduck:// path (local-only
 *    tracking, and replicating to a filesystem store), several alternating rounds;
 *  - bytes shipped for a one-row UPDATE + CHECKPOINT against the database file's size.
 * Writes bench/results/write_overhead.json. Run: `bun bench/write_overhead.ts [rows] [rounds]`.
 */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { attach, openDuckDB } from "@haduck/duckdb-fs-bridge";
import { FsBlockStore } from "@haduck/s3-block-store";
import { median, writeResult } from "./_report.ts";

const ROWS = Number(process.argv[2] ?? 20_000_000);
const ROUNDS = Number(process.argv[3] ?? 5);
const dir = mkdtempSync(join(tmpdir(), "haduck-bench-"));

async function workload(run: (sql: string) => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await run(`CREATE TABLE t AS SELECT i, i * 2 AS j, md5(i::VARCHAR) AS s FROM range(${ROWS}) r(i)`);
  await run("CHECKPOINT");
  for (let k = 0; k < 5; k++) {
    await run(`UPDATE t SET j = j + 1 WHERE i % 97 = ${k}`);
    await run("CHECKPOINT");
  }
  return performance.now() - started;
}

async function plain(round: number): Promise<number> {
  const instance = await openDuckDB(join(dir, `plain-${round}.duckdb`));
  const connection = await instance.connect();
  const ms = await workload((sql) => connection.run(sql));
  connection.closeSync();
  instance.closeSync();
  return ms;
}

async function haduck(round: number, withStore: boolean): Promise<number> {
  const db = await attach({ dbPath: join(dir, `haduck-${withStore}-${round}.duckdb`),
    store: withStore ? new FsBlockStore(join(dir, `store-${round}`)) : undefined });
  const ms = await workload(async (sql) => {
    await db.connection.run(sql);
    if (sql === "CHECKPOINT") await db.replicator.idle();
  });
  await db.close();
  return ms;
}

const times = { plain: [] as number[], tracking: [] as number[], replicating: [] as number[] };
for (let round = 0; round < ROUNDS; round++) {
  times.plain.push(await plain(round));
  times.tracking.push(await haduck(round, false));
  times.replicating.push(await haduck(round, true));
}

// Bytes shipped for a one-row update.
const dbPath = join(dir, "one-row.duckdb");
const shipped: number[] = [];
const db = await attach({ dbPath, store: new FsBlockStore(join(dir, "store-one-row")),
  onGeneration: (event) => shipped.push(event.bytesShipped) });
await db.connection.run(`CREATE TABLE t AS SELECT i, md5(i::VARCHAR) AS s FROM range(${ROWS}) r(i)`);
await db.checkpoint();
shipped.length = 0;
await db.connection.run("UPDATE t SET s = 'changed' WHERE i = 12345");
await db.checkpoint();
const oneRowBytes = shipped.reduce((sum, bytes) => sum + bytes, 0);
const fileBytes = statSync(dbPath).size;
await db.close();

const result = {
  rows: ROWS,
  rounds: ROUNDS,
  medianMs: { plain: median(times.plain), tracking: median(times.tracking), replicating: median(times.replicating) },
  ratio: {
    trackingVsPlain: median(times.tracking) / median(times.plain),
    replicatingVsPlain: median(times.replicating) / median(times.plain),
  },
  oneRowUpdate: { bytesShipped: oneRowBytes, fileBytes, fileToShippedRatio: fileBytes / Math.max(1, oneRowBytes) },
};
writeResult("write_overhead", result);
console.log(JSON.stringify(result, null, 2));
rmSync(dir, { recursive: true, force: true });
