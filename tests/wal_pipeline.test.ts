/**
 * Pipelined, compressed WAL frames (issue 25). Several frames are in flight at once, each chained to
 * the one before before that one's PUT returned; a commit is acknowledged only once every frame up
 * to its own is stored. Faults on one frame while the next ones go out (refused, answer lost,
 * delayed): 16 committers each waiting for durability lose nothing, the restore is each writer's
 * commits in order, every frame key holds one body. A frame refused for good while later ones land,
 * then kill -9: the restore stops before it and says so, verify names the orphans, and the restart
 * removes them and continues the chain. kill -9 with 16 committers at random moments, then a
 * restart. Restores of version 2 (compressed) and version 1 frames, and of a mix, are one database.
 */
import { afterAll, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { attach, type FrameShipped, restore, verify } from "@haduck/duckdb-fs-bridge";
import { decodeFrame, encodeFrame, latestManifest, listFrames } from "@haduck/duckblock";
import { type BlockStore, openStore } from "@haduck/s3-block-store";
import { queryFile } from "./harness/duckdb.ts";
import { reconcileLeftFile, startReadyChild } from "./harness/crashed_writer.ts";
import { testOnEachStore } from "./harness/each_store.ts";
import { FrameFaults } from "./harness/frame_faults.ts";
import { freshBucket, testS3 } from "./harness/s3.ts";
import { digest, seededRandom } from "./harness/workload.ts";

const WRITER = resolve(import.meta.dir, "fixtures/pipeline_writer.ts");
const dir = mkdtempSync(join(tmpdir(), "haduck-wal-pipeline-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Row = { w: number; i: number };

/** Each writer's rows are 0..n-1 (a prefix of its commit order) and hold every commit it had acknowledged. */
function expectPrefixes(rows: Row[], acked: Row[], writers: number) {
  for (let w = 0; w < writers; w++) {
    const mine = rows.filter((row) => row.w === w).map((row) => row.i).sort((a, b) => a - b);
    expect(mine).toEqual(mine.map((_, index) => index));
    const ackedMax = Math.max(-1, ...acked.filter((row) => row.w === w).map((row) => row.i));
    expect(mine.length).toBeGreaterThanOrEqual(ackedMax + 1);
  }
}

async function readRows(path: string): Promise<Row[]> {
  return (await queryFile(path, "SELECT w::INT AS w, i::INT AS i FROM t")) as Row[];
}

/** 16 connections, each committing one row and waiting for `flush()`, until `done()` or `ms` passed. */
async function committers(db: Awaited<ReturnType<typeof attach>>, done: () => boolean, ms: number): Promise<Row[]> {
  const acked: Row[] = [];
  const end = performance.now() + ms;
  await Promise.all(Array.from({ length: 16 }, async (_, w) => {
    const connection = await db.instance.connect();
    await connection.run("USE db");
    for (let i = 0; !done() && performance.now() < end; i++) {
      await connection.run(`INSERT INTO t VALUES (${w}, ${i})`);
      expect(await db.flush()).toBe(true);
      acked.push({ w, i });
    }
    connection.closeSync();
  }));
  return acked;
}

/** Gone without a last checkpoint (in process): what the frames hold is all there is. */
async function crash(db: Awaited<ReturnType<typeof attach>>) {
  db.replicator.options.native.detach();
  await db.replicator.stop({ deadlineMs: 1 }).catch(() => {});
}

async function faultsInFlight(inner: BlockStore, label: string) {
  const store = new FrameFaults(inner);
  const dbKey = `${label}.duckdb`;
  const durableInOrder: boolean[] = [];
  const db = await attach({ dbPath: join(dir, dbKey), store, walFlushMs: 50, onFrame: (frame: FrameShipped) => {
    durableInOrder.push(store.storedUpTo(frame.generation, frame.frame));
  } });
  await db.connection.run("CREATE TABLE t (w INT, i INT)");
  expect(await db.flush()).toBe(true);
  store.rules.set(6, { kind: "refuse", times: 3 });
  store.rules.set(10, { kind: "lose-answer", times: 1 });
  store.rules.set(14, { kind: "delay", times: 1, delayMs: 400 });
  store.rules.set(18, { kind: "refuse", times: 1 });
  store.rules.set(19, { kind: "lose-answer", times: 2 });
  const generation = (await latestManifest(inner, dbKey))!.manifest.generation;
  const acked = await committers(db, () => store.storedUpTo(generation, 30), 30_000);
  expect(store.storedUpTo(generation, 30)).toBe(true);
  expect(store.faults).toBeGreaterThanOrEqual(8);
  expect(store.outOfOrder).toBeGreaterThan(0); // frames after a refused or delayed one landed first
  expect(store.rewrites).toBe(0); // every retry sent the same bytes to the same key
  expect(durableInOrder.length).toBeGreaterThan(20);
  expect(durableInOrder.every(Boolean)).toBe(true); // no commit acknowledged before every frame up to its own
  expect(db.replicator.status.framesStopped).toBeNull();
  await crash(db);
  const to = join(dir, `${label}-restored.duckdb`);
  const result = await restore({ store: inner, dbKey, to });
  expect(result.warning).toBeNull();
  const rows = await readRows(to);
  expectPrefixes(rows, acked, 16);
  const report = await verify(inner, dbKey);
  expect({ problems: report.problems, skipped: report.skipped }).toEqual({ problems: [], skipped: [] });
  console.log(`pipelined frames under faults (${label}): ${JSON.stringify({ acked: acked.length, rows: rows.length,
    faults: store.faults, outOfOrder: store.outOfOrder, frames: result.frames })}`);
}

testOnEachStore("faults on frame k while k+1 and k+2 go out: nothing acknowledged early or lost, one body per key",
  { dir, label: "faults", timeoutMs: 120_000 }, faultsInFlight);

/** The 16-committer fixture in a process of its own; `kill()` is kill -9, answering what it had acknowledged. */
async function startWriter(dbPath: string, where: string, env: Record<string, string>) {
  const child = await startReadyChild([WRITER, dbPath, where], env);
  return {
    kill: async (): Promise<Row[]> =>
      [...(await child.kill()).matchAll(/ack (\d+) (\d+)/g)].map((m) => ({ w: Number(m[1]), i: Number(m[2]) })),
  };
}

/** What a new process does before DuckDB opens the file: reconcile ships what the WAL still holds. */
async function restart(dbPath: string, store: BlockStore, dbKey: string) {
  expect(await reconcileLeftFile(dbPath, store, dbKey)).toBeNull();
}

test("frame k refused for good while later frames land, then kill -9: restore stops before k; the restart removes the orphans and goes on", async () => {
  const root = join(dir, "orphan-store");
  const inner = openStore(`file://${root}`);
  const dbKey = "orphan.duckdb";
  const dbPath = join(dir, dbKey);
  const k = 4;
  const writer = await startWriter(dbPath, `file://${root}`, { HADUCK_TEST_REFUSE_FRAME: String(k) });
  const generation = (await latestManifest(inner, dbKey))!.manifest.generation;
  const landed = async () => (await listFrames(inner, dbKey, generation)).map((frame) => frame.number);
  const deadline = performance.now() + 20_000;
  while (!(await landed()).some((n) => n > k + 1) && performance.now() < deadline) await Bun.sleep(20);
  const acked = await writer.kill();
  expect((await landed()).some((n) => n > k)).toBe(true);
  expect(await landed()).not.toContain(k);
  const to = join(dir, "orphan-restored.duckdb");
  const first = await restore({ store: inner, dbKey, to });
  expect(first.frames).toBe(k - 1);
  expect(first.warning).toContain(`frame ${k} of generation ${generation} is missing`);
  const before = await readRows(to);
  expectPrefixes(before, acked, 16);
  const report = await verify(inner, dbKey);
  expect(report.problems).toEqual([]);
  expect(report.skipped.join("\n")).toContain("were written past it and not applied");
  // What the disk holds (read from a copy: opening the file would replay and checkpoint it).
  copyFileSync(dbPath, join(dir, "orphan-local.duckdb"));
  copyFileSync(`${dbPath}.wal`, join(dir, "orphan-local.duckdb.wal"));
  const local = await readRows(join(dir, "orphan-local.duckdb"));
  expect(local.length).toBeGreaterThan(before.length); // commits the refused frame and the orphans held
  // The restart: the orphans go, the WAL's commits ship as frames k, k+1, ... chained to frame k-1.
  await restart(dbPath, inner, dbKey);
  const second = await restore({ store: inner, dbKey, to: join(dir, "orphan-restored-2.duckdb") });
  expect(second.warning).toBeNull();
  expect(second.frames).toBeGreaterThanOrEqual(k);
  const rows = await readRows(join(dir, "orphan-restored-2.duckdb"));
  expect(rows.length).toBe(local.length); // every commit the disk had, past the refused frame
  expectPrefixes(rows, acked, 16);
  const after = await verify(inner, dbKey);
  expect({ problems: after.problems, skipped: after.skipped }).toEqual({ problems: [], skipped: [] });
}, 120_000);

async function killTrial(store: BlockStore, where: string, env: Record<string, string>, label: string, runMs: number) {
  const dbKey = `${label}.duckdb`;
  const dbPath = join(dir, dbKey);
  const writer = await startWriter(dbPath, where, env);
  await Bun.sleep(runMs);
  const acked = await writer.kill();
  const to = join(dir, `${label}-restored.duckdb`);
  const result = await restore({ store, dbKey, to });
  const rows = await readRows(to);
  expectPrefixes(rows, acked, 16);
  await restart(dbPath, store, dbKey);
  const after = await restore({ store, dbKey, to: join(dir, `${label}-restarted.duckdb`) });
  expect(after.warning).toBeNull();
  const restarted = await readRows(join(dir, `${label}-restarted.duckdb`));
  expectPrefixes(restarted, acked, 16);
  expect(restarted.length).toBeGreaterThanOrEqual(rows.length);
  const report = await verify(store, dbKey, { drill: "none" });
  expect({ problems: report.problems, skipped: report.skipped }).toEqual({ problems: [], skipped: [] });
  return { acked: acked.length, restored: rows.length, afterRestart: restarted.length, gap: result.warning !== null };
}

test("kill -9 at random moments with 16 committers, then a restart: every acknowledged commit, in order (filesystem, 4 trials)", async () => {
  const root = join(dir, "kill-store");
  const random = seededRandom(25);
  const figures = [];
  for (let n = 0; n < 4; n++) {
    figures.push(await killTrial(openStore(`file://${root}`), `file://${root}`, {}, `kill-fs-${n}`, 600 + random(1200)));
  }
  for (const figure of figures) expect(figure.acked).toBeGreaterThan(16);
  console.log(`kill -9 with 16 committers (filesystem): ${JSON.stringify(figures)}`);
}, 300_000);

test("kill -9 at random moments with 16 committers, then a restart (radosgw, 2 trials)", async () => {
  const s3 = await testS3();
  const { store, bucket } = await freshBucket("wal-pipeline-kill");
  const env = { HADUCK_TEST_S3_ENDPOINT: s3.endpoint, HADUCK_TEST_S3_ACCESS_KEY: s3.accessKey,
    HADUCK_TEST_S3_SECRET_KEY: s3.secretKey };
  const figures = [];
  for (let n = 0; n < 2; n++) figures.push(await killTrial(store, bucket, env, `kill-s3-${n}`, 800 + n * 500));
  for (const figure of figures) expect(figure.acked).toBeGreaterThan(16);
  console.log(`kill -9 with 16 committers (radosgw): ${JSON.stringify(figures)}`);
}, 300_000);

test("a restore of compressed (version 2) frames, of the same frames as version 1, and of a mix, are one database", async () => {
  const root = join(dir, "versions-store");
  const store = openStore(`file://${root}`);
  const dbKey = "versions.duckdb";
  const db = await attach({ dbPath: join(dir, dbKey), store, walFlushMs: 50 });
  await db.connection.run("CREATE TABLE t (w INT, i INT, s VARCHAR)");
  expect(await db.flush()).toBe(true);
  // A bulk insert's row groups ride in frames as blocks (DuckDB's optimistic writes), then small commits.
  await db.connection.run("INSERT INTO t SELECT 0, i, repeat(md5(i::VARCHAR), 4) FROM range(300000) r(i)");
  expect(await db.flush()).toBe(true);
  for (let i = 0; i < 20; i++) {
    await db.connection.run(`INSERT INTO t VALUES (1, ${i}, 'small ${i}')`);
    expect(await db.flush()).toBe(true);
  }
  await crash(db);
  const latest = (await latestManifest(store, dbKey))!;
  const generation = latest.manifest.generation;
  const frames = await listFrames(store, dbKey, generation);
  expect(frames.length).toBeGreaterThan(5);
  let stored = 0;
  let raw = 0;
  let blocks = 0;
  const decoded = [];
  for (const frame of frames) {
    const bytes = await store.get(frame.key);
    const read = decodeFrame(bytes, frame.key);
    expect(read.version).toBe(2);
    stored += bytes.byteLength;
    raw += read.wal.byteLength + read.blocks.byteLength;
    blocks += read.blockIds.length;
    decoded.push(read);
  }
  expect(blocks).toBeGreaterThan(0);
  expect(stored).toBeLessThan(raw * 0.8); // md5 text in DuckDB's blocks and the WAL shrinks under zstd
  const digestOf = async (label: string) => {
    const to = join(dir, `versions-${label}.duckdb`);
    const result = await restore({ store, dbKey, to });
    expect(result.warning).toBeNull();
    expect(result.frames).toBe(frames.length);
    return await digest((sql) => queryFile(to, sql) as Promise<Record<string, unknown>[]>);
  };
  const reference = await digestOf("v2");
  expect(reference).toContain("t:300020:");
  // The same frames written again as version 1 (all, then every other one), chained anew.
  const rewrite = (version: (index: number) => 1 | 2) => {
    let previous = Buffer.from(latest.sha256, "hex") as Uint8Array;
    for (const [index, frame] of decoded.entries()) {
      const encoded = encodeFrame({ ...frame, previousSha256: previous }, { version: version(index) });
      writeFileSync(join(root, frames[index].key), encoded.bytes);
      previous = encoded.sha256;
    }
  };
  rewrite(() => 1);
  expect(decodeFrame(readFileSync(join(root, frames[0].key)), "v1").version).toBe(1);
  expect(await digestOf("v1")).toBe(reference);
  rewrite((index) => (index % 2 === 0 ? 1 : 2));
  expect(await digestOf("mixed")).toBe(reference);
  console.log(`frame bytes: ${JSON.stringify({ frames: frames.length, blocks, rawBytes: raw, storedBytes: stored,
    ratio: Number((stored / raw).toFixed(3)) })}`);
}, 120_000);
