/**
 * @module
 * A follower's base opened lazily (issue 34): the generation's header region is written, the file
 * is sized, and the blocks stay in the store until DuckDB reads one. The extension (snapshot.hpp,
 * `LazyBase`) holds such a read and asks for the block; this module fetches it (a ranged GET with
 * its neighbours in the segment), checks it against the manifest's SHA-256, writes it and lets the
 * read go on. Meanwhile the rest is fetched in the background at the restore's pace (ranged GETs of
 * up to 4 MiB, 8 in flight). A block already in the file with the manifest's digest (a restart after
 * kill -9) is taken as it is, not fetched again. A block the store cannot give is an error for the
 * read that wanted it, naming the block and the segment, never zeros.
 *
 * Every write of a fetched block checks, in the same turn of the event loop, that the block is still
 * missing: a newer generation or a frame that wrote it first wins.
 */
import type { BlockStore } from "@haduck/s3-block-store";
import { openSync, closeSync, fstatSync, readSync, writeSync, ftruncateSync } from "node:fs";
import {
  blockOffset,
  checkHeaderRegion,
  decodeBlock,
  HEADER_REGION_BYTES,
  headerOf,
  hex,
  type LoadedHead,
  entryOf,
  type Manifest,
  type ManifestEntry,
  manifestKey,
  manifestParts,
  sha256,
} from "@haduck/duckblock";
import { Snapshots } from "../native/_native.ts";
import { planRangeReads, within } from "./_restore.ts";

type SegmentRef = Manifest["segments"][number];
interface Entry {
  segment: SegmentRef;
  entry: ManifestEntry;
}

/** How far a read on demand reaches past the wanted block, in the same segment (read-ahead). */
const READ_AHEAD_BLOCKS = 4;
const HYDRATE_CONCURRENCY = 8;
/** How long reads must have fetched nothing before the background goes on. */
const HYDRATE_QUIET_MS = 250;

export interface Hydration {
  blocksTotal: number;
  blocksLocal: number;
  /** Blocks fetched from the store, and found in the file already (a restart). */
  blocksFetched: number;
  blocksReused: number;
  bytesFetched: number;
  done: boolean;
  lastError: string | null;
}

export class LazyBase {
  readonly path: string;
  readonly #store: BlockStore;
  readonly #blockAllocSize: number;
  /** The generation whose entries these are (names it in errors). */
  #generation: number;
  #entries = new Map<number, Entry>();
  readonly #missing = new Set<number>();
  readonly #inFlight = new Map<number, Promise<void>>();
  readonly #fd: number;
  #pump: ReturnType<typeof setInterval> | undefined;
  #closed = false;
  #hydrating = false;
  /** Fetches reads wait for, in flight, and when the last one started: the background steps aside. */
  #onDemand = 0;
  #onDemandAt = 0;
  /** The file was there before (an earlier process): blocks it holds are checked before any is fetched. */
  #resumed = false;
  readonly hydration: Hydration;

  private constructor(store: BlockStore, path: string, fd: number, blockAllocSize: number, entries: Map<number, Entry>,
    generation: number) {
    this.#store = store;
    this.path = path;
    this.#fd = fd;
    this.#blockAllocSize = blockAllocSize;
    this.#generation = generation;
    this.#entries = entries;
    for (const id of entries.keys()) this.#missing.add(id);
    this.hydration = { blocksTotal: entries.size, blocksLocal: 0, blocksFetched: 0, blocksReused: 0, bytesFetched: 0,
      done: false, lastError: null };
  }

  /**
   * Writes `loaded`'s header region into `path` (created, or kept from an earlier process: its blocks
   * are checked before any is fetched), sizes it, and registers it with the extension as lazy.
   */
  static async open(store: BlockStore, dbKey: string, path: string, loaded: LoadedHead): Promise<LazyBase> {
    const head = loaded.head;
    const entries = await loadEntries(store, dbKey, head);
    const { segment, header: headerBlock } = headerOf(head);
    const headerEntry = entryOf(headerBlock);
    const header = decodeBlock(await store.get(segment.key, { range: { offsetBytes: headerEntry.offsetBytes,
      lengthBytes: headerEntry.storedBytes } }), headerEntry, segment.key);
    checkHeaderRegion(head, header);
    const fd = openSync(path, "a+");
    const resumed = fstatSync(fd).size > HEADER_REGION_BYTES;
    closeSync(fd);
    const handle = openSync(path, "r+");
    ftruncateSync(handle, head.fileSizeBytes);
    writeSync(handle, header, 0, HEADER_REGION_BYTES, 0);
    const base = new LazyBase(store, path, handle, head.database.blockAllocSize, entries, head.generation);
    base.#resumed = resumed;
    const missing = new Uint8Array(head.blockCount);
    for (const id of entries.keys()) missing[id] = 1;
    Snapshots.lazyOpen(path, head.database.blockAllocSize, missing);
    if (entries.size === 0) {
      base.hydration.done = true; // nothing listed: every block is free
      return base;
    }
    base.#pump = setInterval(() => base.#serveWanted(), 2);
    (base.#pump as { unref?: () => void }).unref?.();
    return base;
  }

  /**
   * Starts fetching the rest in the background (after the first snapshot opened, so that its reads
   * come first). It steps aside whenever reads wait for blocks.
   */
  startHydration(): void {
    if (this.#hydrating || this.#closed) return;
    this.#hydrating = true;
    this.#onDemandAt = performance.now(); // the first reads come right after the first snapshot
    void this.#hydrate();
  }

  get done(): boolean {
    return this.#missing.size === 0;
  }

  /** Whether `blockId` is listed and not in the file yet. */
  isMissing(blockId: number): boolean {
    return this.#missing.has(blockId);
  }

  /** Makes the listed blocks among `blockIds` local now (before they are overwritten). */
  async fetchNow(blockIds: number[]): Promise<void> {
    const wanted = blockIds.filter((id) => this.#missing.has(id));
    if (wanted.length > 0) await this.#fetch(wanted);
  }

  /** The blocks of [offset, offset + length) of the file, by id (length undefined: to its end). */
  blocksIn(offset: number, length?: number): number[] {
    const ids: number[] = [];
    length ??= Math.max(0, fstatSync(this.#fd).size - offset);
    if (offset + length <= HEADER_REGION_BYTES) return ids;
    const first = Math.floor((Math.max(offset, HEADER_REGION_BYTES) - HEADER_REGION_BYTES) / this.#blockAllocSize);
    const last = Math.floor((offset + length - 1 - HEADER_REGION_BYTES) / this.#blockAllocSize);
    for (let id = first; id <= last; id++) ids.push(id);
    return ids;
  }

  /** The follower wrote these blocks itself (a frame, a newer generation): they are local. */
  markLocal(blockIds: number[]): void {
    for (const id of blockIds) this.#local(id);
  }

  /** Each listed block's SHA-256, by id (what a newer generation compares with). */
  shas(): Map<number, string> {
    return new Map([...this.#entries].map(([id, { entry }]) => [id, entry.sha256]));
  }

  /** A newer generation was written in place: its entries, for the blocks still missing. */
  async adopt(store: BlockStore, dbKey: string, loaded: LoadedHead): Promise<void> {
    this.#entries = await loadEntries(store, dbKey, loaded.head);
    this.#generation = loaded.head.generation;
    for (const id of [...this.#missing]) if (!this.#entries.has(id)) this.#local(id); // free now
    this.hydration.blocksTotal = this.#entries.size;
  }

  close(message = "The replica opened lazily was closed"): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#pump) clearInterval(this.#pump);
    Snapshots.lazyClose(this.path, message);
    closeSync(this.#fd);
  }

  /** Resolves once every block is local (or rejects with why one could not be). */
  async whenHydrated(): Promise<void> {
    while (!this.done) {
      if (this.#closed) throw new Error(`${this.path}: closed before every block was local`);
      await this.fetchNow([...this.#missing].slice(0, 512));
    }
  }

  #local(id: number): void {
    if (!this.#missing.delete(id)) return;
    this.hydration.blocksLocal++;
    Snapshots.lazyFilled(this.path, id, 1);
    if (this.#missing.size === 0) {
      this.hydration.done = true;
      if (this.#pump) clearInterval(this.#pump);
    }
  }

  #serveWanted(): void {
    if (this.#closed) return;
    const wanted = Snapshots.lazyWanted(this.path);
    if (wanted.length === 0) return;
    const ids = new Set<number>();
    for (const id of wanted) {
      if (!this.#missing.has(id)) {
        Snapshots.lazyFilled(this.path, id, 1); // free in this generation, or written meanwhile
        continue;
      }
      // Read-ahead: the next blocks of the file, where they are missing too.
      for (let next = id; next < id + READ_AHEAD_BLOCKS && (next === id || this.#missing.has(next)); next++) ids.add(next);
    }
    if (ids.size === 0) return;
    this.#onDemand++;
    this.#onDemandAt = performance.now();
    this.#fetch([...ids]).catch((error) => {
      for (const id of wanted) {
        if (this.#missing.has(id)) Snapshots.lazyFailed(this.path, id, (error as Error).message);
      }
    }).finally(() => this.#onDemand--);
  }

  /** Fetches `ids` (those missing), each read once however many ask for it at the same time. */
  async #fetch(ids: number[]): Promise<void> {
    const waits: Promise<void>[] = [];
    const fresh: number[] = [];
    for (const id of ids) {
      const pending = this.#inFlight.get(id);
      if (pending) waits.push(pending);
      else if (this.#missing.has(id)) fresh.push(id);
    }
    if (fresh.length > 0) {
      const work = this.#fetchFresh(fresh);
      for (const id of fresh) this.#inFlight.set(id, work);
      waits.push(work.finally(() => {
        for (const id of fresh) if (this.#inFlight.get(id) === work) this.#inFlight.delete(id);
      }));
    }
    await Promise.all(waits);
  }

  async #fetchFresh(ids: number[]): Promise<void> {
    const toFetch: number[] = [];
    for (const id of ids) if (!this.#resumed || !this.#reuseLocal(id)) toFetch.push(id);
    if (toFetch.length === 0) return;
    const segments: SegmentRef[] = [];
    const indexOf = new Map<string, number>();
    const wanted: ManifestEntry[] = [];
    for (const id of toFetch) {
      const entry = this.#entries.get(id);
      if (!entry) {
        this.#local(id);
        continue;
      }
      let index = indexOf.get(entry.segment.key);
      if (index === undefined) {
        indexOf.set(entry.segment.key, index = segments.length);
        segments.push(entry.segment);
      }
      wanted.push({ ...entry.entry, blockId: id, segmentIndex: index });
    }
    await Promise.all(planRangeReads({ generation: this.#generation, segments }, wanted).map(async (read) => {
      const key = segments[read.segment].key;
      const range = await this.#store.get(key, { range: { offsetBytes: read.offsetBytes, lengthBytes: read.lengthBytes } });
      this.hydration.bytesFetched += range.byteLength;
      for (const [index, entry] of read.blocks.entries()) {
        // One block per turn of the event loop: checking and writing a 4 MiB read at once held it 50-170 ms.
        if (index > 0) await new Promise((resolve) => setImmediate(resolve));
        const bytes = decodeBlock(within(range, read, entry), entry, key);
        // Still missing now (this turn of the event loop): a newer write of the block wins.
        const id = entry.blockId;
        if (this.#closed || !this.#missing.has(id) || this.#entries.get(id)?.entry.sha256 !== entry.sha256) continue;
        writeSync(this.#fd, bytes, 0, bytes.byteLength, blockOffset(id, this.#blockAllocSize));
        this.hydration.blocksFetched++;
        this.#local(id);
      }
    }));
  }

  /** A block the file already holds with the manifest's digest (an earlier process fetched it). */
  #reuseLocal(id: number): boolean {
    const entry = this.#entries.get(id);
    if (!entry || fstatSync(this.#fd).size < blockOffset(id, this.#blockAllocSize) + this.#blockAllocSize) return false;
    const bytes = new Uint8Array(this.#blockAllocSize);
    readSync(this.#fd, bytes, 0, bytes.byteLength, blockOffset(id, this.#blockAllocSize));
    if (hex(sha256(bytes)) !== entry.entry.sha256) return false;
    this.hydration.blocksReused++;
    this.#local(id);
    return true;
  }

  /** The background: every missing block, in file order, `HYDRATE_CONCURRENCY` ranged reads at a time. */
  async #hydrate(): Promise<void> {
    try {
      while (!this.#closed && this.#missing.size > 0) {
        // Reads first: the background waits while they fetch, and until they paused for a moment (at
        // most a second: a steady stream of reads does not stop it).
        const waitUntil = performance.now() + 1000;
        while (!this.#closed && performance.now() < waitUntil &&
          (this.#onDemand > 0 || performance.now() - this.#onDemandAt < HYDRATE_QUIET_MS)) {
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
        const batch = [...this.#missing].sort((a, b) => a - b).slice(0, 16 * HYDRATE_CONCURRENCY);
        const chunks: number[][] = [];
        for (let i = 0; i < batch.length; i += 16) chunks.push(batch.slice(i, i + 16));
        await Promise.all(chunks.map((chunk) => this.#fetch(chunk)));
      }
    } catch (error) {
      this.hydration.lastError = (error as Error).message;
      if (!this.#closed) setTimeout(() => void this.#hydrate(), 1000).unref?.();
    }
  }
}

/** Every listed block of a generation, by id, with its segment. */
async function loadEntries(store: BlockStore, dbKey: string, head: LoadedHead["head"]): Promise<Map<number, Entry>> {
  const entries = new Map<number, Entry>();
  for await (const part of manifestParts(store, head, manifestKey(dbKey, head.generation))) {
    for (const block of part.blocks) {
      const entry = entryOf(block);
      entries.set(entry.blockId, { segment: part.segments[entry.segmentIndex], entry });
    }
  }
  return entries;
}
