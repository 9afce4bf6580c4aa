/**
 * @module
 * The words the WAL room shares with the writer above it: the fence every write (frame, manifest,
 * hint) passes, what a shipped frame reports, the shipper's options and status, and an announcement
 * of a WAL sync.
 */
import type { BlockStore } from "@haduck/s3-block-store";

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

/** One announcement of the extension: the WAL synced to `size` under header `generation`, and the blocks written since the last. */
export interface WalSync {
  generation: number;
  size: number;
  unixMs: number;
  /** Block marks of this generation went to a consumer that is gone: no frames until the next header. */
  lost: boolean;
  /**
   * The WAL was there when DuckDB opened it (a restart): its commits reference blocks written before
   * anyone tracked them. Frames go on only if reconcile rebuilt those marks (`marksRebuilt`).
   */
  leftover?: boolean;
  blocks: number[];
}

export interface WalShipperOptions {
  store: BlockStore;
  dbKey: string;
  dbPath: string;
  /** At most one frame per this many ms while commits happen (a `flush()` ships at once). */
  walFlushMs: number;
  /** Frames in flight at most (default 4, the shipper's PIPELINE_FRAMES). */
  framesInFlight?: number;
  blockChecksumOk: (block: Uint8Array) => boolean;
  signal: AbortSignal;
  onError: (message: string) => void;
  onFrame?: (event: FrameShipped) => void;
  /** The cluster's lease: frames carry its epoch, nothing is written without it, another epoch's frame fences us. */
  fence?: WriterFence;
}

export interface WalStatus {
  /** Age of the oldest locally durable commit the store does not hold yet (0: none). */
  walLagMs: number;
  /** Commit time of the newest commit the store holds in a frame (ISO-8601), or null. */
  lastDurableCommit: string | null;
  framesShipped: number;
  /** Why frames of the current generation stopped (until the next generation), or null. */
  framesStopped: string | null;
}
