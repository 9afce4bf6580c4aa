/**
 * @module
 * `Replicator`: follows the extension's ring for one `haduck://` database and turns each
 * generation into segments plus a create-only manifest in the store.
 *
 * Per generation: read the header region and the dirty blocks straight from the database file,
 * skip blocks whose bytes did not change since the last manifest, compress, pack into
 * checksum-chained segments, upload them (bounded), then *release* the generation. The release
 * tells whether every read finished before DuckDB wrote its next header (the hold; see
 * docs/ARCHITECTURE.md). Only then, once the segments are durable, the manifest is written.
 * An abandoned or failed generation publishes nothing; its blocks are carried into the next one.
 */
import { DirtyBitmap } from "@haduck/dirty-tracker";
import { latestManifest } from "./_catalog.ts";
import { ReplicationError } from "./_errors.ts";
import { buildManifest, type Shipment } from "./_manifest_builder.ts";
import { readAndUpload, readFileInfo, type UploadPassResult } from "./_segment_uploader.ts";
import { identityPath, newIdentity, readIdentity, writeIdentity } from "./_identity.ts";
import { encodeManifest, hex, latestKey, type Manifest, manifestKey, sha256 } from "./_format.ts";
import { RING_LAYOUT as L } from "./_ring_layout.ts";
import {
  type GenerationShipped,
  RECENT_GENERATIONS_MAX,
  type ReplicatorOptions,
  type ReplicatorStatus,
} from "./_replicator_types.ts";

export {
  type GenerationShipped,
  RECENT_GENERATIONS_MAX,
  type ReplicatorOptions,
  type ReplicatorStatus,
  type UploadProgress,
} from "./_replicator_types.ts";

export class Replicator {
  readonly options: Required<Omit<ReplicatorOptions, "store" | "onGeneration" | "onUploadProgress">> &
    ReplicatorOptions;
  readonly #status: ReplicatorStatus;
  #fileId: number | undefined;
  #queue: bigint[] = [];
  #seen = new Set<bigint>();
  #carried = new DirtyBitmap();
  #previous: { manifest: Manifest; sha256: string } | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #working: Promise<void> | undefined;
  #idleWaiters: (() => void)[] = [];
  /** The iteration of the newest generation whose blocks are carried (failed or abandoned). */
  #carriedIteration: number | undefined;
  #catchUpTimer: ReturnType<typeof setTimeout> | undefined;
  #catchUpDelayMs = 0;
  #stopped = false;
  /** The last attempt failed: generations are carried, and only the catch-up's probe tries the store. */
  #storeFailing = false;
  /** haduck's identity of the database (beside it in `<db>.haduck-identity`), set by reconcile. */
  #identity: string | undefined;
  /** When the oldest generation not yet committed was announced (performance.now()). */
  #waitingSince: number | undefined;

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
    };
    this.#catchUpDelayMs = this.options.catchUpDelayMs;
    this.#status = {
      mode: options.store ? "replicating" : "local-only",
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
    };
  }

  get status(): ReplicatorStatus {
    const waiting = this.#queue.length > 0 || this.#carried.count > 0 || this.#working !== undefined;
    return { ...this.#status, generationsPending: this.#queue.length, blocksCarried: this.#carried.count,
      lagMs: waiting && this.#waitingSince !== undefined ? performance.now() - this.#waitingSince : 0,
      recent: [...this.#status.recent] };
  }

  /** Loads the last manifest (for chaining and skipping unchanged blocks) and starts following the ring. */
  async start(): Promise<void> {
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
        this.#previous = { manifest: latest.manifest, sha256: latest.sha256 };
        this.#status.lastGeneration = latest.manifest.generation;
        this.#status.lastGenerationTime = latest.manifest.createdAt;
      }
    }
    this.options.native.attach(this.options.holdMs);
    this.#timer = setInterval(() => this.#tick(), this.options.tickMs);
  }

  /** Waits until every generation announced so far is shipped (or abandoned), then stops. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#catchUpTimer);
    await this.idle();
    clearInterval(this.#timer);
    this.options.native.detach();
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
    for (const event of native.drain()) {
      if (event.type === L.HADUCK_EVENT_HOLD_WAITING && event.fileId === this.#fileId) this.#holdWaiting(event.a);
      if (event.type !== L.HADUCK_EVENT_GENERATION_READY) continue;
      if (this.#fileId === undefined && native.filePath(event.fileId) === this.options.dbPath) this.#fileId = event.fileId;
      if (event.fileId === this.#fileId && !this.#seen.has(event.a)) {
        this.#waitingSince ??= performance.now();
        this.#seen.add(event.a);
        this.#queue.push(event.a);
      }
    }
    if (native.takeOverflow()) {
      // Events were dropped; the extension's pending list still has every generation.
      for (const seq of native.pendingGenerations()) {
        const info = native.generationInfo(seq);
        if (info && info.fileId === this.#fileId && !this.#seen.has(seq)) {
          this.#seen.add(seq);
          this.#queue.push(seq);
        }
      }
      this.#queue.sort((a, b) => (a < b ? -1 : 1));
    }
    if (!this.#working && this.#queue.length > 0) this.#run(() => this.#drainQueue());
    else if (!this.#working) for (const wake of this.#idleWaiters.splice(0)) wake();
  }

  /**
   * DuckDB is about to write a newer header and waits for generation `seq`. If we are still busy
   * with an earlier one, we could not read `seq` before the hold runs out anyway: release it now,
   * unread, and carry its blocks into the next generation (whose event follows the header being
   * written). DuckDB then waits for our reads only, never for our uploads.
   */
  #holdWaiting(seq: bigint): void {
    const index = this.#queue.indexOf(seq);
    if (!this.#working || index < 0) return; // idle (it ships next) or being read now (the hold is for that)
    this.#queue.splice(index, 1);
    this.#seen.delete(seq);
    const native = this.options.native;
    const info = native.generationInfo(seq);
    if (info) {
      this.#carry(native.generationBlocks(seq, info.blockCount), info);
      this.#status.generationsDeferred++;
    }
    native.release(seq);
  }

  /** Adds blocks to the carried set (a full scan when the generation needs one, or nothing was shipped yet). */
  #carry(blocks: Iterable<number>, info: { iteration: number; headerBlockCount: number; needsFullScan: boolean }) {
    for (const block of blocks) if (block < info.headerBlockCount) this.#carried.mark(block);
    if ((info.needsFullScan || !this.#previous) && info.headerBlockCount > 0) {
      this.#carried.markRange(0, info.headerBlockCount - 1);
    }
    this.#carriedIteration = Math.max(this.#carriedIteration ?? -1, info.iteration);
  }

  /** Takes the carried blocks for one shipping attempt; `#carried` goes on collecting new ones. */
  #takeCarried(): DirtyBitmap {
    const taken = this.#carried;
    this.#carried = new DirtyBitmap();
    return taken;
  }

  /** Runs one piece of work at a time; when it ends, goes on with the queue or wakes the idle waiters. */
  #run(work: () => Promise<void>): void {
    this.#working = work().finally(() => {
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
      try {
        await this.#ship(seq);
      } catch (error) {
        this.#fail((error as Error).message);
      }
    }
  }

  async #ship(seq: bigint): Promise<void> {
    const native = this.options.native;
    const started = performance.now();
    const info = native.generationInfo(seq);
    if (!info) return;
    const dirty = native.generationBlocks(seq, info.blockCount);
    if (!this.options.store) {
      native.release(seq);
      this.#waitingSince = undefined;
      this.#status.generationsCommitted++;
      this.#status.lastGeneration = info.iteration;
      this.#status.lastGenerationTime = new Date().toISOString();
      return;
    }
    if (this.#storeFailing) {
      // Re-sending every carried block at each checkpoint of an outage only burns bandwidth: carry
      // this generation too and let the catch-up find out, with one small request, when to resume.
      this.#carry(dirty, info);
      native.release(seq);
      this.#status.generationsDeferred++;
      this.#scheduleCatchUp();
      return;
    }
    const wanted = this.#takeCarried();
    wanted.union(dirty);
    if ((info.needsFullScan || !this.#previous) && info.headerBlockCount > 0) {
      wanted.markRange(0, info.headerBlockCount - 1); // a first or rescanned generation ships every block
    }
    const blocks = [...wanted.blocks()].filter((block) => block < info.headerBlockCount);
    let shipment: Shipment | undefined;
    let uploadError: unknown;
    let released: number | undefined;
    // Released as soon as the reads are done (or failed): DuckDB's next header waits for our reads,
    // never for the network. 1 means the hold was in force for every read.
    const release = () => (released ??= native.release(seq)) === 1;
    try {
      ({ shipment, uploadError } = await this.#readAndUpload(info.iteration, blocks, release));
    } catch (error) {
      uploadError = error;
    }
    release();
    if (released !== 1 || uploadError || !shipment) {
      // Not publishable: the reads may be torn (abandoned) or the upload failed. Carry everything.
      this.#carry(blocks, { ...info, needsFullScan: false });
      this.#status.generationsAbandoned++;
      this.#storeFailing = uploadError !== undefined;
      if (uploadError) {
        this.#fail(`Cannot ship generation ${info.iteration} of ${this.options.dbKey}: ${(uploadError as Error).message}`);
      }
      this.#scheduleCatchUp();
      return;
    }
    await this.#publish(info.iteration, shipment, blocks.length, started);
  }

  #scheduleCatchUp(): void {
    if (this.#stopped || this.#catchUpTimer || this.options.catchUpDelayMs === 0) return;
    const delayMs = this.#catchUpDelayMs;
    this.#catchUpDelayMs = Math.min(delayMs * 2, this.options.catchUpDelayMaxMs);
    this.#catchUpTimer = setTimeout(() => {
      this.#catchUpTimer = undefined;
      if (this.#working || this.#queue.length > 0) return this.#scheduleCatchUp(); // the queue carries them
      this.#run(() => this.#catchUp());
    }, delayMs);
  }

  /**
   * Ships the carried blocks of the last failed generation without waiting for another checkpoint,
   * as long as the file still holds that generation's header. The hold no longer protects these
   * reads, so they are checked like a seqlock: DuckDB overwrites a block the active header
   * references only after writing a newer header, so if the header is unchanged after every read,
   * every read saw the committed bytes. Otherwise the newer generation's event carries them.
   */
  async #catchUp(): Promise<void> {
    const iteration = this.#carriedIteration;
    if (iteration === undefined || this.#stopped) return;
    this.#status.catchUpAttempts++;
    if (this.#storeFailing) {
      try {
        await this.options.store!.head(latestKey(this.options.dbKey)); // one small request, no bodies
      } catch (error) {
        this.#fail(`Cannot reach ${this.options.store!.url} for ${this.options.dbKey}: ${(error as Error).message}`);
        this.#scheduleCatchUp();
        return;
      }
    }
    const started = performance.now();
    const taken = this.#takeCarried();
    let published = false;
    try {
      const before = await readFileInfo(this.options.dbPath);
      if (before?.iteration !== iteration) return;
      const blocks = this.#previous
        ? [...taken.blocks()].filter((block) => block < before.blockCount)
        : Array.from({ length: before.blockCount }, (_, block) => block);
      const unchanged = async () => (await readFileInfo(this.options.dbPath))?.iteration === iteration;
      const { shipment, uploadError, consistent } = await this.#readAndUpload(iteration, blocks, unchanged);
      if (uploadError) throw uploadError;
      if (!consistent || !shipment) return; // a newer generation came; its event carries the blocks
      await this.#publish(iteration, shipment, blocks.length, started);
      published = true;
    } catch (error) {
      this.#fail(`Cannot ship generation ${iteration} of ${this.options.dbKey} (catch-up): ${(error as Error).message}`);
      this.#storeFailing = true;
      this.#scheduleCatchUp();
    } finally {
      if (!published) this.#carried.union(taken);
    }
  }

  /**
   * Reconciles a quiescent local file (before DuckDB opens it) with the store's last generation:
   * the same iteration is consistent by construction (blocks the committed header references are
   * never rewritten while it is active); a newer local iteration ships every block whose bytes
   * differ as a new generation; an older one or another database is refused.
   */
  async reconcile(): Promise<{ shippedGeneration: number | null }> {
    const store = this.options.store;
    const previous = this.#previous?.manifest;
    const local = await readFileInfo(this.options.dbPath);
    const sidecar = await readIdentity(this.options.dbPath);
    if (!store) return { shippedGeneration: null }; // local-only: nothing to agree with
    if (!previous) {
      this.#identity = (sidecar ?? await writeIdentity(this.options.dbPath, newIdentity())).identity;
      return { shippedGeneration: null };
    }
    if (!local) {
      throw new ReplicationError("NO_LOCAL_FILE", `${this.options.dbPath} does not exist, but ${store.url} holds ` +
        `generations of ${this.options.dbKey} up to ${previous.generation}: run \`haduck restore --to ` +
        `${this.options.dbPath}\` first, or use another --db-key for a new database`);
    }
    const stored = previous.database.haduckIdentity;
    if (stored !== undefined && sidecar?.identity !== stored) {
      throw new ReplicationError("FOREIGN_DATABASE", `${this.options.dbPath} is not the database ${this.options.dbKey} ` +
        `in ${store.url}: ` + (sidecar
          ? `its haduck identity ${sidecar.identity} differs from the store's ${stored}`
          : `it has no haduck identity (${identityPath(this.options.dbPath)})`) +
        "; use another --db-key, or `haduck restore` to get the stored one");
    }
    // A store written before identities existed: adopt the local file, and record it from now on.
    this.#identity = (sidecar ?? await writeIdentity(this.options.dbPath, newIdentity())).identity;
    if (local.dbIdentifier !== previous.database.dbIdentifier) {
      throw new ReplicationError("FOREIGN_DATABASE", `${this.options.dbPath} is another database than ` +
        `${this.options.dbKey} in ${store.url} (identifier ${local.dbIdentifier}, store has ` +
        `${previous.database.dbIdentifier}): use another --db-key, or \`haduck restore\` to get the stored one`);
    }
    if (local.iteration < previous.generation) {
      throw new ReplicationError("DIVERGED", `${this.options.dbPath} is at generation ${local.iteration}, older than ` +
        `generation ${previous.generation} in ${store.url}: run \`haduck restore --force --to ${this.options.dbPath}\` ` +
        "to bring it up to date");
    }
    if (local.iteration === previous.generation) return { shippedGeneration: null };
    const started = performance.now();
    const all = Array.from({ length: local.blockCount }, (_, block) => block);
    const { shipment, uploadError } = await this.#readAndUpload(local.iteration, all);
    if (uploadError || !shipment) throw uploadError;
    await this.#publish(local.iteration, shipment, all.length, started);
    return { shippedGeneration: local.iteration };
  }

  /** Writes the manifest create-only (every segment is durable by now), then the latest pointer. */
  async #publish(iteration: number, shipment: Shipment, blocksConsidered: number, started: number): Promise<void> {
    const store = this.options.store!;
    const manifest = buildManifest({ dbKey: this.options.dbKey, generation: iteration, shipment,
      previous: this.#previous, blocksConsidered, haduckIdentity: this.#identity });
    const bytes = encodeManifest(manifest);
    await store.put(manifestKey(this.options.dbKey, iteration), bytes, { ifNoneMatch: "*" });
    const digest = hex(sha256(bytes));
    await store.put(latestKey(this.options.dbKey), new TextEncoder().encode(
      JSON.stringify({ generation: iteration, manifestSha256: digest }),
    ));
    this.#previous = { manifest, sha256: digest };
    // The blocks this generation carried were taken for it; anything carried since stays.
    if (this.#carried.count === 0) this.#carriedIteration = undefined;
    this.#storeFailing = false;
    this.#catchUpDelayMs = this.options.catchUpDelayMs;
    this.#status.catchUpAttempts = 0;
    this.#status.generationsCommitted++;
    this.#status.lastGeneration = iteration;
    this.#status.lastGenerationTime = manifest.createdAt;
    this.#status.lastError = null;
    this.#status.blocksShipped += manifest.stats.blocksShipped;
    this.#status.bytesShipped += manifest.stats.bytesShipped;
    this.#waitingSince = this.#queue.length > 0 ? performance.now() : undefined;
    const event: GenerationShipped = {
      generation: iteration,
      time: manifest.createdAt,
      blocks: manifest.blocks.length,
      blocksShipped: manifest.stats.blocksShipped,
      bytesShipped: manifest.stats.bytesShipped,
      durationMs: performance.now() - started,
    };
    this.#status.recent.push(event);
    if (this.#status.recent.length > RECENT_GENERATIONS_MAX) this.#status.recent.shift();
    this.options.onGeneration?.(event);
  }

  /** One read-and-upload pass over `blocks` at `iteration` with this replicator's settings. */
  #readAndUpload(iteration: number, blocks: number[], readsDone?: () => boolean | Promise<boolean>):
    Promise<UploadPassResult> {
    const o = this.options;
    return readAndUpload({ store: o.store!, dbPath: o.dbPath, dbKey: o.dbKey, iteration, blocks, readsDone,
      previous: this.#previous, segmentBytesMax: o.segmentBytesMax, uploadsInFlightMax: o.uploadsInFlightMax,
      compress: o.compress, blockChecksumOk: (block) => o.native.blockChecksumOk(block),
      onProgress: o.onUploadProgress &&
        ((blocksDone, blocksTotal, bytesSent) => o.onUploadProgress!({ generation: iteration, blocksDone, blocksTotal,
          bytesSent })) });
  }
}
