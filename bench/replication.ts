/**
 * Replication against radosgw, each figure next to a baseline measured in the same run:
 *  - bytes shipped for a one-row UPDATE + CHECKPOINT in a database of about `sizeMiB` (default
 *    1024), against the file's size (goal: under 2 MiB);
 *  - CHECKPOINT time of the same bulk change with and without haduck, uploads keeping up (goal
 *    at most 1.1x);
 *  - upload throughput of the first generation against a bare parallel PUT of the same file in
 *    8 MiB objects (goal at least 0.9x);
 *  - restore throughput against a bare parallel GET of the same segments (goal at least 0.9x), and
 *    against the slower of that GET and the disk alone (writing the same bytes and fsyncing);
 *  - for the upload, the CPU seconds of this process and of the S3 server's processes.
 * Peak memory is bench/memory.ts. Writes bench/results/replication.json.
 * Run: `bun bench/replication.ts [sizeMiB]` (uses HADUCK_TEST_S3_* when set, else starts radosgw).
 */
import { AwsClient } from "aws4fetch";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { attach, latestManifest, openDuckDB, restore } from "@haduck/duckdb-fs-bridge";
import { S3BlockStore, sha256Hex } from "@haduck/s3-block-store";
import { startRadosgw } from "../tests/harness/radosgw.ts";
import { cpuMeter } from "./_cpu.ts";
import { median, writeResult } from "./_report.ts";

const SIZE_MIB = Number(process.argv[2] ?? 1024);
// Four random DOUBLE columns do not compress: about 32 bytes a row on disk.
const ROWS = Math.round((SIZE_MIB * 1048576) / 32);
const CHUNK_BYTES = 8 * 1024 * 1024;
const dir = mkdtempSync(join(tmpdir(), "haduck-bench-replication-"));

const external = process.env.HADUCK_TEST_S3_ENDPOINT;
const cluster = external
  ? { endpoint: external, accessKey: process.env.HADUCK_TEST_S3_ACCESS_KEY!,
    secretKey: process.env.HADUCK_TEST_S3_SECRET_KEY!, region: "us-east-1", stop: async () => {} }
  : await startRadosgw();
const client = new AwsClient({ accessKeyId: cluster.accessKey, secretAccessKey: cluster.secretKey, service: "s3",
  region: cluster.region, retries: 0 });
const bucket = `bench-${crypto.randomUUID().slice(0, 8)}`;
if ((await client.fetch(`${cluster.endpoint}/${bucket}`, { method: "PUT" })).status !== 200) {
  throw new Error("Cannot create the bench bucket");
}
const store = new S3BlockStore({ ...cluster, bucket, prefix: "haduck" });

/** Runs `work(i)` for i in [0, count) with `concurrency` workers; returns seconds. */
async function parallel(count: number, concurrency: number, work: (index: number) => Promise<void>): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count) await work(next++);
  }));
  return (performance.now() - started) / 1000;
}

const LOAD = `CREATE TABLE t AS SELECT i, random() AS a, random() AS b, random() AS c FROM range(${ROWS}) r(i)`;
// About 5% of the table changed. DuckDB may checkpoint at the commit already (WAL over its
// threshold), so the figure is the change and its CHECKPOINT together.
const CHANGE = `INSERT INTO t SELECT i, random(), random(), random() FROM range(${Math.round(ROWS / 20)}) r(i)`;

try {
  // 1. The first generation: every block, against a bare parallel PUT of the same file.
  const dbPath = join(dir, "big.duckdb");
  const generations: { bytesShipped: number; durationMs: number; blocks: number }[] = [];
  const db = await attach({ dbPath, store, onGeneration: (event) => generations.push(event) });
  // The bulk load stays in the WAL until the CHECKPOINT below, so the upload is measured from its start.
  await db.connection.run("SET checkpoint_threshold = '64GB'");
  await db.connection.run(LOAD);
  generations.length = 0; // the empty database's first generation is not the bulk upload
  let meter = cpuMeter();
  await db.checkpoint();
  await db.replicator.idle();
  const firstCpu = meter();
  // From the generation's announcement to its manifest: reading, hashing, compressing, uploading.
  const firstSeconds = generations.reduce((sum, g) => sum + g.durationMs, 0) / 1000;
  const fileBytes = statSync(dbPath).size;
  const file = await open(dbPath, "r");
  const chunks = Math.ceil(fileBytes / CHUNK_BYTES);
  meter = cpuMeter();
  const bareSeconds = await parallel(chunks, db.replicator.options.uploadsInFlightMax, async (index) => {
    const body = new Uint8Array(Math.min(CHUNK_BYTES, fileBytes - index * CHUNK_BYTES));
    await file.read(body, 0, body.byteLength, index * CHUNK_BYTES);
    const response = await client.fetch(`${cluster.endpoint}/${bucket}/bare/${index}`, { method: "PUT", body });
    await response.arrayBuffer();
    if (response.status !== 200) throw new Error(`bare PUT: ${response.status}`);
  });
  const bareCpu = meter();
  // The same PUTs with the payload hash signed, as haduck sends them (the server checks it).
  meter = cpuMeter();
  const signedSeconds = await parallel(chunks, db.replicator.options.uploadsInFlightMax, async (index) => {
    const body = new Uint8Array(Math.min(CHUNK_BYTES, fileBytes - index * CHUNK_BYTES));
    await file.read(body, 0, body.byteLength, index * CHUNK_BYTES);
    const response = await client.fetch(`${cluster.endpoint}/${bucket}/bare-signed/${index}`, { method: "PUT", body,
      headers: { "x-amz-content-sha256": sha256Hex(body) } });
    await response.arrayBuffer();
    if (response.status !== 200) throw new Error(`bare signed PUT: ${response.status}`);
  });
  const signedCpu = meter();
  await file.close();
  const upload = {
    fileBytes,
    haduckSeconds: firstSeconds,
    bareSeconds,
    haduckMiBPerSecond: fileBytes / 1048576 / firstSeconds,
    bareMiBPerSecond: fileBytes / 1048576 / bareSeconds,
    ratio: bareSeconds / firstSeconds,
    bareSignedSeconds: signedSeconds,
    ratioVsSignedPayload: signedSeconds / firstSeconds,
    // Where the time went: this process's CPU and the S3 server's (radosgw and Ceph share the cores).
    cpu: { haduck: firstCpu, bare: bareCpu, bareSigned: signedCpu },
  };
  console.log("upload", JSON.stringify(upload));

  // 2. A one-row update: bytes shipped against the file size.
  generations.length = 0;
  await db.connection.run("UPDATE t SET b = -1 WHERE i = 123457");
  await db.checkpoint();
  const oneRow = { bytesShipped: generations.reduce((sum, g) => sum + g.bytesShipped, 0), fileBytes,
    blocksShipped: generations.reduce((sum, g) => sum + g.blocksShipped, 0) };
  console.log("one-row", JSON.stringify({ ...oneRow, fileToShippedRatio: fileBytes / oneRow.bytesShipped }));

  // 3. CHECKPOINT time of the same change, plain and haduck, alternating; uploads keep up between rounds.
  const plain = await openDuckDB(join(dir, "plain.duckdb"));
  const plainConnection = await plain.connect();
  await plainConnection.run(LOAD);
  await plainConnection.run("CHECKPOINT");
  const checkpointMs = { plain: [] as number[], haduck: [] as number[] };
  for (let round = 0; round < 5; round++) {
    let started = performance.now();
    await plainConnection.run(CHANGE);
    await plainConnection.run("CHECKPOINT");
    checkpointMs.plain.push(performance.now() - started);
    started = performance.now();
    await db.connection.run(CHANGE);
    await db.connection.run(`CHECKPOINT ${db.alias}`);
    checkpointMs.haduck.push(performance.now() - started);
    await db.replicator.idle();
  }
  plainConnection.closeSync();
  plain.closeSync();
  const checkpoint = { medianMs: { plain: median(checkpointMs.plain), haduck: median(checkpointMs.haduck) },
    ratio: median(checkpointMs.haduck) / median(checkpointMs.plain) };
  console.log("checkpoint", JSON.stringify(checkpoint));
  await db.close();

  // 4. Restore against a bare parallel GET of the same segments.
  const latest = (await latestManifest(store, "big.duckdb"))!.manifest;
  const restoreStarted = performance.now();
  await restore({ store, dbKey: "big.duckdb", to: join(dir, "restored.duckdb") });
  const restoreSeconds = (performance.now() - restoreStarted) / 1000;
  const restoredBytes = statSync(join(dir, "restored.duckdb")).size;
  const bareGetSeconds = await parallel(latest.segments.length, 8, async (index) => {
    const response = await client.fetch(`${cluster.endpoint}/${bucket}/haduck/${latest.segments[index].key}`);
    await response.arrayBuffer();
  });
  // A restore must also land its bytes durably: the same GETs written to a file and fsynced.
  const landing = await open(join(dir, "bare-landing.bin"), "w");
  let landingOffset = 0;
  const bareLandSeconds = await parallel(latest.segments.length, 8, async (index) => {
    const response = await client.fetch(`${cluster.endpoint}/${bucket}/haduck/${latest.segments[index].key}`);
    const body = new Uint8Array(await response.arrayBuffer());
    const at = landingOffset;
    landingOffset += body.byteLength;
    await landing.write(body, 0, body.byteLength, at);
  }).then(async (seconds) => {
    const started = performance.now();
    await landing.sync();
    return seconds + (performance.now() - started) / 1000;
  });
  await landing.close();
  // The disk alone: the restored file's bytes written from memory, 4 MiB at a time, 8 in flight, then fsync.
  const disk = await open(join(dir, "bare-disk.bin"), "w");
  const diskChunk = new Uint8Array(4 * 1024 * 1024).fill(7);
  const diskWriteFsyncSeconds = await parallel(Math.ceil(restoredBytes / diskChunk.byteLength), 8, async (index) => {
    await disk.write(diskChunk, 0, diskChunk.byteLength, index * diskChunk.byteLength);
  }).then(async (seconds) => {
    const started = performance.now();
    await disk.sync();
    return seconds + (performance.now() - started) / 1000;
  });
  await disk.close();
  const segmentBytes = latest.segments.reduce((sum, segment) => sum + segment.sizeBytes, 0);
  const restoreFigures = {
    restoredBytes,
    segmentBytes,
    haduckSeconds: restoreSeconds,
    bareGetSeconds,
    bareGetWriteFsyncSeconds: bareLandSeconds,
    haduckMiBPerSecond: restoredBytes / 1048576 / restoreSeconds,
    bareMiBPerSecond: segmentBytes / 1048576 / bareGetSeconds,
    // The bare loop GETs every referenced segment whole, at least the bytes restore reads.
    ratio: bareGetSeconds / restoreSeconds,
    ratioVsGetWriteFsync: bareLandSeconds / restoreSeconds,
    // A restore is bounded by the slower of the network and the disk; this machine's disk is the slower.
    diskWriteFsyncSeconds,
    diskMiBPerSecond: restoredBytes / 1048576 / diskWriteFsyncSeconds,
    ratioVsSlowerStage: Math.max(bareGetSeconds, diskWriteFsyncSeconds) / restoreSeconds,
  };
  console.log("restore", JSON.stringify(restoreFigures));

  writeResult("replication", {
    sizeMiB: SIZE_MIB,
    rows: ROWS,
    goals: { oneRowBytesMax: 2 * 1048576, checkpointRatioMax: 1.1, uploadRatioMin: 0.9, restoreRatioMin: 0.9 },
    oneRowUpdate: { ...oneRow, fileToShippedRatio: fileBytes / oneRow.bytesShipped },
    checkpoint,
    upload,
    restore: restoreFigures,
  });
} finally {
  await cluster.stop();
  rmSync(dir, { recursive: true, force: true });
}
