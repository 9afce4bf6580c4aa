/**
 * @module
 * A manifest's block entry by name (`ManifestEntry`), and the one codec between it and the stored
 * form, the 8-element array `ManifestBlock` of docs/FORMAT.md (manifests version 1, block map pages,
 * a version 2 manifest's header). The stored form is what manifests hold and write, unchanged; code
 * that reads an entry reads it through `entryOf`, and an entry moved to another segment list (a
 * page's, an inherited one's) is rebuilt by `inSegment`. Only this module and the validators of the
 * stored form read an entry by position.
 *
 * @example
 * ```ts
 * import { entryOf, inSegment, type ManifestBlock } from "@haduck/duckblock";
 * const stored: ManifestBlock = [3, 0, 4096, 16384, 16384, 0, 1, "ab".repeat(32)];
 * console.log(entryOf(stored).blockId, entryOf(inSegment(stored, 2)).segmentIndex); // 3 2
 * ```
 */
import type { ManifestBlock } from "./_format.ts";

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
