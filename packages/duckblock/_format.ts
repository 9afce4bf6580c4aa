/**
 * @module
 * The on-store formats (spec: docs/FORMAT.md): "duckblock" segments that pack a generation's
 * blocks, and the JSON manifest that makes a generation visible. Every byte is covered by a full
 * SHA-256: each block's raw bytes (in its entry), each segment's header fields and entries (its
 * trailer, which manifests and the next segment name), each manifest. At the end, the zstd rule
 * segments and WAL frames share for a block's payload: level 1, and only where it pays (DuckDB
 * compresses its columns itself, and random-looking bytes cost zstd time for nothing).
 */
import { createHash } from "node:crypto";
import * as zlib from "node:zlib";
import type { PageRef, StoredManifest } from "./_manifest_pages.ts";
import { latestKey, manifestKey, pad, segmentKey } from "./_keys.ts";

export const SEGMENT_MAGIC = "HDUCKBLK";
export const SEGMENT_VERSION = 2;
export const SEGMENT_HEADER_BYTES = 96;
export const SEGMENT_ENTRY_BYTES = 64;
export const SEGMENT_TRAILER_BYTES = 32;
/** Block id of the header region [0, 12288) inside a segment. */
export const HEADER_REGION_ID = 0xffff_ffff_ffff_ffffn;

export const COMPRESSION_NONE = 0;
export const COMPRESSION_ZSTD = 1;

export function sha256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(bytes).digest());
}

export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("hex");
}

/** One block as it goes into a segment. */
export interface SegmentInput {
  blockId: bigint;
  raw: Uint8Array;
  stored: Uint8Array;
  compression: number;
  duckdbChecksumValid: boolean;
  /** SHA-256 of `raw`, when the caller has it already (it is computed otherwise). */
  rawSha256?: Uint8Array;
}

/** Where one block lives inside a segment, as the manifest records it. */
export interface SegmentEntry {
  blockId: bigint;
  offsetBytes: number;
  storedBytes: number;
  rawBytes: number;
  compression: number;
  duckdbChecksumValid: boolean;
  sha256: string;
}

export interface SegmentHeader {
  blockAllocSize: number;
  generation: bigint;
  sequence: number;
  previousSha256: Uint8Array;
}

/** One entry of a segment whose payload is already in place (see `sealSegment`). */
export interface SealedEntryInput {
  blockId: bigint;
  storedBytes: number;
  rawBytes: number;
  compression: number;
  duckdbChecksumValid: boolean;
  /** SHA-256 of the block's raw bytes. */
  rawSha256: Uint8Array;
}

/** Bytes of a segment's header and entry table for `entries` entries. */
export const segmentHeadBytes = (entries: number) => SEGMENT_HEADER_BYTES + entries * SEGMENT_ENTRY_BYTES;

/**
 * Completes a segment around payloads already laid end to end in `buffer` from `payloadAt` (in
 * `entries`' order, which must be ascending block ids): writes the header and the entries just
 * before them and the trailer just after, and returns the segment as a view of `buffer`, so the
 * payloads are never copied. The trailer is the SHA-256 of the header and the entries; each entry
 * holds its block's SHA-256, so the checksum covers every payload without a second pass over the
 * payload bytes. Manifests and the next segment's chain name a segment by it.
 */
export function sealSegment(header: SegmentHeader, entries: readonly SealedEntryInput[], buffer: Uint8Array,
  payloadAt: number): { bytes: Uint8Array; entries: SegmentEntry[]; sha256: Uint8Array } {
  const headBytes = segmentHeadBytes(entries.length);
  const payloadBytes = entries.reduce((sum, entry) => sum + entry.storedBytes, 0);
  const start = payloadAt - headBytes;
  const total = headBytes + payloadBytes + SEGMENT_TRAILER_BYTES;
  if (start < 0 || start + total > buffer.byteLength) {
    throw new RangeError(`segment of ${total} bytes does not fit its buffer of ${buffer.byteLength}`);
  }
  if (header.previousSha256.byteLength !== 32) throw new RangeError("previousSha256 must be 32 bytes");
  // A reused buffer holds an older segment: clear the header and entries (reserved bytes must be zero).
  const bytes = buffer.subarray(start, start + total).fill(0, 0, headBytes);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  bytes.set(new TextEncoder().encode(SEGMENT_MAGIC), 0);
  view.setUint16(8, SEGMENT_VERSION, true);
  view.setUint16(10, 8, true); // block id width in bytes
  view.setUint32(12, header.blockAllocSize, true);
  view.setBigUint64(16, header.generation, true);
  view.setBigUint64(24, BigInt(header.sequence), true);
  view.setBigUint64(32, BigInt(entries.length), true);
  bytes.set(header.previousSha256, 40);
  // bytes 72..96 reserved, zero
  const sealed: SegmentEntry[] = [];
  let offset = headBytes;
  entries.forEach((input, index) => {
    if (index > 0 && input.blockId <= entries[index - 1].blockId) {
      throw new RangeError(`segment entries are not in ascending block order at block ${input.blockId}`);
    }
    const at = SEGMENT_HEADER_BYTES + index * SEGMENT_ENTRY_BYTES;
    view.setBigUint64(at, input.blockId, true);
    view.setBigUint64(at + 8, BigInt(offset), true);
    view.setUint32(at + 16, input.storedBytes, true);
    view.setUint32(at + 20, input.rawBytes, true);
    view.setUint8(at + 24, input.compression);
    view.setUint8(at + 25, input.duckdbChecksumValid ? 1 : 0);
    bytes.set(input.rawSha256, at + 32);
    sealed.push({ blockId: input.blockId, offsetBytes: offset, storedBytes: input.storedBytes,
      rawBytes: input.rawBytes, compression: input.compression, duckdbChecksumValid: input.duckdbChecksumValid,
      sha256: hex(input.rawSha256) });
    offset += input.storedBytes;
  });
  const checksum = sha256(bytes.subarray(0, headBytes));
  bytes.set(checksum, total - SEGMENT_TRAILER_BYTES);
  return { bytes, entries: sealed, sha256: checksum };
}

/**
 * Encodes a segment from blocks in memory: sorts them, lays their payloads out, then seals it (see
 * `sealSegment`). With `into` (a pooled buffer) the segment is written at its start.
 */
export function encodeSegment(header: SegmentHeader, inputs: SegmentInput[], into?: Uint8Array):
  { bytes: Uint8Array; entries: SegmentEntry[]; sha256: Uint8Array } {
  const sorted = [...inputs].sort((a, b) => (a.blockId < b.blockId ? -1 : a.blockId > b.blockId ? 1 : 0));
  const payloadAt = segmentHeadBytes(sorted.length);
  const total = payloadAt + sorted.reduce((sum, input) => sum + input.stored.byteLength, 0) + SEGMENT_TRAILER_BYTES;
  const buffer = into ?? new Uint8Array(total);
  if (buffer.byteLength < total) throw new RangeError(`segment of ${total} bytes does not fit ${buffer.byteLength}`);
  let offset = payloadAt;
  for (const input of sorted) {
    buffer.set(input.stored, offset);
    offset += input.stored.byteLength;
  }
  return sealSegment(header, sorted.map((input) => ({ blockId: input.blockId, storedBytes: input.stored.byteLength,
    rawBytes: input.raw.byteLength, compression: input.compression, duckdbChecksumValid: input.duckdbChecksumValid,
    rawSha256: input.rawSha256 ?? sha256(input.raw) })), buffer, payloadAt);
}

/** A stored block's raw bytes: decompressed, and checked against the SHA-256 its entry names. */
export function decodePayload(stored: Uint8Array, compression: number, rawBytes: number, digest: string): Uint8Array {
  let raw: Uint8Array;
  if (compression === COMPRESSION_NONE) raw = stored;
  else if (compression === COMPRESSION_ZSTD) {
    const zstdDecompressSync = requireZstd(); // outside the try: a runtime without zstd is not a damaged block
    try {
      raw = new Uint8Array(zstdDecompressSync(stored, { maxOutputLength: rawBytes }));
    } catch (error) {
      throw new RangeError(`cannot decompress (${(error as Error).message})`);
    }
  } else throw new RangeError(`unknown compression ${compression}`);
  if (raw.byteLength !== rawBytes) throw new RangeError(`it holds ${raw.byteLength} bytes, not ${rawBytes}`);
  if (hex(sha256(raw)) !== digest) throw new RangeError("its SHA-256 does not match");
  return raw;
}

/**
 * Decodes and checks a segment: shape, trailer (header and entries), payloads laid end to end with
 * no byte outside an entry, and, unless `payloads` is false (a caller that checks each payload
 * itself), every payload against its entry's SHA-256. Throws RangeError naming what is wrong.
 */
export function decodeSegment(bytes: Uint8Array, options: { payloads?: boolean } = {}):
  { header: SegmentHeader; entries: SegmentEntry[]; sha256: Uint8Array } {
  if (bytes.byteLength < SEGMENT_HEADER_BYTES + SEGMENT_TRAILER_BYTES) {
    throw new RangeError(`segment is ${bytes.byteLength} bytes, shorter than its header and trailer`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const trailerAt = bytes.byteLength - SEGMENT_TRAILER_BYTES;
  const count = Number(view.getBigUint64(32, true));
  const payloadStart = SEGMENT_HEADER_BYTES + count * SEGMENT_ENTRY_BYTES;
  if (payloadStart > trailerAt) throw new RangeError(`segment claims ${count} entries, more than it holds`);
  const checksum = sha256(bytes.subarray(0, payloadStart));
  if (hex(checksum) !== hex(bytes.subarray(trailerAt))) {
    throw new RangeError("segment checksum mismatch (truncated or corrupted)");
  }
  if (new TextDecoder().decode(bytes.subarray(0, 8)) !== SEGMENT_MAGIC) throw new RangeError("not a duckblock segment");
  if (view.getUint16(8, true) !== SEGMENT_VERSION) throw new RangeError(`unsupported segment version ${view.getUint16(8, true)}`);
  const entries: SegmentEntry[] = [];
  let expectedOffset = payloadStart;
  for (let index = 0; index < count; index++) {
    const at = SEGMENT_HEADER_BYTES + index * SEGMENT_ENTRY_BYTES;
    const entry: SegmentEntry = {
      blockId: view.getBigUint64(at, true),
      offsetBytes: Number(view.getBigUint64(at + 8, true)),
      storedBytes: view.getUint32(at + 16, true),
      rawBytes: view.getUint32(at + 20, true),
      compression: view.getUint8(at + 24),
      duckdbChecksumValid: view.getUint8(at + 25) === 1,
      sha256: hex(bytes.subarray(at + 32, at + 64)),
    };
    if (entry.offsetBytes !== expectedOffset || entry.offsetBytes + entry.storedBytes > trailerAt) {
      throw new RangeError(`entry ${index} does not follow the previous payload inside the segment`);
    }
    expectedOffset += entry.storedBytes;
    if (options.payloads !== false) {
      try {
        const stored = bytes.subarray(entry.offsetBytes, expectedOffset);
        decodePayload(stored, entry.compression, entry.rawBytes, entry.sha256);
      } catch (error) {
        throw new RangeError(`entry ${index} (block ${entry.blockId}): ${(error as Error).message}`);
      }
    }
    entries.push(entry);
  }
  if (expectedOffset !== trailerAt) throw new RangeError(`${trailerAt - expectedOffset} bytes lie outside every entry`);
  return {
    header: {
      blockAllocSize: view.getUint32(12, true),
      generation: view.getBigUint64(16, true),
      sequence: Number(view.getBigUint64(24, true)),
      previousSha256: bytes.slice(40, 72),
    },
    entries,
    sha256: checksum,
  };
}

/** One block of the database as of a generation: which segment holds it and how to check it. */
export type ManifestBlock = [
  blockId: number,
  segmentIndex: number,
  offsetBytes: number,
  storedBytes: number,
  rawBytes: number,
  compression: number,
  duckdbChecksumValid: 0 | 1,
  sha256: string,
];

/**
 * A manifest as readers use it: whole, every segment and block listed. Version 2 stores it in pages
 * (_manifest_pages.ts); version 1 stored it as one object (still read).
 */
export interface Manifest {
  format: "haduck-manifest";
  version: 1 | 2;
  dbKey: string;
  generation: number;
  previousGeneration: number | null;
  previousManifestSha256: string | null;
  writerEpoch: number;
  createdAt: string;
  /**
   * When DuckDB committed this checkpoint's header (ISO 8601), if the writer saw it happen: every
   * commit before it is in the generation, every later one in its WAL frames. Restore `--time` uses it.
   */
  checkpointedAt?: string;
  database: {
    dbIdentifier: string;
    blockAllocSize: number;
    storageVersion: number;
    libraryVersion: string;
    /** haduck's own identity of the database (DuckDB's db_identifier is zero unless encrypted). */
    haduckIdentity?: string;
  };
  fileSizeBytes: number;
  blockCount: number;
  /** Segments this generation references (its own and inherited); `sha256` is each one's checksum (trailer). */
  segments: { key: string; sizeBytes: number; sha256: string }[];
  header: ManifestBlock;
  blocks: ManifestBlock[];
  stats: { blocksShipped: number; bytesShipped: number; blocksSkippedUnchanged: number };
  /** The stored pages that hold `blocks` (version 2; see _manifest_pages.ts). */
  pages?: PageRef[];
  /**
   * A fork's: the databases whose segments and pages this one may reference (its source, and the
   * source's own sources), carried into every later generation. Absent for a database never forked.
   */
  sources?: string[];
  /** A fork's first generation: where it was forked from. */
  forkedFrom?: { dbKey: string; generation: number; manifestSha256: string; frames: number };
}

/** A manifest stored whole (version 1, before block map pages). */
export type ManifestV1 = Manifest & { version: 1 };

/** The most blocks a manifest may list (2^24 blocks of 256 KiB: 4 TiB). */
export const MANIFEST_BLOCKS_MAX = 2 ** 24;
const HEX_DIGEST = /^[0-9a-f]{64}$/;

/**
 * Decodes a stored manifest: version 1 whole (and validated), version 2 as stored (its pages are
 * checked and assembled by _manifest_pages.ts). RangeError names what is off.
 */
export function decodeManifest(bytes: Uint8Array, where: string): ManifestV1 | StoredManifest {
  let manifest: Manifest;
  try {
    manifest = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new RangeError(`${where} is not a haduck manifest (not JSON)`);
  }
  if (manifest?.format === "haduck-manifest" && (manifest.version as number) === 2 &&
    typeof manifest.generation === "number") {
    return manifest as unknown as StoredManifest;
  }
  if (manifest?.format !== "haduck-manifest" || manifest.version !== 1 || !Array.isArray(manifest.blocks) ||
    !Array.isArray(manifest.segments) || !Array.isArray(manifest.header) || typeof manifest.generation !== "number") {
    throw new RangeError(`${where} is not a haduck manifest version 1 or 2`);
  }
  validateManifest(manifest, where);
  return manifest as ManifestV1;
}

/**
 * Checks every bound a reader relies on before it allocates or fetches anything (docs/FORMAT.md):
 * a hostile or corrupted manifest is refused by name, never followed into a huge allocation.
 */
export function validateManifest(manifest: Manifest, where: string): void {
  const fail = (what: string): never => {
    throw new RangeError(`${where} is not a valid haduck manifest: ${what}`);
  };
  const whole = (value: unknown, max = Number.MAX_SAFE_INTEGER) =>
    typeof value === "number" && Number.isSafeInteger(value) && value >= 0 && value <= max;
  const blockSize = manifest.database?.blockAllocSize;
  if (!whole(blockSize) || blockSize < 16384 || blockSize > 262144 || (blockSize & (blockSize - 1)) !== 0) {
    fail(`block_alloc_size ${blockSize} is not a power of two from 16 KiB to 256 KiB`);
  }
  if (!whole(manifest.generation) || !whole(manifest.blockCount, MANIFEST_BLOCKS_MAX)) {
    fail(`generation ${manifest.generation} or block count ${manifest.blockCount} out of range`);
  }
  if (manifest.fileSizeBytes !== 12288 + manifest.blockCount * blockSize) {
    fail(`file size ${manifest.fileSizeBytes} is not 12288 + ${manifest.blockCount} blocks of ${blockSize} bytes`);
  }
  if (typeof manifest.dbKey !== "string" || typeof manifest.database.dbIdentifier !== "string" ||
    !["undefined", "string"].includes(typeof manifest.database.haduckIdentity)) {
    fail("the database key or identifier is missing or malformed");
  }
  if (manifest.sources !== undefined &&
    (!Array.isArray(manifest.sources) || !manifest.sources.every((source) => typeof source === "string"))) {
    fail("its sources are not a list of database keys");
  }
  if (manifest.blocks.length > manifest.blockCount) fail(`${manifest.blocks.length} blocks for ${manifest.blockCount}`);
  for (const segment of manifest.segments) {
    if (typeof segment?.key !== "string" || !whole(segment.sizeBytes, 2 ** 40) || !HEX_DIGEST.test(segment.sha256)) {
      fail(`segment ${JSON.stringify(segment?.key)} has a malformed key, size or digest`);
    }
  }
  const check = (block: ManifestBlock, header: boolean) => {
    if (!Array.isArray(block) || block.length !== 8) fail("a block entry is not an 8-element array");
    const [blockId, segmentIndex, offset, stored, raw, compression, , digest] = block;
    const expectedRaw = header ? 12288 : blockSize;
    if (header ? blockId !== -1 : !whole(blockId, manifest.blockCount - 1)) fail(`block id ${blockId} out of range`);
    if (!whole(segmentIndex, manifest.segments.length - 1)) fail(`block ${blockId} names segment ${segmentIndex}`);
    if (raw !== expectedRaw) fail(`block ${blockId} claims ${raw} raw bytes, not ${expectedRaw}`);
    if (!whole(stored, raw) || stored === 0) fail(`block ${blockId} claims ${stored} stored bytes`);
    if (!whole(offset) || offset + stored > manifest.segments[segmentIndex].sizeBytes) {
      fail(`block ${blockId} lies outside its segment`);
    }
    if (compression !== COMPRESSION_NONE && compression !== COMPRESSION_ZSTD) {
      fail(`block ${blockId} has unknown compression ${compression}`);
    }
    if (!HEX_DIGEST.test(digest)) fail(`block ${blockId} has a malformed digest`);
    return blockId;
  };
  check(manifest.header, true);
  let previousId = -1;
  for (const block of manifest.blocks) {
    const blockId = check(block, false);
    if (blockId <= previousId) fail(`block ${blockId} is listed out of order or twice`);
    previousId = blockId;
  }
}

// The keys live in _keys.ts; these names stay here for the modules that read them with the formats.
export { latestKey, manifestKey, pad, segmentKey };

/**
 * Checks a database key (the first part of every object key under the prefix): 1 to 200 of
 * `A-Z a-z 0-9 . _ -`, not starting with `.` or `-`. TypeError names the key and the form.
 */
export function assertValidDbKey(dbKey: string): void {
  if (typeof dbKey !== "string" || !/^[A-Za-z0-9_][A-Za-z0-9._-]{0,199}$/.test(dbKey)) {
    throw new TypeError(`Invalid database key ${JSON.stringify(dbKey)}: use 1 to 200 letters, digits, '.', '_' or ` +
      "'-', starting with a letter, digit or '_' (the database's file name; `haduck databases` lists the keys in a store)");
  }
}

// Compression: the zstd rule segments and WAL frames share.

/**
 * node:zlib's zstd, where the runtime has it: Bun, Deno and Node 22.15 or later do; Node 20 does
 * not, and there segments and frames are written raw (a valid store: every block says how it is
 * stored), and a compressed block met on a read fails by name (`requireZstd()`).
 */
const ZSTD = zlib as unknown as {
  zstdCompressSync?: (raw: Uint8Array, options: object) => Uint8Array;
  zstdDecompressSync?: (stored: Uint8Array, options: { maxOutputLength: number }) => Uint8Array;
};

/** zstd level 1: about 1.3 GiB/s here (level 3: 0.9), and DuckDB's blocks are compressed already. */
const ZSTD_FAST = { params: { [(zlib.constants as Record<string, number>).ZSTD_c_compressionLevel ?? 100]: 1 } };

/** node:zlib's zstd decompression, or an error naming the runtimes that have it. */
export function requireZstd(): NonNullable<typeof ZSTD.zstdDecompressSync> {
  if (ZSTD.zstdDecompressSync) return ZSTD.zstdDecompressSync;
  throw new Error(`This store holds zstd-compressed blocks and this runtime's node:zlib has no zstd (Node ` +
    `${process.versions.node}): run on Node 22.15 or later, Bun or Deno`);
}
/** A block that zstd shrinks by less than this fraction is stored raw. */
const COMPRESSION_GAIN_MIN = 0.1;
/** After a block that does not compress, this many blocks are stored raw without trying... */
const COMPRESSION_BACKOFF_BLOCKS = 16;
/** ...doubling with each further block that does not, up to this many (random data costs zstd for nothing). */
const COMPRESSION_BACKOFF_BLOCKS_MAX = 512;
/** Bytes sampled (one in this many) to see whether a block is mostly zeros, as DuckDB's metadata is. */
const ZERO_PROBE_STRIDE = 512;
/** A block with at least this fraction of zeros in the sample is tried even while backing off. */
const ZERO_PROBE_MIN = 1 / 8;

/**
 * Whether a strided sample of `raw` is at least `ZERO_PROBE_MIN` zeros: DuckDB's metadata blocks are
 * (100-390 of 512 samples; they shrink 4x) and random or compressed column data is not (8-23), so a
 * metadata block between incompressible data blocks is still compressed. 512 reads a block.
 */
function mostlyZeros(raw: Uint8Array): boolean {
  let zeros = 0;
  for (let i = 0; i < raw.byteLength; i += ZERO_PROBE_STRIDE) if (raw[i] === 0) zeros++;
  return zeros >= (raw.byteLength / ZERO_PROBE_STRIDE) * ZERO_PROBE_MIN;
}

/**
 * zstd per block where it pays: DuckDB compresses its columns itself, and random-looking blocks
 * cost zstd time for nothing. After a block that does not shrink, the next blocks skip zstd for a
 * while (longer after each miss in a row), then it tries again; a block mostly of zeros (DuckDB's
 * metadata) is tried all the same. Returns the compressed bytes, or
 * undefined to store the block raw.
 */
export class AdaptiveCompressor {
  #skip = 0;
  #backoff = COMPRESSION_BACKOFF_BLOCKS;
  constructor(readonly enabled: boolean) {}

  compress(raw: Uint8Array): Uint8Array | undefined {
    if (!this.enabled || !ZSTD.zstdCompressSync) return undefined;
    if (this.#skip > 0) {
      this.#skip--;
      if (!mostlyZeros(raw)) return undefined;
    }
    const stored = ZSTD.zstdCompressSync(raw, ZSTD_FAST);
    if (stored.byteLength <= raw.byteLength * (1 - COMPRESSION_GAIN_MIN)) {
      this.#backoff = COMPRESSION_BACKOFF_BLOCKS;
      return stored;
    }
    this.#skip = this.#backoff;
    this.#backoff = Math.min(this.#backoff * 2, COMPRESSION_BACKOFF_BLOCKS_MAX);
    return undefined;
  }
}

