/**
 * @module
 * Builds a generation's manifest from what was just shipped plus what the previous manifest
 * already held: every block in `[0, blockCount)` points at the newest segment that holds it.
 */
import type { DuckDBFileInfo } from "./_duckdb_file.ts";
import type { Manifest, ManifestBlock } from "./_format.ts";
import { entryOf, inSegment } from "./_manifest_entry.ts";

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
