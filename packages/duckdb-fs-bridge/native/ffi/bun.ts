/**
 * @module
 * The extension's C API over bun:ffi. `dlopen` of the file DuckDB already loaded returns the same
 * image, so the ring and every global are shared with DuckDB.
 */
import { createRequire } from "node:module";
import type * as BunFfi from "bun:ffi";
import type { ExtensionSymbols, OpenExtension } from "./_symbols.ts";

// Required, not imported: the JavaScript build of this package (dist/mod.js, for Node and Deno) holds
// this file too, and a static import of "bun:ffi" would fail to load there before any check could run.
const { dlopen, FFIType, ptr, toArrayBuffer } = createRequire(import.meta.url)("bun:ffi") as typeof BunFfi;

const SYMBOLS = {
  haduck_ring_address: { args: [], returns: FFIType.u64 },
  haduck_consumer_attach: { args: [], returns: FFIType.void },
  haduck_consumer_detach: { args: [], returns: FFIType.void },
  haduck_set_hold_ms: { args: [FFIType.u64], returns: FFIType.void },
  haduck_generation_info: { args: [FFIType.u64, FFIType.ptr], returns: FFIType.i32 },
  haduck_generation_blocks: { args: [FFIType.u64, FFIType.ptr, FFIType.u64], returns: FFIType.u64 },
  haduck_generation_release: { args: [FFIType.u64], returns: FFIType.i32 },
  haduck_pending_generations: { args: [FFIType.ptr, FFIType.u64], returns: FFIType.u64 },
  haduck_file_path: { args: [FFIType.u32, FFIType.ptr, FFIType.u64], returns: FFIType.u64 },
  haduck_hold_stats: { args: [FFIType.ptr], returns: FFIType.void },
  haduck_block_checksum_ok: { args: [FFIType.ptr, FFIType.u64], returns: FFIType.i32 },
  haduck_debug_push_events: { args: [FFIType.u64], returns: FFIType.u64 },
  haduck_snapshot_open: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.u64], returns: FFIType.i32 },
  haduck_snapshot_close: { args: [FFIType.ptr], returns: FFIType.i32 },
  haduck_snapshot_allow_base: { args: [FFIType.ptr, FFIType.i32], returns: FFIType.void },
  haduck_snapshot_before_write: { args: [FFIType.ptr, FFIType.u64, FFIType.u64, FFIType.ptr, FFIType.u64],
    returns: FFIType.i32 },
  haduck_snapshot_stats: { args: [FFIType.ptr], returns: FFIType.void },
  haduck_lazy_open: { args: [FFIType.ptr, FFIType.u64, FFIType.ptr, FFIType.u64, FFIType.ptr, FFIType.u64],
    returns: FFIType.i32 },
  haduck_lazy_wanted: { args: [FFIType.ptr, FFIType.ptr, FFIType.u64], returns: FFIType.u64 },
  haduck_lazy_filled: { args: [FFIType.ptr, FFIType.u64, FFIType.u64], returns: FFIType.void },
  haduck_lazy_failed: { args: [FFIType.ptr, FFIType.u64, FFIType.ptr], returns: FFIType.void },
  haduck_lazy_close: { args: [FFIType.ptr, FFIType.ptr], returns: FFIType.void },
} as const;

export const openExtension: OpenExtension = (path, ringBytes): ExtensionSymbols => {
  const s = dlopen(path, SYMBOLS).symbols;
  return {
    ring: toArrayBuffer(Number(s.haduck_ring_address()), 0, ringBytes),
    consumerAttach: () => s.haduck_consumer_attach(),
    consumerDetach: () => s.haduck_consumer_detach(),
    setHoldMs: (ms) => s.haduck_set_hold_ms(ms),
    generationInfo: (seq, out) => s.haduck_generation_info(seq, ptr(out)),
    generationBlocks: (seq, out, capacity) => BigInt(s.haduck_generation_blocks(seq, ptr(out), capacity)),
    generationRelease: (seq) => s.haduck_generation_release(seq),
    pendingGenerations: (out, capacity) => BigInt(s.haduck_pending_generations(ptr(out), capacity)),
    filePath: (fileId, out, capacity) => BigInt(s.haduck_file_path(fileId, ptr(out), capacity)),
    holdStats: (out) => s.haduck_hold_stats(ptr(out)),
    blockChecksumOk: (block, length) => s.haduck_block_checksum_ok(ptr(block), length),
    debugPushEvents: (count) => BigInt(s.haduck_debug_push_events(count)),
    snapshotOpen: (base, overlay, error, capacity) => s.haduck_snapshot_open(ptr(base), ptr(overlay), ptr(error), capacity),
    snapshotClose: (overlay) => s.haduck_snapshot_close(ptr(overlay)),
    snapshotAllowBase: (path, allow) => s.haduck_snapshot_allow_base(ptr(path), allow),
    snapshotBeforeWrite: (base, offset, length, error, capacity) =>
      s.haduck_snapshot_before_write(ptr(base), offset, length, ptr(error), capacity),
    snapshotStats: (out) => s.haduck_snapshot_stats(ptr(out)),
    lazyOpen: (base, size, missing, blocks, error, capacity) =>
      s.haduck_lazy_open(ptr(base), size, ptr(missing), blocks, ptr(error), capacity),
    lazyWanted: (base, out, capacity) => BigInt(s.haduck_lazy_wanted(ptr(base), ptr(out), capacity)),
    lazyFilled: (base, first, count) => s.haduck_lazy_filled(ptr(base), first, count),
    lazyFailed: (base, block, message) => s.haduck_lazy_failed(ptr(base), block, ptr(message)),
    lazyClose: (base, message) => s.haduck_lazy_close(ptr(base), ptr(message)),
  };
};
