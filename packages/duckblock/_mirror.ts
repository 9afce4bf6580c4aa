/**
 * @module
 * `MirroredStore`: the primary store, as the writer sees it, with a copy of every object of one
 * database sent on to each replica store (`--replica-store`) after the primary accepted it. Reads,
 * listings and conditional checks go to the primary only; a put or delete answers as soon as the
 * primary has answered (`--sync` still means the primary), and only then queues the copy, so commits
 * do not wait for a replica, and a replica that fails costs them nothing. The lease never leaves the
 * primary: it is not copied (it decides who writes, and a second copy of it would be a second lease).
 *
 * Each replica has its own copier (`_mirror_copier.ts`: in-order waves, retries, a bounded backlog)
 * and starts with a reconcile pass (`_mirror_reconcile.ts`) that copies what it lacks, by key and
 * size. Objects are copied as the primary holds them, byte for byte: a store wrapper that seals
 * objects (encryption) under this one composes, as the replica receives sealed bytes.
 */
import type {
  BlockStore, GetOptions, ListOptions, ObjectInfo, PutOptions, PutResult, StoreCapabilities,
} from "@haduck/s3-block-store";
import { leaseKey, pagesPrefix, segmentsPrefix } from "./_keys.ts";
import { MirrorCopier } from "./_mirror_copier.ts";
import type { ReplicaStoreStatus } from "./_status.ts";

export interface MirroredStoreOptions {
  /** The database whose objects are copied; other keys (another database, a group's lease) pass through uncopied. */
  dbKey: string;
  /** Copies in flight at once per replica for segments and block map pages. Default 4. */
  concurrencyMax?: number;
  /**
   * Bodies held in memory per replica while its backlog grows. Default 64 MiB. Past it, only keys are
   * held and each body is read back from the primary when its turn comes (one GET more per object).
   * 0: never hold bodies.
   */
  bytesHeldMax?: number;
  /** Puts and deletes queued per replica. Default 100 000. Past it the queue is dropped and a reconcile pass lists what is owed. */
  keysQueuedMax?: number;
  /** First retry delay of a failed copy, doubled per failure (full jitter). Default 100 ms. */
  retryDelayBaseMs?: number;
  /** The longest retry delay. Default 5000 ms. */
  retryDelayCapMs?: number;
  /** Where state changes go (a replica fails, answers again, a reconcile copied something). Default: nowhere. */
  log?: (message: string) => void;
}

/**
 * A `BlockStore` over `primary` that mirrors one database's objects to `replicas`.
 *
 * @example
 * ```ts
 * import { openStore } from "@haduck/s3-block-store";
 * import { MirroredStore } from "@haduck/duckblock";
 * const store = new MirroredStore(openStore("file:///tmp/haduck-store"), [openStore("file:///tmp/haduck-replica")],
 *   { dbKey: "demo.duckdb" });
 * await store.put("demo.duckdb/segments/x", new Uint8Array([1, 2, 3]));
 * await store.drained(5000);
 * console.log(store.replicaStatus());
 * await store.close();
 * ```
 */
export class MirroredStore implements BlockStore {
  readonly primary: BlockStore;
  readonly dbKey: string;
  #copiers: MirrorCopier[];
  #holdBodies: boolean;

  constructor(primary: BlockStore, replicas: BlockStore[], options: MirroredStoreOptions) {
    if (replicas.length === 0) throw new TypeError("MirroredStore needs at least one replica store");
    const urls = new Set([primary.url]);
    for (const replica of replicas) {
      if (urls.has(replica.url)) {
        throw new TypeError(`The replica store ${replica.url} is given twice (or is the primary): give each store once`);
      }
      urls.add(replica.url);
    }
    this.primary = primary;
    this.dbKey = options.dbKey;
    const bounds = {
      concurrencyMax: options.concurrencyMax ?? 4,
      bytesHeldMax: options.bytesHeldMax ?? 64 * 1024 * 1024,
      keysQueuedMax: options.keysQueuedMax ?? 100_000,
      retryDelayBaseMs: options.retryDelayBaseMs ?? 100,
      retryDelayCapMs: options.retryDelayCapMs ?? 5000,
    };
    if (!(bounds.concurrencyMax >= 1 && bounds.keysQueuedMax >= 1 && bounds.bytesHeldMax >= 0)) {
      throw new RangeError("MirroredStore: concurrencyMax and keysQueuedMax must be at least 1, bytesHeldMax at least 0");
    }
    this.#holdBodies = bounds.bytesHeldMax > 0;
    const log = options.log ?? (() => {});
    this.#copiers = replicas.map((replica) =>
      new MirrorCopier({ primary, replica, dbKey: options.dbKey, bounds, log: (message) => log(`replica store ${message}`) })
    );
  }

  get url(): string {
    return this.primary.url;
  }

  /** The replica stores, in the order given. */
  get replicas(): BlockStore[] {
    return this.#copiers.map((copier) => copier.replica);
  }

  /** Whether `key` is copied, and whether its copy may overtake its neighbours (segments and pages may). */
  #ordering(key: string): "skip" | "free" | "barrier" {
    if (!key.startsWith(`${this.dbKey}/`) || key === leaseKey(this.dbKey)) return "skip";
    return key.startsWith(segmentsPrefix(this.dbKey)) || key.startsWith(pagesPrefix(this.dbKey)) ? "free" : "barrier";
  }

  async put(key: string, body: Uint8Array, options?: PutOptions): Promise<PutResult> {
    const ordering = this.#ordering(key);
    // The copy is taken before the primary's put: the caller may reuse `body` once the put settles.
    const bytes = ordering !== "skip" && this.#holdBodies ? body.slice() : undefined;
    const result = await this.primary.put(key, body, options);
    if (ordering !== "skip") {
      const enqueuedMs = performance.now();
      for (const copier of this.#copiers) {
        copier.enqueue({ kind: "put", keys: [key], sizeBytes: body.byteLength, bytes, barrier: ordering === "barrier",
          enqueuedMs });
      }
    }
    return result;
  }

  get(key: string, options?: GetOptions): Promise<Uint8Array> {
    return this.primary.get(key, options);
  }

  head(key: string, options?: { signal?: AbortSignal }): Promise<ObjectInfo | undefined> {
    return this.primary.head(key, options);
  }

  list(prefix: string, options?: ListOptions): AsyncIterable<ObjectInfo> {
    return this.primary.list(prefix, options);
  }

  delete(key: string, options?: { signal?: AbortSignal }): Promise<void> {
    return this.deleteMany([key], options);
  }

  async deleteMany(keys: string[], options?: { signal?: AbortSignal }): Promise<void> {
    await this.primary.deleteMany(keys, options);
    const copied = keys.filter((key) => this.#ordering(key) !== "skip");
    if (copied.length === 0) return;
    const enqueuedMs = performance.now();
    for (const copier of this.#copiers) {
      copier.enqueue({ kind: "delete", keys: copied, sizeBytes: 0, barrier: true, enqueuedMs });
    }
  }

  probeCapabilities(): Promise<StoreCapabilities> {
    return this.primary.probeCapabilities();
  }

  /** How far each replica is behind, and its last error. */
  replicaStatus(): ReplicaStoreStatus[] {
    const nowMs = performance.now();
    return this.#copiers.map((copier) => copier.status(nowMs));
  }

  /** Resolves true once every replica holds what the primary accepted, false after `timeoutMs`. */
  async drained(timeoutMs: number): Promise<boolean> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), timeoutMs));
    try {
      return await Promise.race([Promise.all(this.#copiers.map((copier) => copier.drained())).then(() => true),
        timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Waits up to `drainMs` (default 0) for the replicas to catch up, then stops copying. What is still
   * owed is copied by the reconcile pass of the next writer that mirrors this database.
   */
  async close(options: { drainMs?: number } = {}): Promise<void> {
    if ((options.drainMs ?? 0) > 0) await this.drained(options.drainMs!);
    await Promise.all(this.#copiers.map((copier) => copier.close()));
  }
}
