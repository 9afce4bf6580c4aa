/**
 * @module
 * A crash left commits in `<db>.wal` that no frame holds yet (the last ones before it). Reconcile
 * ships them as the next frames of the published generation before DuckDB opens the file and replays
 * them, so the store has every commit the disk had. The WAL must continue the frames already stored
 * byte for byte (else it is left to the checkpoint after DuckDB's replay). Its blocks: every block of
 * the quiescent file whose bytes differ from the manifest's (DuckDB's optimistic writes go to blocks
 * free under the header, which the manifest holds with their old bytes), and every block past the
 * manifest's end: one sequential read of the file, only when a WAL is there.
 */
import type { BlockStore } from "@haduck/s3-block-store";
import { closeSync, fstatSync, openSync, readSync, statSync } from "node:fs";
import { readFileInfo } from "./_block_source.ts";
import { blockOffset } from "./_duckdb_file.ts";
import { hex, type Manifest, sha256 } from "./_format.ts";
import { walkFrames } from "./_frames.ts";
import type { Published } from "./_position.ts";
import type { WalShipper } from "./_wal_shipper.ts";

/** Returns what went wrong (for status), or undefined when there was nothing to ship or it shipped. */
export async function shipLeftoverWal(options: { dbPath: string; store: BlockStore; dbKey: string;
  published: Published; shipper: WalShipper }): Promise<string | undefined> {
  const { dbPath, store, dbKey, published } = options;
  const walPath = `${dbPath}.wal`;
  const wal = statSync(walPath, { throwIfNoEntry: false });
  if (!wal?.size || readFileInfo(dbPath)?.iteration !== published.manifest.generation) return undefined;
  try {
    const fd = openSync(walPath, "r");
    let matches = true;
    let walk;
    try {
      walk = await walkFrames({ store, dbKey, generation: published.manifest.generation,
        manifestSha256: published.sha256, visit: async (frame) => {
          const local = new Uint8Array(frame.wal.byteLength);
          const read = readSync(fd, local, 0, local.byteLength, frame.walOffset);
          matches &&= read === local.byteLength && Buffer.compare(local, frame.wal) === 0;
        } });
    } finally {
      closeSync(fd);
    }
    if (walk.gap || !matches) {
      return `The WAL beside ${dbPath} does not continue the frames in the store (${walk.gap ?? "its bytes differ"}): ` +
        "its commits reach the store with the checkpoint after DuckDB replays it";
    }
    await options.shipper.shipLeftover(published.manifest.generation, walk.last, Buffer.from(published.sha256, "hex"),
      wal.size, Math.floor(wal.mtimeMs), blocksDifferingFrom(dbPath, published.manifest));
    return undefined;
  } catch (error) {
    return `Cannot ship the WAL left beside ${dbPath}: ${(error as Error).message}`;
  }
}

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
