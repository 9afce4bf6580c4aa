/**
 * @module
 * A manifest's block entry by name (`ManifestEntry`), and the one codec between it and the stored
 * form, the 8-element array `ManifestBlock` of docs/FORMAT.md (manifests version 1, block map pages,
 * a version 2 manifest's header). The stored form is what manifests hold and write, unchanged; code
 * that reads an entry reads it through `entryOf`, and an entry moved to another segment list (a
 * page's, an inherited one's) is rebuilt by `inSegment`. Only this module and the validators of the
 * stored form read an entry by position. Below the codec, `buildManifest`: a generation's manifest
 * from what was just shipped plus what the previous manifest already held (every block in
 * `[0, blockCount)` points at the newest segment that holds it).
 *
 * @example
 * ```ts
 * import { entryOf, inSegment, type ManifestBlock } from "@haduck/duckblock";
 * const stored: ManifestBlock = [3, 0, 4096, 16384, 16384, 0, 1, "ab".repeat(32)];
 * console.log(entryOf(stored).blockId, entryOf(inSegment(stored, 2)).segmentIndex); // 3 2
 * ```
 */
import type { DuckDBFileInfo } from "./_duckdb_file.ts";
import type { Manifest, ManifestBlock } from "./_format.ts";

/** One block of the database as of a generation: which segment holds it and how to check it. */
export interface ManifestEntry {
  /** The DuckDB block id; -1 for the header region [0, 12288). */
  blockId: number;
  /** Index into the segment list of the manifest (or page) that holds the entry. */
  segmentIndex: number;
  /** Where the block's stored bytes start in that segment. */
  offsetBytes: number;
  storedBytes: number;
  rawBytes: number;
  /** `COMPRESSION_NONE` or `COMPRESSION_ZSTD`. */
  compression: number;
  /** 1 when DuckDB's own block checksum held when the block was read. */
  duckdbChecksumValid: 0 | 1;
  /** SHA-256 of the raw bytes, lowercase hex. */
  sha256: string;
}

/** The entry a stored block names. */
export function entryOf(block: ManifestBlock): ManifestEntry {
  const [blockId, segmentIndex, offsetBytes, storedBytes, rawBytes, compression, duckdbChecksumValid, sha256] = block;
  return { blockId, segmentIndex, offsetBytes, storedBytes, rawBytes, compression, duckdbChecksumValid, sha256 };
}

/** The stored form of an entry, in the order docs/FORMAT.md gives. */
export function blockOf(entry: ManifestEntry): ManifestBlock {
  return [entry.blockId, entry.segmentIndex, entry.offsetBytes, entry.storedBytes, entry.rawBytes, entry.compression,
    entry.duckdbChecksumValid, entry.sha256];
}

/**
 * The same stored block in another segment list (`segmentIndex`), under `blockId` (default: its
 * own). Everything after the segment index is kept as stored, so a stored entry of the wrong length
 * stays wrong for the validator to refuse.
 */
export function inSegment(block: ManifestBlock, segmentIndex: number, blockId: number = block[0]): ManifestBlock {
  return [blockId, segmentIndex, ...block.slice(2)] as ManifestBlock;
}

// Building a generation's manifest.

export type SegmentRef = Manifest["segments"][number];

/** What one read-and-upload pass produced; segment indexes in `shipped` and `header` refer to `segments`. */
export interface Shipment {
  fileInfo: DuckDBFileInfo;
  segments: SegmentRef[];
  shipped: Map<number, ManifestBlock>;
  header: ManifestBlock;
}

export function buildManifest(options: {
  dbKey: string;
  generation: number;
  shipment: Shipment;
  previous?: { manifest: Manifest; sha256: string };
  blocksConsidered: number;
  /** The database's haduck identity (see _identity.ts); recorded so a stranger is never appended. */
  haduckIdentity?: string;
  /** When DuckDB committed the header (Unix ms), when known. */
  checkpointedUnixMs?: number;
  /** The lease epoch of the writer (0 outside a cluster). */
  writerEpoch?: number;
}): Manifest {
  const { fileInfo, segments: newSegments, shipped, header } = options.shipment;
  const previous = options.previous?.manifest;
  const previousBlocks = new Map((previous?.blocks ?? []).map((block) => [entryOf(block).blockId, block]));
  // Inherited blocks keep pointing at their old segments; segment indexes are renumbered.
  const segments: SegmentRef[] = [];
  const indexOf = new Map<string, number>();
  const segmentIndex = (segment: SegmentRef) => {
    let index = indexOf.get(segment.key);
    if (index === undefined) {
      index = segments.length;
      segments.push(segment);
      indexOf.set(segment.key, index);
    }
    return index;
  };
  const entry = (block: ManifestBlock, blockId: number, from: SegmentRef[]) =>
    inSegment(block, segmentIndex(from[entryOf(block).segmentIndex]), blockId);
  const blocks: ManifestBlock[] = [];
  for (let blockId = 0; blockId < fileInfo.blockCount; blockId++) {
    const fresh = shipped.get(blockId);
    const old = previousBlocks.get(blockId);
    if (fresh) blocks.push(entry(fresh, blockId, newSegments));
    else if (old) blocks.push(entry(old, blockId, previous!.segments));
  }
  return {
    format: "haduck-manifest",
    version: 2,
    dbKey: options.dbKey,
    generation: options.generation,
    previousGeneration: previous?.generation ?? null,
    previousManifestSha256: options.previous?.sha256 ?? null,
    writerEpoch: options.writerEpoch ?? 0,
    createdAt: new Date().toISOString(),
    ...(options.checkpointedUnixMs ? { checkpointedAt: new Date(options.checkpointedUnixMs).toISOString() } : {}),
    database: {
      dbIdentifier: fileInfo.dbIdentifier,
      blockAllocSize: fileInfo.blockAllocSize,
      storageVersion: fileInfo.storageVersion,
      libraryVersion: fileInfo.libraryVersion,
      ...(options.haduckIdentity ? { haduckIdentity: options.haduckIdentity } : {}),
    },
    fileSizeBytes: fileInfo.fileSizeBytes,
    blockCount: fileInfo.blockCount,
    // A fork's later generations name its source's segments and pages as long as they inherit them.
    ...(previous?.sources ? { sources: previous.sources } : {}),
    segments,
    header: entry(header, -1, newSegments),
    blocks,
    stats: {
      blocksShipped: shipped.size,
      bytesShipped: newSegments.reduce((sum, segment) => sum + segment.sizeBytes, 0),
      blocksSkippedUnchanged: options.blocksConsidered - shipped.size,
    },
  };
}
