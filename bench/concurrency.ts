/**
 * Commit latency and throughput under concurrent connections: the same load (inserts, updates,
 * deletes of each connection's own rows; automatic checkpoints at 1 MB of WAL; a few manual ones)
 * on plain DuckDB and on haduck (radosgw and the filesystem store), with 4 and 16 connections, in
 * one run. Figures: commits/s and commit latency p50/p99 per configuration, the ratios to plain
 * (goals: p99 at most 1.2x, throughput at least 0.9x), hold timeouts (must be 0), generations
 * published, that every one of them restores (opened in DuckDB, every row read), and that the latest
 * equals the local file after close. Minutes and more connections: `bun bench/concurrency.ts 300`.
 * Writes bench/results/concurrency.json. Run: `bun bench/concurrency.ts [seconds] [rowsMax]`
 * (defaults 30 and 2000).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import { AwsClient } from "aws4fetch";
import { attach, listGenerations, restore, verify } from "@haduck/duckdb-fs-bridge";
import { type BlockStore, openStore, S3BlockStore } from "@haduck/s3-block-store";
import { type LoadFigures, prepareLoad, runLoad } from "../tests/harness/concurrent_load.ts";
import { queryFile } from "../tests/harness/duckdb.ts";
import { startRadosgw } from "../tests/harness/radosgw.ts";
import { digest } from "../tests/harness/workload.ts";
import { writeResult } from "./_report.ts";

const SECONDS = Number(process.argv[2] ?? 30);
const ROWS_MAX = Number(process.argv[3] ?? 2000);
const dir = mkdtempSync(join(tmpdir(), "haduck-bench-concurrency-"));
const cluster = await startRadosgw();
const results: Record<string, unknown>[] = [];

async function plain(connections: number): Promise<LoadFigures> {
  const instance = await DuckDBInstance.create(join(dir, `plain-${connections}.duckdb`));
  const connection = await instance.connect();
  await connection.run("SET checkpoint_threshold = '1MB'");
  await connection.run("ATTACH ':memory:' AS unused"); // the same shape as haduck's: the table in an attached db
  await connection.run(`ATTACH '${join(dir, `plain-${connections}-db.duckdb`)}' AS db`);
  await prepareLoad(instance, "db.t");
  const figures = await runLoad({ instance, table: "db.t", connections, durationMs: SECONDS * 1000,
    insertRowsMax: ROWS_MAX, checkpointAlias: "db" });
  connection.closeSync();
  instance.closeSync();
  return figures;
}

async function haduck(connections: number, store: BlockStore, label: string) {
  const dbPath = join(dir, `${label}-${connections}.duckdb`);
  const db = await attach({ dbPath, store });
  const native = db.replicator.options.native;
  const timeoutsBefore = native.holdStats().timeouts;
  await db.connection.run("SET checkpoint_threshold = '1MB'");
  await prepareLoad(db.instance, "db.t");
  let lagMsMax = 0;
  const figures = await runLoad({ instance: db.instance, table: "db.t", connections, durationMs: SECONDS * 1000,
    insertRowsMax: ROWS_MAX, checkpointAlias: "db",
    onSample: () => lagMsMax = Math.max(lagMsMax, db.replicator.status.lagMs) });
  const closeStarted = performance.now();
  await db.close();
  const closeMs = performance.now() - closeStarted;
  const status = db.replicator.status;
  // Every published generation restores, and restore opens each in DuckDB reading every row.
  const generations = await listGenerations(store, db.dbKey);
  const to = join(dir, `${label}-${connections}-restored.duckdb`);
  let restoredGenerations = 0;
  for (const generation of generations) {
    await restore({ store, dbKey: db.dbKey, to, generation, force: true });
    restoredGenerations++;
  }
  await restore({ store, dbKey: db.dbKey, to, force: true });
  const read = (path: string) => (sql: string) => queryFile(path, sql) as Promise<Record<string, unknown>[]>;
  const latestEqualsLocal = await digest(read(to)) === await digest(read(dbPath));
  return { figures, holdTimeouts: native.holdStats().timeouts - timeoutsBefore, generationsCommitted:
    status.generationsCommitted, generationsDeferred: status.generationsDeferred, lagMsMax, closeMs,
    generationsInStore: generations.length, restoredGenerations, latestEqualsLocal,
    verifyProblems: (await verify(store, db.dbKey)).problems.length, lastError: status.lastError };
}

try {
  const client = new AwsClient({ accessKeyId: cluster.accessKey, secretAccessKey: cluster.secretKey, service: "s3",
    region: cluster.region, retries: 0 });
  await client.fetch(`${cluster.endpoint}/concurrency`, { method: "PUT" });
  const stores: Record<string, BlockStore> = {
    radosgw: new S3BlockStore({ ...cluster, bucket: "concurrency", prefix: "haduck" }),
    filesystem: openStore(`file://${join(dir, "store")}`),
  };
  for (const connections of [4, 16]) {
    const baseline = await plain(connections);
    console.log(`plain, ${connections} connections:`, JSON.stringify(baseline));
    for (const [label, store] of Object.entries(stores)) {
      const run = await haduck(connections, store, label);
      const ratios = { p99: run.figures.latencyMs.p99 / baseline.latencyMs.p99,
        p50: run.figures.latencyMs.p50 / baseline.latencyMs.p50,
        throughput: run.figures.commitsPerSecond / baseline.commitsPerSecond };
      console.log(`haduck ${label}, ${connections} connections:`, JSON.stringify({ ...run, ratios }));
      results.push({ connections, store: label, plain: baseline, ...run, ratios,
        goalsMet: { p99: ratios.p99 <= 1.2, throughput: ratios.throughput >= 0.9 } });
    }
  }
} finally {
  await cluster.stop();
  rmSync(dir, { recursive: true, force: true });
}
writeResult("concurrency", { seconds: SECONDS, insertRowsMax: ROWS_MAX, results });
