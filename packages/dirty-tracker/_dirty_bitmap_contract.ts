/** The DirtyBitmap tests, registered by Bun (dirty_bitmap.test.ts) and Deno (dirty_bitmap.deno.ts). */
import assert from "node:assert/strict";
import { DirtyBitmap } from "./mod.ts";

export function dirtyBitmapTests(register: (name: string, fn: () => void) => void): void {
  register("DirtyBitmap matches a model set under random range marks, and drain empties it", () => {
    let seed = 7;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    const bitmap = new DirtyBitmap(8);
    const model = new Set<number>();
    for (let i = 0; i < 400; i++) {
      const first = Math.floor(random() * 100_000);
      const last = first + Math.floor(random() * 200);
      bitmap.markRange(first, last);
      for (let b = first; b <= last; b++) model.add(b);
    }
    assert.equal(bitmap.count, model.size);
    assert.deepEqual(bitmap.drain(), [...model].sort((a, b) => a - b));
    assert.equal(bitmap.count, 0);
  });
  register("DirtyBitmap.markBytes() follows DuckDB's grid: a write across a boundary marks both blocks once", () => {
    const bitmap = new DirtyBitmap();
    bitmap.markBytes(0, 12288, 262144); // the header region marks no block
    assert.deepEqual([...bitmap.blocks()], []);
    bitmap.markBytes(12288 + 262144 - 1, 2, 262144);
    bitmap.markBytes(12288, 262144, 262144);
    assert.deepEqual([...bitmap.blocks()], [0, 1]);
  });
  register("DirtyBitmap runs and serialization round-trip", () => {
    const bitmap = new DirtyBitmap();
    bitmap.markRange(5, 9);
    bitmap.mark(11);
    bitmap.markRange(40, 40);
    assert.deepEqual([...bitmap.runs()], [{ first: 5, count: 5 }, { first: 11, count: 1 }, { first: 40, count: 1 }]);
    const copy = DirtyBitmap.deserialize(bitmap.serialize());
    assert.deepEqual([...copy.blocks()], [...bitmap.blocks()]);
    assert.throws(() => DirtyBitmap.deserialize(new Uint8Array(8)), RangeError);
    assert.throws(() => bitmap.markRange(3, 2), RangeError);
  });
}
