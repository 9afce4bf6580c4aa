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
  /** Each replica store (`--replica-store`) the writer mirrors to; absent or empty without one. */
  replicaStores?: ReplicaStoreStatus[];
}

/** How far one replica store (`--replica-store`) is behind the primary, and why. */
export interface ReplicaStoreStatus {
  /** The replica's URL, without secrets. */
  url: string;
  /**
   * `caught-up`: it holds everything the primary accepted; `copying`: a backlog is draining;
   * `reconciling`: a listing pass copies what it lacks (at start, after a dropped backlog);
   * `failing`: its last request failed and is being retried (`lastError`).
   */
  state: "caught-up" | "copying" | "reconciling" | "failing";
  /** Objects the primary holds and this store does not yet (puts and deletes owed). */
  objectsBehind: number;
  bytesBehind: number;
  /** How long the oldest object it does not hold yet has waited (0: caught up). */
  lagMs: number;
  objectsCopied: number;
  bytesCopied: number;
  /** Failed requests to it (each retried) since start. */
  errors: number;
  /** Times its backlog outgrew the queue's bound and was left to a reconcile pass. */
  backlogsDropped: number;
  lastError: string | null;
  lastErrorTime: string | null;
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
