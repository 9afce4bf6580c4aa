/**
 * @module
 * The `Replicator`'s options, events and status: what callers configure and what status, metrics
 * and the admin endpoint read.
 */
import type { BlockStore } from "@haduck/s3-block-store";
import type { Consumer } from "../native/_consumer.ts";
import type { GenerationShipped } from "@haduck/duckblock";
import type { FrameShipped, WriterFence } from "../wal/_wal_types.ts";

// What the WAL room defines (the writer's fence, a shipped frame), named here too for the writer's callers.
export type { FrameShipped, WriterFence } from "../wal/_wal_types.ts";

export interface ReplicatorOptions {
  /** The cluster's lease over this writer; see `WriterFence`. */
  fence?: WriterFence;
  /** The extension's generations: in this process (`Native`, over FFI), or a host's over a socket (sidecar). */
  native: Consumer;
  /** Local path of the database file (what follows `haduck://`). */
  dbPath: string;
  /** Undefined: local-only mode (tracking, no uploads). */
  store?: BlockStore;
  dbKey: string;
  /** Raw bytes per segment at most. Default 4 MiB: with `uploadsInFlightMax` it bounds the bytes in flight. */
  segmentBytesMax?: number;
  /** Segment uploads in flight at most. Default 4. */
  uploadsInFlightMax?: number;
  /** How long the extension holds DuckDB's next header write for us. Default 10000 ms. */
  holdMs?: number;
  /** Ring poll interval. Default 20 ms. */
  tickMs?: number;
  /** zstd per block where the runtime has it. Default true. */
  compress?: boolean;
  /**
   * After a failed upload, the first retry of the carried blocks without waiting for another
   * checkpoint comes after this long; each failure doubles it up to `catchUpDelayMaxMs`.
   * Default 1000 ms; 0 turns the catch-up off (carried blocks then wait for the next checkpoint).
   */
  catchUpDelayMs?: number;
  /** Default 30000 ms. */
  catchUpDelayMaxMs?: number;
  /**
   * Bytes of a generation copied into memory while the hold protects them; the rest of a larger
   * generation is copied to a spool file beside the database (unlinked at once). Default 8 MiB,
   * allocated on the first generation and reused.
   */
  stagingMemoryBytesMax?: number;
  /**
   * WAL frames (continuous replication between checkpoints): at most one PUT per this many ms while
   * commits happen, none while idle; a `flushWal()` ships at once. Default 250 ms (p99 RPO well under
   * 1 s on a store that answers a PUT in under 500 ms). 0 turns frames off: commits reach the store at
   * checkpoints only.
   */
  walFlushMs?: number;
  /**
   * WAL frames in flight at most (pipelined: each chained to the one before while that one's PUT is
   * out; commits become durable in order). Default 4; 1 ships one frame at a time.
   */
  walFramesInFlight?: number;
  onGeneration?: (event: GenerationShipped) => void;
  /** A WAL frame holding commits is in the store (frames of blocks only are not reported). */
  onFrame?: (event: FrameShipped) => void;
  /** Progress of a generation's upload (for a progress bar on large ones). */
  onUploadProgress?: (event: UploadProgress) => void;
}

export interface UploadProgress {
  generation: number;
  blocksDone: number;
  blocksTotal: number;
  bytesSent: number;
  /**
   * Time since the pass began reading (ms): the rate is `bytesSent` over this. The first report
   * comes only when a whole segment is durable, so a rate timed from that report is meaningless.
   */
  elapsedMs: number;
}

// The status a replicator reports is the store's vocabulary too (the admin app shows it without
// depending on DuckDB): it lives in duckblock.
export { type GenerationShipped, initialStatus, RECENT_GENERATIONS_MAX, type ReplicatorStatus } from "@haduck/duckblock";
