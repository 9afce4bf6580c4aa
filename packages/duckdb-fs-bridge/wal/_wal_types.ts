/**
 * @module
 * The words the WAL room shares with the writer above it: the fence every write (frame, manifest,
 * hint) passes, and what a shipped frame reports.
 */

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
