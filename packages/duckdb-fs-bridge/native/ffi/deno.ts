/**
 * @module
 * The extension's C API over Deno.dlopen (run with --allow-ffi). The ring is an ArrayBuffer over
 * the extension's memory from `Deno.UnsafePointerView`, shared with DuckDB like under Bun.
 */
import type { ExtensionSymbols, OpenExtension } from "./_symbols.ts";

// Deno's global is typed only when checked by Deno; this file runs only there.
// deno-lint-ignore no-explicit-any
const D = (globalThis as any).Deno;

const SYMBOLS = {
  haduck_ring_address: { parameters: [], result: "u64" },
  haduck_consumer_attach: { parameters: [], result: "void" },
  haduck_consumer_detach: { parameters: [], result: "void" },
  haduck_set_hold_ms: { parameters: ["u64"], result: "void" },
  haduck_generation_info: { parameters: ["u64", "buffer"], result: "i32" },
  haduck_generation_blocks: { parameters: ["u64", "buffer", "u64"], result: "u64" },
  haduck_generation_release: { parameters: ["u64"], result: "i32" },
  haduck_pending_generations: { parameters: ["buffer", "u64"], result: "u64" },
  haduck_file_path: { parameters: ["u32", "buffer", "u64"], result: "u64" },
  haduck_hold_stats: { parameters: ["buffer"], result: "void" },
  haduck_block_checksum_ok: { parameters: ["buffer", "u64"], result: "i32" },
  haduck_debug_push_events: { parameters: ["u64"], result: "u64" },
  haduck_snapshot_open: { parameters: ["buffer", "buffer", "buffer", "u64"], result: "i32" },
  haduck_snapshot_close: { parameters: ["buffer"], result: "i32" },
  haduck_snapshot_allow_base: { parameters: ["buffer", "i32"], result: "void" },
  haduck_snapshot_before_write: { parameters: ["buffer", "u64", "u64", "buffer", "u64"], result: "i32" },
  haduck_snapshot_stats: { parameters: ["buffer"], result: "void" },
  haduck_lazy_open: { parameters: ["buffer", "u64", "buffer", "u64", "buffer", "u64"], result: "i32" },
  haduck_lazy_wanted: { parameters: ["buffer", "buffer", "u64"], result: "u64" },
  haduck_lazy_filled: { parameters: ["buffer", "u64", "u64"], result: "void" },
  haduck_lazy_failed: { parameters: ["buffer", "u64", "buffer"], result: "void" },
  haduck_lazy_close: { parameters: ["buffer", "buffer"], result: "void" },
} as const;

export const openExtension: OpenExtension = (path, ringBytes): ExtensionSymbols => {
  const s = D.dlopen(path, SYMBOLS).symbols;
  const address = BigInt(s.haduck_ring_address());
  return {
    ring: new D.UnsafePointerView(D.UnsafePointer.create(address)).getArrayBuffer(ringBytes),
    consumerAttach: () => s.haduck_consumer_attach(),
    consumerDetach: () => s.haduck_consumer_detach(),
    setHoldMs: (ms) => s.haduck_set_hold_ms(ms),
    generationInfo: (seq, out) => s.haduck_generation_info(seq, out),
    generationBlocks: (seq, out, capacity) => BigInt(s.haduck_generation_blocks(seq, out, capacity)),
    generationRelease: (seq) => s.haduck_generation_release(seq),
    pendingGenerations: (out, capacity) => BigInt(s.haduck_pending_generations(out, capacity)),
    filePath: (fileId, out, capacity) => BigInt(s.haduck_file_path(fileId, out, capacity)),
    holdStats: (out) => s.haduck_hold_stats(out),
    blockChecksumOk: (block, length) => s.haduck_block_checksum_ok(block, length),
    debugPushEvents: (count) => BigInt(s.haduck_debug_push_events(count)),
    snapshotOpen: (base, overlay, error, capacity) => s.haduck_snapshot_open(base, overlay, error, capacity),
    snapshotClose: (overlay) => s.haduck_snapshot_close(overlay),
    snapshotAllowBase: (path, allow) => s.haduck_snapshot_allow_base(path, allow),
    snapshotBeforeWrite: (base, offset, length, error, capacity) =>
      s.haduck_snapshot_before_write(base, offset, length, error, capacity),
    snapshotStats: (out) => s.haduck_snapshot_stats(out),
    lazyOpen: (base, size, missing, blocks, error, capacity) =>
      s.haduck_lazy_open(base, size, missing, blocks, error, capacity),
    lazyWanted: (base, out, capacity) => BigInt(s.haduck_lazy_wanted(base, out, capacity)),
    lazyFilled: (base, first, count) => s.haduck_lazy_filled(base, first, count),
    lazyFailed: (base, block, message) => s.haduck_lazy_failed(base, block, message),
    lazyClose: (base, message) => s.haduck_lazy_close(base, message),
  };
};
