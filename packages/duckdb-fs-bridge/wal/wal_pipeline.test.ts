/**
 * The WAL shipper's pipeline without DuckDB: a DuckDB-shaped file and `.wal` the test writes, commits
 * announced as the extension announces them, and a directory store the test can slow or break.
 * Checked: frames chain to the manifest and to each other with the WAL bytes and blocks of their
 * commits; a later frame that lands first is not durable before its predecessor; a failed PUT goes
 * again with the same bytes; a WAL cut below what was shipped stops the frames and says so.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { decodeFrame, frameKey } from "@haduck/duckblock";
import { type BlockStore, openStore } from "@haduck/s3-block-store";
import { FakeDatabase, scriptedStore } from "../fakes.fixture.ts";
import { WalShipper } from "./_wal_shipper.ts";

const dir = mkdtempSync(join(tmpdir(), "haduck-wal-pipeline-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const MANIFEST_SHA = createHash("sha256").update("the generation's manifest").digest();

function shipper(name: string, before: (operation: string, key: string) => void | Promise<void> = () => {}) {
  const db = new FakeDatabase(join(dir, `${name}.duckdb`), 4);
  const store = scriptedStore(openStore(`file://${join(dir, `${name}-store`)}`), before);
  const errors: string[] = [];
  const wal = new WalShipper({ store, dbKey: name, dbPath: db.path, walFlushMs: 1, framesInFlight: 4,
    blockChecksumOk: () => true, signal: new AbortController().signal, onError: (message) => errors.push(message) });
  wal.onPublished(db.generation, MANIFEST_SHA);
  // The replicator's loop ticks the shipper (sends that are due, retries after a backoff): here, the test does.
  const ticker = setInterval(() => wal.tick(), 5);
  const release = wal.release.bind(wal);
  wal.release = () => (clearInterval(ticker), release());
  return { db, store, wal, errors };
}

/** One commit: its blocks rewritten in place, its WAL entry synced, and the announcement. */
function commit(db: FakeDatabase, wal: WalShipper, blocks: number[]): number {
  db.rewrite(blocks);
  const size = db.logEntry();
  wal.onSync({ generation: db.generation, size, unixMs: Date.now(), lost: false, blocks });
  return size;
}

async function frame(store: BlockStore, dbKey: string, generation: number, number: number) {
  return decodeFrame(await store.get(frameKey(dbKey, generation, number)), `frame ${number}`);
}

test("frames chain to the manifest and to each other, with each commit's WAL bytes and blocks", async () => {
  const { db, store, wal, errors } = shipper("chain");
  const first = commit(db, wal, [2]);
  expect(await wal.flush()).toBe(true);
  const second = commit(db, wal, [1, 3]);
  expect(await wal.flush()).toBe(true);
  const one = await frame(store, "chain", db.generation, 1);
  const two = await frame(store, "chain", db.generation, 2);
  expect(Buffer.from(one.previousSha256).equals(MANIFEST_SHA)).toBe(true);
  expect(Buffer.from(two.previousSha256).equals(Buffer.from(one.sha256))).toBe(true);
  const log = readFileSync(`${db.path}.wal`);
  expect([one.walOffset, one.walOffset + one.wal.byteLength]).toEqual([0, first]);
  expect(Buffer.from(one.wal).equals(log.subarray(0, first))).toBe(true);
  expect([two.walOffset, two.walOffset + two.wal.byteLength]).toEqual([first, second]);
  expect(one.blockIds).toEqual([2]);
  expect(two.blockIds).toEqual([1, 3]);
  expect(Buffer.from(two.blocks).equals(Buffer.concat([db.bytesOf(1), db.bytesOf(3)]))).toBe(true);
  expect(wal.chain).toEqual({ generation: db.generation, walShipped: second });
  expect(errors).toEqual([]);
  wal.release();
});

test("a frame that lands before its predecessor is not durable until the predecessor is", async () => {
  let openFirst!: () => void;
  const firstHeld = new Promise<void>((resolve) => openFirst = resolve);
  const { db, store, wal } = shipper("pipeline", async (operation, key) => {
    if (operation === "put" && key.endsWith(frameKey("pipeline", 1, 1).slice("pipeline".length))) await firstHeld;
  });
  commit(db, wal, [0]);
  const firstDurable = wal.flush();
  await Bun.sleep(20); // frame 1 is in flight, held by the store
  commit(db, wal, [1]);
  let secondDurable = false;
  const second = wal.flush().then((durable) => secondDurable = durable);
  // Frame 2 is built and sent while frame 1 is still out (the pipeline), and lands first...
  for (let i = 0; i < 200 && !await store.head(frameKey("pipeline", db.generation, 2)); i++) await Bun.sleep(5);
  expect(await store.head(frameKey("pipeline", db.generation, 2))).toBeDefined();
  await Bun.sleep(20);
  // ...but the commits it holds are not acknowledged: a reader of the chain could not reach them.
  expect(secondDurable).toBe(false);
  expect(wal.chain?.walShipped).toBe(0);
  openFirst();
  expect(await firstDurable).toBe(true);
  await second;
  expect(secondDurable).toBe(true);
  wal.release();
});

test("a PUT that fails goes again with the same bytes, and the flush waits for it", async () => {
  let failures = 0;
  const sent: Buffer[] = [];
  const { db, store, wal, errors } = shipper("retry", (operation, key) => {
    if (operation === "put" && key.includes("/frames/") && failures++ < 3) throw new Error("socket hang up (the test's)");
  });
  const inner = store.put;
  store.put = async (key, body, options) => {
    sent.push(Buffer.from(body));
    return await inner(key, body, options);
  };
  commit(db, wal, [2]);
  expect(await wal.flush()).toBe(true);
  expect(failures).toBeGreaterThanOrEqual(4);
  expect(sent.length).toBe(4);
  expect(sent.every((bytes) => bytes.equals(sent[0]))).toBe(true); // never rebuilt: the chain's checksum holds
  expect(errors.some((message) => message.includes("socket hang up"))).toBe(true);
  wal.release();
});

test("a WAL cut below what was shipped stops the frames until the next generation, and a flush after it says so", async () => {
  const { db, wal } = shipper("cut");
  const size = commit(db, wal, [2]);
  expect(await wal.flush()).toBe(true);
  wal.onReset(db.generation, size - 10);
  expect(wal.status.framesStopped).toContain("cut below what was shipped");
  commit(db, wal, [1]); // a commit after the cut: no frame can carry it, only the next checkpoint
  expect(await wal.flush()).toBe(false);
  // The next generation starts a new chain: frames go on.
  db.checkpoint([]);
  wal.onPublished(db.generation, MANIFEST_SHA);
  expect(wal.status.framesStopped).toBeNull();
  wal.release();
});
