/**
 * Client-side encryption against none, in the same run on radosgw (issue 36's goals: >= 0.9x):
 *  - commit rate: small durable commits (INSERT, then `flush()`: its WAL frame is in the store), one
 *    at a time, for `commitSeconds` each way; with the bytes and requests each commit costs;
 *  - first upload: the first generation of a database of about `sizeMiB` (default 256), from the
 *    CHECKPOINT's announcement to its manifest (the replicator's own `durationMs`);
 *  - restore of that generation (the open check included, as `haduck restore` runs it).
 * Each measurement alternates plain and encrypted rounds (three each) and takes the medians, so a
 * neighbour's load on the shared cores falls on both. Writes bench/results/encryption.json.
 * Run: `bun bench/encryption.ts [sizeMiB] [commitSeconds]` (HADUCK_TEST_S3_* when set, else radosgw is started).
 */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { attach, restore } from "@haduck/duckdb-fs-bridge";
import { type BlockStore, Keyring, S3BlockStore, SealedStore } from "@haduck/s3-block-store";
import { startRadosgw } from "../tests/harness/radosgw.ts";
import { createBucket, median, writeResult } from "./_report.ts";

const SIZE_MIB = Number(process.argv[2] ?? 256);
const COMMIT_SECONDS = Number(process.argv[3] ?? 8);
const ROUNDS = 3;
// Four random DOUBLE columns do not compress: about 32 bytes a row on disk.
const ROWS = Math.round((SIZE_MIB * 1048576) / 32);
const dir = mkdtempSync(join(tmpdir(), "haduck-bench-encryption-"));

const external = process.env.HADUCK_TEST_S3_ENDPOINT;
const cluster = external
  ? { endpoint: external, accessKey: process.env.HADUCK_TEST_S3_ACCESS_KEY!,
    secretKey: process.env.HADUCK_TEST_S3_SECRET_KEY!, region: "us-east-1", stop: async () => {} }
  : await startRadosgw();
const keyring = new Keyring([crypto.getRandomValues(new Uint8Array(32))]);

/** A fresh bucket's store, plain or sealed, and the S3 store under it (for its request counters). */
async function freshStore(encrypted: boolean): Promise<{ store: BlockStore; s3: S3BlockStore }> {
  const bucket = await createBucket(cluster, encrypted ? "bench-enc" : "bench-plain");
  const s3 = new S3BlockStore({ ...cluster, bucket, prefix: "haduck" });
  return { store: encrypted ? new SealedStore(s3, { keyring }) : s3, s3 };
}

/** This process's CPU seconds (user and system) in a `process.cpuUsage()` difference. */
const cpuSeconds = (usage: NodeJS.CpuUsage) => (usage.user + usage.system) / 1e6;

/** Durable commits one after another for COMMIT_SECONDS: commits a second, and what each cost the store. */
async function commitRound(encrypted: boolean, round: number) {
  const { store, s3 } = await freshStore(encrypted);
  const db = await attach({ dbPath: join(dir, `commits-${encrypted}-${round}.duckdb`), store });
  await db.connection.run("CREATE TABLE t (i BIGINT, s VARCHAR)");
  await db.flush();
  const before = { ...s3.stats };
  const started = performance.now();
  let commits = 0;
  while (performance.now() - started < COMMIT_SECONDS * 1000) {
    await db.connection.run(`INSERT INTO t SELECT i, md5(i::VARCHAR) FROM range(${commits * 10}, ${commits * 10 + 10}) r(i)`);
    if (!await db.flush()) throw new Error(`commit ${commits} did not reach the store: ${db.replicator.status.lastError}`);
    commits++;
  }
  const seconds = (performance.now() - started) / 1000;
  const after = { ...s3.stats };
  await db.close();
  return { commitsPerSecond: commits / seconds, requestsPerCommit: (after.requests - before.requests) / commits,
    bytesSentPerCommit: (after.bytesSent - before.bytesSent) / commits };
}

/** The first generation of a SIZE_MIB database, then its restore. */
async function uploadAndRestoreRound(encrypted: boolean, round: number) {
  const { store, s3 } = await freshStore(encrypted);
  const dbPath = join(dir, `big-${encrypted}-${round}.duckdb`);
  const generations: { durationMs: number; bytesShipped: number }[] = [];
  const db = await attach({ dbPath, store, onGeneration: (event) => generations.push(event) });
  await db.connection.run("SET checkpoint_threshold = '64GB'");
  await db.connection.run(`CREATE TABLE t AS SELECT i, random() AS a, random() AS b, random() AS c FROM range(${ROWS}) r(i)`);
  await db.replicator.idle();
  generations.length = 0; // the empty database's generation is not the bulk upload
  const before = { ...s3.stats };
  let cpu = process.cpuUsage();
  await db.checkpoint();
  await db.replicator.idle();
  const uploadCpuSeconds = cpuSeconds(process.cpuUsage(cpu));
  const uploadSeconds = generations.reduce((sum, g) => sum + g.durationMs, 0) / 1000;
  const uploadBytesSent = s3.stats.bytesSent - before.bytesSent;
  const fileBytes = statSync(dbPath).size;
  await db.close();
  rmSync(dbPath, { force: true });
  const to = join(dir, `restored-${encrypted}-${round}.duckdb`);
  const started = performance.now();
  cpu = process.cpuUsage();
  await restore({ store, dbKey: `big-${encrypted}-${round}.duckdb`, to });
  const restoreCpuSeconds = cpuSeconds(process.cpuUsage(cpu));
  const restoreSeconds = (performance.now() - started) / 1000;
  rmSync(to, { force: true });
  return { fileBytes, uploadSeconds, uploadCpuSeconds, uploadBytesSent, restoreSeconds, restoreCpuSeconds };
}

try {
  const commits: Record<"plain" | "encrypted", Awaited<ReturnType<typeof commitRound>>[]> = { plain: [], encrypted: [] };
  const bulk: Record<"plain" | "encrypted", Awaited<ReturnType<typeof uploadAndRestoreRound>>[]> =
    { plain: [], encrypted: [] };
  for (let round = 0; round < ROUNDS; round++) {
    // Alternate which goes first, so neither always meets a warmer (or busier) machine.
    for (const encrypted of round % 2 === 0 ? [false, true] : [true, false]) {
      const side = encrypted ? "encrypted" : "plain";
      commits[side].push(await commitRound(encrypted, round));
      bulk[side].push(await uploadAndRestoreRound(encrypted, round));
      console.log(`round ${round} ${side}: ${JSON.stringify({ commits: commits[side].at(-1), bulk: bulk[side].at(-1) })}`);
    }
  }
  const med = <T>(rows: T[], pick: (row: T) => number) => median(rows.map(pick));
  const summary = (side: "plain" | "encrypted") => ({
    commitsPerSecond: med(commits[side], (r) => r.commitsPerSecond),
    requestsPerCommit: med(commits[side], (r) => r.requestsPerCommit),
    bytesSentPerCommit: med(commits[side], (r) => r.bytesSentPerCommit),
    firstUploadMiBPerSecond: med(bulk[side], (r) => r.fileBytes / 1048576 / r.uploadSeconds),
    firstUploadBytesSent: med(bulk[side], (r) => r.uploadBytesSent),
    restoreMiBPerSecond: med(bulk[side], (r) => r.fileBytes / 1048576 / r.restoreSeconds),
    // This process's CPU per MiB: steadier than wall time on a machine others load.
    firstUploadCpuMsPerMiB: med(bulk[side], (r) => 1000 * r.uploadCpuSeconds / (r.fileBytes / 1048576)),
    restoreCpuMsPerMiB: med(bulk[side], (r) => 1000 * r.restoreCpuSeconds / (r.fileBytes / 1048576)),
  });
  const plain = summary("plain");
  const encrypted = summary("encrypted");
  const ratios = {
    commitRate: encrypted.commitsPerSecond / plain.commitsPerSecond,
    firstUpload: encrypted.firstUploadMiBPerSecond / plain.firstUploadMiBPerSecond,
    restore: encrypted.restoreMiBPerSecond / plain.restoreMiBPerSecond,
    bytesPerCommit: encrypted.bytesSentPerCommit / plain.bytesSentPerCommit,
    requestsPerCommit: encrypted.requestsPerCommit / plain.requestsPerCommit,
  };
  console.log(JSON.stringify({ plain, encrypted, ratios }, null, 2));
  const [load1, load5] = loadavg();
  writeResult("encryption", { machineLoadAverage: { oneMinute: load1, fiveMinutes: load5 }, sizeMiB: SIZE_MIB, commitSeconds: COMMIT_SECONDS, rounds: ROUNDS, goal: ">= 0.9x",
    plain, encrypted, ratios, samples: { commits, bulk } });
} finally {
  rmSync(dir, { recursive: true, force: true });
  await cluster.stop();
}
