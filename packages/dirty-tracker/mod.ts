/**
 * @module
 * `@haduck/dirty-tracker`: the dirty block bitmap as a pure TypeScript data structure, aligned to
 * DuckDB's block grid (block N at 12288 + N * block_alloc_size). Runtime-neutral.
 *
 * @example
 * ```ts
 * import { DirtyBitmap } from "@haduck/dirty-tracker";
 * const bitmap = new DirtyBitmap();
 * bitmap.markBytes(12288 + 262144 - 10, 20, 262144); // spans blocks 0 and 1
 * console.log(bitmap.drain()); // [0, 1]
 * ```
 */
export { type BlockRun, DirtyBitmap, HEADER_REGION_BYTES } from "./_dirty_bitmap.ts";
