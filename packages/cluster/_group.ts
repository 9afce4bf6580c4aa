/**
 * @module
 * Databases of one node that share a lease (`serve --group NAME`): one claim, one renew and one
 * look at `<NAME>/lease.json` stand for all of them (one leader for the group, one epoch fencing
 * every database's history), and one change object, `<NAME>/changes.json`, which the leader
 * rewrites (at most every CHANGES_COALESCE_MS) when any of them ships a frame or a generation. The
 * followers look at that object instead of polling each database (each replica keeps a slow poll
 * of its own, for safety), so a node's idle requests stay flat in the number of its databases.
 */
import { BlockNotFoundError, type BlockStore } from "@haduck/s3-block-store";
import { groupChangesKey } from "@haduck/duckblock";
import type { Lease, LeaseObservation } from "@haduck/lease";

/** What a cluster node needs of its lease: a `Lease`, or one database's share of a group's. */
export interface LeaseLike {
  readonly epoch: number | undefined;
  readonly valid: boolean;
  readonly validUntil: number;
  observe(options?: { signal?: AbortSignal }): Promise<LeaseObservation>;
  tryAcquire(options?: { signal?: AbortSignal }): Promise<boolean>;
  renew(options?: { signal?: AbortSignal }): Promise<void>;
  release(options?: { signal?: AbortSignal; successor?: string; position?: string }): Promise<void>;
}

/** How often the leader rewrites the change object at most (a burst of frames is one PUT). */
const CHANGES_COALESCE_MS = 50;

/**
 * One lease for several databases. Each database's node gets a `share()`: looks within `freshMs`
 * of each other are one request, renews within a third of the TTL one PUT, a claim made by one is
 * held by every share that asks, and the lease is released only when the last share that held it
 * lets go (a handoff ships every database first).
 */
export class SharedLease {
  readonly #lease: Lease;
  readonly #freshMs: number;
  readonly #renewEveryMs: number;
  readonly #holders = new Set<object>();
  #observing: Promise<LeaseObservation> | undefined;
  #observed: { at: number; value: LeaseObservation } | undefined;
  #acquiring: Promise<boolean> | undefined;
  #renewing: Promise<void> | undefined;
  #renewedAt = -Infinity;

  readonly #minEpoch: (() => Promise<number>) | undefined;

  /**
   * `minEpoch`: the lowest epoch a claim may take (the databases' histories may carry higher ones,
   * from leases of their own, and the group's must go on above them).
   */
  constructor(lease: Lease, options: { freshMs: number; ttlMs: number; minEpoch?: () => Promise<number> }) {
    this.#lease = lease;
    this.#freshMs = options.freshMs;
    this.#renewEveryMs = options.ttlMs / 3;
    this.#minEpoch = options.minEpoch;
  }

  share(): LeaseLike {
    const me = {};
    const group = this;
    const lease = this.#lease;
    return {
      get epoch() {
        return lease.epoch;
      },
      get valid() {
        return lease.valid;
      },
      get validUntil() {
        return lease.validUntil;
      },
      observe: (options) => group.#observe(options),
      tryAcquire: async (options) => {
        if (await group.#acquire(options)) {
          group.#holders.add(me);
          return true;
        }
        return false;
      },
      renew: (options) => group.#renew(options),
      release: async (options = {}) => {
        group.#holders.delete(me);
        if (group.#holders.size > 0) return;
        // A position is one database's: the group's successor is whoever comes.
        await lease.release({ signal: options.signal, successor: options.successor });
        group.#renewedAt = -Infinity;
      },
    };
  }

  #observe(options?: { signal?: AbortSignal }): Promise<LeaseObservation> {
    if (this.#observing) return this.#observing;
    if (this.#observed && performance.now() - this.#observed.at < this.#freshMs) return Promise.resolve(this.#observed.value);
    const at = performance.now();
    this.#observing = this.#lease.observe(options).then((value) => {
      this.#observed = { at, value };
      return value;
    }).finally(() => this.#observing = undefined);
    return this.#observing;
  }

  #acquire(options?: { signal?: AbortSignal }): Promise<boolean> {
    if (this.#lease.epoch !== undefined && this.#lease.valid) return Promise.resolve(true);
    this.#acquiring ??= (async () => this.#lease.tryAcquire({ ...options, minEpoch: await this.#minEpoch?.() }))()
      .then((won) => {
      if (won) this.#renewedAt = performance.now();
      this.#observed = undefined;
      return won;
    }).finally(() => this.#acquiring = undefined);
    return this.#acquiring;
  }

  #renew(options?: { signal?: AbortSignal }): Promise<void> {
    if (this.#renewing) return this.#renewing;
    if (performance.now() - this.#renewedAt < this.#renewEveryMs / 2) return Promise.resolve();
    const started = performance.now();
    this.#renewing = this.#lease.renew(options).then(() => {
      this.#renewedAt = started;
    }).finally(() => this.#renewing = undefined);
    return this.#renewing;
  }
}

/**
 * The group's change object: the leader's `changed(dbKey)` rewrites it (coalesced) with a counter per
 * database; a follower's `watch` looks at it (a HEAD) every `pollMs` and, when it changed, reads it
 * and calls `onChange` with the databases whose counter moved.
 */
export class GroupChanges {
  readonly #store: BlockStore;
  readonly #key: string;
  readonly #counters = new Map<string, number>();
  /** This process as the object's writer: counters start again with each leader, and a new writer means "all". */
  readonly #writer = crypto.randomUUID();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #writing: Promise<void> | undefined;
  #dirty = false;
  #watching: ReturnType<typeof setInterval> | undefined;

  constructor(store: BlockStore, group: string) {
    this.#store = store;
    this.#key = groupChangesKey(group);
  }

  /** Leader: `dbKey` shipped a frame or a generation. */
  changed(dbKey: string): void {
    this.#counters.set(dbKey, (this.#counters.get(dbKey) ?? 0) + 1);
    this.#dirty = true;
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined;
      this.#write();
    }, CHANGES_COALESCE_MS);
  }

  /** One write at a time; changes made meanwhile go in the next (a slow store never queues more). */
  #write(): void {
    if (this.#writing || !this.#dirty) return;
    this.#dirty = false;
    const body = new TextEncoder().encode(JSON.stringify({ format: "haduck-group-changes", version: 1,
      at: Date.now(), writer: this.#writer, databases: Object.fromEntries(this.#counters) }));
    // A hint only (a follower also polls on its own): a lost write costs a little lag, nothing else.
    this.#writing = this.#store.put(this.#key, body).then(() => {}, () => {}).finally(() => {
      this.#writing = undefined;
      this.#write();
    });
  }

  /**
   * Follower: calls `onChange(changed)` when the object changed (every database the first time).
   * `looking()` false (this node leads the group) skips the look.
   */
  watch(pollMs: number, onChange: (databases: string[] | "all") => void, looking: () => boolean = () => true): void {
    let etag: string | undefined;
    let seen: Record<string, number> | undefined;
    let writer: unknown;
    let busy = false;
    this.#watching = setInterval(async () => {
      if (busy || !looking()) return;
      busy = true;
      try {
        const info = await this.#store.head(this.#key);
        if (!info || info.etag === etag) return;
        const body = JSON.parse(new TextDecoder().decode(await this.#store.get(this.#key)));
        etag = info.etag;
        const databases: Record<string, number> = typeof body?.databases === "object" && body.databases ? body.databases : {};
        // Another writer (a new leader) counts from 1 again: everything may have moved.
        const moved = seen === undefined || body?.writer !== writer ? "all"
          : Object.keys(databases).filter((key) => databases[key] !== seen![key]);
        seen = databases;
        writer = body?.writer;
        if (moved === "all" || moved.length > 0) onChange(moved);
      } catch (error) {
        if (!(error instanceof BlockNotFoundError || error instanceof SyntaxError)) etag = undefined;
      } finally {
        busy = false;
      }
    }, pollMs);
    (this.#watching as { unref?: () => void }).unref?.();
  }

  async close(): Promise<void> {
    clearInterval(this.#watching);
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#write(); // a change still waiting for its timer
    while (this.#writing) await this.#writing;
  }
}
