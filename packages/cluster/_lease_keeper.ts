/**
 * @module
 * The leader's side of the lease: renews it every TTL/3 while the node leads (a renew that finds
 * another epoch, or a lease validity that ran out, deposes the node at once), and confirms it for a
 * linearizable read (one renew in flight answers every read that arrived before it started).
 */
import { LeaseLostError } from "@haduck/lease";
import type { LeaseLike } from "./_group.ts";

export interface LeaseKeeperOptions {
  /** The node's lease (made at its start, so read each time). */
  lease: () => LeaseLike;
  /** The lease's time to live: renews come TTL/3 after the start of the last successful one. */
  ttlMs: number;
  /** After a failed renew, the next comes this much later (while the lease is still valid). */
  retryMs: number;
  /** Why the node may not write any more, if it learned so. */
  deposed: () => string | undefined;
  /** The node learned it may not write any more (the first reason stays). */
  depose: (reason: string) => void;
  /** The renew loop ended: the node's loop looks at its role now. */
  ended: () => void;
}

export class LeaseKeeper {
  readonly #options: LeaseKeeperOptions;
  #renewing: Promise<void> | undefined;
  /** Set to end the renew loop; its sleep's wake-up. */
  #renewStop = false;
  #renewWake: (() => void) | undefined;
  /** The lease renew that confirms linearizable reads, and when it started (see `confirm`). */
  #confirming: { startedAt: number; promise: Promise<void> } | undefined;

  constructor(options: LeaseKeeperOptions) {
    this.#options = options;
  }

  /** Starts the renew loop unless it runs. */
  start(): void {
    this.#renewing ??= this.#renew();
  }

  /** Ends the renew loop (it may be sleeping) and waits for a renew in flight. */
  async stop(): Promise<void> {
    this.#renewStop = true;
    this.#renewWake?.();
    await this.#renewing;
    this.#renewStop = false;
  }

  /**
   * Confirms this node still leads *now*: a lease renew that started after `arrivedAt` lands. One
   * renew in flight confirms every request that arrived before it started, so a crowd of
   * linearizable reads costs a renew per round trip, not one each.
   */
  confirm(arrivedAt: number): Promise<void> {
    const current = this.#confirming;
    if (current && current.startedAt >= arrivedAt) return current.promise;
    const entry: { startedAt: number; promise: Promise<void> } = { startedAt: Infinity, promise: Promise.resolve() };
    const next: Promise<void> = (current?.promise.catch(() => {}) ?? Promise.resolve()).then(() => {
      if (this.#confirming && this.#confirming !== entry && this.#confirming.startedAt >= arrivedAt) {
        return this.#confirming.promise;
      }
      entry.startedAt = performance.now();
      const lease = this.#options.lease();
      return lease.renew({ signal: AbortSignal.timeout(Math.max(50, lease.validUntil - performance.now())) });
    });
    entry.promise = next;
    this.#confirming = entry;
    void next.finally(() => {
      if (this.#confirming === entry) this.#confirming = undefined;
    }).catch(() => {});
    return next;
  }

  /**
   * Renews TTL/3 after the start of the last successful renew while this node holds the lease; a
   * failed renew is tried again soon, each attempt bounded by what is left of the lease validity. A renew that
   * finds another epoch deposes this node at once.
   */
  async #renew(): Promise<void> {
    const { deposed, depose } = this.#options;
    const lease = this.#options.lease;
    const every = Math.floor(this.#options.ttlMs / 3);
    let next = performance.now() + every;
    try {
      while (lease().epoch !== undefined && !deposed() && !this.#renewStop) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.max(0, next - performance.now()));
          this.#renewWake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        if (lease().epoch === undefined || deposed() || this.#renewStop) break;
        const started = performance.now();
        try {
          await lease().renew({ signal: AbortSignal.timeout(Math.max(50, lease().validUntil - started)) });
          next = started + every;
        } catch (error) {
          if (error instanceof LeaseLostError) {
            depose(error.message);
            break;
          }
          if (!lease().valid) {
            depose(`its lease ran out: the store did not take a renew (${(error as Error).message})`);
            break;
          }
          next = performance.now() + this.#options.retryMs; // try again soon: the lease is still valid for a while
        }
      }
    } finally {
      this.#renewing = undefined;
      this.#renewWake = undefined;
      this.#options.ended();
    }
  }
}
