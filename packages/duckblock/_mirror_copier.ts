/**
 * @module
 * One replica store's copier: a FIFO of what the primary accepted (puts and deletes), drained in
 * waves: a run of segments and block map pages goes up to `concurrencyMax` at once; a manifest, a
 * frame, `latest.json`, a fork marker or a delete goes alone, after everything before it and before
 * everything after it. So the replica receives segments and pages before the manifest that names
 * them, frames in order, and `latest.json` after what it points to. A failed copy is retried with
 * full-jitter backoff until it succeeds or the mirror closes; while the replica is down the queue is
 * its backlog: bodies are held while they fit in `bytesHeldMax` (else only the key, and the bytes are
 * read back from the primary), and past `keysQueuedMax` the queue is dropped and a reconcile pass
 * (`_mirror_reconcile.ts`) lists what is missing instead.
 */
import { BlockNotFoundError, type BlockStore } from "@haduck/s3-block-store";
import { reconcileReplica } from "./_mirror_reconcile.ts";
import type { ReplicaStoreStatus } from "./_status.ts";

/** One thing the primary accepted, owed to the replica. */
export interface MirrorItem {
  kind: "put" | "delete";
  /** One key for a put; every key of one `delete`/`deleteMany` call for a delete. */
  keys: string[];
  sizeBytes: number;
  /** A copy of the body while the backlog's bytes fit; else read back from the primary. */
  bytes?: Uint8Array;
  /** Goes alone, in order (everything but segments and pages). */
  barrier: boolean;
  enqueuedMs: number;
}

export interface CopierBounds {
  concurrencyMax: number;
  bytesHeldMax: number;
  keysQueuedMax: number;
  retryDelayBaseMs: number;
  retryDelayCapMs: number;
}

/** Assert an invariant of the queue (always on: a broken queue would drop copies silently). */
function assert(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(`MirrorCopier invariant broken: ${message}`);
}

export class MirrorCopier {
  readonly replica: BlockStore;
  #primary: BlockStore;
  #dbKey: string;
  #bounds: CopierBounds;
  #log: (message: string) => void;
  #queue: MirrorItem[] = [];
  /** Index of the queue's head: items before it are done (compacted now and then). */
  #head = 0;
  #bytesQueued = 0;
  #bytesHeld = 0;
  /** "wanted": the backlog was dropped (or we just started): enqueue drops until the pass lists. */
  #reconcile: "none" | "wanted" | "running" = "wanted";
  #reconcileRemaining = { objects: 0, bytes: 0 };
  #reconcileStartedMs = 0;
  #wake: (() => void) | undefined;
  #closed = false;
  #stopped = new AbortController();
  #failing = false;
  #failingSinceMs = 0;
  #running: Promise<void>;
  #drained: Array<() => void> = [];
  readonly stats = { objectsCopied: 0, bytesCopied: 0, deletes: 0, errors: 0, backlogsDropped: 0,
    lastError: null as string | null, lastErrorTime: null as string | null };

  constructor(options: { primary: BlockStore; replica: BlockStore; dbKey: string; bounds: CopierBounds;
    log: (message: string) => void }) {
    this.#primary = options.primary;
    this.replica = options.replica;
    this.#dbKey = options.dbKey;
    this.#bounds = options.bounds;
    this.#log = options.log;
    this.#running = this.#loop();
  }

  get #length(): number {
    return this.#queue.length - this.#head;
  }

  /** Queues a copy (never waits, never throws: the caller is the writer's upload path). */
  enqueue(item: MirrorItem): void {
    if (this.#closed || this.#reconcile === "wanted") return; // the coming pass lists it
    if (this.#length >= this.#bounds.keysQueuedMax) {
      this.#dropBacklog();
      return;
    }
    if (item.bytes && this.#bytesHeld + item.bytes.byteLength > this.#bounds.bytesHeldMax) item.bytes = undefined;
    this.#bytesHeld += item.bytes?.byteLength ?? 0;
    this.#bytesQueued += item.sizeBytes;
    this.#queue.push(item);
    this.#wake?.();
  }

  #dropBacklog(): void {
    this.stats.backlogsDropped++;
    this.#log(`${this.replica.url}: ${this.#length} objects behind, more than ${this.#bounds.keysQueuedMax}: the ` +
      "backlog is dropped and a reconcile pass will list what the replica lacks");
    this.#queue = [];
    this.#head = 0;
    this.#bytesQueued = 0;
    this.#bytesHeld = 0;
    this.#reconcile = "wanted";
    this.#wake?.();
  }

  status(nowMs: number): ReplicaStoreStatus {
    const head = this.#queue[this.#head];
    const reconciling = this.#reconcile !== "none";
    const oldestMs = reconciling ? this.#reconcileStartedMs || nowMs : head?.enqueuedMs;
    return {
      url: this.replica.url,
      state: this.#failing ? "failing" : reconciling ? "reconciling" : this.#length > 0 ? "copying" : "caught-up",
      objectsBehind: this.#length + (reconciling ? this.#reconcileRemaining.objects : 0),
      bytesBehind: this.#bytesQueued + (reconciling ? this.#reconcileRemaining.bytes : 0),
      lagMs: oldestMs === undefined ? 0 : Math.max(0, Math.round(nowMs - oldestMs)),
      objectsCopied: this.stats.objectsCopied,
      bytesCopied: this.stats.bytesCopied,
      errors: this.stats.errors,
      backlogsDropped: this.stats.backlogsDropped,
      lastError: this.stats.lastError,
      lastErrorTime: this.stats.lastErrorTime,
    };
  }

  /** Resolves once the queue is empty and no pass is owed (or the copier closed). */
  drained(): Promise<void> {
    if (this.#closed || (this.#length === 0 && this.#reconcile === "none")) return Promise.resolve();
    return new Promise((resolve) => this.#drained.push(resolve));
  }

  /** Stops copying; what is still queued is left to the next start's reconcile pass. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#stopped.abort(new Error("the mirror is closing"));
    this.#wake?.();
    await this.#running;
    for (const resolve of this.#drained.splice(0)) resolve();
  }

  async #loop(): Promise<void> {
    while (!this.#closed) {
      if (this.#reconcile !== "none") {
        await this.#reconcilePass();
        continue;
      }
      if (this.#length === 0) {
        for (const resolve of this.#drained.splice(0)) resolve();
        await new Promise<void>((resolve) => this.#wake = resolve);
        this.#wake = undefined;
        continue;
      }
      // A macrotask first: the put that queued this copy answers its caller (a commit) before
      // this copier spends any CPU on signing and sending.
      await new Promise((resolve) => setTimeout(resolve, 0));
      if (this.#closed || this.#reconcile !== "none") continue;
      const wave = this.#nextWave();
      await Promise.all(wave.map((item) => this.#copyUntilDone(item)));
      if (this.#closed || this.#reconcile !== "none") continue; // the backlog was dropped meanwhile
      for (const item of wave) {
        assert(this.#queue[this.#head] === item, "a wave is the queue's head, in order");
        this.#head++;
        this.#bytesQueued -= item.sizeBytes;
        this.#bytesHeld -= item.bytes?.byteLength ?? 0;
        item.bytes = undefined;
      }
      assert(this.#bytesQueued >= 0 && this.#bytesHeld >= 0, "byte counts stay non-negative");
      if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
        this.#queue = this.#queue.slice(this.#head);
        this.#head = 0;
      }
    }
  }

  /** A barrier alone, or the run of non-barriers at the head, up to `concurrencyMax`. */
  #nextWave(): MirrorItem[] {
    const first = this.#queue[this.#head];
    if (first.barrier) return [first];
    const wave: MirrorItem[] = [];
    for (let i = this.#head; i < this.#queue.length && wave.length < this.#bounds.concurrencyMax; i++) {
      if (this.#queue[i].barrier) break;
      wave.push(this.#queue[i]);
    }
    return wave;
  }

  async #copyUntilDone(item: MirrorItem): Promise<void> {
    for (let attempt = 1; !this.#closed; attempt++) {
      try {
        await this.#copy(item);
        this.#succeeded();
        return;
      } catch (error) {
        if (this.#closed) return;
        this.#failed(`Cannot copy ${item.keys[0]}${item.keys.length > 1 ? ` and ${item.keys.length - 1} more` : ""} ` +
          `to ${this.replica.url}`, error);
        await this.#pause(attempt);
        if (this.#reconcile !== "none") return; // dropped: the pass copies it
      }
    }
  }

  async #copy(item: MirrorItem): Promise<void> {
    const signal = this.#stopped.signal;
    if (item.kind === "delete") {
      await this.replica.deleteMany(item.keys, { signal });
      this.stats.deletes += item.keys.length;
      return;
    }
    let bytes = item.bytes;
    if (!bytes) {
      try {
        bytes = await this.#primary.get(item.keys[0], { signal });
      } catch (error) {
        if (error instanceof BlockNotFoundError) return; // deleted since (its delete follows in the queue)
        throw error;
      }
    }
    await this.replica.put(item.keys[0], bytes, { signal });
    this.stats.objectsCopied++;
    this.stats.bytesCopied += bytes.byteLength;
  }

  async #reconcilePass(): Promise<void> {
    // From here on new puts queue behind the pass: the pass lists what came before them.
    this.#reconcile = "running";
    this.#reconcileStartedMs = performance.now();
    for (let attempt = 1; !this.#closed; attempt++) {
      try {
        const report = await reconcileReplica({ primary: this.#primary, replica: this.replica, dbKey: this.#dbKey,
          concurrencyMax: this.#bounds.concurrencyMax, signal: this.#stopped.signal,
          onRemaining: (objects, bytes) => this.#reconcileRemaining = { objects, bytes } });
        this.stats.objectsCopied += report.objectsCopied;
        this.stats.bytesCopied += report.bytesCopied;
        this.#succeeded();
        if (report.objectsCopied > 0) {
          this.#log(`${this.replica.url}: reconciled ${this.#dbKey}: copied ${report.objectsCopied} objects ` +
            `(${report.bytesCopied} bytes) it lacked, ${report.objectsHeld} already there`);
        }
        break;
      } catch (error) {
        if (this.#closed) break;
        this.#failed(`Cannot reconcile ${this.#dbKey} with ${this.replica.url}`, error);
        await this.#pause(attempt);
      }
    }
    this.#reconcileRemaining = { objects: 0, bytes: 0 };
    this.#reconcileStartedMs = 0;
    if (this.#reconcile === "running") this.#reconcile = "none";
  }

  #succeeded(): void {
    if (!this.#failing) return;
    this.#failing = false;
    this.#log(`${this.replica.url}: answering again after ${((performance.now() - this.#failingSinceMs) / 1000)
      .toFixed(1)} s; catching up (${this.#length} objects queued)`);
  }

  #failed(what: string, error: unknown): void {
    this.stats.errors++;
    this.stats.lastError = `${what}: ${(error as Error).message ?? String(error)}; retrying until it answers ` +
      "(commits are not held up: the primary store has them)";
    this.stats.lastErrorTime = new Date().toISOString();
    if (!this.#failing) {
      this.#failing = true;
      this.#failingSinceMs = performance.now();
      this.#log(this.stats.lastError);
    }
  }

  /** Full-jitter backoff, cut short when the mirror closes. */
  #pause(attempt: number): Promise<void> {
    const ceiling = Math.min(this.#bounds.retryDelayCapMs, this.#bounds.retryDelayBaseMs * 2 ** Math.min(attempt - 1, 20));
    const delayMs = Math.random() * ceiling;
    const signal = this.#stopped.signal;
    if (signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, delayMs);
      signal.addEventListener("abort", done);
    });
  }
}
