/**
 * @module
 * `Replicator`: follows the extension's ring for one `haduck://` database and turns each
 * generation into segments plus a create-only manifest in the store.
 *
 * Per generation: copy the header region and the blocks it needs out of the database file while
 * DuckDB holds its next header for us (synchronous local reads only, see _block_source.ts), then
 * *release* the generation: the release tells whether every read finished before DuckDB moved on
 * (the hold; see docs/ARCHITECTURE.md). Then, off DuckDB's path, skip blocks whose bytes did not
 * change, compress, pack into checksum-chained segments, upload them (bounded), and write the
 * manifest create-only. Anything that does not publish (a torn read, a failed upload, a manifest
 * write refused or with its answer lost) gives its blocks back to the ledger's carried set, and
 * they ship in the next generation or the catch-up, whichever comes first.
 *
 * This file is the loop: the ring, the queue of generations, one pass at a time, the catch-up's
 * timer, start and stop. One pass and the manifest it publishes are `_generation_pass.ts`,
 * reconcile and the WAL at start and stop `_replicator_reconcile.ts`; they share
 * the replicator's `ReplicatorCore` (`_replicator_core.ts`).
 */
import { formatCommitPosition, latestManifest, MirroredStore, ReplicationError } from "@haduck/duckblock";
import { readFileInfo } from "../local/_block_source.ts";
import { Ledger } from "./_ledger.ts";
import { ReusableUploads } from "./_segment_uploader.ts";
import { RING_LAYOUT as L, type RingEvent } from "../native/_ring_layout.ts";
import { WalShipper } from "../wal/_wal_shipper.ts";
import { acquireReplicatorLock, type ReplicatorLock } from "../local/_replicator_lock.ts";
import { initialStatus, type ReplicatorOptions, type ReplicatorStatus } from "./_replicator_types.ts";
import type { ReplicatorCore, ResolvedReplicatorOptions } from "./_replicator_core.ts";
import { carryGeneration, catchUp, markWritten, shipGeneration } from "./_generation_pass.ts";
import { reconcile, shipUnannouncedWal } from "./_replicator_reconcile.ts";

export {
  type FrameShipped,
  type GenerationShipped,
  RECENT_GENERATIONS_MAX,
  type ReplicatorOptions,
  type ReplicatorStatus,
  type UploadProgress,
} from "./_replicator_types.ts";

export class Replicator {
  readonly options: ResolvedReplicatorOptions;
  /** What the loop shares with the passes, the publisher and reconcile. */
  readonly #core: ReplicatorCore;
  #fileId: number | undefined;
  #queue: bigint[] = [];
  #seen = new Set<bigint>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #working: Promise<void> | undefined;
  #idleWaiters: (() => void)[] = [];
  #catchUpTimer: ReturnType<typeof setTimeout> | undefined;
  #catchUpDelayMs = 0;
  #stopped = false;
  /** This process replicates the file (see _replicator_lock.ts); held from start() to the end of stop(). */
  #lock: ReplicatorLock | undefined;
  /** Aborted when stop()'s deadline passes: every store request in flight ends at once. */
  readonly #abort = new AbortController();

  constructor(options: ReplicatorOptions) {
    this.options = {
      ...options,
      segmentBytesMax: options.segmentBytesMax ?? 4 * 1024 * 1024,
      uploadsInFlightMax: options.uploadsInFlightMax ?? 4,
      holdMs: options.holdMs ?? 10_000,
      tickMs: options.tickMs ?? 20,
      compress: options.compress ?? true,
      catchUpDelayMs: options.catchUpDelayMs ?? 1000,
      catchUpDelayMaxMs: options.catchUpDelayMaxMs ?? 30_000,
      stagingMemoryBytesMax: options.stagingMemoryBytesMax ?? 8 * 1024 * 1024,
      walFlushMs: options.walFlushMs ?? 250,
      walFramesInFlight: options.walFramesInFlight ?? 4,
    };
    if (!Number.isSafeInteger(this.options.walFramesInFlight) || this.options.walFramesInFlight < 1) {
      throw new RangeError(`Invalid walFramesInFlight ${this.options.walFramesInFlight}: expected a whole number, at least 1`);
    }
    if (!Number.isSafeInteger(this.options.walFlushMs) || this.options.walFlushMs < 0) {
      throw new RangeError(`Invalid walFlushMs ${this.options.walFlushMs}: expected a whole number of ms, 0 for no frames`);
    }
    let wal: WalShipper | undefined;
    if (options.store && this.options.walFlushMs > 0) {
      wal = new WalShipper({ store: options.store, dbKey: options.dbKey, dbPath: options.dbPath,
        walFlushMs: this.options.walFlushMs, framesInFlight: this.options.walFramesInFlight, blockChecksumOk: (block) => options.native.blockChecksumOk(block),
        signal: this.#abort.signal, onError: (message) => this.#fail(message), onFrame: options.onFrame,
        fence: options.fence });
    }
    if (!Number.isSafeInteger(this.options.holdMs) || this.options.holdMs < 0 || this.options.holdMs > 3_600_000) {
      throw new RangeError(`Invalid holdMs ${this.options.holdMs}: expected 0 to 3600000 ms`);
    }
    this.#catchUpDelayMs = this.options.catchUpDelayMs;
    this.#core = {
      options: this.options,
      status: initialStatus(options.store ? "replicating" : "local-only"),
      ledger: new Ledger(),
      reusable: new ReusableUploads(),
      wal,
      signal: this.#abort.signal,
      loop: {
        queued: () => this.#queue.length,
        working: () => this.#working !== undefined,
        run: (work) => this.#run(work),
        scheduleCatchUp: () => this.#scheduleCatchUp(),
        cancelCatchUp: () => {
          clearTimeout(this.#catchUpTimer);
          this.#catchUpTimer = undefined;
        },
        resetCatchUpDelay: () => this.#catchUpDelayMs = this.options.catchUpDelayMs,
      },
      identity: undefined,
      waitingSince: undefined,
      stagingMemory: undefined,
      reconciled: false,
      live: false,
      marksRebuilt: undefined,
      fail: (message) => this.#fail(message),
    };
  }

  get status(): ReplicatorStatus {
    const core = this.#core;
    const waiting = this.#queue.length > 0 || core.ledger.behind || this.#working !== undefined;
    return { ...core.status, generationsPending: this.#queue.length, blocksCarried: core.ledger.carried.count,
      lagMs: waiting && core.waitingSince !== undefined ? performance.now() - core.waitingSince : 0,
      recent: [...core.status.recent], ...core.wal?.status,
      ...(this.options.store instanceof MirroredStore ? { replicaStores: this.options.store.replicaStatus() } : {}) };
  }

  /**
   * Where the store stands for this database, as a token that orders commits: `epoch:generation:walBytes`
   * (the epoch is 0 until the cluster's leases; walBytes: the WAL bytes of that generation in frames).
   */
  get position(): string {
    const generation = this.#core.ledger.published?.manifest.generation ?? -1;
    const chain = this.#core.wal?.chain;
    return formatCommitPosition({ epoch: this.options.fence?.epoch ?? 0, generation,
      walBytes: chain?.generation === generation ? chain.walShipped : 0 });
  }

  /** The generation WAL frames chain to and the WAL bytes they hold (undefined: no frames). */
  get walChain(): { generation: number; walShipped: number } | undefined {
    return this.#core.wal?.chain;
  }

  /**
   * The WAL size of the newest commit of `generation` announced so far (the extension's events are
   * drained first), or undefined when no commit of that generation was announced: what a `flush()`
   * called now must see shipped.
   */
  walSynced(generation: number): number | undefined {
    this.#tick();
    return this.#core.wal?.syncedSize(generation);
  }

  /** The generation whose lost WAL marks reconcile rebuilt while DuckDB wrote, if it did (see `reconcile`). */
  get marksRebuilt(): number | undefined {
    return this.#core.marksRebuilt;
  }

  /** Loads the last manifest (for chaining and skipping unchanged blocks) and starts following the ring. */
  async start(): Promise<void> {
    // One replicator per file: a predecessor still shipping what its host left is waited for.
    if (this.options.store) this.#lock = await acquireReplicatorLock(this.options.dbPath);
    try {
      await this.#startFollowing();
    } catch (error) {
      this.#lock?.release();
      throw error;
    }
  }

  async #startFollowing(): Promise<void> {
    if (this.options.store) {
      // Manifests are immutable only where create-only writes are enforced: find out by trying.
      const capabilities = await this.options.store.probeCapabilities();
      if (!capabilities.createOnly) {
        throw new ReplicationError("UNSAFE_STORE", `${this.options.store.url} accepts If-None-Match: * but does not ` +
          "enforce it (a second create-only write of the same key succeeded), so a generation could be overwritten: " +
          "use a store that enforces conditional writes (AWS S3, Ceph radosgw, or a file:// store)");
      }
      const latest = await latestManifest(this.options.store, this.options.dbKey);
      if (latest) {
        this.#core.ledger.publish({ manifest: latest.manifest, sha256: latest.sha256 });
        this.#core.wal?.onPublished(latest.manifest.generation, Buffer.from(latest.sha256, "hex"));
        this.#core.status.lastGeneration = latest.manifest.generation;
        this.#core.status.lastGenerationTime = latest.manifest.createdAt;
      }
    }
    this.options.native.attach(this.options.holdMs);
    this.#timer = setInterval(() => this.#tick(), this.options.tickMs);
  }

  /**
   * Ships everything announced so far, then whatever the local file holds that the store does not
   * (blocks carried from failed attempts, a generation whose event was lost), then the commits its WAL
   * holds beyond the last frame, and stops. `quiescent`: nobody writes the file any more (the host
   * exited, or DETACHed it), so commits never announced to us (the host died between its WAL's
   * FileSync and telling us) are found in the WAL itself and shipped as at a restart. It returns early
   * only when the store fails; `status.lastError` then says why.
   */
  async stop(options: { deadlineMs?: number; quiescent?: boolean } = {}): Promise<void> {
    const core = this.#core;
    const deadline = setTimeout(() => this.#abort.abort(new Error("stop() deadline passed")),
      options.deadlineMs ?? 60_000);
    try {
      this.#lock?.stopping(); // a replicator started for this file now waits for us instead of failing
    } catch (error) {
      this.#fail(`Cannot mark ${this.options.dbPath}'s replicator lock as stopping: ${(error as Error).message}`);
    }
    try {
      // First the generations up to the file's header (one may still be in flight), then the commits
      // after it: frames chain to that generation, so they can only follow it.
      // A fenced writer (its lease ran out or a newer epoch took over) writes nothing more.
      const mayWrite = this.options.fence?.mayWrite() ?? true;
      if (core.reconciled && mayWrite) await this.flush();
      if (core.wal && core.reconciled && mayWrite &&
        readFileInfo(this.options.dbPath)?.generation === core.ledger.published?.manifest.generation) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const answered = await Promise.race([this.flushWal().then(() => true),
          new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), 5_000))]);
        clearTimeout(timer);
        // Unless the store is too slow to answer a frame: then reading the whole file for more would not help.
        if (options.quiescent && answered) await shipUnannouncedWal(core);
      }
    } finally {
      clearTimeout(deadline);
      this.#stopped = true;
      core.wal?.release();
      clearTimeout(this.#catchUpTimer);
      try {
        await this.idle();
        clearInterval(this.#timer);
        this.options.native.detach();
      } finally {
        this.#lock?.release();
      }
    }
  }

  /**
   * Ends every store request in flight at once and lets no new one wait for an answer: a writer
   * that was fenced (its lease ran out, another epoch took over) has nothing more to write, and a
   * store that stopped answering must not hold up its step down. Generations still come and are
   * released (DuckDB is never held), and fail.
   */
  cancelRequests(reason: string): void {
    this.#abort.abort(new Error(reason));
  }

  /** @deprecated The old name of {@link cancelRequests} ("abandoned" is the extension's word for a hold that ran out). */
  abandon(reason: string): void {
    this.cancelRequests(reason);
  }

  /**
   * Resolves once the store holds the local file's committed state (its active header and every
   * block it references), or the store failed (see `status.lastError`).
   */
  async flush(): Promise<void> {
    const ledger = this.#core.ledger;
    for (let attempt = 0; attempt < 5; attempt++) {
      await this.idle();
      if (!this.options.store || this.#stopped || this.options.fence?.mayWrite() === false) return;
      const local = readFileInfo(this.options.dbPath);
      const published = ledger.published?.manifest.generation;
      if (!local || (local.generation === published && !ledger.behind)) return;
      if (published !== undefined && local.generation < published) return; // reconcile's business, not ours
      const done = new Promise<boolean>((resolve) => {
        this.#run(() => catchUp(this.#core, local.generation).then(resolve, (error) => {
          resolve(false);
          throw error;
        }));
      });
      if (!await done && ledger.storeFailing) return;
    }
  }

  /**
   * Resolves true once every commit that DuckDB made durable locally before the call is in the store:
   * in a WAL frame, or in a generation. False when it cannot be (frames stopped until the next
   * checkpoint, see `status.framesStopped`; local-only; the replicator stopped): a caller that needs
   * durability then checkpoints and calls `flush()`. Concurrent callers share one frame (group commit).
   */
  async flushWal(): Promise<boolean> {
    const wal = this.#core.wal;
    if (!wal || this.#stopped) return false;
    this.#tick(); // the announcements of every commit before this call are in the ring or the socket now
    return await wal.flush();
  }

  /** Resolves when the queue is empty and nothing is being shipped. */
  async idle(): Promise<void> {
    for (;;) {
      this.#tick();
      if (!this.#working && this.#queue.length === 0) return;
      await new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
    }
  }

  /**
   * Reconciles a quiescent local file (before DuckDB opens it) with the store's last generation:
   * the same generation is consistent by construction (blocks the committed header references are
   * never rewritten while it is active); a newer local generation, or a database the store has no
   * generation of yet, ships every block whose bytes differ as a new generation; an older one or
   * another database is refused. `live`: DuckDB writes the file meanwhile (a sidecar started again);
   * what differs is carried and shipped by the replicator's own passes, and this returns at once.
   */
  async reconcile(options: { live?: boolean } = {}): Promise<{ shippedGeneration: number | null }> {
    return await reconcile(this.#core, options);
  }

  #tick(): void {
    const native = this.options.native;
    // Every event there is (a bulk insert's blocks can take more than one batch): flushWal() relies on it.
    const events: RingEvent[] = [];
    for (;;) {
      const batch = native.drain();
      events.push(...batch);
      if (batch.length < 1024) break;
    }
    for (const event of events) {
      if (event.type >= L.HADUCK_EVENT_WAL_BLOCKS && event.type <= L.HADUCK_EVENT_WAL_RESET) {
        this.#walEvent(event);
        continue;
      }
      if (event.type === L.HADUCK_EVENT_HOLD_WAITING && event.fileId === this.#fileId) this.#holdWaiting(event.a);
      if (event.type !== L.HADUCK_EVENT_GENERATION_READY) continue;
      if (this.#fileId === undefined && native.filePath(event.fileId) === this.options.dbPath) this.#fileId = event.fileId;
      if (event.fileId === this.#fileId) this.#enqueue(event.a);
    }
    if (native.takeOverflow()) {
      this.#core.wal?.onOverflow();
      // Events were dropped; the extension's pending list still has every generation. The file id may
      // not be known yet (its first event was among the dropped ones): learn it from the path.
      for (const seq of native.pendingGenerations()) {
        const info = native.generationInfo(seq);
        if (!info) continue;
        if (this.#fileId === undefined && native.filePath(info.fileId) === this.options.dbPath) this.#fileId = info.fileId;
        if (info.fileId === this.#fileId) this.#enqueue(seq);
      }
      this.#queue.sort((a, b) => (a < b ? -1 : 1));
    }
    void this.#core.wal?.tick();
    if (!this.#working && this.#queue.length > 0) this.#run(() => this.#drainQueue());
    else if (!this.#working) for (const wake of this.#idleWaiters.splice(0)) wake();
  }

  /** A WAL announcement: for our database (the events carry the database's file id), the shipper's. */
  #walEvent(event: RingEvent): void {
    if (!this.#core.wal) return;
    if (this.#fileId === undefined && this.options.native.filePath(event.fileId) === this.options.dbPath) {
      this.#fileId = event.fileId;
    }
    if (event.fileId === this.#fileId) this.#core.wal.onEvent(event);
  }

  #enqueue(seq: bigint): void {
    if (this.#seen.has(seq)) return;
    this.#core.waitingSince ??= performance.now();
    this.#seen.add(seq);
    this.#queue.push(seq);
  }

  /**
   * DuckDB is about to write a newer header and waits for generation `seq`. If we are still busy
   * with an earlier one, we could not read `seq` before the hold runs out anyway: release it now,
   * unread, and carry its blocks into the next generation (whose event follows the header being
   * written). DuckDB then waits for our local reads only, never for our uploads.
   */
  #holdWaiting(seq: bigint): void {
    const index = this.#queue.indexOf(seq);
    if (!this.#working || index < 0) return; // idle (it ships next) or being staged now (the hold is for that)
    this.#queue.splice(index, 1);
    this.#seen.delete(seq);
    const native = this.options.native;
    const info = native.generationInfo(seq);
    if (info) {
      const dirty = native.generationBlocks(seq, info.blockCount);
      markWritten(this.#core, dirty, info);
      carryGeneration(this.#core, dirty, info);
      this.#core.status.generationsDeferred++;
    }
    void native.release(seq);
  }

  /** Runs one piece of work at a time; when it ends, goes on with the queue or wakes the idle waiters. */
  #run(work: () => Promise<unknown>): void {
    this.#working = work().catch((error) => this.#fail(`Replication of ${this.options.dbKey} stopped a pass: ` +
      `${(error as Error)?.message ?? String(error)}`)).then(() => {
      this.#working = undefined;
      if (this.#queue.length > 0) this.#tick();
      else for (const wake of this.#idleWaiters.splice(0)) wake();
    });
  }

  #fail(message: string): void {
    const status = this.#core.status;
    status.errors++;
    status.lastError = message;
    status.lastErrorTime = new Date().toISOString();
  }

  async #drainQueue(): Promise<void> {
    while (this.#queue.length > 0) {
      const seq = this.#queue.shift()!;
      this.#seen.delete(seq);
      await shipGeneration(this.#core, seq);
    }
  }

  #scheduleCatchUp(): void {
    if (this.#stopped || this.#catchUpTimer || this.options.catchUpDelayMs === 0) return;
    const delayMs = this.#catchUpDelayMs;
    this.#catchUpDelayMs = Math.min(delayMs * 2, this.options.catchUpDelayMaxMs);
    this.#catchUpTimer = setTimeout(() => this.#catchUpDue(), delayMs);
  }

  #catchUpDue(): void {
    this.#catchUpTimer = undefined;
    const ledger = this.#core.ledger;
    if (this.#stopped || !ledger.behind) return;
    if (this.#working || this.#queue.length > 0) {
      // Checkpoints keep coming: try again as soon as the queue is empty, without backing off further.
      this.#catchUpTimer = setTimeout(() => this.#catchUpDue(), this.options.tickMs);
      return;
    }
    const generation = ledger.carriedGeneration;
    if (generation !== undefined) this.#run(() => catchUp(this.#core, generation));
  }
}
