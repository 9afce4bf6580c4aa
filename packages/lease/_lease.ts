/**
 * @module
 * `Lease`: who may write, decided by one small object in any `BlockStore` that enforces
 * create-only and compare-and-swap writes. Claim is create-only (`If-None-Match: *`); renew and
 * take over are compare-and-swap (`If-Match` on the ETag the node read or wrote). Every record
 * carries a fresh random nonce, so two writes never store the same bytes: a write whose answer was
 * lost is resolved by reading the record back (the store does so) and comparing, never guessed.
 *
 * Time is never compared across machines. An observer judges a lease expired when the record it
 * sees has not changed for `ttlMs + marginMs` since *it* first saw that record (its own monotonic
 * clock); the holder stops trusting its lease once `ttlMs - marginMs` have passed since the *start*
 * of its last successful write. Whatever the network did in between, the holder's deadline comes
 * before any observer's: the observer first saw the record after the write that made it finished,
 * so after that write started, and it waits `2 * marginMs` longer. Clocks only need to run at
 * nearly the same rate (drift below marginMs / ttlMs), which monotonic clocks do.
 *
 * The epoch is the fencing token: it grows by one at every takeover, never at a renew. Whatever a
 * holder writes elsewhere carries it, under keys that two epochs would collide on.
 */
import type { BlockStore } from "@haduck/s3-block-store";
import { BlockNotFoundError, PreconditionFailedError } from "@haduck/s3-block-store";

/** The stored record (JSON). `released`: the holder let go; anyone may claim at once. */
export interface LeaseRecord {
  format: "haduck-lease";
  version: 1;
  epoch: number;
  holder: string;
  /** Where the holder serves (for followers that forward writes), or null. */
  address: string | null;
  ttlMs: number;
  released: boolean;
  nonce: string;
  /** A released lease handed to this address: only it may claim at once, the others after the TTL. */
  successor?: string | null;
  /**
   * A released lease's last state, as the holder's application orders it (haduck: the position of
   * its last durable commit): a node that already has it may claim first, one behind may wait.
   */
  position?: string | null;
  /**
   * Whatever the holder's application vouches for its address with (haduck: an HMAC of the address
   * under the nodes' shared token), checked by the others before they send anything there.
   */
  proof?: string | null;
}

/** What an observation found: the record and how long this node has seen it unchanged. */
export interface LeaseObservation {
  record: LeaseRecord | undefined;
  etag: string | undefined;
  /** ms this node has seen this exact record (monotonic clock); 0 when it just changed. */
  unchangedForMs: number;
  /** Free to claim: absent, released, or unchanged for the record's TTL plus the margin. */
  claimable: boolean;
}

export interface LeaseOptions {
  /** This node's name in the record (unique among the nodes). */
  holder: string;
  /** Where this node serves, recorded for the others. Default null. */
  address?: string | null;
  /** Recorded with the address for the others to check (`LeaseRecord.proof`). Default none. */
  proof?: string | null;
  /** How long a record stays valid without a renew. Default 5000 ms. */
  ttlMs?: number;
  /** Safety margin against clock rate differences and slow requests. Default ttlMs / 5. */
  marginMs?: number;
  /** Monotonic milliseconds. Default `performance.now()`; tests pass a fake clock. */
  now?: () => number;
}

/** The lease was taken by another node, or this node's lease validity ran out: stop acting as holder. */
export class LeaseLostError extends Error {
  readonly code = "LEASE_LOST";
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = "LeaseLostError";
  }
}

/** The store cannot fence writers: it does not enforce conditional writes. */
export class UnsafeLeaseStoreError extends Error {
  readonly code = "UNSAFE_STORE";
  constructor(message: string) {
    super(message);
    this.name = "UnsafeLeaseStoreError";
  }
}

/** Refuses a store on which leases would not exclude anybody (found by trying, not by trusting). */
export async function assertLeaseStore(store: BlockStore): Promise<void> {
  const capabilities = await store.probeCapabilities();
  if (!capabilities.createOnly || !capabilities.compareAndSwap) {
    const missing = [!capabilities.createOnly && "If-None-Match: *", !capabilities.compareAndSwap && "If-Match"]
      .filter(Boolean).join(" and ");
    throw new UnsafeLeaseStoreError(`${store.url} does not enforce ${missing} (a conditional write that must fail ` +
      "succeeded), so two nodes could both believe they lead: use a store that enforces conditional writes " +
      "(AWS S3, Ceph radosgw, or a file:// store) for a cluster");
  }
}

const isRecord = (value: unknown): value is LeaseRecord => {
  const record = value as LeaseRecord;
  return record?.format === "haduck-lease" && record.version === 1 && Number.isSafeInteger(record.epoch) &&
    record.epoch >= 1 && typeof record.holder === "string" && Number.isSafeInteger(record.ttlMs) &&
    record.ttlMs > 0 && typeof record.nonce === "string";
};

/**
 * One node's view of one lease object.
 *
 * @example
 * ```ts
 * import { openStore } from "@haduck/s3-block-store";
 * import { Lease } from "@haduck/lease";
 * const lease = new Lease(openStore("file:///tmp/haduck-store"), "demo.duckdb/lease.json", { holder: "node-a" });
 * if (await lease.tryAcquire()) {
 *   console.log(`leading at epoch ${lease.epoch}`);
 *   await lease.renew();
 *   await lease.release();
 * }
 * ```
 */
export class Lease {
  readonly ttlMs: number;
  readonly marginMs: number;
  readonly #store: BlockStore;
  readonly #key: string;
  readonly #holder: string;
  readonly #address: string | null;
  readonly #proof: string | null;
  readonly #now: () => number;
  /** The record this node last saw, and since when (monotonic) it has seen exactly that one. */
  #seen: { nonce: string; since: number } | undefined;
  /** While held: our record, its ETag, and when the write that made it started. */
  #held: { record: LeaseRecord; etag: string; startedAt: number } | undefined;
  /** A write of ours whose outcome is unknown (the store could not tell): adopted if we find it stored. */
  #pending: { record: LeaseRecord; startedAt: number } | undefined;
  /** The writes (claim, renew, release) in order: each starts when the one before settled. */
  #queue: Promise<unknown> = Promise.resolve();
  /** The record of the last full read and its ETag: an unchanged ETag needs no GET. */
  #last: { record: LeaseRecord; etag: string } | undefined;

  constructor(store: BlockStore, key: string, options: LeaseOptions) {
    this.#store = store;
    this.#key = key;
    this.#holder = options.holder;
    this.#address = options.address ?? null;
    this.#proof = options.proof ?? null;
    this.ttlMs = options.ttlMs ?? 5000;
    this.marginMs = options.marginMs ?? Math.floor(this.ttlMs / 5);
    this.#now = options.now ?? (() => performance.now());
    if (!Number.isSafeInteger(this.ttlMs) || this.ttlMs < 100) {
      throw new RangeError(`Invalid ttlMs ${options.ttlMs}: expected at least 100 ms`);
    }
    if (!Number.isSafeInteger(this.marginMs) || this.marginMs < 1 || this.marginMs * 2 >= this.ttlMs) {
      throw new RangeError(`Invalid marginMs ${options.marginMs}: expected 1 ms to less than half of ttlMs`);
    }
    if (!options.holder) throw new TypeError("Lease needs a holder name");
  }

  /** The epoch this node holds, or undefined. */
  get epoch(): number | undefined {
    return this.#held?.record.epoch;
  }

  /** Whether this node may act as holder now: it holds the lease and ttlMs - marginMs have not passed. */
  get valid(): boolean {
    return this.#held !== undefined && this.#now() < this.validUntil;
  }

  /** Monotonic time until which this node's lease is valid (ttlMs - marginMs after the last write started). */
  get validUntil(): number {
    return this.#held ? this.#held.startedAt + this.ttlMs - this.marginMs : -Infinity;
  }

  /**
   * Reads the record and tracks how long it has stayed the same: one HEAD while the ETag is the one
   * seen last (every write stores a fresh nonce, so new bytes always mean a new ETag), a GET between
   * two HEADs when it changed.
   */
  async observe(options: { signal?: AbortSignal } = {}): Promise<LeaseObservation> {
    let bytes: Uint8Array | undefined;
    let etag: string | undefined;
    const last = this.#last;
    if (last) {
      const head = await this.#store.head(this.#key, options);
      if (head?.etag === last.etag) return this.#judge(last.record, last.etag);
    }
    // The ETag and the bytes in one consistent pair: a HEAD on each side of the GET that agree.
    for (let attempt = 0; attempt < 5; attempt++) {
      const before = await this.#store.head(this.#key, options);
      if (!before) {
        bytes = undefined;
        etag = undefined;
        break;
      }
      try {
        bytes = await this.#store.get(this.#key, options);
      } catch (error) {
        if (error instanceof BlockNotFoundError) continue;
        throw error;
      }
      const after = await this.#store.head(this.#key, options);
      if (after?.etag === before.etag) {
        etag = before.etag;
        break;
      }
      bytes = undefined;
    }
    let record: LeaseRecord | undefined;
    if (bytes) {
      record = decodeLeaseRecord(bytes);
      if (!record) {
        throw new UnsafeLeaseStoreError(`${this.#key} in ${this.#store.url} is not a haduck lease record: ` +
          "remove it by hand if nothing else uses that key");
      }
    }
    this.#last = record && etag !== undefined ? { record, etag } : undefined;
    return this.#judge(record, etag);
  }

  #judge(record: LeaseRecord | undefined, etag: string | undefined): LeaseObservation {
    const now = this.#now();
    if (!record) this.#seen = undefined;
    else if (this.#seen?.nonce !== record.nonce) this.#seen = { nonce: record.nonce, since: now };
    const unchangedForMs = this.#seen ? now - this.#seen.since : 0;
    const handedToOther = record?.released && record.successor && record.successor !== this.#address;
    const claimable = !record || (record.released && !handedToOther) || unchangedForMs >= record.ttlMs + this.marginMs;
    return { record, etag, unchangedForMs, claimable };
  }

  /**
   * Claims the lease if it is free (absent, released, or expired by this node's observation) and
   * returns true; false when another node holds it. `minEpoch`: the lowest epoch to take (a history
   * that already carries epochs keeps them growing even if the lease object was removed).
   */
  tryAcquire(options: { minEpoch?: number; signal?: AbortSignal } = {}): Promise<boolean> {
    return this.#serial(() => this.#tryAcquire(options));
  }

  /** One write at a time: a release never races a renew in flight (which would hold the lease again). */
  #serial<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(task, task);
    this.#queue = run.catch(() => {});
    return run;
  }

  async #tryAcquire(options: { minEpoch?: number; signal?: AbortSignal }): Promise<boolean> {
    const seen = await this.observe(options);
    // Ours already (a write of unknown outcome that landed, or the record we hold): only while the lease is valid
    // is it still trusted; past validUntil others may have judged it expired, and we must renew or retake.
    const ours = seen.record !== undefined && (this.#adoptPending(seen.record, seen.etag!) ||
      this.#held?.record.nonce === seen.record.nonce);
    if (ours && this.valid) return true;
    if (ours) this.#held = undefined; // not trusted any more: taken again below once it is free for anyone
    if (!seen.claimable) return false;
    const epoch = Math.max((seen.record?.epoch ?? 0) + 1, options.minEpoch ?? 1);
    const record = this.#record(epoch);
    const startedAt = this.#now();
    try {
      const written = await this.#store.put(this.#key, this.#encode(record),
        seen.etag === undefined ? { ifNoneMatch: "*", signal: options.signal } : { ifMatch: seen.etag, signal: options.signal });
      this.#held = { record, etag: written.etag, startedAt };
      this.#seen = { nonce: record.nonce, since: this.#now() };
      this.#last = { record, etag: written.etag };
      return true;
    } catch (error) {
      if (error instanceof PreconditionFailedError) return false; // another node was quicker
      this.#pending = { record, startedAt }; // unknown outcome: the next observation finds out (our nonce)
      throw error;
    }
  }

  /** Our write of unknown outcome is what the store holds: we hold the lease since that write started. */
  #adoptPending(record: LeaseRecord, etag: string): boolean {
    const pending = this.#pending;
    if (!pending || pending.record.nonce !== record.nonce) return false;
    this.#pending = undefined;
    this.#held = { record, etag, startedAt: pending.startedAt };
    return true;
  }

  /**
   * Writes a fresh record with the same epoch (compare-and-swap on ours). Throws LeaseLostError
   * when another node has written since, or when our lease validity already ran out (a renew that comes too
   * late must not extend a lease others may have judged expired).
   */
  renew(options: { signal?: AbortSignal } = {}): Promise<void> {
    return this.#serial(() => this.#renew(options));
  }

  async #renew(options: { signal?: AbortSignal }): Promise<void> {
    const held = this.#held;
    if (!held) throw new LeaseLostError(`Cannot renew ${this.#key}: this node (${this.#holder}) does not hold it`);
    if (!this.valid) {
      this.#held = undefined;
      throw new LeaseLostError(`The lease ${this.#key} of ${this.#holder} ran out before it was renewed ` +
        `(epoch ${held.record.epoch})`);
    }
    const record = this.#record(held.record.epoch);
    const startedAt = this.#now();
    try {
      const written = await this.#store.put(this.#key, this.#encode(record), { ifMatch: held.etag, signal: options.signal });
      this.#held = { record, etag: written.etag, startedAt };
      this.#seen = { nonce: record.nonce, since: this.#now() };
      this.#last = { record, etag: written.etag };
    } catch (error) {
      if (error instanceof PreconditionFailedError && this.#pending) {
        // An earlier renew of unknown outcome may have landed: then the ETag we compared is stale, not lost.
        const seen = await this.observe(options);
        if (seen.record && this.#adoptPending(seen.record, seen.etag!)) return await this.#renew(options);
      }
      if (error instanceof PreconditionFailedError) {
        this.#held = undefined;
        throw new LeaseLostError(`The lease ${this.#key} of ${this.#holder} was taken over (epoch ` +
          `${held.record.epoch} is no longer current)`, { cause: error });
      }
      this.#pending = { record, startedAt }; // unknown or unavailable: still held until validUntil
      throw error;
    }
  }

  /**
   * Lets go (a handoff or a clean stop): anyone may claim at once, without waiting for the TTL; with
   * `successor` (an address), that node at once and the others only once the record expired.
   */
  release(options: { signal?: AbortSignal; successor?: string; position?: string } = {}): Promise<void> {
    return this.#serial(() => this.#release(options));
  }

  async #release(options: { signal?: AbortSignal; successor?: string; position?: string }): Promise<void> {
    const held = this.#held;
    this.#held = undefined;
    if (!held) return;
    const record = { ...this.#record(held.record.epoch), released: true, successor: options.successor ?? null,
      position: options.position ?? null };
    try {
      await this.#store.put(this.#key, this.#encode(record), { ifMatch: held.etag, signal: options.signal });
    } catch (error) {
      if (!(error instanceof PreconditionFailedError)) throw error; // taken over meanwhile: nothing to release
    }
  }

  #record(epoch: number): LeaseRecord {
    return { format: "haduck-lease", version: 1, epoch, holder: this.#holder, address: this.#address,
      ttlMs: this.ttlMs, released: false, nonce: crypto.randomUUID(), ...(this.#proof ? { proof: this.#proof } : {}) };
  }

  #encode(record: LeaseRecord): Uint8Array {
    return new TextEncoder().encode(JSON.stringify(record));
  }
}

/** A stored lease record, or undefined when the bytes are not one (a foreign object under the key). */
export function decodeLeaseRecord(bytes: Uint8Array): LeaseRecord | undefined {
  try {
    const parsed = JSON.parse(new TextDecoder().decode(bytes));
    return isRecord(parsed) ? parsed : undefined;
  } catch {
    return undefined; // not a lease record: claimable only by an operator, never by a node
  }
}
