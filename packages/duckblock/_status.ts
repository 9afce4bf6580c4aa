/**
 * @module
 * What a replicator reports about itself (`GET /status`, metrics, the dashboard): one record, the
 * same for the writer, a follower and a cluster node. Plain data, no DuckDB: the admin app reads it
 * without depending on the bridge.
 */

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
  /**
   * Attempts given back, not published (an upload failed, the local file raced, or the extension
   * abandoned its hold); their blocks ship later. The field keeps its first name: it is the HTTP
   * status's and the metric's (`haduck_generations_abandoned_total`).
   */
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
