/**
 * @module
 * `WalShipper`: continuous replication between checkpoints. The extension announces every FileSync
 * of the database's WAL (a durable local commit) with the synced size, the header generation the WAL
 * builds on, and the blocks written since the last announcement. At most once per `walFlushMs`
 * (at once when someone waits in `flush()`), the shipper reads the new WAL bytes and those blocks
 * from the local files and writes them as the next WAL frame of the published generation, create-only
 * (see duckblock's _frames.ts). A frame is only ever built for the generation the file's header still has,
 * checked before and after the reads: once DuckDB wrote a newer header, that generation supersedes
 * the frames, and the blocks read could already belong to it.
 *
 * Frames are pipelined: up to `PIPELINE_FRAMES` are in flight, each chained to the one built before
 * it (its checksum is known once it is encoded, long before its PUT returns). A commit is durable,
 * and its waiters resolve, only when every frame up to its own is stored, in order. A PUT that fails
 * or whose answer is lost goes again with the same bytes at the same key, so a key never holds other
 * bytes than the one frame built for it; a 412 is read back: our own bytes (a lost answer), a newer
 * epoch's frame (fenced), or an orphan that does not chain to the stored frame before it (a frame
 * written past one that never landed: never acknowledged, so it is removed and ours goes in).
 *
 * What stops frames for a generation until the next generation is published (the commits are then
 * durable only at that checkpoint, and `status.walLagMs` shows it): block marks lost (a consumer that
 * died, events dropped), the WAL cut below what was shipped, a frame key that holds another writer's
 * frame. Nothing here is ever guessed: a PUT whose answer was lost is looked up before the next one.
 *
 * This file is the announcements, the chain's positions, the waiters and the upload pipeline; a
 * frame is built (and the local WAL read) in `_frame_builder.ts`, a 412 judged in
 * `_frame_collision.ts`.
 */
import { BlockNotFoundError, PreconditionFailedError } from "@haduck/s3-block-store";
import { readFileInfo } from "../local/_block_source.ts";
import { AdaptiveCompressor } from "@haduck/duckblock";
import type { WalShipperOptions, WalStatus, WalSync } from "./_wal_types.ts";
import { RING_LAYOUT as L, type RingEvent } from "../native/_ring_layout.ts";
import {
  buildFrame, type ChainTip, type Group, onlyCheckpoint, type Outgoing, type PendingSync, readWal, shippable, startGroup,
} from "./_frame_builder.ts";
import { type FoundFrame, judgeCollision } from "./_frame_collision.ts";

export type { WalShipperOptions, WalStatus, WalSync } from "./_wal_types.ts";
export { onlyCheckpoint } from "./_frame_builder.ts";

/** How long reconcile waits for the frames of a WAL left by a crash. */
const LEFTOVER_WAIT_MS = 30_000;

/** Frames in flight at most by default, and their bytes: no frame is built while this many are out. */
const PIPELINE_FRAMES = 4;
const PIPELINE_BYTES = 32 * 1024 * 1024;

interface Waiter {
  generation: number;
  size: number;
  resolve: (durable: boolean) => void;
}

export class WalShipper {
  readonly #options: WalShipperOptions;
  /** The published generation frames chain to, and where its chain stands in the store (durable). */
  #generation: number | undefined;
  #frame = 0;
  #shipped = 0;
  /** Where the chain stands counting the frames built and in flight. */
  #tip: ChainTip = { frame: 0, sha256: new Uint8Array(32), walEnd: 0 };
  #outgoing: Outgoing[] = [];
  #outgoingBytes = 0;
  #group: Group | undefined;
  readonly #compressor = new AdaptiveCompressor(true);
  #stopped: string | undefined;
  /** Syncs announced and not shipped (any generation, ascending), and blocks written since the last frame. */
  #syncs: PendingSync[] = [];
  /** Chain resets: bumped whenever the chain is replaced (a new generation, a leftover WAL): results of older awaits are dropped. */
  #chainResets = 0;
  /**
   * Block -> the announcement that last named it (a block named again was rewritten), and the
   * generation it was announced under: a generation published later holds its bytes.
   */
  #blocks = new Map<number, { announcement: number; generation: number }>();
  #announcements = 0;
  /** Blocks of the announcement being received (its WAL_BLOCKS events, before its WAL_SYNCED). */
  #announcing: number[] = [];
  /** Generations up to this one lost block marks: never framed. */
  #lostThrough = -1;
  /** The generation whose leftover WAL reconcile shipped, its blocks compared with the store: its marks are whole. */
  #rebuilt: number | undefined;
  #waiters: Waiter[] = [];
  #lastBuildAt = 0;
  /** Frame PUT round trip, smoothed: how long commits may gather while frames are in flight. */
  #putMs = 10;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  #buildRetryAt = 0;
  #buildFailures = 0;
  #status: WalStatus = { walLagMs: 0, lastDurableCommit: null, framesShipped: 0, framesStopped: null };

  constructor(options: WalShipperOptions) {
    this.#options = options;
  }

  get status(): WalStatus {
    const oldest = this.#syncs.find((sync) => sync.generation >= (this.#generation ?? 0));
    return { ...this.#status, walLagMs: oldest ? performance.now() - oldest.receivedAt : 0,
      framesStopped: this.#stopped ?? null };
  }

  /** The generation frames chain to and the WAL bytes its frames hold (undefined: no generation yet). */
  get chain(): { generation: number; walShipped: number } | undefined {
    return this.#generation === undefined ? undefined : { generation: this.#generation, walShipped: this.#shipped };
  }

  /** The newest synced commit we know of: what a `flush()` now must wait for. */
  get newestSync(): { generation: number; size: number } | undefined {
    return this.#syncs.at(-1) ?? (this.#generation === undefined ? undefined
      : { generation: this.#generation, size: this.#shipped });
  }

  /** The newest synced WAL size announced for `generation` (shipped or not), or undefined when none was. */
  syncedSize(generation: number): number | undefined {
    const newest = this.#syncs.findLast((sync) => sync.generation === generation)?.size;
    return newest ?? (generation === this.#generation && this.#shipped > 0 ? this.#shipped : undefined);
  }

  /** One of the extension's WAL events (WAL_BLOCKS come before the WAL_SYNCED they belong to). */
  onEvent(event: RingEvent): void {
    if (event.type === L.HADUCK_EVENT_WAL_BLOCKS) {
      const fields = [event.a, event.b, event.c, event.d, event.e ?? 0n, event.f ?? 0n].map(Number);
      for (let run = 0; run < 6; run += 2) {
        for (let block = fields[run]; block < fields[run] + fields[run + 1]; block++) this.#announcing.push(block);
      }
    } else if (event.type === L.HADUCK_EVENT_WAL_SYNCED) {
      this.onSync({ generation: Number(event.a), size: Number(event.b), unixMs: Number(event.c), lost: event.d === 1n,
        leftover: event.d === 2n, blocks: this.#announcing.splice(0) });
    } else if (event.type === L.HADUCK_EVENT_WAL_RESET) {
      this.onReset(Number(event.a), Number(event.b));
    }
  }

  onSync(sync: WalSync): void {
    const announcement = ++this.#announcements;
    for (const block of sync.blocks) this.#blocks.set(block, { announcement, generation: sync.generation });
    if (sync.lost) this.#lose(sync.generation, "block marks of this generation were lost (a replicator restarted)");
    else if (sync.leftover && this.#rebuilt !== sync.generation) {
      this.#lose(sync.generation, "DuckDB opened a WAL left by an earlier process that reconcile did not ship");
    }
    const last = this.#syncs.at(-1);
    if (last && last.generation === sync.generation && last.size >= sync.size) return;
    this.#syncs.push({ ...sync, receivedAt: performance.now(), announcement });
  }

  /** The WAL was removed or cut to `size`: syncs beyond it never happened as far as restore goes. */
  onReset(generation: number, size: number): void {
    this.#syncs = this.#syncs.filter((sync) => sync.generation !== generation || sync.size <= size);
    // A WAL removed after a newer header (a checkpoint) is not cut: that header's generation holds it.
    const header = readFileInfo(this.#options.dbPath)?.generation;
    if (header !== undefined && header > generation) return;
    // Below what frames were built from (in flight or stored): those frames hold bytes DuckDB cut.
    if (generation === this.#generation && size < this.#tip.walEnd) this.#stop("the WAL was cut below what was shipped");
  }

  /** Events were dropped: which blocks were written is unknown until the next header. */
  onOverflow(): void {
    const generation = Math.max(readFileInfo(this.#options.dbPath)?.generation ?? -1, this.#syncs.at(-1)?.generation ?? -1);
    this.#lose(generation, "events from the extension were dropped");
  }

  #lose(generation: number, why: string): void {
    this.#lostThrough = Math.max(this.#lostThrough, generation);
    if (this.#generation !== undefined && this.#generation <= generation) this.#stop(why);
  }

  #stop(why: string): void {
    if (this.#stopped) return;
    this.#stopped = why;
    this.#options.onError(`WAL frames of generation ${this.#generation} of ${this.#options.dbKey} stopped: ${why}; ` +
      "commits are durable in the store again at the next checkpoint");
  }

  /** Generation `generation` is published with manifest digest `sha256`: frames chain to it from now on. */
  onPublished(generation: number, sha256: Uint8Array): void {
    if (this.#generation !== undefined && generation <= this.#generation) return;
    this.#resetChain(generation, 0, sha256, 0);
    this.#stopped = generation <= this.#lostThrough ? "block marks of this generation were lost" : undefined;
    // Every commit synced under an older header is inside this generation, and so is every block
    // written before that header: the generation read them after its header was committed.
    this.#syncs = this.#syncs.filter((sync) => sync.generation >= generation);
    for (const [block, mark] of this.#blocks) if (mark.generation < generation) this.#blocks.delete(block);
    this.#settleWaiters();
  }

  /** The chain now extends `generation` at this frame: what was built or in flight for another is dropped. */
  #resetChain(generation: number, frame: number, sha256: Uint8Array, walEnd: number): void {
    this.#chainResets++;
    this.#generation = generation;
    this.#frame = frame;
    this.#shipped = walEnd;
    this.#tip = { frame, sha256, walEnd };
    this.#outgoing = [];
    this.#outgoingBytes = 0;
    this.#group = undefined;
  }

  /**
   * Ships the WAL a crash left beside the quiescent file (reconcile, before DuckDB opens and replays
   * it) as the next frames of `generation`, whose manifest is published: every WAL byte past what
   * frames already hold, and `blocks` (the file's blocks that differ from the manifest: the WAL's
   * optimistic writes are among them). A torn last commit ships as it is; DuckDB drops it at replay
   * exactly as it does locally. Returns the WAL bytes shipped (0: nothing to ship).
   */
  async shipLeftover(generation: number, chain: { number: number; sha256: Uint8Array; walEnd: number } | undefined,
    manifestSha256: Uint8Array, walSize: number, walTime: number, blocks: number[]): Promise<number> {
    const from = chain?.walEnd ?? 0;
    // The chain stands where the stored frames end, shipped or not now: the next frame follows the last
    // one (never a create-only collision per stored frame), and the marks of `generation` are whole.
    this.#resetChain(generation, chain?.number ?? 0, chain?.sha256 ?? manifestSha256, from);
    this.#stopped = undefined;
    this.#lostThrough = Math.min(this.#lostThrough, generation - 1);
    this.#rebuilt = generation;
    if (walSize <= from) return 0;
    // Only the CHECKPOINT entry of a checkpoint killed before its header: no commit to ship (and the
    // shipper never frames such a tail, so waiting for it would wait out LEFTOVER_WAIT_MS).
    const tail = readWal(`${this.#options.dbPath}.wal`, from, walSize);
    if (tail && onlyCheckpoint(tail)) return 0;
    this.onSync({ generation: generation, size: walSize, unixMs: walTime, lost: false, blocks });
    // Bounded: DuckDB waits to open the file meanwhile, and the checkpoint after its replay ships
    // these commits anyway.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const durable = await Promise.race([this.flush(), new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), LEFTOVER_WAIT_MS);
    })]);
    clearTimeout(timer);
    if (!durable) throw new Error(this.#stopped ?? `the store did not take the WAL's frames within ${LEFTOVER_WAIT_MS} ms`);
    return walSize - from;
  }

  /**
   * A replicator started while DuckDB writes (its predecessor died): frames of `generation` go on
   * from where the stored ones end (`chain`), and `blocks` (the file's blocks that differ from the
   * manifest, the marks that died with the predecessor) ride in the next frame with the blocks
   * announced from now on. The caller tells the extension, which then stops reporting the loss.
   */
  resumeChain(generation: number, chain: { number: number; sha256: Uint8Array; walEnd: number } | undefined,
    manifestSha256: Uint8Array, blocks: number[]): void {
    this.#resetChain(generation, chain?.number ?? 0, chain?.sha256 ?? manifestSha256, chain?.walEnd ?? 0);
    this.#stopped = undefined;
    this.#lostThrough = Math.min(this.#lostThrough, generation - 1);
    this.#rebuilt = generation;
    const announcement = ++this.#announcements;
    for (const block of blocks) this.#blocks.set(block, { announcement, generation: generation });
  }

  /**
   * Resolves true once every commit synced before the call is in the store (in a frame or a newer
   * generation); false when frames of its generation stopped (then only a checkpoint makes it durable).
   */
  flush(): Promise<boolean> {
    let target = this.newestSync;
    // A commit DuckDB checkpointed instead of logging (a large insert on an empty WAL) is in the
    // header only: it is durable once that generation is published.
    const local = readFileInfo(this.#options.dbPath)?.generation;
    if (local !== undefined && (target === undefined || local > target.generation)) target = { generation: local, size: 0 };
    if (!target) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      this.#waiters.push({ ...target, resolve });
      this.#settleWaiters();
      void this.tick();
    });
  }

  #durable(waiter: { generation: number; size: number }): boolean {
    if (this.#generation === undefined) return false;
    return waiter.generation < this.#generation || (waiter.generation === this.#generation && waiter.size <= this.#shipped);
  }

  #settleWaiters(): void {
    this.#waiters = this.#waiters.filter((waiter) => {
      if (this.#durable(waiter)) waiter.resolve(true);
      else if (waiter.generation === this.#generation && this.#stopped) waiter.resolve(false);
      else return true;
      return false;
    });
  }

  /** Gives up every waiter (the replicator stops); nothing is built or sent from now on. */
  release(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    for (const waiter of this.#waiters.splice(0)) waiter.resolve(this.#durable(waiter));
  }

  /**
   * Builds frames while there are commits to ship and room in the pipeline (at once when someone
   * waits, else at most once per `walFlushMs`), and sends what is due. Commits that arrive while
   * frames are in flight go in the next frame at once (group commit), not after those PUTs return.
   */
  tick(): void {
    if (this.#generation === undefined || this.#stopped || this.#closed) return;
    const now = performance.now();
    if (now >= this.#buildRetryAt) {
      try {
        this.#build(this.#generation);
        this.#buildFailures = 0;
      } catch (error) {
        this.#group = undefined; // its marks are still there: built again from the start
        this.#buildFailures++;
        this.#buildRetryAt = now + Math.min(this.#options.walFlushMs * 2 ** this.#buildFailures, 1_000);
        this.#options.onError(`Cannot build a WAL frame of ${this.#options.dbKey}: ${(error as Error).message}`);
      }
    }
    for (const frame of this.#outgoing) {
      if (!frame.sending && !frame.stored && now >= frame.retryAt) void this.#send(frame);
    }
  }

  #build(generation: number): void {
    while (this.#outgoing.length < (this.#options.framesInFlight ?? PIPELINE_FRAMES) && this.#outgoingBytes < PIPELINE_BYTES && !this.#stopped) {
      if (!this.#group) {
        const pending = shippable(this.#syncs.filter((sync) => sync.generation === generation &&
          sync.size > this.#tip.walEnd), this.#options.dbPath, this.#tip.walEnd);
        if (pending.length === 0) return;
        const now = performance.now();
        if (this.#waiters.length === 0 && now - this.#lastBuildAt < this.#options.walFlushMs) return;
        // With frames in flight, commits gather for half a round trip before the next frame goes: where
        // the store's CPU bounds the rate (a local one), fewer, fuller frames; where the round trip does
        // (a far one), frames still overlap.
        const gather = this.#outgoing.length > 0 ? this.#putMs / 2 - (now - pending[0].receivedAt) : 0;
        if (gather > 1) {
          this.#timer ??= setTimeout(() => {
            this.#timer = undefined;
            this.tick();
          }, gather);
          return;
        }
        this.#lastBuildAt = now;
        this.#group = startGroup(generation, pending, { dbPath: this.#options.dbPath, tipWalEnd: this.#tip.walEnd,
          blocks: this.#blocks, stop: (why) => this.#stop(why) });
        if (!this.#group) return;
      }
      if (!this.#buildFrame(this.#group)) return;
    }
  }

  /** Reads and encodes the group's next frame onto the pipeline; false when a newer header superseded it. */
  #buildFrame(group: Group): boolean {
    const built = buildFrame(group, this.#tip, { dbPath: this.#options.dbPath, dbKey: this.#options.dbKey,
      blockChecksumOk: this.#options.blockChecksumOk, epoch: this.#options.fence?.epoch, compressor: this.#compressor });
    if (!built) {
      this.#group = undefined;
      return false;
    }
    const { frame } = built;
    if (built.last) this.#group = undefined;
    this.#outgoing.push(frame);
    this.#outgoingBytes += frame.bytes.byteLength;
    this.#tip = { frame: frame.number, sha256: frame.sha256, walEnd: frame.walEnd };
    // A block announced again after these reads was rewritten: it ships again in a later frame.
    for (const id of frame.blockIds) {
      if (this.#blocks.get(id)?.announcement === group.marks.get(id)?.announcement) this.#blocks.delete(id);
    }
    return true;
  }

  /** Writes one frame create-only; on failure it goes again, the same bytes, after a short backoff. */
  async #send(frame: Outgoing): Promise<void> {
    const { store, signal } = this.#options;
    const resets = this.#chainResets;
    const fence = this.#options.fence;
    frame.sending = true;
    let stored = false;
    try {
      if (fence && !fence.mayWrite()) throw new Error(`not writing ${frame.key}: this node's lease (epoch ${fence.epoch}) ran out`);
      try {
        const started = performance.now();
        await store.put(frame.key, frame.bytes, { ifNoneMatch: "*",
          signal: fence ? AbortSignal.any([signal, fence.signal()]) : signal });
        this.#putMs = this.#putMs * 0.8 + (performance.now() - started) * 0.2;
        stored = true;
      } catch (error) {
        if (!(error instanceof PreconditionFailedError) || this.#chainResets !== resets) throw error;
        stored = await this.#collided(frame, resets);
      }
    } catch (error) {
      if (this.#chainResets !== resets) return;
      frame.attempts++;
      // Short: a `--sync` commit waits for this, and a frame is one small request.
      frame.retryAt = error instanceof OrphanRemoved ? 0
        : performance.now() + Math.min(this.#options.walFlushMs * 2 ** frame.attempts, 1_000);
      if (!(error instanceof OrphanRemoved)) this.#options.onError(`Cannot ship WAL frame ${frame.number} of generation ${this.#generation} of ` +
        `${this.#options.dbKey} (attempt ${frame.attempts}; the same bytes go again): ${(error as Error).message}`);
    } finally {
      frame.sending = false;
    }
    if (this.#chainResets !== resets) return; // a generation was published meanwhile: its chain, not ours
    if (stored) {
      frame.stored = true;
      this.#advance();
    }
    this.#settleWaiters();
    this.tick();
  }

  /**
   * The frame's key holds a frame already. Ours (a PUT whose answer was lost): stored. A newer epoch's
   * (a new leader's fence): this writer is fenced. One that does not chain to the stored frame before
   * ours was written past a frame that never landed, so none of its commits was ever acknowledged: it
   * is removed and ours goes again (once ours before it is stored; until then it is looked at again).
   * Anything else is another writer on this chain: frames stop.
   */
  async #collided(frame: Outgoing, resets: number): Promise<boolean> {
    const { store, signal } = this.#options;
    let bytes: Uint8Array;
    try {
      bytes = await store.get(frame.key, { signal });
    } catch (error) {
      if (error instanceof BlockNotFoundError) throw new Error(`${frame.key} was there and is gone`);
      throw error;
    }
    if (this.#chainResets !== resets) return false;
    const fence = this.#options.fence;
    const collision = judgeCollision(bytes, frame, { durableFrame: this.#frame, epoch: fence?.epoch,
      dbPath: this.#options.dbPath, store: this.#options.store, dbKey: this.#options.dbKey });
    if (collision.kind === "ours") return true;
    if (collision.kind === "orphan") {
      if (!collision.next) throw new Error(`${frame.key} holds an orphan; looked at again once frame ` +
        `${frame.number - 1} is stored`);
      // Written past a frame that never landed: never acknowledged. Only while this writer may write.
      if (fence && !fence.mayWrite()) throw new Error(`not removing ${frame.key}: this node's lease ran out`);
      await store.delete(frame.key, { signal: fence ? AbortSignal.any([signal, fence.signal()]) : signal });
      throw new OrphanRemoved(frame.key);
    }
    if (collision.kind === "adopt") this.#adopt(collision.found);
    else this.#fenced(collision.reason);
    return false;
  }

  /**
   * Takes `found` (stored at our next key) as the chain's next frame: what was built after it is
   * dropped, its blocks marked again, and the commits it does not hold are built again after it.
   */
  #adopt(found: FoundFrame): void {
    const generation = this.#generation!;
    const dropped = this.#outgoing;
    this.#resetChain(generation, found.number, found.sha256, found.walOffset + found.wal.byteLength);
    const announcement = ++this.#announcements;
    for (const frame of dropped) {
      for (const id of frame.blockIds) if (!this.#blocks.has(id)) this.#blocks.set(id, { announcement, generation });
    }
    this.#status.framesShipped++;
    const last = found.commits.at(-1);
    if (last) {
      this.#status.lastDurableCommit = new Date(last.unixMs).toISOString();
      this.#syncs = this.#syncs.filter((sync) => sync.generation > generation || sync.size > this.#shipped);
    }
    this.#settleWaiters();
    queueMicrotask(() => this.tick());
  }

  #fenced(reason: string): void {
    this.#stop(reason);
    this.#options.fence?.fenced(reason);
  }

  /** Moves the durable position over the frames stored in order from the front of the pipeline. */
  #advance(): void {
    const generation = this.#generation!;
    while (this.#outgoing[0]?.stored) {
      const frame = this.#outgoing.shift()!;
      this.#outgoingBytes -= frame.bytes.byteLength;
      this.#frame = frame.number;
      this.#status.framesShipped++;
      if (frame.commits.length === 0) continue;
      this.#shipped = frame.walEnd;
      const last = frame.commits[frame.commits.length - 1];
      this.#status.lastDurableCommit = new Date(last.unixMs).toISOString();
      this.#syncs = this.#syncs.filter((sync) => sync.generation > generation || sync.size > this.#shipped);
      if (!this.#options.onFrame) continue;
      try {
        this.#options.onFrame({ generation: generation, frame: frame.number, commitUnixMs: frame.commits.map((c) => c.unixMs),
          durableUnixMs: Date.now(), bytes: frame.bytes.byteLength, rawBytes: frame.rawBytes, blocks: frame.blocks });
      } catch (error) {
        this.#options.onError(`onFrame threw for frame ${frame.number} of generation ${generation}: ${(error as Error).message}`);
      }
    }
  }
}

/** The orphan at a frame's key was removed: the frame goes again at once. */
class OrphanRemoved extends Error {
  constructor(key: string) {
    super(`${key} held an orphan, removed`);
  }
}
