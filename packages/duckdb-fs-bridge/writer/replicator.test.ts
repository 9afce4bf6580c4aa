/**
 * The replicator's loop without DuckDB, the extension or a child process: a fake extension (the
 * `Consumer` the loop reads) announces generations of a DuckDB-shaped file the test writes itself,
 * and answers releases as the test says; the store is a directory store behind a switch that makes
 * every request fail. What is checked is the loop's contract: a generation publishes exactly the
 * blocks the file holds at that header, an attempt that does not publish gives its blocks back and
 * the catch-up ships them, a store outage carries generations and the loop resumes by itself, and
 * lost events are recovered from the extension's pending list.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { entryOf, latestManifest } from "@haduck/duckblock";
import { type BlockStore, openStore } from "@haduck/s3-block-store";
import type { Consumer, GenerationInfo } from "../native/_consumer.ts";
import { RING_LAYOUT as L, type RingEvent } from "../native/_ring_layout.ts";
import { Replicator } from "./_replicator.ts";
import { FAKE_BLOCK_BYTES as BLOCK, FakeDatabase, scriptedStore } from "../fakes.fixture.ts";

const dir = mkdtempSync(join(tmpdir(), "haduck-replicator-loop-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const FILE_ID = 1;

/** The extension as the loop sees it: generations announced on a ring, a release that answers as told. */
class FakeExtension implements Consumer {
  #events: RingEvent[] = [];
  #generations = new Map<bigint, { info: GenerationInfo; blocks: number[] }>();
  #seq = 0n;
  /** What `release` answers: 1 the hold protected the reads, 0 the extension abandoned the hold. */
  releaseAnswer = 1;
  released: bigint[] = [];
  overflow = false;

  constructor(readonly db: FakeDatabase) {}

  /** A checkpoint: the file changes, then its generation is announced with the blocks written. */
  checkpoint(blocks: number[], options: { announce?: boolean } = {}): bigint {
    this.db.checkpoint(blocks);
    const seq = ++this.#seq;
    this.#generations.set(seq, {
      blocks,
      info: { seq, fileId: FILE_ID, generation: this.db.generation, blockCount: blocks.length,
        headerBlockCount: this.db.fills.length, blockAllocSize: BLOCK, createdUnixMs: Date.now(), needsFullScan: false },
    });
    if (options.announce ?? true) {
      this.#events.push({ type: L.HADUCK_EVENT_GENERATION_READY, fileId: FILE_ID, a: seq, b: 0n, c: 0n, d: 0n });
    }
    return seq;
  }

  attach(): void {}
  detach(): void {}
  drain(): RingEvent[] {
    return this.#events.splice(0);
  }
  takeOverflow(): boolean {
    const overflow = this.overflow;
    this.overflow = false;
    return overflow;
  }
  pendingGenerations(): bigint[] {
    return [...this.#generations.keys()].filter((seq) => !this.released.includes(seq));
  }
  generationInfo(seq: bigint): GenerationInfo | undefined {
    return this.#generations.get(seq)?.info;
  }
  generationBlocks(seq: bigint): number[] {
    return this.#generations.get(seq)?.blocks ?? [];
  }
  release(seq: bigint): number {
    this.released.push(seq);
    return this.releaseAnswer;
  }
  filePath(fileId: number): string | undefined {
    return fileId === FILE_ID ? this.db.path : undefined;
  }
  blockChecksumOk(): boolean {
    return true;
  }
}

/** A directory store whose every request fails while `down` is set (an outage, not a refusal). */
function switchableStore(name: string): BlockStore & { down: boolean; puts: number } {
  const switchable = { down: false };
  const store = scriptedStore(openStore(`file://${join(dir, name)}`), () => {
    if (switchable.down) throw new Error("connect ECONNREFUSED (the test's outage)");
  });
  return Object.defineProperty(store, "down", { get: () => switchable.down, set: (down) => switchable.down = down }) as
    BlockStore & { down: boolean; puts: number };
}

/** A started loop over a new fake database `name` of `blockCount` blocks (the database key is `name`), stopped after `body`. */
async function withLoop(name: string, blockCount: number, body: (loop: {
  db: FakeDatabase;
  extension: FakeExtension;
  store: BlockStore & { down: boolean; puts: number };
  replicator: Replicator;
}) => Promise<void>): Promise<void> {
  const db = new FakeDatabase(join(dir, `${name}.duckdb`), blockCount);
  const extension = new FakeExtension(db);
  const store = switchableStore(`${name}-store`);
  const replicator = new Replicator({ native: extension, dbPath: db.path, store, dbKey: name, walFlushMs: 0, tickMs: 5,
    catchUpDelayMs: 10, catchUpDelayMaxMs: 40, compress: false });
  await replicator.start();
  try {
    await body({ db, extension, store, replicator });
  } finally {
    await replicator.stop({ deadlineMs: 2000 });
  }
}

const digest = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/** The latest manifest's blocks, each with the digest of the bytes it stores. */
async function stored(store: BlockStore, dbKey: string) {
  const latest = await latestManifest(store, dbKey);
  if (!latest) return undefined;
  const blocks = new Map(latest.manifest.blocks.map((block) => [entryOf(block).blockId, entryOf(block).sha256]));
  return { generation: latest.manifest.generation, blocks };
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!await check()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(5);
  }
}

test("each generation publishes the file's blocks at that header; unchanged blocks are not uploaded again", async () => {
  await withLoop("plain", 6, async ({ db, extension, store, replicator }) => {
    extension.checkpoint([0, 1, 2, 3, 4, 5]);
    await replicator.idle();
    let seen = (await stored(store, "plain"))!;
    expect(seen.generation).toBe(db.generation);
    for (let block = 0; block < 6; block++) expect(seen.blocks.get(block)).toBe(digest(db.bytesOf(block)));

    const putsBefore = store.puts;
    extension.checkpoint([2]);
    await replicator.idle();
    seen = (await stored(store, "plain"))!;
    expect(seen.generation).toBe(db.generation);
    expect(seen.blocks.get(2)).toBe(digest(db.bytesOf(2)));
    for (const block of [0, 1, 3, 4, 5]) expect(seen.blocks.get(block)).toBe(digest(db.bytesOf(block)));
    // One segment, one manifest (and its latest hint): block 2 alone was read and uploaded.
    expect(store.puts - putsBefore).toBeLessThanOrEqual(4);
    expect(replicator.status.generationsCommitted).toBe(2);
    expect(replicator.position).toBe(`0:${db.generation}:0`);
    expect(extension.released).toEqual([1n, 2n]);
  });
});

test("a hold the extension abandoned gives the blocks back, and the catch-up ships them without another checkpoint", async () => {
  await withLoop("abandoned", 4, async ({ db, extension, store, replicator }) => {
    extension.checkpoint([0, 1, 2, 3]);
    await replicator.idle();
    extension.releaseAnswer = 0; // DuckDB moved on before our reads were done: they may be torn
    extension.checkpoint([1, 3]);
    await replicator.idle();
    expect(replicator.status.generationsAbandoned).toBe(1);
    // Nothing waits for a checkpoint: the catch-up reads the file while its header stays put.
    await until("the catch-up's publish", async () => (await stored(store, "abandoned"))?.generation === db.generation);
    const seen = (await stored(store, "abandoned"))!;
    for (const block of [0, 1, 2, 3]) expect(seen.blocks.get(block)).toBe(digest(db.bytesOf(block)));
    expect(replicator.status.blocksCarried).toBe(0);
  });
});

test("through a store outage generations are carried, not lost; the loop resumes by itself when the store answers", async () => {
  await withLoop("outage", 5, async ({ db, extension, store, replicator }) => {
    extension.checkpoint([0, 1, 2, 3, 4]);
    await replicator.idle();
    const before = db.generation;
    store.down = true;
    extension.checkpoint([0]);
    await replicator.idle();
    extension.checkpoint([4]);
    await replicator.idle();
    expect(replicator.status.lastError).toContain("ECONNREFUSED");
    expect((store.down = false, await stored(store, "outage"))!.generation).toBe(before);
    // DuckDB was never held: every generation was released during the outage.
    expect(extension.released.length).toBe(3);
    await until("the resumed publish", async () => (await stored(store, "outage"))?.generation === db.generation);
    const seen = (await stored(store, "outage"))!;
    for (const block of [0, 1, 2, 3, 4]) expect(seen.blocks.get(block)).toBe(digest(db.bytesOf(block)));
  });
});

test("events lost from the ring: the loop takes the extension's pending generations and ships them", async () => {
  await withLoop("overflow", 3, async ({ db, extension, store, replicator }) => {
    extension.checkpoint([0, 1, 2]);
    await replicator.idle();
    extension.checkpoint([1], { announce: false }); // its event was dropped
    extension.overflow = true;
    await until("the pending generation's release", () => extension.released.length === 2);
    await replicator.idle();
    const seen = (await stored(store, "overflow"))!;
    expect(seen.generation).toBe(db.generation);
    expect(seen.blocks.get(1)).toBe(digest(db.bytesOf(1)));
  });
});
