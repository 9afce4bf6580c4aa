/**
 * @module
 * One read-and-upload pass: reads the header region and a set of blocks straight from the
 * database file, skips blocks whose bytes equal the previous manifest's, compresses, packs them
 * into checksum-chained segments and uploads those create-only, a bounded number at a time.
 * It publishes nothing: the caller decides whether the pass is consistent and writes the manifest.
 */
import type { BlockStore } from "@haduck/s3-block-store";
import { type BlockSource, ReadRaceError } from "../local/_block_source.ts";
import {
  AdaptiveCompressor, blockOf, COMPRESSION_NONE, COMPRESSION_ZSTD, entryOf, HEADER_REGION_BYTES, HEADER_REGION_ID, hex,
  type Manifest, type ManifestBlock, RuntimeCopies, type SealedEntryInput, sealSegment, SEGMENT_TRAILER_BYTES,
  segmentHeadBytes, segmentKey, type SegmentRef, sha256, type Shipment,
} from "@haduck/duckblock";
import { type UploadedBlock, uploadedBlocks } from "./_reusable_uploads.ts";

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
