/**
 * Continuous replication (WAL frames) on radosgw, every figure against a baseline measured in the
 * same run:
 *  - RPO: from a commit (DuckDB's WAL FileSync) to the frame holding it being in the store, p50/p99,
 *    at 10, 100 and 1000 small commits per second (goal: p99 < 1 s), and the frame PUTs per second
 *    this costs against 1 / walFlushMs (goal: at most that), and with no commits (goal: 0);
 *  - `--sync` commit latency (commit + `flush()`) against a bare create-only PUT of a frame's size
 *    (goal: p50 at most 1.5x);
 *  - group commit: commits per second of 16 connections each committing then `flush()`ing, against a
 *    loop of commit + one PUT per commit (goal: at least 10x) and against plain DuckDB with the same 16
 *    connections (goal: at least 0.8x), with frames pipelined (4 in flight, the default) and one at a
 *    time; the floors: haduck's rate with nobody waiting, and the store's own rate of small create-only
 *    PUTs from 4 concurrent loops, both measured here;
 *  - frame bytes: what frames weigh as stored against the WAL and block bytes they carry (zstd);
 *  - write path: a loop of small commits on haduck with frames on, against plain DuckDB (goal: at
 *    most 1.05x the time).
 * Writes bench/results/wal.json. Run: `bun bench/wal.ts [seconds per rate]` (default 5).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import { attach, type FrameShipped } from "@haduck/duckdb-fs-bridge";
import { type BlockStore, type PutOptions, S3BlockStore } from "@haduck/s3-block-store";
import { startRadosgw } from "../tests/harness/radosgw.ts";
import { createBucket, percentile, writeResult } from "./_report.ts";

const SECONDS = Number(process.argv[2] ?? 5);
const WAL_FLUSH_MS = 250;
const dir = mkdtempSync(join(tmpdir(), "haduck-bench-wal-"));
const cluster = await startRadosgw();

const round = (value: number, digits = 2) => Number(value.toFixed(digits));

async function bucket(label: string): Promise<S3BlockStore> {
  return new S3BlockStore({ endpoint: cluster.endpoint, accessKey: cluster.accessKey, secretKey: cluster.secretKey,
    bucket: await createBucket(cluster, label) });
}

/** `store` with its PUTs going through `put` (everything else as it is). */
function withPut(store: BlockStore, put: BlockStore["put"]): BlockStore {
  return {
    url: store.url,
    put,
    get: store.get.bind(store),
    head: store.head.bind(store),
    list: store.list.bind(store),
    delete: store.delete.bind(store),
    deleteMany: store.deleteMany.bind(store),
    probeCapabilities: store.probeCapabilities.bind(store),
  };
}

/** Counts the frame PUTs that reach the store. */
function counting(store: BlockStore): BlockStore & { framePuts: number } {
  const counted = Object.assign(withPut(store, (key: string, body: Uint8Array, options?: PutOptions) => {
    if (key.includes("/frames/")) counted.framePuts++;
    return store.put(key, body, options);
  }), { framePuts: 0 });
  return counted;
}

/** `store` with `ms` more on every PUT (a store far away). */
function delayed(store: BlockStore, ms: number): BlockStore {
  return withPut(store, async (key: string, body: Uint8Array, options?: PutOptions) => {
    await Bun.sleep(ms);
    return await store.put(key, body, options);
  });
}

async function rpo(rate: number) {
  const store = counting(await bucket(`rpo-${rate}`));
  const frames: FrameShipped[] = [];
  const db = await attach({ dbPath: join(dir, `rpo-${rate}.duckdb`), store, walFlushMs: WAL_FLUSH_MS,
    onFrame: (frame) => frames.push(frame) });
  await db.connection.run("CREATE TABLE t (i BIGINT, v VARCHAR)");
  await db.flush();
  frames.length = 0;
  const putsBefore = store.framePuts;
  const started = performance.now();
  let commits = 0;
  while (performance.now() - started < SECONDS * 1000) {
    await db.connection.run(`INSERT INTO t VALUES (${commits}, 'small commit ${commits}')`);
    commits++;
    const due = started + (commits * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await Bun.sleep(wait);
  }
  const elapsed = (performance.now() - started) / 1000;
  await db.flush();
  const puts = store.framePuts - putsBefore;
  // Idle: nothing committed, nothing shipped.
  const idleBefore = store.framePuts;
  await Bun.sleep(2000);
  const idlePuts = store.framePuts - idleBefore;
  const delays = frames.flatMap((frame) => frame.commitUnixMs.map((at) => frame.durableUnixMs - at));
  await db.close();
  return { targetCommitsPerSecond: rate, commitsPerSecond: round(commits / elapsed, 1), commits,
    rpoP50Ms: percentile(delays, 0.5), rpoP99Ms: percentile(delays, 0.99), rpoMaxMs: Math.max(...delays),
    framePutsPerSecond: round(puts / elapsed), framePutsPerSecondMax: round(1000 / WAL_FLUSH_MS),
    idleFramePutsIn2s: idlePuts };
}

async function syncLatency() {
  const store = await bucket("sync");
  const db = await attach({ dbPath: join(dir, "sync.duckdb"), store });
  await db.connection.run("CREATE TABLE t (i BIGINT, v VARCHAR)");
  await db.flush();
  const latencies: number[] = [];
  for (let i = 0, end = performance.now() + SECONDS * 1000; performance.now() < end; i++) {
    const started = performance.now();
    await db.connection.run(`INSERT INTO t VALUES (${i}, 'sync commit ${i}')`);
    if (!await db.flush()) throw new Error("flush() did not make the commit durable");
    latencies.push(performance.now() - started);
  }
  await db.close();
  // The floor: one create-only PUT of a frame's size (a one-row commit's frame is about 400 bytes).
  const body = new Uint8Array(400).fill(7);
  const puts: number[] = [];
  for (let i = 0, end = performance.now() + SECONDS * 1000; performance.now() < end; i++) {
    const started = performance.now();
    await store.put(`bare/${i}`, body, { ifNoneMatch: "*" });
    puts.push(performance.now() - started);
  }
  return { syncCommits: latencies.length, syncP50Ms: round(percentile(latencies, 0.5)),
    syncP99Ms: round(percentile(latencies, 0.99)), barePutP50Ms: round(percentile(puts, 0.5)),
    barePutP99Ms: round(percentile(puts, 0.99)),
    ratioP50: round(percentile(latencies, 0.5) / percentile(puts, 0.5)),
    ratioP99: round(percentile(latencies, 0.99) / percentile(puts, 0.99)) };
}

/** A bulk insert's frames (DuckDB's optimistic writes ride in them as blocks): bytes stored against raw. */
async function bulkFrames() {
  let stored = 0;
  let raw = 0;
  let blocks = 0;
  const db = await attach({ dbPath: join(dir, "bulk.duckdb"), store: await bucket("bulk"), onFrame: (frame) => {
    stored += frame.bytes;
    raw += frame.rawBytes;
    blocks += frame.blocks;
  } });
  await db.connection.run("CREATE TABLE t (i BIGINT, s VARCHAR)");
  await db.flush();
  await db.connection.run("INSERT INTO t SELECT i, repeat(md5(i::VARCHAR), 4) FROM range(300000) r(i)");
  const started = performance.now();
  if (!await db.flush()) throw new Error("the bulk insert did not become durable");
  const flushMs = round(performance.now() - started);
  await db.close();
  return { rows: 300000, blocks, rawBytes: raw, storedBytes: stored, storedVsRaw: round(stored / Math.max(1, raw), 3),
    flushMs };
}

/** Commits per second of 16 connections inserting one row each per commit, optionally flushing each. */
async function sixteenWriters(instance: DuckDBInstance, use: string | undefined, flush?: () => Promise<boolean>) {
  let commits = 0;
  const end = performance.now() + SECONDS * 1000;
  await Promise.all(Array.from({ length: 16 }, async (_, writer) => {
    const connection = await instance.connect();
    if (use) await connection.run(`USE ${use}`);
    for (let i = 0; performance.now() < end; i++) {
      await connection.run(`INSERT INTO t VALUES (${writer}, ${i})`);
      if (flush && !await flush()) throw new Error("flush() did not make the commit durable");
      commits++;
    }
    connection.closeSync();
  }));
  return round(commits / SECONDS, 1);
}

async function groupCommit() {
  const store = counting(await bucket("group"));
  const frameBytes = { stored: 0, raw: 0, frames: 0, blocks: 0 };
  const db = await attach({ dbPath: join(dir, "group.duckdb"), store, onFrame: (frame) => {
    frameBytes.stored += frame.bytes;
    frameBytes.raw += frame.rawBytes;
    frameBytes.frames++;
    frameBytes.blocks += frame.blocks;
  } });
  await db.connection.run("CREATE TABLE t (w INT, i BIGINT)");
  await db.flush();
  const putsBefore = store.framePuts;
  const synced = await sixteenWriters(db.instance, "db", () => db.flush());
  const framePutsPerSecond = round((store.framePuts - putsBefore) / SECONDS, 1);
  const unsynced = await sixteenWriters(db.instance, "db");
  await db.close();
  // One frame at a time (no pipelining), the same 16 writers.
  const serial = await attach({ dbPath: join(dir, "group-serial.duckdb"), store: await bucket("group-serial"),
    walFramesInFlight: 1 });
  await serial.connection.run("CREATE TABLE t (w INT, i BIGINT)");
  await serial.flush();
  const syncedOneInFlight = await sixteenWriters(serial.instance, "db", () => serial.flush());
  await serial.close();
  // A store far away (30 ms more per PUT, as a remote region's S3 adds): where the round trip, not
  // the store's CPU, bounds group commit, and pipelining pays.
  const remote = async (framesInFlight: number) => {
    const far = delayed(await bucket(`remote-${framesInFlight}`), 30);
    const remoteDb = await attach({ dbPath: join(dir, `group-remote-${framesInFlight}.duckdb`), store: far,
      walFramesInFlight: framesInFlight });
    await remoteDb.connection.run("CREATE TABLE t (w INT, i BIGINT)");
    await remoteDb.flush();
    const rate = await sixteenWriters(remoteDb.instance, "db", () => remoteDb.flush());
    await remoteDb.close();
    return rate;
  };
  const remotePipelined = await remote(4);
  const remoteOneInFlight = await remote(1);
  // The store's floor: small create-only PUTs from 4 concurrent loops, as many as it takes.
  let storePuts = 0;
  const putBody = new Uint8Array(400).fill(9);
  const putsEnd = performance.now() + SECONDS * 1000;
  await Promise.all(Array.from({ length: 4 }, async (_, loop) => {
    for (let i = 0; performance.now() < putsEnd; i++, storePuts++) {
      await store.put(`store-floor/${loop}/${i}`, putBody, { ifNoneMatch: "*" });
    }
  }));
  // The floor: plain DuckDB, 16 connections, no haduck at all.
  const plainInstance = await DuckDBInstance.create(join(dir, "group-plain.duckdb"));
  await (await plainInstance.connect()).run("CREATE TABLE t (w INT, i BIGINT)");
  const plain = await sixteenWriters(plainInstance, undefined);
  plainInstance.closeSync();
  // The baseline: one PUT per commit, in a loop (what a store without group commit does).
  const instance = await DuckDBInstance.create(join(dir, "group-baseline.duckdb"));
  const connection = await instance.connect();
  await connection.run("CREATE TABLE t (i BIGINT)");
  let baseline = 0;
  const body = new Uint8Array(400).fill(7);
  for (const stop = performance.now() + SECONDS * 1000; performance.now() < stop; baseline++) {
    await connection.run(`INSERT INTO t VALUES (${baseline})`);
    await store.put(`one-put-per-commit/${baseline}`, body, { ifNoneMatch: "*" });
  }
  connection.closeSync();
  instance.closeSync();
  const onePutPerCommit = round(baseline / SECONDS, 1);
  return { writers: 16, framesInFlight: 4, syncCommitsPerSecond: synced, onePutPerCommitPerSecond: onePutPerCommit,
    ratio: round(synced / onePutPerCommit), unsyncedCommitsPerSecond: unsynced, plainDuckdbCommitsPerSecond: plain,
    // What group commit can reach here: DuckDB's own commit rate with 16 connections bounds it.
    syncVsPlain: round(synced / plain), floorRatio: round(plain / onePutPerCommit),
    syncOneFrameInFlightCommitsPerSecond: syncedOneInFlight, pipelinedVsOneInFlight: round(synced / syncedOneInFlight),
    syncVsUnsynced: round(synced / unsynced), framePutsPerSecond, commitsPerFrame: round(synced / framePutsPerSecond, 1),
    storeFloorPutsPerSecond: round(storePuts / SECONDS, 1),
    remoteStore30ms: { pipelinedCommitsPerSecond: remotePipelined, oneInFlightCommitsPerSecond: remoteOneInFlight,
      pipelinedVsOneInFlight: round(remotePipelined / remoteOneInFlight) },
    frameBytes: { ...frameBytes, storedVsRaw: round(frameBytes.stored / Math.max(1, frameBytes.raw), 3) } };
}

async function writePath() {
  const COMMITS = 2000;
  const loop = async (run: (sql: string) => Promise<unknown>) => {
    await run("CREATE TABLE t (i BIGINT, v VARCHAR)");
    const started = performance.now();
    for (let i = 0; i < COMMITS; i++) await run(`INSERT INTO t VALUES (${i}, 'write path ${i}')`);
    return performance.now() - started;
  };
  const haduck = async (name: string, walFlushMs: number) => {
    const db = await attach({ dbPath: join(dir, `${name}.duckdb`), store: await bucket(name), walFlushMs });
    const ms = await loop((sql) => db.connection.run(sql));
    const frames = db.replicator.status.framesShipped;
    await db.close();
    if (walFlushMs > 0 && frames === 0) throw new Error("no frames shipped during the write-path run");
    return ms;
  };
  // Interleaved rounds, so that the machine's drift hits every configuration alike.
  const rounds: { plainMs: number; noFramesMs: number; framesMs: number }[] = [];
  for (let r = 0; r < 5; r++) {
    const instance = await DuckDBInstance.create(join(dir, `plain-${r}.duckdb`));
    const connection = await instance.connect();
    const plainMs = await loop((sql) => connection.run(sql));
    connection.closeSync();
    instance.closeSync();
    rounds.push({ plainMs: round(plainMs), noFramesMs: round(await haduck(`path-off-${r}`, 0)),
      framesMs: round(await haduck(`path-on-${r}`, WAL_FLUSH_MS)) });
  }
  const med = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
  return { commits: COMMITS, rounds, medianPlainMs: med(rounds.map((r) => r.plainMs)),
    medianNoFramesMs: med(rounds.map((r) => r.noFramesMs)), medianFramesMs: med(rounds.map((r) => r.framesMs)),
    ratio: round(med(rounds.map((r) => r.framesMs / r.plainMs)), 3),
    ratioWithoutFrames: round(med(rounds.map((r) => r.noFramesMs / r.plainMs)), 3) };
}

try {
  const rates = [];
  for (const rate of [10, 100, 1000]) {
    rates.push(await rpo(rate));
    console.log(JSON.stringify(rates.at(-1)));
  }
  const sync = await syncLatency();
  console.log(JSON.stringify(sync));
  const group = await groupCommit();
  console.log(JSON.stringify(group));
  const bulk = await bulkFrames();
  console.log(JSON.stringify(bulk));
  const path = await writePath();
  console.log(JSON.stringify(path));
  writeResult("wal", { secondsPerRate: SECONDS, walFlushMs: WAL_FLUSH_MS, rpo: rates, sync, groupCommit: group, bulkFrames: bulk,
    writePath: path, goals: { rpoP99MsMax: 1000, syncRatioP50Max: 1.5, groupCommitRatioMin: 10, syncVsPlainMin: 0.8,
      writePathRatioMax: 1.05 } });
} finally {
  await cluster.stop();
  rmSync(dir, { recursive: true, force: true });
}
