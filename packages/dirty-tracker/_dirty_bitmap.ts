/**
 * @module
 * `DirtyBitmap`: which DuckDB blocks of one file changed, with the same semantics as the
 * extension's C++ bitmap (mark ranges, drain, runs), plus a compact serialization. Runtime-neutral.
 */

/** A run of consecutive dirty blocks `[first, first + count)`. */
export interface BlockRun {
  first: number;
  count: number;
}

const SERIAL_MAGIC = 0x31424448; // "HDB1"

/**
 * A growable bitmap of block ids.
 *
 * @example
 * ```ts
 * import { DirtyBitmap } from "@haduck/dirty-tracker";
 * const bitmap = new DirtyBitmap();
 * bitmap.markRange(3, 5);
 * console.log([...bitmap.runs()]); // [{ first: 3, count: 3 }]
 * ```
 */
export class DirtyBitmap {
  #words: Uint32Array;

  constructor(capacityBlocks = 1024) {
    this.#words = new Uint32Array(Math.max(1, Math.ceil(capacityBlocks / 32)));
  }

  #grow(block: number): void {
    if (block < this.#words.length * 32) return;
    let length = this.#words.length;
    while (length * 32 <= block) length *= 2;
    const words = new Uint32Array(length);
    words.set(this.#words);
    this.#words = words;
  }

  /** Marks blocks `[first, last]`, inclusive. */
  markRange(first: number, last: number): void {
    if (!Number.isSafeInteger(first) || !Number.isSafeInteger(last) || first < 0 || last < first) {
      throw new RangeError(`Invalid block range [${first}, ${last}]: need 0 <= first <= last`);
    }
    this.#grow(last);
    for (let block = first; block <= last; block++) this.#words[block >>> 5] |= 1 << (block & 31);
  }

  mark(block: number): void {
    this.markRange(block, block);
  }

  /** Marks the blocks a byte range of a DuckDB file touches (block N starts at 12288 + N * blockSizeBytes). */
  markBytes(offsetBytes: number, lengthBytes: number, blockSizeBytes: number): void {
    const end = offsetBytes + lengthBytes;
    if (lengthBytes <= 0 || end <= HEADER_REGION_BYTES) return;
    const first = Math.floor((Math.max(offsetBytes, HEADER_REGION_BYTES) - HEADER_REGION_BYTES) / blockSizeBytes);
    this.markRange(first, Math.floor((end - 1 - HEADER_REGION_BYTES) / blockSizeBytes));
  }

  has(block: number): boolean {
    return block >= 0 && block < this.#words.length * 32 && ((this.#words[block >>> 5] >>> (block & 31)) & 1) === 1;
  }

  get count(): number {
    let count = 0;
    for (let word of this.#words) {
      while (word !== 0) {
        word &= word - 1;
        count++;
      }
    }
    return count;
  }

  /** Dirty block ids in ascending order. */
  *blocks(): Generator<number> {
    for (let index = 0; index < this.#words.length; index++) {
      let word = this.#words[index];
      while (word !== 0) {
        const bit = 31 - Math.clz32(word & -word);
        yield index * 32 + bit;
        word &= word - 1;
      }
    }
  }

  /** Consecutive dirty blocks as runs, ascending. */
  *runs(): Generator<BlockRun> {
    let run: BlockRun | undefined;
    for (const block of this.blocks()) {
      if (run && block === run.first + run.count) {
        run.count++;
        continue;
      }
      if (run) yield run;
      run = { first: block, count: 1 };
    }
    if (run) yield run;
  }

  /** Takes every mark (ascending) and leaves the bitmap empty. */
  drain(): number[] {
    const blocks = [...this.blocks()];
    this.#words.fill(0);
    return blocks;
  }

  /** Adds every mark of `other`. */
  union(other: DirtyBitmap | Iterable<number>): void {
    for (const block of other instanceof DirtyBitmap ? other.blocks() : other) this.mark(block);
  }

  /** Serializes as runs: magic u32, run count u32, then (first u32, count u32) pairs, little endian. */
  serialize(): Uint8Array {
    const runs = [...this.runs()];
    const bytes = new Uint8Array(8 + runs.length * 8);
    const view = new DataView(bytes.buffer);
    view.setUint32(0, SERIAL_MAGIC, true);
    view.setUint32(4, runs.length, true);
    runs.forEach((run, i) => {
      view.setUint32(8 + i * 8, run.first, true);
      view.setUint32(12 + i * 8, run.count, true);
    });
    return bytes;
  }

  static deserialize(bytes: Uint8Array): DirtyBitmap {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (bytes.byteLength < 8 || view.getUint32(0, true) !== SERIAL_MAGIC) {
      throw new RangeError("Not a serialized DirtyBitmap: bad magic");
    }
    const runCount = view.getUint32(4, true);
    if (bytes.byteLength !== 8 + runCount * 8) {
      throw new RangeError(`Serialized DirtyBitmap has ${bytes.byteLength} bytes, expected ${8 + runCount * 8}`);
    }
    const bitmap = new DirtyBitmap();
    for (let i = 0; i < runCount; i++) {
      const first = view.getUint32(8 + i * 8, true);
      const count = view.getUint32(12 + i * 8, true);
      if (count === 0) throw new RangeError("Serialized DirtyBitmap has an empty run");
      bitmap.markRange(first, first + count - 1);
    }
    return bitmap;
  }
}

/** DuckDB's header region: main header plus two database headers; block 0 starts here. */
export const HEADER_REGION_BYTES = 12288;
