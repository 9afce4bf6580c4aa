/**
 * A first upload while the application never stops checkpointing: `bun bench/converge.ts [GiB]`
 * (default 1; the figure is 8) makes a database of that size (random doubles, as
 * bench/scale.ts), then against radosgw, in the same run:
 *  - baseline: the first upload of the quiescent file (attach to a new key, as before DuckDB writes);
 *  - live: DuckDB has the file open through haduck:// and commits + checkpoints without pause (one
 *    row, then CHECKPOINT, every `PAUSE_MS`) while a replicator starts on it (`reconcile({ live })`,
 *    what a sidecar started again does) with the default hold. Measured: the time to its first
 *    generation, the checkpoints meanwhile, and the ratio to the baseline.
 * Bound stated (docs/ARCHITECTURE.md): the first generation within 2x the quiescent first upload
 * plus 2 holds. Writes bench/results/converge.json.
 */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import { attach, Native, openDuckDB, Replicator } from "@haduck/duckdb-fs-bridge";
import { S3BlockStore } from "@haduck/s3-block-store";
import { startRadosgw } from "../tests/harness/radosgw.ts";
import { writeResult } from "./_report.ts";

const SIZE_GIB = Number(process.argv[2] ?? 1);
const PAUSE_MS = 100;
const HOLD_MS = 10_000; // the replicator's default
const dir = mkdtempSync(join(tmpdir(), "haduck-bench-converge-"));
const cluster = await startRadosgw();
const { AwsClient } = await import("aws4fetch");
const client = new AwsClient({ accessKeyId: cluster.accessKey, secretAccessKey: cluster.secretKey, service: "s3",
  region: cluster.region, retries: 0 });
const bucket = `converge-${crypto.randomUUID().slice(0, 8)}`;
await client.fetch(`${cluster.endpoint}/${bucket}`, { method: "PUT" });
const store = new S3BlockStore({ ...cluster, bucket, prefix: "haduck" });
let result: Record<string, unknown>;
try {
  const dbPath = join(dir, "big.duckdb");
  const plain = await DuckDBInstance.create(dbPath);
  const setup = await plain.connect();
  await setup.run("SET threads = 2; SET memory_limit = '2GB'");
  await setup.run(`CREATE TABLE t AS SELECT i, random() AS a, random() AS b, random() AS c ` +
    `FROM range(${Math.round((SIZE_GIB * 1024 * 1048576) / 32)}) r(i)`);
  await setup.run("CREATE TABLE w (i INTEGER, stamp TIMESTAMP)");
  setup.closeSync();
  plain.closeSync();
  const fileMiB = statSync(dbPath).size / 1048576;

  // Baseline: the quiescent first upload.
  let started = performance.now();
  const quiet = await attach({ dbPath, store, dbKey: "quiet.duckdb" });
  const quietSeconds = (performance.now() - started) / 1000;
  await quiet.close();
  rmSync(`${dbPath}.haduck-identity`, { force: true });
  // The test cluster's disk (16 GiB) holds the file about twice: make room for the live phase.
  const quietKeys: string[] = [];
  for await (const object of store.list("quiet.duckdb/")) quietKeys.push(object.key);
  await store.deleteMany(quietKeys);

  // Live: DuckDB checkpoints without pause while the replicator starts.
  const instance = await openDuckDB();
  const connection = await instance.connect();
  await connection.run(`ATTACH 'haduck://${dbPath}' AS db`);
  let writing = true;
  let checkpoints = 0;
  const writer = (async () => {
    for (let i = 1; writing; i++) {
      await connection.run(`INSERT INTO db.w VALUES (${i}, now())`);
      await connection.run("CHECKPOINT db");
      checkpoints++;
      await Bun.sleep(PAUSE_MS);
    }
  })();
  await Bun.sleep(1000);
  const replicator = new Replicator({ native: new Native(), dbPath, store, dbKey: "live.duckdb", holdMs: HOLD_MS });
  await replicator.start();
  const sentBefore = store.stats.bytesSent;
  started = performance.now();
  const checkpointsBefore = checkpoints;
  const boundSeconds = 2 * quietSeconds + 2 * HOLD_MS / 1000;
  await replicator.reconcile({ live: true });
  while (replicator.status.lastGeneration === null && (performance.now() - started) / 1000 < 3 * boundSeconds) {
    await Bun.sleep(50);
  }
  const liveSeconds = replicator.status.lastGeneration === null ? null : (performance.now() - started) / 1000;
  const checkpointsMeanwhile = checkpoints - checkpointsBefore;
  const sentToFirstGenerationMiB = (store.stats.bytesSent - sentBefore) / 1048576;
  writing = false;
  await writer;
  const status = replicator.status;
  await connection.run("DETACH db");
  await replicator.stop();
  connection.closeSync();
  result = { sizeGiB: SIZE_GIB, fileMiB, quietFirstUploadSeconds: quietSeconds, liveFirstGenerationSeconds: liveSeconds,
    checkpointsMeanwhile, generationsDeferred: status.generationsDeferred, sentToFirstGenerationMiB,
    ratioToQuiet: liveSeconds === null ? null : liveSeconds / quietSeconds, boundSeconds,
    withinBound: liveSeconds !== null && liveSeconds <= boundSeconds };
  console.log(JSON.stringify(result));
} finally {
  await cluster.stop();
  rmSync(dir, { recursive: true, force: true });
}
writeResult("converge", result);
