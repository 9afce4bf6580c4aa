/**
 * @module
 * The blocks of a quiescent database file that a crash-left WAL may reference: every block whose
 * bytes differ from the published manifest's (DuckDB's optimistic writes go to blocks free under the
 * header, which the manifest holds with their old bytes), and every block past the manifest's end.
 * One sequential read of the file; only run when a WAL is left beside it.
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { blockOffset } from "./_duckdb_file.ts";
import { hex, type Manifest, sha256 } from "./_format.ts";

const READ_BLOCKS = 16;

export function blocksDifferingFrom(dbPath: string, manifest: Manifest): number[] {
  const blockSize = manifest.database.blockAllocSize;
  const known = new Map(manifest.blocks.map((block) => [block[0], block[7]]));
  const fd = openSync(dbPath, "r");
  try {
    const blocks = Math.floor((fstatSync(fd).size - blockOffset(0, blockSize)) / blockSize);
    const differing: number[] = [];
    const buffer = new Uint8Array(READ_BLOCKS * blockSize);
    for (let first = 0; first < blocks; first += READ_BLOCKS) {
      const count = Math.min(READ_BLOCKS, blocks - first);
      const bytes = buffer.subarray(0, count * blockSize);
      for (let done = 0; done < bytes.byteLength;) {
        const read = readSync(fd, bytes, done, bytes.byteLength - done, blockOffset(first, blockSize) + done);
        if (read === 0) break;
        done += read;
      }
      for (let i = 0; i < count; i++) {
        const block = first + i;
        const digest = known.get(block);
        if (digest === undefined || hex(sha256(bytes.subarray(i * blockSize, (i + 1) * blockSize))) !== digest) {
          differing.push(block);
        }
      }
    }
    return differing;
  } finally {
    closeSync(fd);
  }
}
