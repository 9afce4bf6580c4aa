/**
 * @module
 * A crash left commits in `<db>.wal` that no frame holds yet (the last ones before it). Reconcile
 * ships them as the next frames of the published generation before DuckDB opens the file and replays
 * them, so the store has every commit the disk had. The WAL must continue the frames already stored
 * byte for byte (else it is left to the checkpoint after DuckDB's replay). Its blocks: every block of
 * the quiescent file whose bytes differ from the manifest's (DuckDB's optimistic writes go to blocks
 * free under the header, which the manifest holds with their old bytes), and every block past the
 * manifest's end: one sequential read of the file (`leftoverWal`), only when a WAL is there. The same
 * blocks are what the next generation must carry: this process never saw DuckDB write them.
 */
import type { BlockStore } from "@haduck/s3-block-store";
import { closeSync, fstatSync, openSync, readSync, statSync } from "node:fs";
import { readFileInfo } from "../local/_block_source.ts";
import { blockOffset } from "@haduck/duckblock";
import { entryOf, hex, type Manifest, sha256 } from "@haduck/duckblock";
import { walkFrames } from "@haduck/duckblock";
import type { Published } from "./_ledger.ts";
import type { WalShipper } from "../wal/_wal_shipper.ts";

/** A WAL beside the quiescent file at the published generation. */
export interface LeftoverWal {
  sizeBytes: number;
  mtimeMs: number;
  /** The file's blocks whose bytes differ from the manifest's; undefined when the file could not be read. */
  differing: number[] | undefined;
  readError?: string;
}

/** Finds a leftover WAL and the blocks the file holds that `published` does not (undefined: no WAL there). */
export function leftoverWal(dbPath: string, published: Published): LeftoverWal | undefined {
  const wal = statSync(`${dbPath}.wal`, { throwIfNoEntry: false });
  if (!wal?.size || readFileInfo(dbPath)?.generation !== published.manifest.generation) return undefined;
  try {
    return { sizeBytes: wal.size, mtimeMs: wal.mtimeMs, differing: blocksDifferingFrom(dbPath, published.manifest) };
  } catch (error) {
    return { sizeBytes: wal.size, mtimeMs: wal.mtimeMs, differing: undefined, readError: (error as Error).message };
  }
}

/**
 * Walks the stored frames of `published` and compares their WAL bytes with the local WAL: frames may
 * continue only from a chain whose every byte the local WAL still holds (DuckDB cuts a torn last
 * commit at replay, below what a frame may hold). Orphans past a missing frame are removed. Returns
 * the chain's end, or why it cannot go on.
 */
export async function storedFramesMatchWal(options: { dbPath: string; store: BlockStore; dbKey: string;
  published: Published; orphans?: OrphanPolicy }):
  Promise<{ last: Awaited<ReturnType<typeof walkFrames>>["last"] } | { problem: string }> {
  const { dbPath, store, dbKey, published } = options;
  const fd = openSync(`${dbPath}.wal`, "r");
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
  // A newer writer's frames: not ours to continue.
  const newest = walk.epochs.at(-1) ?? 0;
  if (newest > (options.orphans?.epoch ?? 0)) {
    return { problem: `The frames of generation ${published.manifest.generation} were written at lease epoch ` +
      `${newest}, after this writer's: its commits reach the store with the next checkpoint` };
  }
  // Frames past a missing one (a writer killed with frames in flight), or a deposed writer's past a
  // fence, were never acknowledged and can never be read: at a start (nothing of ours in flight),
  // while this writer may write, they go, so that the frames written from here on chain without an
  // orphan after them.
  if (walk.gap && matches && options.orphans && options.orphans.mayWrite()) {
    await store.deleteMany(walk.orphans.map((orphan) => orphan.key));
    return { last: walk.last };
  }
  if (walk.gap || !matches) {
    return { problem: `The WAL beside ${dbPath} does not continue the frames in the store ` +
      `(${walk.gap ?? "its bytes differ"}): its commits reach the store with the next checkpoint` };
  }
  return { last: walk.last };
}

/**
 * Orphans past the end of the stored chain are removed only by a writer that starts (nothing of its
 * own in flight) and holds `epoch` (0 outside a cluster) while `mayWrite` says so.
 */
export interface OrphanPolicy {
  epoch: number;
  mayWrite: () => boolean;
}

/** Returns what went wrong (for status), or undefined when there was nothing to ship or it shipped. */
export async function shipLeftoverWal(options: { dbPath: string; store: BlockStore; dbKey: string;
  published: Published; shipper: WalShipper; leftover: LeftoverWal; orphans?: OrphanPolicy }): Promise<string | undefined> {
  const { dbPath, published, leftover } = options;
  if (!leftover.differing) return `Cannot compare ${dbPath} with the store: ${leftover.readError}`;
  try {
    const walk = await storedFramesMatchWal(options);
    if ("problem" in walk) return walk.problem;
    await options.shipper.shipLeftover(published.manifest.generation, walk.last, Buffer.from(published.sha256, "hex"),
      leftover.sizeBytes, Math.floor(leftover.mtimeMs), leftover.differing);
    return undefined;
  } catch (error) {
    return `Cannot ship the WAL left beside ${dbPath}: ${(error as Error).message}`;
  }
}

const READ_BLOCKS = 16;

export function blocksDifferingFrom(dbPath: string, manifest: Manifest): number[] {
  const blockSize = manifest.database.blockAllocSize;
  const known = new Map(manifest.blocks.map((block) => {
    const { blockId, sha256: digest } = entryOf(block);
    return [blockId, digest];
  }));
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
