/**
 * @module
 * DuckDB's single-file layout, read from the bytes: the main header (magic, storage version,
 * library version, db_identifier) and the two database headers (iteration, block count, block size).
 */
export const HEADER_REGION_BYTES = 12288;
const FILE_HEADER_BYTES = 4096;

export interface DuckDBFileInfo {
  storageVersion: number;
  libraryVersion: string;
  dbIdentifier: string;
  /**
   * The active database header's `iteration`, DuckDB's counter of checkpoints: haduck's generation
   * number. Here, and nowhere above this parser, it has DuckDB's name.
   */
  generation: number;
  blockCount: number;
  blockAllocSize: number;
  /** The size the file needs: header region plus every block the active header counts. */
  fileSizeBytes: number;
}

function cString(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return new TextDecoder().decode(end >= 0 ? bytes.subarray(0, end) : bytes);
}

/** Parses the header region; throws RangeError if it is not a DuckDB database. */
export function parseHeaderRegion(region: Uint8Array): DuckDBFileInfo {
  if (region.byteLength < HEADER_REGION_BYTES || new TextDecoder().decode(region.subarray(8, 12)) !== "DUCK") {
    throw new RangeError("not a DuckDB database file (no DUCK magic in the main header)");
  }
  const view = new DataView(region.buffer, region.byteOffset, region.byteLength);
  const header = (at: number) => ({
    generation: Number(view.getBigUint64(at + 8, true)), // DuckDB's DatabaseHeader::iteration
    blockCount: Number(view.getBigUint64(at + 32, true)),
    blockAllocSize: Number(view.getBigUint64(at + 40, true)),
  });
  const h1 = header(FILE_HEADER_BYTES);
  const h2 = header(2 * FILE_HEADER_BYTES);
  const active = h1.generation > h2.generation ? h1 : h2;
  return {
    storageVersion: Number(view.getBigUint64(12, true)),
    libraryVersion: cString(region.subarray(52, 84)),
    dbIdentifier: Buffer.from(region.subarray(124, 140)).toString("hex"),
    ...active,
    fileSizeBytes: HEADER_REGION_BYTES + active.blockCount * active.blockAllocSize,
  };
}

export const blockOffset = (blockId: number, blockAllocSize: number) => HEADER_REGION_BYTES + blockId * blockAllocSize;
