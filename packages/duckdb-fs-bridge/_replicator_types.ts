/**
 * @module
 * The `Replicator`'s options, events and status: what callers configure and what status, metrics
 * and the admin endpoint read.
 */
import type { BlockStore } from "@haduck/s3-block-store";
import type { Consumer } from "./_consumer.ts";

/**
 * A writer's right to write, for a cluster (issue 24): the lease epoch it writes under, whether it
 * may still write, and what to do when another writer's object stands where its next one should go.
 * Checked before every manifest, frame and hint PUT; absent, the replicator writes as the only writer.
 */
export interface WriterFence {
  /** The lease epoch: recorded in every manifest (`writerEpoch`) and frame this writer writes. */
  readonly epoch: number;
  /** False once the lease ran out or was lost: nothing more is written (the commits stay local). */
  mayWrite(): boolean;
  /**
   * A signal that aborts when the hold runs out, given to every write: a write started just before
   * (a process paused between the check and the send) is not sent after it.
   */
  signal(): AbortSignal;
  /** A create-only write found another writer's object (a newer epoch fenced us): stop writing at once. */
  fenced(reason: string): void;
}

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
}

export interface FrameShipped {
  generation: number;
  frame: number;
  /** When each commit in it was durable locally (DuckDB's WAL FileSync), Unix ms, oldest first. */
  commitUnixMs: number[];
  /** When the store acknowledged the frame, Unix ms. */
  durableUnixMs: number;
  /** The frame as stored (compressed where that paid), and the WAL and block bytes it carries raw. */
  bytes: number;
  rawBytes: number;
  blocks: number;
}

export interface GenerationShipped {
  generation: number;
  /** When its manifest was written (ISO 8601). */
  time: string;
  blocks: number;
  blocksShipped: number;
  /** Every byte written for it: segments, the block map pages that changed, the manifest. */
  bytesShipped: number;
  durationMs: number;
}

export interface ReplicatorStatus {
  mode: "replicating" | "local-only";
  lastGeneration: number | null;
  lastGenerationTime: string | null;
  generationsCommitted: number;
  generationsAbandoned: number;
  /** Generations released unread because DuckDB waited while we were busy; their blocks rode in the next. */
  generationsDeferred: number;
  generationsPending: number;
  blocksShipped: number;
  bytesShipped: number;
  blocksCarried: number;
  /** Catch-up passes tried since the last committed generation. */
  catchUpAttempts: number;
  /** Failures since start (uploads, reads, catch-ups). */
  errors: number;
  /** How long the oldest checkpoint not yet in the store has waited; 0 when nothing waits. */
  lagMs: number;
  /** The newest committed generations (at most `RECENT_GENERATIONS_MAX`), oldest first. */
  recent: GenerationShipped[];
  lastError: string | null;
  lastErrorTime: string | null;
  /** Age of the oldest locally durable commit that the store does not hold yet (0: none): the RPO now. */
  walLagMs: number;
  /** Commit time of the newest commit held in a WAL frame (ISO 8601), or null. */
  lastDurableCommit: string | null;
  framesShipped: number;
  /** Why WAL frames of the current generation stopped (until the next checkpoint), or null. */
  framesStopped: string | null;
}

/** How many committed generations `status.recent` remembers. */
export const RECENT_GENERATIONS_MAX = 100;

/** A replicator's status before anything happened. */
export function initialStatus(mode: ReplicatorStatus["mode"]): ReplicatorStatus {
  return {
    mode,
    lastGeneration: null,
    lastGenerationTime: null,
    generationsCommitted: 0,
    generationsAbandoned: 0,
    generationsDeferred: 0,
    generationsPending: 0,
    blocksShipped: 0,
    bytesShipped: 0,
    blocksCarried: 0,
    catchUpAttempts: 0,
    errors: 0,
    lagMs: 0,
    recent: [],
    lastError: null,
    lastErrorTime: null,
    walLagMs: 0,
    lastDurableCommit: null,
    framesShipped: 0,
    framesStopped: null,
  };
}
