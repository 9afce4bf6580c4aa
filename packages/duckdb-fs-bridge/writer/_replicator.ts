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
 * write refused or with its answer lost) gives its blocks back to the position's carried set, and
 * they ship in the next generation or the catch-up, whichever comes first.
 */
import { PreconditionFailedError } from "@haduck/s3-block-store";
import { statSync } from "node:fs";
import {
  buildManifest,
  encodeLatestHint,
  encodeManifest,
  formatCommitPosition,
  hex,
  latestKey,
  latestManifest,
  loadManifest,
  manifestKey,
  ReplicationError,
  sha256,
  type Shipment,
  walkFrames,
  writePages,
} from "@haduck/duckblock";
import { READ_RUN_BLOCKS_MAX, readAndUpload } from "./_segment_uploader.ts";
import {
  type BlockSource,
  openFileSource,
  ReadRaceError,
  readFileInfo,
  stageBlocks,
  type StagedSource,
} from "../local/_block_source.ts";
import { newIdentity, readIdentity, writeIdentity } from "../local/_identity.ts";
import { agreeWithStore } from "./_reconcile.ts";
import { Position, type Published } from "./_position.ts";
import { ReusableUploads, type UploadedBlock, withReused } from "./_reusable_uploads.ts";
import { RING_LAYOUT as L, type RingEvent } from "../native/_ring_layout.ts";
import { WalShipper } from "../wal/_wal_shipper.ts";
import { leftoverWal, type OrphanPolicy, shipLeftoverWal, storedFramesMatchWal } from "./_wal_leftover.ts";
import { acquireReplicatorLock, type ReplicatorLock } from "../local/_replicator_lock.ts";
import {
  type GenerationShipped,
  initialStatus,
  RECENT_GENERATIONS_MAX,
  type ReplicatorOptions,
  type ReplicatorStatus,
} from "./_replicator_types.ts";

export {
  type FrameShipped,
  type GenerationShipped,
  RECENT_GENERATIONS_MAX,
  type ReplicatorOptions,
  type ReplicatorStatus,
  type UploadProgress,
} from "./_replicator_types.ts";

/** How one attempt to ship blocks ended. */
type Outcome = "published" | "race" | "store" | "local";

export class Replicator {
  readonly options: Required<Omit<ReplicatorOptions, "store" | "onGeneration" | "onUploadProgress" | "onFrame" |
    "fence">> &
    ReplicatorOptions;
  readonly #status: ReplicatorStatus;
  readonly #position = new Position();
  /** What passes that did not publish uploaded, reusable until DuckDB writes those blocks again. */
  readonly #reusable = new ReusableUploads();
  #fileId: number | undefined;
  #queue: bigint[] = [];
  #seen = new Set<bigint>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #working: Promise<void> | undefined;
  #idleWaiters: (() => void)[] = [];
  #catchUpTimer: ReturnType<typeof setTimeout> | undefined;
  #catchUpDelayMs = 0;
  #stopped = false;
  /** haduck's identity of the database (beside it in `<db>.haduck-identity`), set by reconcile. */
  #identity: string | undefined;
  /** When the oldest change not yet committed was announced (performance.now()). */
  #waitingSince: number | undefined;
  /** Where generations are staged during the hold; allocated on first use, reused. */
  #stagingMemory: Uint8Array | undefined;
  /** reconcile() agreed the local file is this database: only then may stop() ship what the file holds. */
  #reconciled = false;
  /**
   * reconcile() runs while DuckDB may write (a sidecar started again): a file that keeps changing,
   * or a store that fails, carries every block instead of failing; the generations that follow ship them.
   */
  #live = false;
  /** This process replicates the file (see _replicator_lock.ts); held from start() to the end of stop(). */
  #lock: ReplicatorLock | undefined;
  /** The iteration whose lost WAL marks a live reconcile rebuilt (a sidecar says so in its `ready`). */
  #marksRebuilt: number | undefined;
  /** Aborted when stop()'s deadline passes: every store request in flight ends at once. */
  readonly #abort = new AbortController();
  /** WAL frames between checkpoints (undefined: local-only, or walFlushMs 0). */
  readonly #wal: WalShipper | undefined;

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
    if (options.store && this.options.walFlushMs > 0) {
      this.#wal = new WalShipper({ store: options.store, dbKey: options.dbKey, dbPath: options.dbPath,
        walFlushMs: this.options.walFlushMs, framesInFlight: this.options.walFramesInFlight, blockChecksumOk: (block) => options.native.blockChecksumOk(block),
        signal: this.#abort.signal, onError: (message) => this.#fail(message), onFrame: options.onFrame,
        fence: options.fence });
    }
    if (!Number.isSafeInteger(this.options.holdMs) || this.options.holdMs < 0 || this.options.holdMs > 3_600_000) {
      throw new RangeError(`Invalid holdMs ${this.options.holdMs}: expected 0 to 3600000 ms`);
    }
    this.#catchUpDelayMs = this.options.catchUpDelayMs;
    this.#status = initialStatus(options.store ? "replicating" : "local-only");
  }

  get status(): ReplicatorStatus {
    const waiting = this.#queue.length > 0 || this.#position.behind || this.#working !== undefined;
    return { ...this.#status, generationsPending: this.#queue.length, blocksCarried: this.#position.carried.count,
      lagMs: waiting && this.#waitingSince !== undefined ? performance.now() - this.#waitingSince : 0,
      recent: [...this.#status.recent], ...this.#wal?.status };
  }

  /**
   * Where the store stands for this database, as a token that orders commits: `epoch:generation:walBytes`
   * (the epoch is 0 until the cluster's leases; walBytes: the WAL bytes of that generation in frames).
   */
  get position(): string {
    const generation = this.#position.published?.manifest.generation ?? -1;
    const chain = this.#wal?.chain;
    return formatCommitPosition({ epoch: this.options.fence?.epoch ?? 0, generation,
      walBytes: chain?.iteration === generation ? chain.walShipped : 0 });
  }

  /** The generation WAL frames chain to and the WAL bytes they hold (undefined: no frames). */
  get walChain(): { iteration: number; walShipped: number } | undefined {
    return this.#wal?.chain;
  }

  /**
   * The WAL size of the newest commit of `iteration` announced so far (the extension's events are
   * drained first), or undefined when no commit of that iteration was announced: what a `flush()`
   * called now must see shipped.
   */
  walSynced(iteration: number): number | undefined {
    this.#tick();
    return this.#wal?.syncedSize(iteration);
  }

  /** The iteration whose lost WAL marks reconcile rebuilt while DuckDB wrote, if it did (see `reconcile`). */
  get marksRebuilt(): number | undefined {
    return this.#marksRebuilt;
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
        this.#position.publish({ manifest: latest.manifest, sha256: latest.sha256 });
        this.#wal?.onPublished(latest.manifest.generation, Buffer.from(latest.sha256, "hex"));
        this.#status.lastGeneration = latest.manifest.generation;
        this.#status.lastGenerationTime = latest.manifest.createdAt;
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
      if (this.#reconciled && mayWrite) await this.flush();
      if (this.#wal && this.#reconciled && mayWrite &&
        readFileInfo(this.options.dbPath)?.iteration === this.#position.published?.manifest.generation) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const answered = await Promise.race([this.flushWal().then(() => true),
          new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), 5_000))]);
        clearTimeout(timer);
        // Unless the store is too slow to answer a frame: then reading the whole file for more would not help.
        if (options.quiescent && answered) await this.#shipUnannouncedWal();
      }
    } finally {
      clearTimeout(deadline);
      this.#stopped = true;
      this.#wal?.release();
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
  abandon(reason: string): void {
    this.#abort.abort(new Error(reason));
  }

  /**
   * Resolves once the store holds the local file's committed state (its active header and every
   * block it references), or the store failed (see `status.lastError`).
   */
  async flush(): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      await this.idle();
      if (!this.options.store || this.#stopped || this.options.fence?.mayWrite() === false) return;
      const local = readFileInfo(this.options.dbPath);
      const published = this.#position.published?.manifest.generation;
      if (!local || (local.iteration === published && !this.#position.behind)) return;
      if (published !== undefined && local.iteration < published) return; // reconcile's business, not ours
      const done = new Promise<boolean>((resolve) => {
        this.#run(() => this.#catchUp(local.iteration).then(resolve, (error) => {
          resolve(false);
          throw error;
        }));
      });
      if (!await done && this.#position.storeFailing) return;
    }
  }

  /**
   * Resolves true once every commit that DuckDB made durable locally before the call is in the store:
   * in a WAL frame, or in a generation. False when it cannot be (frames stopped until the next
   * checkpoint, see `status.framesStopped`; local-only; the replicator stopped): a caller that needs
   * durability then checkpoints and calls `flush()`. Concurrent callers share one frame (group commit).
   */
  async flushWal(): Promise<boolean> {
    if (!this.#wal || this.#stopped) return false;
    this.#tick(); // the announcements of every commit before this call are in the ring or the socket now
    return await this.#wal.flush();
  }

  /** Resolves when the queue is empty and nothing is being shipped. */
  async idle(): Promise<void> {
    for (;;) {
      this.#tick();
      if (!this.#working && this.#queue.length === 0) return;
      await new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
    }
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
      this.#wal?.onOverflow();
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
    void this.#wal?.tick();
    if (!this.#working && this.#queue.length > 0) this.#run(() => this.#drainQueue());
    else if (!this.#working) for (const wake of this.#idleWaiters.splice(0)) wake();
  }

  /** A WAL announcement: for our database (the events carry the database's file id), the shipper's. */
  #walEvent(event: RingEvent): void {
    if (!this.#wal) return;
    if (this.#fileId === undefined && this.options.native.filePath(event.fileId) === this.options.dbPath) {
      this.#fileId = event.fileId;
    }
    if (event.fileId === this.#fileId) this.#wal.onEvent(event);
  }

  #enqueue(seq: bigint): void {
    if (this.#seen.has(seq)) return;
    this.#waitingSince ??= performance.now();
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
      this.#written(dirty, info);
      this.#carryGeneration(dirty, info);
      this.#status.generationsDeferred++;
    }
    void native.release(seq);
  }

  /** DuckDB wrote a generation's blocks: what passes uploaded of them earlier is stale. */
  #written(dirty: number[], info: { needsFullScan: boolean }): void {
    if (info.needsFullScan) this.#reusable.writtenAll();
    else this.#reusable.written(dirty);
  }

  /** Carries a generation's own blocks (all of them when it needs a full scan, or nothing was published yet). */
  #carryGeneration(blocks: number[], info: { iteration: number; headerBlockCount: number; needsFullScan: boolean }) {
    const all = (info.needsFullScan || !this.#position.published) && info.headerBlockCount > 0;
    this.#position.carry(all ? this.#allBlocks(info.headerBlockCount) : blocks.filter((b) => b < info.headerBlockCount),
      info.iteration);
  }

  #allBlocks(count: number): number[] {
    return Array.from({ length: count }, (_, block) => block);
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
    this.#status.errors++;
    this.#status.lastError = message;
    this.#status.lastErrorTime = new Date().toISOString();
  }

  async #drainQueue(): Promise<void> {
    while (this.#queue.length > 0) {
      const seq = this.#queue.shift()!;
      this.#seen.delete(seq);
      await this.#ship(seq);
    }
  }

  /** One generation, under the hold: stage its blocks, release, then upload and publish. */
  async #ship(seq: bigint): Promise<void> {
    const native = this.options.native;
    const started = performance.now();
    const info = native.generationInfo(seq);
    if (!info) return;
    const dirty = native.generationBlocks(seq, info.blockCount);
    this.#written(dirty, info);
    if (!this.options.store) {
      await native.release(seq);
      this.#waitingSince = undefined;
      this.#status.generationsCommitted++;
      this.#status.lastGeneration = info.iteration;
      this.#status.lastGenerationTime = new Date().toISOString();
      return;
    }
    if (this.#position.storeFailing) {
      // Re-sending every carried block at each checkpoint of an outage only burns bandwidth: carry
      // this generation too and let the catch-up find out, with one small request, when to resume.
      this.#carryGeneration(dirty, info);
      await native.release(seq);
      this.#status.generationsDeferred++;
      this.#scheduleCatchUp();
      return;
    }
    const wanted = this.#position.take(dirty);
    if ((info.needsFullScan || !this.#position.published) && info.headerBlockCount > 0) {
      wanted.markRange(0, info.headerBlockCount - 1); // a first or rescanned generation ships every block
    }
    const blocks = [...wanted.blocks()].filter((block) => block < info.headerBlockCount);
    const { toRead, reused } = this.#reusable.split(blocks);
    this.#reusable.beginPass();
    let source: StagedSource;
    try {
      this.#stagingMemory ??= new Uint8Array(this.options.stagingMemoryBytesMax);
      source = stageBlocks({ dbPath: this.options.dbPath, iteration: info.iteration, blocks: toRead,
        memory: this.#stagingMemory, runBlocksMax: READ_RUN_BLOCKS_MAX,
        blockChecksumOk: (block) => native.blockChecksumOk(block),
        deadline: performance.now() + this.options.holdMs / 2 });
    } catch (error) {
      this.#giveBack(blocks, info.iteration, error instanceof ReadRaceError ? "race" : "local", error);
      await native.release(seq);
      return;
    }
    // 1: the hold was in force for every read. DuckDB's next header waited for our reads only.
    let released: number;
    try {
      released = await native.release(seq);
    } catch (error) {
      released = -1;
      this.#fail(`Cannot release generation ${info.iteration} of ${this.options.dbKey}: ${(error as Error).message}`);
    }
    if (released !== 1 || source.blocks.length === 0 && toRead.length > 0) {
      source.close();
      this.#giveBack(blocks, info.iteration, "race");
      return;
    }
    if (source.blocks.length < toRead.length) {
      // Staging ran out of time: upload what it read, for the next pass to reuse, and carry the generation.
      this.#status.generationsDeferred++;
      await this.#shipFrom(info.iteration, blocks, { source, toRead: source.blocks, reused: [] }, started, () => false);
      return;
    }
    await this.#shipFrom(info.iteration, blocks, { source, toRead, reused }, started, undefined, info.createdUnixMs);
  }

  /**
   * Publishes generation `iteration`, which consists of `blocks`: uploads `toRead` from `source`, and
   * takes the rest from uploads of earlier passes (`reused`). On any failure gives every block back
   * to the position, and keeps what was uploaded for the next pass. `readsDone` (the catch-up's
   * seqlock) may say the reads were torn.
   */
  async #shipFrom(iteration: number, blocks: number[],
    pass: { source: BlockSource; toRead: readonly number[]; reused: readonly UploadedBlock[] }, started: number,
    readsDone?: () => boolean, checkpointedUnixMs?: number): Promise<boolean> {
    const { source } = pass;
    let outcome: Outcome = "published";
    let failure: unknown;
    try {
      await this.#resolveUncertain();
    } catch (error) {
      source.close();
      this.#giveBack(blocks, iteration, "store", error);
      return false;
    }
    if (this.#position.published?.manifest.generation === iteration) { // a lost answer had landed after all
      source.close();
      return true;
    }
    try {
      const result = await readAndUpload({ store: this.options.store!, dbKey: this.options.dbKey, iteration,
        blocks: pass.toRead, source, readsDone, previous: this.#position.published,
        uploadedBefore: this.#reusable.byContent, signal: this.#abort.signal, segmentBytesMax: this.options.segmentBytesMax,
        uploadsInFlightMax: this.options.uploadsInFlightMax, compress: this.options.compress,
        onProgress: this.#progress(iteration) });
      if (result.uploaded) this.#reusable.keep([...result.uploaded, ...result.matched]);
      if (result.uploadError) [outcome, failure] = ["store", result.uploadError];
      else if (!result.shipment) outcome = "race";
      else if (!await this.#publish(iteration, withReused(result.shipment, [...pass.reused, ...result.matched]),
        blocks.length, started,
        checkpointedUnixMs)) {
        outcome = "store";
      }
    } catch (error) {
      // Thrown by the reads (the uploads' and the store's failures are returned): the local file.
      [outcome, failure] = [error instanceof ReadRaceError ? "race" : "local", error];
    } finally {
      source.close();
    }
    if (outcome !== "published") this.#giveBack(blocks, iteration, outcome, failure);
    return outcome === "published";
  }

  /** An attempt that did not publish: its blocks are carried, and the catch-up or the next generation ships them. */
  #giveBack(blocks: number[], iteration: number, outcome: Exclude<Outcome, "published">, failure?: unknown): void {
    this.#position.giveBack(blocks, iteration);
    this.#status.generationsAbandoned++;
    if (outcome === "store") this.#position.storeFailing = true;
    if (failure !== undefined && outcome !== "race") {
      const where = outcome === "local" ? `cannot read ${this.options.dbPath}` : (failure as Error).message;
      this.#fail(`Cannot ship generation ${iteration} of ${this.options.dbKey}: ` +
        (outcome === "local" ? `${where}: ${(failure as Error).message}` : where));
    }
    this.#scheduleCatchUp();
  }

  #progress(iteration: number) {
    const report = this.options.onUploadProgress;
    return report && ((blocksDone: number, blocksTotal: number, bytesSent: number) =>
      report({ generation: iteration, blocksDone, blocksTotal, bytesSent }));
  }

  #scheduleCatchUp(): void {
    if (this.#stopped || this.#catchUpTimer || this.options.catchUpDelayMs === 0) return;
    const delayMs = this.#catchUpDelayMs;
    this.#catchUpDelayMs = Math.min(delayMs * 2, this.options.catchUpDelayMaxMs);
    this.#catchUpTimer = setTimeout(() => this.#catchUpDue(), delayMs);
  }

  #catchUpDue(): void {
    this.#catchUpTimer = undefined;
    if (this.#stopped || !this.#position.behind) return;
    if (this.#working || this.#queue.length > 0) {
      // Checkpoints keep coming: try again as soon as the queue is empty, without backing off further.
      this.#catchUpTimer = setTimeout(() => this.#catchUpDue(), this.options.tickMs);
      return;
    }
    const iteration = this.#position.carriedIteration;
    if (iteration !== undefined) this.#run(() => this.#catchUp(iteration));
  }

  /**
   * Ships what the store lacks at `iteration` without waiting for another checkpoint, as long as
   * the file still holds that header. The hold does not protect these reads, so they are checked
   * like a seqlock: DuckDB overwrites a block the active header references only after writing a
   * newer header, so if the header is unchanged after every read, every read saw committed bytes;
   * otherwise the newer generation's event carries them. The carried blocks are what changed since
   * the last manifest when they were carried at `iteration`; otherwise every block is compared.
   */
  async #catchUp(iteration: number, options: { everyBlock?: boolean } = {}): Promise<boolean> {
    const store = this.options.store!;
    this.#status.catchUpAttempts++;
    if (this.#position.storeFailing) {
      try {
        await store.head(latestKey(this.options.dbKey), { signal: this.#abort.signal }); // one small request
      } catch (error) {
        this.#fail(`Cannot reach ${store.url} for ${this.options.dbKey}: ${(error as Error).message}`);
        this.#scheduleCatchUp();
        return false;
      }
    }
    const local = readFileInfo(this.options.dbPath);
    if (local?.iteration !== iteration) return false; // a newer generation's event carries the blocks
    const complete = !options.everyBlock && this.#position.published &&
      this.#position.carriedIteration === iteration;
    const taken = this.#position.take([]);
    const blocks = (complete ? [...taken.blocks()] : this.#allBlocks(local.blockCount))
      .filter((block) => block < local.blockCount);
    const { toRead, reused } = this.#reusable.split(blocks);
    this.#reusable.beginPass();
    let source: BlockSource;
    try {
      source = openFileSource(this.options.dbPath, iteration, toRead,
        (block) => this.options.native.blockChecksumOk(block));
    } catch (error) {
      this.#giveBack(blocks, iteration, error instanceof ReadRaceError ? "race" : "local", error);
      return false;
    }
    const unchanged = () => readFileInfo(this.options.dbPath)?.iteration === iteration;
    return await this.#shipFrom(iteration, blocks, { source, toRead, reused }, performance.now(), unchanged);
  }

  /**
   * Reconciles a quiescent local file (before DuckDB opens it) with the store's last generation:
   * the same iteration is consistent by construction (blocks the committed header references are
   * never rewritten while it is active); a newer local iteration, or a database the store has no
   * generation of yet, ships every block whose bytes differ as a new generation; an older one or
   * another database is refused. `live`: DuckDB writes the file meanwhile (a sidecar started again);
   * what differs is carried and shipped by the replicator's own passes, and this returns at once.
   */
  async reconcile(options: { live?: boolean } = {}): Promise<{ shippedGeneration: number | null }> {
    this.#live = options.live ?? false;
    const store = this.options.store;
    const previous = this.#position.published?.manifest;
    const local = readFileInfo(this.options.dbPath);
    const sidecar = await readIdentity(this.options.dbPath);
    if (!store) return { shippedGeneration: null }; // local-only: nothing to agree with
    if (!previous) {
      this.#identity = (sidecar ?? await writeIdentity(this.options.dbPath, newIdentity())).identity;
      if (!local) {
        this.#reconciled = true;
        return { shippedGeneration: null };
      }
      // A file new to the store may have a WAL too (a crash before haduck knew it, or local-only use):
      // its optimistic blocks lie past the header's block count, which the first generation stops at.
      const shipped = await this.#shipWhole(local.iteration);
      await this.#reconcileLeftoverWal();
      return shipped;
    }
    this.#identity = await agreeWithStore({ dbPath: this.options.dbPath, dbKey: this.options.dbKey, storeUrl: store.url,
      previous, local, sidecarIdentity: sidecar?.identity });
    if (local!.iteration === previous.generation) {
      this.#reconciled = true;
      if (this.#live) await this.#rebuildLostMarks();
      else {
        await this.#reconcileLeftoverWal();
        await this.#continueStoredChain();
      }
      return { shippedGeneration: null };
    }
    const shipped = await this.#shipWhole(local!.iteration);
    await this.#reconcileLeftoverWal();
    return shipped;
  }

  /**
   * A WAL an earlier process left beside the quiescent file (a crash, or an exit without checkpoint):
   * its commits reference blocks DuckDB wrote after the published header, which this process never
   * saw written. They are found by comparing the file with the manifest; the next generation carries
   * them (without that it would inherit the manifest's old bytes for blocks its header needs), and
   * the WAL's commits beyond the stored frames ship as frames, before DuckDB replays them. Not while
   * DuckDB writes (`live`): then the extension's own bitmap still has every mark since the header.
   */
  async #reconcileLeftoverWal(): Promise<void> {
    const published = this.#position.published;
    if (this.#live || !published) return;
    const leftover = leftoverWal(this.options.dbPath, published);
    if (!leftover) return;
    if (!leftover.differing) {
      throw new ReplicationError("INTEGRITY", `Cannot compare ${this.options.dbPath} with generation ` +
        `${published.manifest.generation} of ${this.options.dbKey}: ${leftover.readError}; check the file's permissions`);
    }
    this.#position.frame(leftover.differing);
    if (!this.#wal) return;
    const problem = await shipLeftoverWal({ dbPath: this.options.dbPath, store: this.options.store!,
      dbKey: this.options.dbKey, published, shipper: this.#wal, leftover, orphans: this.#orphanPolicy() });
    if (problem) this.#fail(problem);
  }

  /** At a start: orphans past the stored chain may go while this writer may write (see OrphanPolicy). */
  #orphanPolicy(): OrphanPolicy {
    const fence = this.options.fence;
    return { epoch: fence?.epoch ?? 0, mayWrite: () => !fence || fence.mayWrite() };
  }

  /**
   * Started while DuckDB writes (the last replicator died), at the published generation's own
   * iteration: the WAL marks the dead one was told died with it, so without this frames would stop
   * until the next checkpoint, and the next generation would lack the blocks only frames hold. The
   * file is compared with the manifest (a block being written meanwhile reads as differing, or is
   * marked again by the extension after this started: nothing drains those marks until we are
   * ready); those blocks are carried into the next generation and ride in the next frame. Then
   * `ready rebuilt <iteration>` tells the extension the marks are whole (`marksRebuilt`).
   */
  async #rebuildLostMarks(): Promise<void> {
    const published = this.#position.published!;
    const generation = published.manifest.generation;
    const manifestSha256 = Buffer.from(published.sha256, "hex");
    const wal = statSync(`${this.options.dbPath}.wal`, { throwIfNoEntry: false });
    if (!wal?.size) {
      // No commit since the header: the extension drains WAL marks only at a WAL sync, so none were
      // lost; frames start from the manifest.
      this.#wal?.resumeChain(generation, undefined, manifestSha256, []);
      this.#marksRebuilt = this.#wal ? generation : undefined;
      return;
    }
    const leftover = leftoverWal(this.options.dbPath, published);
    if (!leftover?.differing) return; // unreadable now: frames wait for the next header
    this.#position.frame(leftover.differing);
    if (!this.#wal) return;
    try {
      const walk = await storedFramesMatchWal({ dbPath: this.options.dbPath, store: this.options.store!,
        dbKey: this.options.dbKey, published, orphans: this.#orphanPolicy() });
      if ("problem" in walk) throw new Error(walk.problem);
      this.#wal.resumeChain(generation, walk.last, manifestSha256, leftover.differing);
      this.#marksRebuilt = generation;
    } catch (error) {
      this.#fail(`WAL frames of generation ${published.manifest.generation} of ${this.options.dbKey} wait for the ` +
        `next checkpoint: ${(error as Error).message}`);
    }
  }

  /**
   * The file is the published generation with no WAL (a promoted node's restore of a generation
   * whose frames hold no commits: a new leader's fence, frames of blocks only): frames go on after
   * the stored ones instead of colliding with them. Frames that hold commits the file lacks are
   * left alone: the next frame collides with them, and the next checkpoint carries on.
   */
  async #continueStoredChain(): Promise<void> {
    const published = this.#position.published;
    const chain = this.#wal?.chain;
    if (!published || !chain || chain.iteration !== published.manifest.generation || chain.walShipped > 0) return;
    if (statSync(`${this.options.dbPath}.wal`, { throwIfNoEntry: false })?.size) return;
    const walk = await walkFrames({ store: this.options.store!, dbKey: this.options.dbKey,
      generation: published.manifest.generation, manifestSha256: published.sha256 });
    if (walk.last && walk.last.walEnd === 0) {
      this.#wal!.resumeChain(published.manifest.generation, walk.last, Buffer.from(published.sha256, "hex"), []);
    }
  }

  /** At stop, with the file quiescent: commits in the WAL that no frame holds (never announced) ship as at a restart. */
  async #shipUnannouncedWal(): Promise<void> {
    const published = this.#position.published;
    const chain = this.#wal?.chain;
    if (!published || !chain || chain.iteration !== published.manifest.generation) return;
    const wal = statSync(`${this.options.dbPath}.wal`, { throwIfNoEntry: false });
    if (!wal || wal.size <= chain.walShipped) return;
    const leftover = leftoverWal(this.options.dbPath, published);
    if (!leftover) return;
    // Frames of ours may still be in flight: nothing is removed here.
    const problem = await shipLeftoverWal({ dbPath: this.options.dbPath, store: this.options.store!,
      dbKey: this.options.dbKey, published, shipper: this.#wal!, leftover,
      orphans: { ...this.#orphanPolicy(), mayWrite: () => false } });
    if (problem) this.#fail(problem);
  }

  /** Ships every block of the quiescent file that differs from the last manifest; throws when it cannot. */
  async #shipWhole(iteration: number): Promise<{ shippedGeneration: number | null }> {
    if (this.#live) {
      // DuckDB writes meanwhile: the pass must be one of the replicator's own, one at a time with
      // the generations' passes (ReusableUploads and the hold rely on it), so it is queued, not run here.
      const local = readFileInfo(this.options.dbPath);
      this.#position.carry(this.#allBlocks(local?.blockCount ?? 0), local?.iteration ?? iteration);
      this.#reconciled = true;
      const at = local?.iteration ?? iteration;
      if (!this.#working && this.#queue.length === 0) this.#run(() => this.#catchUp(at, { everyBlock: true }));
      else this.#scheduleCatchUp();
      return { shippedGeneration: null };
    }
    await this.#catchUp(iteration, { everyBlock: true });
    if (this.#position.published?.manifest.generation !== iteration) {
      throw new ReplicationError("INTEGRITY", this.#status.lastError ?? `Cannot ship generation ${iteration} of ` +
        `${this.options.dbKey}: the file changed while it was read; retry`);
    }
    clearTimeout(this.#catchUpTimer);
    this.#catchUpTimer = undefined;
    this.#reconciled = true;
    return { shippedGeneration: iteration };
  }

  /**
   * A manifest write whose answer was lost may have landed. Before a pass decides which blocks are
   * unchanged (against the newest manifest), find out: adopt it if it is there and ours.
   */
  async #resolveUncertain(): Promise<void> {
    const generation = this.#position.uncertainGeneration;
    if (generation === undefined) return;
    const store = this.options.store!;
    if (!await store.head(manifestKey(this.options.dbKey, generation))) {
      this.#position.uncertainGeneration = undefined;
      return;
    }
    const loaded = await loadManifest(store, this.options.dbKey, generation);
    const ours = loaded.manifest.database.haduckIdentity === this.#identity &&
      loaded.manifest.previousManifestSha256 === (this.#position.published?.sha256 ?? null);
    if (!ours) {
      throw new ReplicationError("INTEGRITY", `Generation ${generation} of ${this.options.dbKey} in ${store.url} was ` +
        "written by another writer: stop the other writer, then `haduck verify`");
    }
    this.#adopt({ manifest: loaded.manifest, sha256: loaded.sha256 }, performance.now());
  }

  /**
   * Writes the block map pages that changed, then the manifest create-only (every segment is durable
   * by now), then the latest hint.
   */
  async #publish(iteration: number, shipment: Shipment, blocksConsidered: number, started: number,
    checkpointedUnixMs?: number): Promise<boolean> {
    const store = this.options.store!;
    const previous = this.#position.published;
    const fence = this.options.fence;
    const manifest = buildManifest({ dbKey: this.options.dbKey, generation: iteration, shipment, previous,
      blocksConsidered, haduckIdentity: this.#identity, checkpointedUnixMs, writerEpoch: fence?.epoch });
    const { bytes, pages, newPages } = encodeManifest(manifest, previous?.manifest, crypto.randomUUID().slice(0, 8));
    manifest.pages = pages;
    try {
      await writePages(store, newPages, this.#abort.signal);
    } catch (error) {
      // Nothing names these pages yet: the generation is simply not published (gc takes them).
      this.#fail(`Cannot publish generation ${iteration} of ${this.options.dbKey}: ${(error as Error).message}`);
      return false;
    }
    if (fence && !fence.mayWrite()) {
      this.#fail(`Not publishing generation ${iteration} of ${this.options.dbKey}: this node's lease (epoch ` +
        `${fence.epoch}) ran out; its commits stay in the local file`);
      return false;
    }
    try {
      await store.put(manifestKey(this.options.dbKey, iteration), bytes, { ifNoneMatch: "*",
        signal: fence ? AbortSignal.any([this.#abort.signal, fence.signal()]) : this.#abort.signal });
    } catch (error) {
      // Refused, or written with the answer lost: find out before the next pass (never guess).
      if (!(error instanceof PreconditionFailedError)) this.#position.uncertainGeneration = iteration;
      const message = `Cannot publish generation ${iteration} of ${this.options.dbKey}: ${(error as Error).message}`;
      this.#fail(message);
      // In a cluster another writer's manifest at our key means a newer epoch took over.
      if (error instanceof PreconditionFailedError) fence?.fenced(message);
      return false;
    }
    const digest = hex(sha256(bytes));
    this.#adopt({ manifest, sha256: digest }, started,
      bytes.byteLength + newPages.reduce((sum, page) => sum + page.bytes.byteLength, 0));
    try {
      if (fence && !fence.mayWrite()) throw new Error("this node's lease ran out");
      await store.put(latestKey(this.options.dbKey), encodeLatestHint({ generation: iteration, manifestSha256: digest }),
        { signal: fence?.signal() });
    } catch (error) {
      // A hint only (nothing reads it to restore): the generation is published all the same.
      this.#fail(`Cannot update ${latestKey(this.options.dbKey)}: ${(error as Error).message}`);
    }
    return true;
  }

  /** The store holds `published`: move the position and tell status and the caller. */
  #adopt(published: Published, started: number, metadataBytes = 0): void {
    const { manifest } = published;
    this.#position.publish(published);
    this.#reusable.clear();
    this.#wal?.onPublished(manifest.generation, Buffer.from(published.sha256, "hex"));
    this.#catchUpDelayMs = this.options.catchUpDelayMs;
    this.#status.catchUpAttempts = 0;
    this.#status.generationsCommitted++;
    this.#status.lastGeneration = manifest.generation;
    this.#status.lastGenerationTime = manifest.createdAt;
    this.#status.lastError = null;
    this.#status.blocksShipped += manifest.stats.blocksShipped;
    this.#status.bytesShipped += manifest.stats.bytesShipped + metadataBytes;
    this.#waitingSince = this.#queue.length > 0 || this.#position.behind ? performance.now() : undefined;
    const event: GenerationShipped = {
      generation: manifest.generation,
      time: manifest.createdAt,
      blocks: manifest.blocks.length,
      blocksShipped: manifest.stats.blocksShipped,
      bytesShipped: manifest.stats.bytesShipped + metadataBytes,
      durationMs: performance.now() - started,
    };
    this.#status.recent.push(event);
    if (this.#status.recent.length > RECENT_GENERATIONS_MAX) this.#status.recent.shift();
    try {
      this.options.onGeneration?.(event);
    } catch (error) {
      // The caller's callback failing says nothing about the store.
      this.#fail(`onGeneration threw for generation ${manifest.generation}: ${(error as Error)?.message ?? error}`);
    }
  }
}
