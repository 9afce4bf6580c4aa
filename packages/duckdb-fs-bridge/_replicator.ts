/**
 * @module
 * `Replicator`: follows the extension's ring for one `haduck://` database and turns each
 * generation into segments plus a create-only manifest in the store.
 *
 * Per generation: read the header region and the dirty blocks straight from the database file,
 * skip blocks whose bytes did not change since the last manifest, compress, pack into
 * checksum-chained segments, upload them (bounded), then *release* the generation. The release
 * tells whether every read finished before DuckDB wrote its next header (the hold; see
 * docs/ARCHITECTURE.md). Only then, once the segments are durable, the manifest is written.
 * An abandoned or failed generation publishes nothing; its blocks are carried into the next one.
 */
import type { BlockStore } from "@haduck/s3-block-store";
import { DirtyBitmap } from "@haduck/dirty-tracker";
import * as fs from "node:fs/promises";
import { zstdCompressSync } from "node:zlib";
import { latestManifest } from "./_catalog.ts";
import { blockOffset, HEADER_REGION_BYTES, parseHeaderRegion } from "./_duckdb_file.ts";
import { ReplicationError } from "./_errors.ts";
import { buildManifest, type SegmentRef, type Shipment } from "./_manifest_builder.ts";
import {
  COMPRESSION_NONE,
  COMPRESSION_ZSTD,
  encodeManifest,
  encodeSegment,
  HEADER_REGION_ID,
  hex,
  latestKey,
  type Manifest,
  type ManifestBlock,
  manifestKey,
  type SegmentInput,
  segmentKey,
  sha256,
} from "./_format.ts";
import type { Native } from "./_native.ts";
import { RING_LAYOUT as L } from "./_ring_layout.ts";

export interface ReplicatorOptions {
  native: Native;
  /** Local path of the database file (what follows `haduck://`). */
  dbPath: string;
  /** Undefined: local-only mode (tracking, no uploads). */
  store?: BlockStore;
  dbKey: string;
  /** Raw bytes per segment at most. Default 8 MiB. */
  segmentBytesMax?: number;
  /** Segment uploads in flight at most. Default 4. */
  uploadsInFlightMax?: number;
  /** How long the extension holds DuckDB's next header write for us. Default 10000 ms. */
  holdMs?: number;
  /** Ring poll interval. Default 20 ms. */
  tickMs?: number;
  /** zstd per block where the runtime has it. Default true. */
  compress?: boolean;
  onGeneration?: (event: GenerationShipped) => void;
}

export interface GenerationShipped {
  generation: number;
  blocks: number;
  blocksShipped: number;
  bytesShipped: number;
  durationMs: number;
}

export interface ReplicatorStatus {
  mode: "replicating" | "local-only";
  lastGeneration: number | null;
  lastGenerationTime: string | null;
  generationsCommitted: number;
  generationsAbandoned: number;
  generationsPending: number;
  blocksShipped: number;
  bytesShipped: number;
  blocksCarried: number;
  lastError: string | null;
}

export class Replicator {
  readonly options: Required<Omit<ReplicatorOptions, "store" | "onGeneration">> & ReplicatorOptions;
  readonly #status: ReplicatorStatus;
  #fileId: number | undefined;
  #queue: bigint[] = [];
  #seen = new Set<bigint>();
  #carried = new DirtyBitmap();
  #previous: { manifest: Manifest; sha256: string } | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #working: Promise<void> | undefined;
  #idleWaiters: (() => void)[] = [];

  constructor(options: ReplicatorOptions) {
    this.options = {
      ...options,
      segmentBytesMax: options.segmentBytesMax ?? 8 * 1024 * 1024,
      uploadsInFlightMax: options.uploadsInFlightMax ?? 4,
      holdMs: options.holdMs ?? 10_000,
      tickMs: options.tickMs ?? 20,
      compress: options.compress ?? true,
    };
    this.#status = {
      mode: options.store ? "replicating" : "local-only",
      lastGeneration: null,
      lastGenerationTime: null,
      generationsCommitted: 0,
      generationsAbandoned: 0,
      generationsPending: 0,
      blocksShipped: 0,
      bytesShipped: 0,
      blocksCarried: 0,
      lastError: null,
    };
  }

  get status(): ReplicatorStatus {
    return { ...this.#status, generationsPending: this.#queue.length, blocksCarried: this.#carried.count };
  }

  /** Loads the last manifest (for chaining and skipping unchanged blocks) and starts following the ring. */
  async start(): Promise<void> {
    if (this.options.store) {
      const latest = await latestManifest(this.options.store, this.options.dbKey);
      if (latest) {
        this.#previous = { manifest: latest.manifest, sha256: latest.sha256 };
        this.#status.lastGeneration = latest.manifest.generation;
        this.#status.lastGenerationTime = latest.manifest.createdAt;
      }
    }
    this.options.native.attach(this.options.holdMs);
    this.#timer = setInterval(() => this.#tick(), this.options.tickMs);
  }

  /** Waits until every generation announced so far is shipped (or abandoned), then stops. */
  async stop(): Promise<void> {
    await this.idle();
    clearInterval(this.#timer);
    this.options.native.detach();
  }

  /** Resolves when the queue is empty and nothing is being shipped. */
  idle(): Promise<void> {
    this.#tick();
    if (!this.#working && this.#queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  #tick(): void {
    const native = this.options.native;
    for (const event of native.drain()) {
      if (event.type !== L.HADUCK_EVENT_GENERATION_READY) continue;
      if (this.#fileId === undefined && native.filePath(event.fileId) === this.options.dbPath) this.#fileId = event.fileId;
      if (event.fileId === this.#fileId && !this.#seen.has(event.a)) {
        this.#seen.add(event.a);
        this.#queue.push(event.a);
      }
    }
    if (native.takeOverflow()) {
      // Events were dropped; the extension's pending list still has every generation.
      for (const seq of native.pendingGenerations()) {
        const info = native.generationInfo(seq);
        if (info && info.fileId === this.#fileId && !this.#seen.has(seq)) {
          this.#seen.add(seq);
          this.#queue.push(seq);
        }
      }
      this.#queue.sort((a, b) => (a < b ? -1 : 1));
    }
    if (!this.#working && this.#queue.length > 0) {
      this.#working = this.#drainQueue().finally(() => {
        this.#working = undefined;
        if (this.#queue.length > 0) this.#tick();
        else for (const wake of this.#idleWaiters.splice(0)) wake();
      });
    } else if (!this.#working) {
      for (const wake of this.#idleWaiters.splice(0)) wake();
    }
  }

  async #drainQueue(): Promise<void> {
    while (this.#queue.length > 0) {
      const seq = this.#queue.shift()!;
      this.#seen.delete(seq);
      try {
        await this.#ship(seq);
      } catch (error) {
        this.#status.lastError = (error as Error).message;
      }
    }
  }

  async #ship(seq: bigint): Promise<void> {
    const native = this.options.native;
    const started = performance.now();
    const info = native.generationInfo(seq);
    if (!info) return;
    const dirty = native.generationBlocks(seq, info.blockCount);
    if (!this.options.store) {
      native.release(seq);
      this.#status.generationsCommitted++;
      this.#status.lastGeneration = info.iteration;
      this.#status.lastGenerationTime = new Date().toISOString();
      return;
    }
    const wanted = new DirtyBitmap();
    wanted.union(dirty);
    wanted.union(this.#carried);
    if ((info.needsFullScan || !this.#previous) && info.headerBlockCount > 0) {
      wanted.markRange(0, info.headerBlockCount - 1); // a first or rescanned generation ships every block
    }
    const blocks = [...wanted.blocks()].filter((block) => block < info.headerBlockCount);
    let shipment: Shipment | undefined;
    let uploadError: unknown;
    try {
      ({ shipment, uploadError } = await this.#readAndUpload(info.iteration, blocks));
    } catch (error) {
      uploadError = error;
    }
    const released = native.release(seq);
    if (released !== 1 || uploadError || !shipment) {
      // Not publishable: the reads may be torn (abandoned) or the upload failed. Carry everything.
      this.#carried.union(blocks);
      this.#status.generationsAbandoned++;
      if (uploadError) {
        this.#status.lastError = `Cannot ship generation ${info.iteration} of ${this.options.dbKey}: ` +
          (uploadError as Error).message;
      }
      return;
    }
    this.#carried = new DirtyBitmap();
    await this.#publish(info.iteration, shipment, blocks.length, started);
  }

  /**
   * Reconciles a quiescent local file (before DuckDB opens it) with the store's last generation:
   * the same iteration is consistent by construction (blocks the committed header references are
   * never rewritten while it is active); a newer local iteration ships every block whose bytes
   * differ as a new generation; an older one or another database is refused.
   */
  async reconcile(): Promise<{ shippedGeneration: number | null }> {
    const store = this.options.store;
    const previous = this.#previous?.manifest;
    if (!store || !previous) return { shippedGeneration: null };
    const file = await fs.open(this.options.dbPath, "r").catch(() => undefined);
    if (!file) return { shippedGeneration: null }; // no local file: attach creates one; restore is the way back
    let local;
    try {
      const region = new Uint8Array(HEADER_REGION_BYTES);
      const { bytesRead } = await file.read(region, 0, HEADER_REGION_BYTES, 0);
      if (bytesRead < HEADER_REGION_BYTES) return { shippedGeneration: null };
      local = parseHeaderRegion(region);
    } finally {
      await file.close();
    }
    if (local.dbIdentifier !== previous.database.dbIdentifier) {
      throw new ReplicationError("FOREIGN_DATABASE", `${this.options.dbPath} is another database than ` +
        `${this.options.dbKey} in ${store.url} (identifier ${local.dbIdentifier}, store has ` +
        `${previous.database.dbIdentifier}): use another --db-key, or \`haduck restore\` to get the stored one`);
    }
    if (local.iteration < previous.generation) {
      throw new ReplicationError("DIVERGED", `${this.options.dbPath} is at generation ${local.iteration}, older than ` +
        `generation ${previous.generation} in ${store.url}: run \`haduck restore --force --to ${this.options.dbPath}\` ` +
        "to bring it up to date");
    }
    if (local.iteration === previous.generation) return { shippedGeneration: null };
    const started = performance.now();
    const all = Array.from({ length: local.blockCount }, (_, block) => block);
    const { shipment, uploadError } = await this.#readAndUpload(local.iteration, all);
    if (uploadError || !shipment) throw uploadError;
    await this.#publish(local.iteration, shipment, all.length, started);
    return { shippedGeneration: local.iteration };
  }

  /** Writes the manifest create-only (every segment is durable by now), then the latest pointer. */
  async #publish(iteration: number, shipment: Shipment, blocksConsidered: number, started: number): Promise<void> {
    const store = this.options.store!;
    const manifest = buildManifest({ dbKey: this.options.dbKey, generation: iteration, shipment,
      previous: this.#previous, blocksConsidered });
    const bytes = encodeManifest(manifest);
    await store.put(manifestKey(this.options.dbKey, iteration), bytes, { ifNoneMatch: "*" });
    const digest = hex(sha256(bytes));
    await store.put(latestKey(this.options.dbKey), new TextEncoder().encode(
      JSON.stringify({ generation: iteration, manifestSha256: digest }),
    ));
    this.#previous = { manifest, sha256: digest };
    this.#status.generationsCommitted++;
    this.#status.lastGeneration = iteration;
    this.#status.lastGenerationTime = manifest.createdAt;
    this.#status.lastError = null;
    this.#status.blocksShipped += manifest.stats.blocksShipped;
    this.#status.bytesShipped += manifest.stats.bytesShipped;
    this.options.onGeneration?.({
      generation: iteration,
      blocks: manifest.blocks.length,
      blocksShipped: manifest.stats.blocksShipped,
      bytesShipped: manifest.stats.bytesShipped,
      durationMs: performance.now() - started,
    });
  }

  /** Reads the header region and `blocks` from the file and uploads them as chained segments. */
  async #readAndUpload(iteration: number, blocks: number[]): Promise<{ shipment?: Shipment; uploadError?: unknown }> {
    const store = this.options.store!;
    const file = await fs.open(this.options.dbPath, "r");
    const segments: SegmentRef[] = [];
    const attempt = crypto.randomUUID().slice(0, 8);
    const shipped = new Map<number, ManifestBlock>();
    const uploads = new Set<Promise<void>>();
    let uploadError: unknown;
    let header: ManifestBlock | undefined;
    const previousBlocks = new Map((this.#previous?.manifest.blocks ?? []).map((block) => [block[0], block]));
    let previousSha: Uint8Array = this.#previous ? Buffer.from(this.#previous.sha256, "hex") : new Uint8Array(32);
    try {
      const headerRegion = new Uint8Array(HEADER_REGION_BYTES);
      await file.read(headerRegion, 0, HEADER_REGION_BYTES, 0);
      const fileInfo = parseHeaderRegion(headerRegion);
      if (fileInfo.iteration !== iteration) {
        // DuckDB already wrote a newer header (the hold was not in force): never pair it with these blocks.
        throw new ReplicationError("INTEGRITY", `the file's header is at iteration ${fileInfo.iteration}, ` +
          `expected ${iteration}`);
      }
      const blockSize = fileInfo.blockAllocSize;
      let batch: SegmentInput[] = [{ blockId: HEADER_REGION_ID, raw: headerRegion, stored: headerRegion,
        compression: COMPRESSION_NONE, duckdbChecksumValid: false }];
      let batchBytes = HEADER_REGION_BYTES;
      const flush = async () => {
        if (batch.length === 0) return;
        const sequence = segments.length;
        const { bytes, entries } = encodeSegment({ blockAllocSize: blockSize, generation: BigInt(iteration),
          sequence, previousSha256: previousSha }, batch);
        previousSha = sha256(bytes);
        const key = segmentKey(this.options.dbKey, iteration, attempt, sequence);
        segments.push({ key, sizeBytes: bytes.byteLength, sha256: hex(previousSha) });
        for (const entry of entries) {
          const block: ManifestBlock = [Number(entry.blockId === HEADER_REGION_ID ? -1 : entry.blockId), sequence,
            entry.offsetBytes, entry.storedBytes, entry.rawBytes, entry.compression,
            entry.duckdbChecksumValid ? 1 : 0, entry.sha256];
          if (entry.blockId === HEADER_REGION_ID) header = block;
          else shipped.set(block[0], block);
        }
        batch = [];
        batchBytes = 0;
        while (uploads.size >= this.options.uploadsInFlightMax) await Promise.race(uploads);
        const upload = store.put(key, bytes, { ifNoneMatch: "*" }).then(() => {}, (error) => {
          uploadError ??= error;
        }).finally(() => uploads.delete(upload));
        uploads.add(upload);
      };
      for (const blockId of blocks) {
        const raw = new Uint8Array(blockSize);
        await file.read(raw, 0, blockSize, blockOffset(blockId, blockSize));
        const digest = hex(sha256(raw));
        const before = previousBlocks.get(blockId);
        if (before && before[7] === digest) continue; // content unchanged: the old entry still holds
        const stored = this.options.compress ? new Uint8Array(zstdCompressSync(raw)) : raw;
        const compressed = stored.byteLength < raw.byteLength;
        batch.push({ blockId: BigInt(blockId), raw, stored: compressed ? stored : raw,
          compression: compressed ? COMPRESSION_ZSTD : COMPRESSION_NONE,
          duckdbChecksumValid: this.options.native.blockChecksumOk(raw) });
        batchBytes += raw.byteLength;
        if (batchBytes >= this.options.segmentBytesMax) await flush();
        if (uploadError) break;
      }
      await flush();
      await Promise.all(uploads);
      if (uploadError || !header) return { uploadError: uploadError ?? new Error("no header region was shipped") };
      return { shipment: { fileInfo, segments, shipped, header } };
    } finally {
      await file.close();
    }
  }
}
