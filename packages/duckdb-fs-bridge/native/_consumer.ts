/**
 * @module
 * `Consumer`: what the replicator needs of the extension, wherever the extension runs. `Native`
 * reaches it in this process over FFI; `PipeConsumer` reaches a DuckDB host's extension over a
 * socket, for the sidecar (extension/src/sidecar.hpp). Only `release` may have to wait for an answer.
 */
import type { RingEvent } from "./_ring_layout.ts";

export interface GenerationInfo {
  seq: bigint;
  fileId: number;
  generation: number;
  blockCount: number;
  headerBlockCount: number;
  blockAllocSize: number;
  createdUnixMs: number;
  needsFullScan: boolean;
}

export interface Consumer {
  /** Become the consumer: from now on DuckDB's next header write waits (at most `holdMs`) for our release. */
  attach(holdMs: number): void;
  detach(): void;
  /** Events since the last call, oldest first (GENERATION_READY, HOLD_WAITING, ...). */
  drain(): RingEvent[];
  /** Whether events were lost since the last call (then `pendingGenerations` lists what is still pending). */
  takeOverflow(): boolean;
  pendingGenerations(): bigint[];
  generationInfo(seq: bigint): GenerationInfo | undefined;
  generationBlocks(seq: bigint, count: number): number[];
  /** 1: the hold protected every read of `seq` (publishable); 0: abandoned (carry); -1: unknown. */
  release(seq: bigint): number | Promise<number>;
  filePath(fileId: number): string | undefined;
  /** DuckDB's own 8-byte block checksum holds. */
  blockChecksumOk(block: Uint8Array): boolean;
}
