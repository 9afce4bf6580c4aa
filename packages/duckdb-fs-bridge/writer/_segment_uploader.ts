/**
 * @module
 * One read-and-upload pass: reads the header region and a set of blocks straight from the
 * database file, skips blocks whose bytes equal the previous manifest's, compresses, packs them
 * into checksum-chained segments and uploads those create-only, a bounded number at a time.
 * It publishes nothing: the caller decides whether the pass is consistent and writes the manifest.
 *
 * Below it, `ReusableUploads`:
 * What passes that did not publish have durably uploaded, kept for the next pass. A pass can fail
 * to publish after uploading most of a large carried set: the catch-up's reads were torn by a
 * checkpoint, or staging under the hold ran out of time. Under checkpoints that never pause, every
 * pass over a whole large file ends that way, so without this a first upload of a large database
 * started while DuckDB writes (a sidecar started again, `--live`) would never converge.
 *
 * An uploaded block stays reusable without a read until DuckDB writes it again (after that, or
 * when DuckDB lost its marks, a pass reads it again and reuses the upload only if the bytes have
 * the same SHA-256). Every write DuckDB makes to the
 * file is in the dirty blocks of a later generation event, and the replicator reports those here
 * (`written`) as it takes each event in, before any pass that could reuse the block; a write made
 * while a pass was reading is reported while the pass runs, so the pass's uploads of that block
 * are never kept. A block not written since it was read holds the same bytes at every later
 * generation, and at earlier ones the header does not reference it (DuckDB writes only free blocks
 * before a newer header), so its bytes do not matter there.
 *
 * Reused entries point at segments no manifest references yet. `gc` deletes such a segment only
 * once a newer generation was published without it, so everything here is dropped at each publish.
 */
import type { BlockStore } from "@haduck/s3-block-store";
import { type BlockSource, ReadRaceError } from "../local/_block_source.ts";
import {
  AdaptiveCompressor, blockOf, COMPRESSION_NONE, COMPRESSION_ZSTD, entryOf, HEADER_REGION_BYTES, HEADER_REGION_ID, hex, inSegment,
  type Manifest, type ManifestBlock, RuntimeCopies, type SealedEntryInput, sealSegment, SEGMENT_TRAILER_BYTES,
  segmentHeadBytes, segmentKey, type SegmentRef, sha256, type Shipment,
} from "@haduck/duckblock";
import { DirtyBitmap } from "@haduck/dirty-tracker";

export interface UploadPassOptions {
  store: BlockStore;
  dbKey: string;
  /** The DuckDB header generation the pass belongs to; `source`'s header is at it. */
  generation: number;
  /** Ascending block ids, which `source` reads by index. */
  blocks: readonly number[];
  source: BlockSource;
  previous?: { manifest: Manifest; sha256: string };
  /** Uploads of earlier passes that did not publish: a block read with the same SHA-256 reuses its entry. */
  uploadedBefore?: ReadonlyMap<number, UploadedBlock>;
  segmentBytesMax: number;
  uploadsInFlightMax: number;
  compress: boolean;
  /**
   * Called once, as soon as the last block has been read (uploads may still be in flight): says
   * whether the reads saw one consistent state. For a generation this releases DuckDB's held next
   * header, so a checkpoint waits for our reads, not for the network. Default: consistent.
   */
  readsDone?: () => boolean | Promise<boolean>;
  /** Aborts the pass's uploads (the replicator's stop deadline). */
  signal?: AbortSignal;
  /** Called as blocks are durable in the store (or skipped as unchanged): done and total blocks, bytes sent. */
  onProgress?: (blocksDone: number, blocksTotal: number, bytesSent: number) => void;
}

export interface UploadPassResult {
  /** Everything uploaded and the reads consistent: ready for a manifest. */
  shipment?: Shipment;
  /** Without a shipment: the blocks whose segments are durably in the store all the same. */
  uploaded?: UploadedBlock[];
  /** Blocks read whose bytes an upload of an earlier pass holds (`uploadedBefore`): reused, not uploaded. */
  matched: UploadedBlock[];
  uploadError?: unknown;
  /** What `readsDone` answered; false when the reads never finished. */
  consistent: boolean;
}

/**
 * Bun's fetch keeps its own copy of each request body, freed only when the collector runs, which it
 * does lazily for such external memory: left alone, a 1 GiB first upload peaked 86 to 108 MiB above
 * plain DuckDB. A collection every 32 MiB handed over keeps it near 60 (bench/scale.ts).
 */
const requestCopies = new RuntimeCopies(32 * 1024 * 1024);

/** Blocks read per call at most when they are adjacent in the file (fewer, larger reads). */
export const READ_RUN_BLOCKS_MAX = 16;

/**
 * The segment buffers of one pass, allocated once and reused. Blocks are read straight into a
 * segment buffer, at the place their payload takes in the segment: room for the largest header and
 * entry table comes first, so sealing the segment writes the header just before the payloads and
 * nothing is copied. A buffer returns to the pool when its upload settles: a pass of any size holds
 * `uploadsInFlightMax + 1` segments, and reading a block leaves no garbage and faults in no pages.
 */
class PassBuffers {
  /** Blocks read into one segment at most. */
  readonly blocksPerSegment: number;
  /** Where payloads start in a segment buffer. */
  readonly payloadAt: number;
  readonly #segmentBytes: number;
  readonly #free: Uint8Array[] = [];

  constructor(blockSize: number, segmentBytesMax: number, blocks: number) {
    this.blocksPerSegment = Math.max(1, Math.min(blocks, Math.floor(segmentBytesMax / blockSize)));
    // The first segment also carries the header region (one more entry, and its payload last).
    this.payloadAt = segmentHeadBytes(this.blocksPerSegment + 1);
    this.#segmentBytes = this.payloadAt + this.blocksPerSegment * blockSize + HEADER_REGION_BYTES + SEGMENT_TRAILER_BYTES;
  }

  take(): Uint8Array {
    return this.#free.pop() ?? new Uint8Array(this.#segmentBytes);
  }

  giveBack(buffer: Uint8Array): void {
    this.#free.push(buffer);
  }
}

/**
 * Reads and uploads. An upload failure is returned (the caller carries the blocks); a block that kept
 * changing under the reads (ReadRaceError) ends the pass as inconsistent, what it uploaded kept; any
 * other read failure is thrown.
 */
export async function readAndUpload(options: UploadPassOptions): Promise<UploadPassResult> {
  const { store, generation, source } = options;
  const segments: SegmentRef[] = [];
  const attempt = crypto.randomUUID().slice(0, 8);
  const shipped = new Map<number, ManifestBlock>();
  const uploads = new Set<Promise<void>>();
  const durable = new Set<number>(); // segments in the store
  const matched: UploadedBlock[] = [];
  let uploadError: unknown;
  let header: ManifestBlock | undefined;
  const previousBlocks = new Map((options.previous?.manifest.blocks ?? []).map((block) => [entryOf(block).blockId, block]));
  let previousSha: Uint8Array = options.previous ? Buffer.from(options.previous.sha256, "hex") : new Uint8Array(32);
  let blocksDone = 0;
  let bytesSent = 0;
  const progress = (blocks: number, bytes: number) => {
    blocksDone += blocks;
    bytesSent += bytes;
    options.onProgress?.(blocksDone, options.blocks.length, bytesSent);
  };
  try {
    const { fileInfo, headerRegion } = source;
    const blockSize = fileInfo.blockAllocSize;
    const buffers = new PassBuffers(blockSize, options.segmentBytesMax, options.blocks.length);
    // The segment being filled: its buffer, the blocks read into it, the entries kept, where the next payload goes.
    let buffer = buffers.take();
    let blocksRead = 0;
    let entries: SealedEntryInput[] = [];
    let cursor = buffers.payloadAt;
    const flush = async () => {
      if (segments.length === 0) { // the header region rides in the first segment, last (its id sorts last)
        buffer.set(headerRegion, cursor);
        entries.push({ blockId: HEADER_REGION_ID, storedBytes: headerRegion.byteLength,
          rawBytes: headerRegion.byteLength, compression: COMPRESSION_NONE, duckdbChecksumValid: false,
          rawSha256: sha256(headerRegion) });
      }
      const filled = buffer;
      const kept = entries;
      [blocksRead, entries, cursor] = [0, [], buffers.payloadAt];
      if (kept.length === 0) return; // every block read was unchanged: reuse the buffer
      while (uploads.size >= options.uploadsInFlightMax) await Promise.race(uploads);
      buffer = buffers.take();
      const sequence = segments.length;
      const { bytes, entries: sealed, sha256: digest } = sealSegment({ blockAllocSize: blockSize,
        generation: BigInt(generation), sequence, previousSha256: previousSha }, kept, filled, buffers.payloadAt);
      previousSha = digest;
      const key = segmentKey(options.dbKey, generation, attempt, sequence);
      segments.push({ key, sizeBytes: bytes.byteLength, sha256: hex(previousSha) });
      for (const entry of sealed) {
        const blockId = Number(entry.blockId === HEADER_REGION_ID ? -1 : entry.blockId);
        const block = blockOf({ blockId, segmentIndex: sequence, offsetBytes: entry.offsetBytes,
          storedBytes: entry.storedBytes, rawBytes: entry.rawBytes, compression: entry.compression,
          duckdbChecksumValid: entry.duckdbChecksumValid ? 1 : 0, sha256: entry.sha256 });
        if (entry.blockId === HEADER_REGION_ID) header = block;
        else shipped.set(blockId, block);
      }
      const blocksInSegment = sealed.length - (header && sequence === 0 ? 1 : 0);
      const upload = store.put(key, bytes, { ifNoneMatch: "*", signal: options.signal }).then(() => {
        durable.add(sequence);
        progress(blocksInSegment, bytes.byteLength);
      }, (error) => {
        uploadError ??= error;
      }).finally(() => {
        uploads.delete(upload);
        buffers.giveBack(filled);
      });
      uploads.add(upload);
      requestCopies.add(bytes.byteLength);
    };
    const compressor = new AdaptiveCompressor(options.compress);
    const blocks = options.blocks;
    let torn = false;
    for (let start = 0; start < blocks.length && !uploadError;) {
      if (blocksRead === buffers.blocksPerSegment) await flush();
      // One read for a run of adjacent blocks, as long as the segment has room for it.
      let end = start + 1;
      const runMax = Math.min(READ_RUN_BLOCKS_MAX, buffers.blocksPerSegment - blocksRead);
      while (end < blocks.length && end - start < runMax && blocks[end] === blocks[end - 1] + 1) end++;
      const runAt = cursor;
      let valid: boolean[];
      try {
        valid = source.read(buffer.subarray(runAt, runAt + (end - start) * blockSize), start, end - start);
      } catch (error) {
        // A block that kept changing under the reads: what was read and uploaded before it still counts.
        if (!(error instanceof ReadRaceError)) throw error;
        torn = true;
        break;
      }
      blocksRead += end - start;
      for (let index = start; index < end; index++) {
        const at = runAt + (index - start) * blockSize; // at or after `cursor`: kept payloads only move down
        const raw = buffer.subarray(at, at + blockSize);
        const rawSha256 = sha256(raw);
        const before = previousBlocks.get(blocks[index]);
        const digest = hex(rawSha256);
        if (before && entryOf(before).sha256 === digest) { // content unchanged: the old entry still holds
          progress(1, 0);
          continue;
        }
        const uploaded = options.uploadedBefore?.get(blocks[index]);
        if (uploaded && entryOf(uploaded.block).sha256 === digest) { // an earlier pass uploaded these very bytes
          matched.push(uploaded);
          progress(1, 0);
          continue;
        }
        const stored = compressor.compress(raw);
        if (stored) buffer.set(stored, cursor); // shorter than the block, so it ends before the next one starts
        else if (at !== cursor) buffer.copyWithin(cursor, at, at + blockSize);
        const storedBytes = stored?.byteLength ?? blockSize;
        entries.push({ blockId: BigInt(blocks[index]), storedBytes, rawBytes: blockSize, rawSha256,
          compression: stored ? COMPRESSION_ZSTD : COMPRESSION_NONE, duckdbChecksumValid: valid[index - start] });
        cursor += storedBytes;
      }
      start = end;
    }
    if (!uploadError) await flush();
    buffers.giveBack(buffer);
    const consistent = uploadError || torn ? false : await (options.readsDone?.() ?? true);
    await Promise.all(uploads);
    if (uploadError || !header || !consistent) {
      return { uploadError: uploadError ?? (header ? undefined : new Error("no header region was shipped")),
        consistent, uploaded: uploadedBlocks({ segments, shipped }, durable), matched };
    }
    return { shipment: { fileInfo, segments, shipped, header }, consistent, matched };
  } finally {
    // A read that failed leaves uploads in flight: settle them before the caller starts another pass,
    // so the bound on uploads in flight holds across passes too.
    await Promise.allSettled(uploads);
  }
}

// What passes that did not publish uploaded, kept for the next pass.

/** One block durably in the store: its entry (segment index 0 means `segment`) and the segment. */
export interface UploadedBlock {
  block: ManifestBlock;
  segment: SegmentRef;
}

export class ReusableUploads {
  /** Blocks not written since they were read: reused without reading them again. */
  readonly #entries = new Map<number, UploadedBlock>();
  /**
   * Blocks that may have been written since (DuckDB lost its marks, or listed them as written):
   * read again, and reused when the bytes read have the same SHA-256 (an upload saved for a read).
   */
  readonly #byContent = new Map<number, UploadedBlock>();
  /** Blocks written since the pass in flight began reading: what it uploads of them is stale. */
  #writtenSincePass = new DirtyBitmap();
  #everyBlockWritten = false;

  /** Entries a pass may reuse for a block whose bytes it read have this entry's SHA-256. */
  get byContent(): ReadonlyMap<number, UploadedBlock> {
    return this.#byContent;
  }

  /** A pass starts reading. */
  beginPass(): void {
    this.#writtenSincePass = new DirtyBitmap();
    this.#everyBlockWritten = false;
  }

  /** DuckDB wrote these blocks (a generation event's dirty blocks). */
  written(blocks: Iterable<number>): void {
    for (const block of blocks) {
      const entry = this.#entries.get(block);
      if (entry) {
        this.#entries.delete(block);
        this.#byContent.set(block, entry);
      }
      this.#writtenSincePass.mark(block);
    }
  }

  /** The writes are unknown (the extension lost its marks): nothing uploaded before can be trusted. */
  writtenAll(): void {
    for (const [block, entry] of this.#entries) this.#byContent.set(block, entry);
    this.#entries.clear();
    this.#everyBlockWritten = true;
  }

  /** A pass that did not publish uploaded these: keep those not written since the pass began. */
  keep(uploaded: Iterable<UploadedBlock>): void {
    for (const entry of uploaded) {
      const { blockId } = entryOf(entry.block);
      const trusted = !this.#everyBlockWritten && !this.#writtenSincePass.has(blockId);
      (trusted ? this.#entries : this.#byContent).set(blockId, entry);
      if (trusted) this.#byContent.delete(blockId);
    }
  }

  /** Splits a pass's blocks into those to read and those already uploaded. */
  split(blocks: readonly number[]): { toRead: number[]; reused: UploadedBlock[] } {
    const toRead: number[] = [];
    const reused: UploadedBlock[] = [];
    for (const block of blocks) {
      const entry = this.#entries.get(block);
      if (entry) reused.push(entry);
      else toRead.push(block);
    }
    return { toRead, reused };
  }

  /** A generation was published: what it did not use may be deleted by `gc` from now on. */
  clear(): void {
    this.#entries.clear();
    this.#byContent.clear();
  }
}

/** The blocks of a shipment whose segment was durably uploaded (a pass that did not publish). */
export function uploadedBlocks(shipment: Pick<Shipment, "segments" | "shipped">, durable: ReadonlySet<number>):
  UploadedBlock[] {
  const uploaded: UploadedBlock[] = [];
  for (const block of shipment.shipped.values()) {
    const { segmentIndex } = entryOf(block);
    if (!durable.has(segmentIndex)) continue;
    uploaded.push({ block: inSegment(block, 0), segment: shipment.segments[segmentIndex] });
  }
  return uploaded;
}

/** A shipment with reused blocks added: their segments appended (once each), their entries renumbered. */
export function withReused(shipment: Shipment, reused: readonly UploadedBlock[]): Shipment {
  if (reused.length === 0) return shipment;
  const segments = [...shipment.segments];
  const indexOf = new Map(segments.map((segment, index) => [segment.key, index]));
  const shipped = new Map(shipment.shipped);
  for (const { block, segment } of reused) {
    const { blockId } = entryOf(block);
    if (shipped.has(blockId)) continue; // read again by this pass: its own bytes win
    let index = indexOf.get(segment.key);
    if (index === undefined) {
      index = segments.push(segment) - 1;
      indexOf.set(segment.key, index);
    }
    shipped.set(blockId, inSegment(block, index));
  }
  return { ...shipment, segments, shipped };
}
