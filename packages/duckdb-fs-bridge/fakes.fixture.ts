/**
 * For the bridge's unit tests only (not published: `files` takes `_*.ts`): a DuckDB-shaped file the
 * test writes itself, so the loops that read a database file run without DuckDB. A header region
 * whose active header has the generation, block count and block size, then blocks filled with one
 * byte each, and a `.wal` beside it of entries shaped as DuckDB 1.4.4 writes them.
 */
import { appendFileSync, statSync, writeFileSync } from "node:fs";
import type { BlockStore } from "@haduck/s3-block-store";

export const FAKE_BLOCK_BYTES = 16384;

export class FakeDatabase {
  generation = 1;
  fills: number[];

  constructor(readonly path: string, blockCount: number) {
    this.fills = Array.from({ length: blockCount }, (_, block) => block + 1);
    this.#write();
  }

  /** Rewrites `blocks` with new bytes and writes a newer header, as a checkpoint does. */
  checkpoint(blocks: number[]): void {
    this.rewrite(blocks);
    this.generation++;
    this.#write();
  }

  /** Rewrites `blocks` in place under the same header, as a commit's blocks between checkpoints. */
  rewrite(blocks: number[]): void {
    for (const block of blocks) this.fills[block] = (this.fills[block] + 37) % 251;
    if (blocks.length > 0) this.#write();
  }

  /** Appends one WAL entry of `type` (26: an insert; 99: CHECKPOINT; 100: WAL_FLUSH) and returns the WAL's size. */
  logEntry(type = 26): number {
    const payload = [0x64, 0x00, type, 0xff, 0xff];
    const entry = new Uint8Array(16 + payload.length);
    new DataView(entry.buffer).setBigUint64(0, BigInt(payload.length), true);
    entry.set(payload, 16);
    appendFileSync(`${this.path}.wal`, entry);
    return statSync(`${this.path}.wal`).size;
  }

  bytesOf(block: number): Uint8Array {
    return new Uint8Array(FAKE_BLOCK_BYTES).fill(this.fills[block]);
  }

  #write(): void {
    const header = new Uint8Array(12288);
    header.set(new TextEncoder().encode("DUCK"), 8);
    const view = new DataView(header.buffer);
    view.setBigUint64(12, 64n, true); // storage version
    view.setBigUint64(4096 + 8, BigInt(this.generation), true);
    view.setBigUint64(4096 + 32, BigInt(this.fills.length), true);
    view.setBigUint64(4096 + 40, BigInt(FAKE_BLOCK_BYTES), true);
    writeFileSync(this.path, Buffer.concat([header, ...this.fills.map((_, block) => this.bytesOf(block))]));
  }
}

/**
 * A store that asks `before(operation, key)` ahead of every request: the hook may throw (an outage)
 * or wait (a slow PUT). Counts the PUTs.
 */
export function scriptedStore(inner: BlockStore, before: (operation: string, key: string) => void | Promise<void>):
  BlockStore & { puts: number } {
  const state = { puts: 0 };
  return Object.assign(state, {
    url: inner.url,
    put: async (...args: Parameters<BlockStore["put"]>) => {
      await before("put", args[0]);
      state.puts++;
      return await inner.put(...args);
    },
    get: async (...args: Parameters<BlockStore["get"]>) => (await before("get", args[0]), await inner.get(...args)),
    head: async (...args: Parameters<BlockStore["head"]>) => (await before("head", args[0]), await inner.head(...args)),
    list: (...args: Parameters<BlockStore["list"]>) => {
      const listing = inner.list(...args);
      return (async function* () {
        await before("list", args[0]);
        yield* listing;
      })();
    },
    delete: async (...args: Parameters<BlockStore["delete"]>) => (await before("delete", args[0]), await inner.delete(...args)),
    deleteMany: async (...args: Parameters<BlockStore["deleteMany"]>) =>
      (await before("deleteMany", args[0][0] ?? ""), await inner.deleteMany(...args)),
    probeCapabilities: () => inner.probeCapabilities(),
  });
}
