/**
 * @module
 * The extension's C API (extension/src/c_api.cpp) as every runtime's FFI backend presents it:
 * plain functions over typed arrays, plus the event ring as an ArrayBuffer over the extension's
 * own memory (not a copy), so `Atomics` see what DuckDB's threads write.
 */
export interface ExtensionSymbols {
  ring: ArrayBuffer;
  consumerAttach(): void;
  consumerDetach(): void;
  setHoldMs(ms: bigint): void;
  /** Fills `out` (8 x u64); 1 when the generation is known. */
  generationInfo(seq: bigint, out: BigUint64Array): number;
  generationBlocks(seq: bigint, out: BigUint64Array, capacity: bigint): bigint;
  generationRelease(seq: bigint): number;
  pendingGenerations(out: BigUint64Array, capacity: bigint): bigint;
  filePath(fileId: number, out: Uint8Array, capacity: bigint): bigint;
  holdStats(out: BigUint64Array): void;
  blockChecksumOk(block: Uint8Array, length: bigint): number;
  /** Snapshots (extension/src/snapshot.hpp); paths are NUL-terminated UTF-8. 0, or -(length + 1) of the message in `error`. */
  snapshotOpen(base: Uint8Array, overlay: Uint8Array, error: Uint8Array, capacity: bigint): number;
  snapshotClose(overlay: Uint8Array): number;
  snapshotAllowBase(path: Uint8Array, allow: number): void;
  snapshotBeforeWrite(base: Uint8Array, offset: bigint, length: bigint, error: Uint8Array, capacity: bigint): number;
  /** Fills `out` (6 x u64). */
  snapshotStats(out: BigUint64Array): void;
  lazyOpen(base: Uint8Array, blockAllocSize: bigint, missing: Uint8Array, blocks: bigint, error: Uint8Array,
    capacity: bigint): number;
  lazyWanted(base: Uint8Array, out: BigUint64Array, capacity: bigint): bigint;
  lazyFilled(base: Uint8Array, first: bigint, count: bigint): void;
  lazyFailed(base: Uint8Array, block: bigint, message: Uint8Array): void;
  lazyClose(base: Uint8Array, message: Uint8Array): void;
  /** Benchmarks only: pushes synthetic events (type 0) until `count` or a full ring. */
  debugPushEvents(count: bigint): bigint;
}

/** Opens the already-loaded extension image at `path` (libduckdb.so must be loaded first). */
export type OpenExtension = (path: string, ringBytes: number) => ExtensionSymbols;
