/**
 * Large databases: `bun bench/scale.ts [sizesGiB...]` (default 1; the figures are 1 4 8)
 * makes a database of each size (four random DOUBLE columns: about 32 incompressible bytes a row),
 * then, each in a process of its own against radosgw: the first upload (attach to a new key),
 * restore, drill (restore + open in DuckDB), verify (with its drill of the latest commit), gc (dry
 * run). Per operation: wall time, MiB/s, peak RSS above the process's own baseline, and the peak of
 * its whole process tree (DuckDB children included) above an idle one (goals: both under 128 MiB at any size), CPU seconds
 * of the client and of the server. Baselines in the same run: a bare parallel PUT of the file in
 * 8 MiB objects (also one that hashes every block it sends, the floor for a client that
 * checksums every byte) and a bare parallel GET + write + fsync of them (goals: upload and restore
 * at least 0.9x), and the bytes a one-row update PUTs at that size, all objects counted (goal: under 2 MiB).
 * Writes bench/results/scale.json.
 */
import { AwsClient } from "aws4fetch";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import { attach } from "@haduck/duckdb-fs-bridge";
import { S3BlockStore } from "@haduck/s3-block-store";
import { startRadosgw } from "../tests/harness/radosgw.ts";
import { cpuMeter } from "./_cpu.ts";
import { writeResult } from "./_report.ts";
import { runMeasured } from "../tests/harness/tree_memory.ts";

const SIZES_GIB = process.argv.slice(2).map(Number).filter((size) => size > 0);
if (SIZES_GIB.length === 0) SIZES_GIB.push(1);
const CHILD = resolve(import.meta.dir, "_scale_child.ts");
const CHUNK_BYTES = 8 * 1024 * 1024;
const CONCURRENCY = 4;
const dir = mkdtempSync(join(tmpdir(), "haduck-bench-scale-"));
const cluster = await startRadosgw();
const client = new AwsClient({ accessKeyId: cluster.accessKey, secretAccessKey: cluster.secretKey, service: "s3",
  region: cluster.region, retries: 0 });
const env = { ...process.env, HADUCK_TEST_S3_ENDPOINT: cluster.endpoint, HADUCK_TEST_S3_ACCESS_KEY: cluster.accessKey,
  HADUCK_TEST_S3_SECRET_KEY: cluster.secretKey };

async function parallel(count: number, work: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < count) await work(next++);
  }));
}

/**
 * A bare parallel PUT of the file in 8 MiB objects (unsigned payload, as our PUTs on loopback);
 * with `hashBlocks`, it also takes the SHA-256 of every 256 KiB block it sends: the floor for a
 * client that checksums every byte (invariant 4), measured in the same run.
 */
async function barePut(path: string, bucket: string, hashBlocks = false) {
  const size = statSync(path).size;
  const file = await open(path, "r");
  const meter = cpuMeter();
  await parallel(Math.ceil(size / CHUNK_BYTES), async (index) => {
    const body = new Uint8Array(Math.min(CHUNK_BYTES, size - index * CHUNK_BYTES));
    await file.read(body, 0, body.byteLength, index * CHUNK_BYTES);
    for (let at = 0; hashBlocks && at < body.byteLength; at += 262144) {
      createHash("sha256").update(body.subarray(at, at + 262144)).digest();
    }
    const response = await client.fetch(`${cluster.endpoint}/${bucket}/bare/${index}`, { method: "PUT", body,
      headers: { "x-amz-content-sha256": "UNSIGNED-PAYLOAD" } });
    if (response.status !== 200) throw new Error(`bare PUT ${response.status}`);
  });
  await file.close();
  const sample = meter();
  return { ...sample, mibPerSecond: size / 1048576 / sample.wallSeconds };
}

/** A bare parallel GET of those objects, each written into a file at its place, then one fsync. */
async function bareGet(path: string, bucket: string) {
  const size = statSync(path).size;
  const target = await open(join(dir, "bare-restore"), "w");
  const meter = cpuMeter();
  await parallel(Math.ceil(size / CHUNK_BYTES), async (index) => {
    const body = new Uint8Array(await (await client.fetch(`${cluster.endpoint}/${bucket}/bare/${index}`)).arrayBuffer());
    await target.write(body, 0, body.byteLength, index * CHUNK_BYTES);
  });
  await target.sync();
  await target.close();
  const sample = meter();
  rmSync(join(dir, "bare-restore"));
  return { ...sample, mibPerSecond: size / 1048576 / sample.wallSeconds };
}

async function emptyBucket(bucket: string) {
  const store = new S3BlockStore({ ...cluster, bucket, prefix: "" });
  const keys: string[] = [];
  for await (const object of store.list("")) keys.push(object.key);
  await store.deleteMany(keys);
}

/** The store with every PUT body's bytes counted. */
function countingPuts(store: S3BlockStore) {
  let bytes = 0;
  const put = store.put.bind(store);
  store.put = (key, body, options) => {
    bytes += body.byteLength;
    return put(key, body, options);
  };
  return { store, bytes: () => bytes };
}

/**
 * One operation in a process of its own. Besides the process's own peak (its JSON line), the whole
 * process tree is sampled (restore's DuckDB child included): `peakTreeMiB` (Pss summed over the
 * tree, see tests/harness/tree_memory.ts) and the same above an idle process of the same kind measured in this
 * run (`treeAboveIdleMiB`, goal: under 128 MiB at any size).
 */
async function child(operation: string, dbPath: string, dbKey: string, bucket: string, target = "") {
  const meter = cpuMeter();
  const run = await runMeasured([process.execPath, CHILD, operation, dbPath, dbKey, bucket, target], { env });
  const sample = meter();
  if (run.code !== 0) throw new Error(`${operation} failed: ${run.stderr}`);
  return { ...JSON.parse(run.stdout.trim().split("\n").pop()!), serverCpuSeconds: sample.serverCpuSeconds,
    peakTreeMiB: run.peakTreeMiB, peakTreeRssMiB: run.peakTreeRssMiB, processes: run.processes,
    treeAboveIdleMiB: run.peakTreeMiB - idleTreeMiB };
}

const results: Record<string, unknown>[] = [];
let idleTreeMiB = 0;
try {
  // The baseline of every tree: the same runtime with DuckDB and the extension loaded, doing nothing
  // (what an idle `haduck status` costs).
  idleTreeMiB = (await runMeasured([process.execPath, CHILD, "idle", "-", "-", "-"], { env })).peakTreeMiB;
  for (const sizeGiB of SIZES_GIB) {
    const bucket = `scale-${crypto.randomUUID().slice(0, 8)}`;
    await client.fetch(`${cluster.endpoint}/${bucket}`, { method: "PUT" });
    const dbPath = join(dir, `scale-${sizeGiB}.duckdb`);
    const rows = Math.round((sizeGiB * 1024 * 1048576) / 32);
    const instance = await DuckDBInstance.create(dbPath);
    const connection = await instance.connect();
    await connection.run("SET threads = 2; SET memory_limit = '2GB'");
    await connection.run(`CREATE TABLE t AS SELECT i, random() AS a, random() AS b, random() AS c FROM range(${rows}) r(i)`);
    connection.closeSync();
    instance.closeSync();
    const fileMiB = statSync(dbPath).size / 1048576;
    const putHashed = await barePut(dbPath, bucket, true);
    const put = await barePut(dbPath, bucket);
    const get = await bareGet(dbPath, bucket);
    await emptyBucket(bucket); // the test cluster's disk is 16 GiB: 8 GiB twice over would fill it
    const dbKey = "scale.duckdb";
    const upload = await child("upload", dbPath, dbKey, bucket);
    const restored = await child("restore", dbPath, dbKey, bucket, join(dir, "restored.duckdb"));
    const drill = await child("drill", dbPath, dbKey, bucket, join(dir, "restored.duckdb"));
    const verified = await child("verify", dbPath, dbKey, bucket);
    const collected = await child("gc", dbPath, dbKey, bucket);
    rmSync(join(dir, "restored.duckdb"), { force: true });
    // The one-row update at this size: every byte PUT for it (segments, block map pages, manifest, hint).
    const counted = countingPuts(new S3BlockStore({ ...cluster, bucket, prefix: "haduck" }));
    const db = await attach({ dbPath, store: counted.store, dbKey });
    const before = counted.bytes();
    await db.connection.run("UPDATE t SET a = -1 WHERE i = 12345");
    await db.checkpoint();
    const oneRowUpdateBytes = counted.bytes() - before;
    await db.close();
    const result = { sizeGiB, fileMiB, barePut: put, barePutHashed: putHashed, bareGetWriteFsync: get, upload,
      restore: restored, drill, verify: verified, gc: collected, oneRowUpdateBytes,
      ratios: { uploadToBarePut: upload.mibPerSecond / put.mibPerSecond,
        uploadToBarePutHashed: upload.mibPerSecond / putHashed.mibPerSecond,
        restoreToBareGetWriteFsync: restored.mibPerSecond / get.mibPerSecond,
        uploadClientCpuToBarePut: upload.cpuSeconds / put.selfCpuSeconds,
        uploadClientCpuToBarePutHashed: upload.cpuSeconds / putHashed.selfCpuSeconds },
      goalsMet: { peakMemory: [upload, restored, drill, verified, collected].every((r) => r.peakAboveBaselineMiB < 128),
        peakTreeMemory: [upload, restored, drill, verified, collected].every((r) => r.treeAboveIdleMiB < 128),
        upload: upload.mibPerSecond / put.mibPerSecond >= 0.9, restore: restored.mibPerSecond / get.mibPerSecond >= 0.9,
        oneRowUpdate: oneRowUpdateBytes < 2 * 1048576 } };
    console.log(JSON.stringify(result));
    results.push(result);
    await emptyBucket(bucket);
    rmSync(dbPath, { force: true });
    rmSync(`${dbPath}.haduck-identity`, { force: true });
  }
} finally {
  await cluster.stop();
  rmSync(dir, { recursive: true, force: true });
}
writeResult("scale", { sizesGiB: SIZES_GIB, idleTreeMiB, results });
