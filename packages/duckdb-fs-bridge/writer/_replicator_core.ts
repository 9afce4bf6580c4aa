/**
 * @module
 * What the parts of one `Replicator` share: the loop (`_replicator.ts`), one pass that ships blocks
 * and publishes them (`_generation_pass.ts`) and reconcile (`_replicator_reconcile.ts`).
 * The replicator owns one `ReplicatorCore` and hands it to the others; nothing else holds one.
 */
import type { ReusableUploads } from "./_segment_uploader.ts";
import type { Ledger } from "./_ledger.ts";
import type { WalShipper } from "../wal/_wal_shipper.ts";
import type { ReplicatorOptions, ReplicatorStatus } from "./_replicator_types.ts";

/** The options with their defaults filled in (the callbacks, the store and the fence stay optional). */
export type ResolvedReplicatorOptions =
  & Required<Omit<ReplicatorOptions, "store" | "onGeneration" | "onUploadProgress" | "onFrame" | "fence">>
  & ReplicatorOptions;

/** The loop's side, for the passes and reconcile: they start, time and reset catch-ups through it. */
export interface ReplicatorLoop {
  /** Generations queued and not yet taken by a pass. */
  queued(): number;
  /** A pass runs now. */
  working(): boolean;
  /** Runs one piece of work at a time (see the replicator's `#run`). */
  run(work: () => Promise<unknown>): void;
  /** Retries the carried blocks later, backing off (nothing while stopped, or catch-ups are off). */
  scheduleCatchUp(): void;
  /** Drops a scheduled catch-up. */
  cancelCatchUp(): void;
  /** A generation published: the next catch-up waits the first delay again. */
  resetCatchUpDelay(): void;
}

export interface ReplicatorCore {
  readonly options: ResolvedReplicatorOptions;
  readonly status: ReplicatorStatus;
  readonly ledger: Ledger;
  /** What passes that did not publish uploaded, reusable until DuckDB writes those blocks again. */
  readonly reusable: ReusableUploads;
  /** WAL frames between checkpoints (undefined: local-only, or walFlushMs 0). */
  readonly wal: WalShipper | undefined;
  /** Aborted when stop()'s deadline passes: every store request in flight ends at once. */
  readonly signal: AbortSignal;
  readonly loop: ReplicatorLoop;
  /** haduck's identity of the database (beside it in `<db>.haduck-identity`), set by reconcile. */
  identity: string | undefined;
  /** When the oldest change not yet committed was announced (performance.now()). */
  waitingSince: number | undefined;
  /** Where generations are staged during the hold; allocated on first use, reused. */
  stagingMemory: Uint8Array | undefined;
  /** reconcile() agreed the local file is this database: only then may stop() ship what the file holds. */
  reconciled: boolean;
  /**
   * reconcile() runs while DuckDB may write (a sidecar started again): a file that keeps changing,
   * or a store that fails, carries every block instead of failing; the generations that follow ship them.
   */
  live: boolean;
  /** The generation whose lost WAL marks a live reconcile rebuilt (a sidecar says so in its `ready`). */
  marksRebuilt: number | undefined;
  /** Counts an error and makes it `status.lastError`. */
  fail(message: string): void;
}
