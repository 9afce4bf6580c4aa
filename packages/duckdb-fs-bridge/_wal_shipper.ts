/**
 * @module
 * `WalShipper`: continuous replication between checkpoints. The extension announces every FileSync
 * of the database's WAL (a durable local commit) with the synced size, the header iteration the WAL
 * builds on, and the blocks written since the last announcement. At most once per `walFlushMs`
 * (at once when someone waits in `flush()`), the shipper reads the new WAL bytes and those blocks
 * from the local files and writes them as the next WAL frame of the published generation, create-only
 * (see _frame_format.ts). A frame is only ever built for the iteration the file's header still has,
 * checked before and after the reads: once DuckDB wrote a newer header, that generation supersedes
 * the frames, and the blocks read could already belong to it.
 *
 * What stops frames for an iteration until the next generation is published (the commits are then
 * durable only at that checkpoint, and `status.walLagMs` shows it): block marks lost (a consumer that
 * died, events dropped), the WAL cut below what was shipped, a frame key that holds another writer's
 * frame. Nothing here is ever guessed: a PUT whose answer was lost is looked up before the next one.
 */
import { type BlockStore, BlockNotFoundError, PreconditionFailedError } from "@haduck/s3-block-store";
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { openFileSource, readFileInfo } from "./_block_source.ts";
import { decodeFrame, encodeFrame, type FrameCommit, frameKey } from "@haduck/duckblock";
import type { FrameShipped, WriterFence } from "./_replicator_types.ts";
import { RING_LAYOUT as L, type RingEvent } from "./_ring_layout.ts";

export interface WalSync {
  iteration: number;
  size: number;
  unixMs: number;
  /** Block marks of this iteration went to a consumer that is gone: no frames until the next header. */
  lost: boolean;
  /**
   * The WAL was there when DuckDB opened it (a restart): its commits reference blocks written before
   * anyone tracked them. Frames go on only if reconcile rebuilt those marks (`marksRebuilt`).
   */
  leftover?: boolean;
  blocks: number[];
}

export interface WalShipperOptions {
  store: BlockStore;
  dbKey: string;
  dbPath: string;
  /** At most one frame per this many ms while commits happen (a `flush()` ships at once). */
  walFlushMs: number;
  blockChecksumOk: (block: Uint8Array) => boolean;
  signal: AbortSignal;
  onError: (message: string) => void;
  onFrame?: (event: FrameShipped) => void;
  /** The cluster's lease: frames carry its epoch, nothing is written without it, another epoch's frame fences us. */
  fence?: WriterFence;
}

export interface WalStatus {
  /** Age of the oldest locally durable commit the store does not hold yet (0: none). */
  walLagMs: number;
  /** Commit time of the newest commit the store holds in a frame (ISO-8601), or null. */
  lastDurableCommit: string | null;
  framesShipped: number;
  /** Why frames of the current iteration stopped (until the next generation), or null. */
  framesStopped: string | null;
}

/** How long reconcile waits for the frames of a WAL left by a crash. */
const LEFTOVER_WAIT_MS = 30_000;

/** Blocks carried by one frame at most: a larger set ships as frames of blocks only, then the commits. */
const FRAME_BLOCK_BYTES_MAX = 16 * 1024 * 1024;

interface Waiter {
  iteration: number;
  size: number;
  resolve: (durable: boolean) => void;
}

export class WalShipper {
  readonly #options: WalShipperOptions;
  /** The published generation frames chain to, and where its chain stands. */
  #iteration: number | undefined;
  #previous: Uint8Array = new Uint8Array(32);
  #frame = 0;
  #shipped = 0;
  #stopped: string | undefined;
  /** Syncs announced and not shipped (any iteration, ascending), and blocks written since the last frame. */
  #syncs: (WalSync & { receivedAt: number; announcement: number })[] = [];
  /** Bumped whenever the chain is replaced (a new generation, a leftover WAL): results of older awaits are dropped. */
  #epoch = 0;
  /**
   * Block -> the announcement that last named it (a block named again was rewritten), and the
   * iteration it was announced under: a generation published later holds its bytes.
   */
  #blocks = new Map<number, { announcement: number; iteration: number }>();
  #announcements = 0;
  /** Blocks of the announcement being received (its WAL_BLOCKS events, before its WAL_SYNCED). */
  #announcing: number[] = [];
  /** Iterations up to this one lost block marks: never framed. */
  #lostThrough = -1;
  /** The iteration whose leftover WAL reconcile shipped, its blocks compared with the store: its marks are whole. */
  #rebuilt: number | undefined;
  #waiters: Waiter[] = [];
  #busy = false;
  #lastShipAt = 0;
  #retryAt = 0;
  #failures = 0;
  /** A PUT of this frame number ended without an answer: look before writing it again. */
  #uncertain = false;
  #status: WalStatus = { walLagMs: 0, lastDurableCommit: null, framesShipped: 0, framesStopped: null };

  constructor(options: WalShipperOptions) {
    this.#options = options;
  }

  get status(): WalStatus {
    const oldest = this.#syncs.find((sync) => sync.iteration >= (this.#iteration ?? 0));
    return { ...this.#status, walLagMs: oldest ? performance.now() - oldest.receivedAt : 0,
      framesStopped: this.#stopped ?? null };
  }

  /** The generation frames chain to and the WAL bytes its frames hold (undefined: no generation yet). */
  get chain(): { iteration: number; walShipped: number } | undefined {
    return this.#iteration === undefined ? undefined : { iteration: this.#iteration, walShipped: this.#shipped };
  }

  /** The newest synced commit we know of: what a `flush()` now must wait for. */
  get newestSync(): { iteration: number; size: number } | undefined {
    return this.#syncs.at(-1) ?? (this.#iteration === undefined ? undefined
      : { iteration: this.#iteration, size: this.#shipped });
  }

  /** One of the extension's WAL events (WAL_BLOCKS come before the WAL_SYNCED they belong to). */
  onEvent(event: RingEvent): void {
    if (event.type === L.HADUCK_EVENT_WAL_BLOCKS) {
      const fields = [event.a, event.b, event.c, event.d, event.e ?? 0n, event.f ?? 0n].map(Number);
      for (let run = 0; run < 6; run += 2) {
        for (let block = fields[run]; block < fields[run] + fields[run + 1]; block++) this.#announcing.push(block);
      }
    } else if (event.type === L.HADUCK_EVENT_WAL_SYNCED) {
      this.onSync({ iteration: Number(event.a), size: Number(event.b), unixMs: Number(event.c), lost: event.d === 1n,
        leftover: event.d === 2n, blocks: this.#announcing.splice(0) });
    } else if (event.type === L.HADUCK_EVENT_WAL_RESET) {
      this.onReset(Number(event.a), Number(event.b));
    }
  }

  onSync(sync: WalSync): void {
    const announcement = ++this.#announcements;
    for (const block of sync.blocks) this.#blocks.set(block, { announcement, iteration: sync.iteration });
    if (sync.lost) this.#lose(sync.iteration, "block marks of this iteration were lost (a replicator restarted)");
    else if (sync.leftover && this.#rebuilt !== sync.iteration) {
      this.#lose(sync.iteration, "DuckDB opened a WAL left by an earlier process that reconcile did not ship");
    }
    const last = this.#syncs.at(-1);
    if (last && last.iteration === sync.iteration && last.size >= sync.size) return;
    this.#syncs.push({ ...sync, receivedAt: performance.now(), announcement });
  }

  /** The WAL was removed or cut to `size`: syncs beyond it never happened as far as restore goes. */
  onReset(iteration: number, size: number): void {
    this.#syncs = this.#syncs.filter((sync) => sync.iteration !== iteration || sync.size <= size);
    // A WAL removed after a newer header (a checkpoint) is not cut: that header's generation holds it.
    const header = readFileInfo(this.#options.dbPath)?.iteration;
    if (header !== undefined && header > iteration) return;
    if (iteration === this.#iteration && size < this.#shipped) this.#stop("the WAL was cut below what was shipped");
  }

  /** Events were dropped: which blocks were written is unknown until the next header. */
  onOverflow(): void {
    const iteration = Math.max(readFileInfo(this.#options.dbPath)?.iteration ?? -1, this.#syncs.at(-1)?.iteration ?? -1);
    this.#lose(iteration, "events from the extension were dropped");
  }

  #lose(iteration: number, why: string): void {
    this.#lostThrough = Math.max(this.#lostThrough, iteration);
    if (this.#iteration !== undefined && this.#iteration <= iteration) this.#stop(why);
  }

  #stop(why: string): void {
    if (this.#stopped) return;
    this.#stopped = why;
    this.#options.onError(`WAL frames of generation ${this.#iteration} of ${this.#options.dbKey} stopped: ${why}; ` +
      "commits are durable in the store again at the next checkpoint");
  }

  /** Generation `generation` is published with manifest digest `sha256`: frames chain to it from now on. */
  onPublished(generation: number, sha256: Uint8Array): void {
    if (this.#iteration !== undefined && generation <= this.#iteration) return;
    this.#epoch++;
    this.#iteration = generation;
    this.#previous = sha256;
    this.#frame = 0;
    this.#shipped = 0;
    this.#uncertain = false;
    this.#stopped = generation <= this.#lostThrough ? "block marks of this iteration were lost" : undefined;
    // Every commit synced under an older header is inside this generation, and so is every block
    // written before that header: the generation read them after its header was committed.
    this.#syncs = this.#syncs.filter((sync) => sync.iteration >= generation);
    for (const [block, mark] of this.#blocks) if (mark.iteration < generation) this.#blocks.delete(block);
    this.#settleWaiters();
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
    this.#epoch++;
    this.#iteration = generation;
    this.#frame = chain?.number ?? 0;
    this.#previous = chain?.sha256 ?? manifestSha256;
    this.#shipped = from;
    this.#stopped = undefined;
    this.#lostThrough = Math.min(this.#lostThrough, generation - 1);
    this.#rebuilt = generation;
    if (walSize <= from) return 0;
    // Only the CHECKPOINT entry of a checkpoint killed before its header: no commit to ship (and the
    // shipper never frames such a tail, so waiting for it would wait out LEFTOVER_WAIT_MS).
    const tail = readWal(`${this.#options.dbPath}.wal`, from, walSize);
    if (tail && onlyCheckpoint(tail)) return 0;
    this.onSync({ iteration: generation, size: walSize, unixMs: walTime, lost: false, blocks });
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
    this.#epoch++;
    this.#iteration = generation;
    this.#frame = chain?.number ?? 0;
    this.#previous = chain?.sha256 ?? manifestSha256;
    this.#shipped = chain?.walEnd ?? 0;
    this.#stopped = undefined;
    this.#lostThrough = Math.min(this.#lostThrough, generation - 1);
    this.#rebuilt = generation;
    const announcement = ++this.#announcements;
    for (const block of blocks) this.#blocks.set(block, { announcement, iteration: generation });
  }

  /**
   * Resolves true once every commit synced before the call is in the store (in a frame or a newer
   * generation); false when frames of its iteration stopped (then only a checkpoint makes it durable).
   */
  flush(): Promise<boolean> {
    let target = this.newestSync;
    // A commit DuckDB checkpointed instead of logging (a large insert on an empty WAL) is in the
    // header only: it is durable once that generation is published.
    const local = readFileInfo(this.#options.dbPath)?.iteration;
    if (local !== undefined && (target === undefined || local > target.iteration)) target = { iteration: local, size: 0 };
    if (!target) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      this.#waiters.push({ ...target, resolve });
      this.#settleWaiters();
      void this.tick();
    });
  }

  #durable(waiter: { iteration: number; size: number }): boolean {
    if (this.#iteration === undefined) return false;
    return waiter.iteration < this.#iteration || (waiter.iteration === this.#iteration && waiter.size <= this.#shipped);
  }

  #settleWaiters(): void {
    this.#waiters = this.#waiters.filter((waiter) => {
      if (this.#durable(waiter)) waiter.resolve(true);
      else if (waiter.iteration === this.#iteration && this.#stopped) waiter.resolve(false);
      else return true;
      return false;
    });
  }

  /** Gives up every waiter (the replicator stops). */
  release(): void {
    for (const waiter of this.#waiters.splice(0)) waiter.resolve(this.#durable(waiter));
  }

  /** Ships a frame when one is due: commits pending, and `walFlushMs` passed or someone waits. */
  async tick(): Promise<void> {
    if (this.#busy || this.#iteration === undefined || this.#stopped) return;
    const pending = this.#shippable(this.#syncs.filter((sync) => sync.iteration === this.#iteration &&
      sync.size > this.#shipped));
    if (pending.length === 0) return;
    const now = performance.now();
    if (now < this.#retryAt) return;
    if (this.#waiters.length === 0 && now - this.#lastShipAt < this.#options.walFlushMs) return;
    this.#busy = true;
    let shipped = false;
    try {
      shipped = await this.#ship(this.#iteration, pending);
      this.#failures = 0;
    } catch (error) {
      this.#failures++;
      // Short: a `--sync` commit waits for this, and a frame is one small request.
      this.#retryAt = performance.now() + Math.min(this.#options.walFlushMs * 2 ** this.#failures, 1_000);
      this.#options.onError(`Cannot ship a WAL frame of ${this.#options.dbKey}: ${(error as Error).message}`);
    } finally {
      this.#busy = false;
      this.#lastShipAt = performance.now();
      this.#settleWaiters();
    }
    // Commits that waited while this frame was in flight go in the next one at once (group commit):
    // their callers are all waiting, so no new flush() would come to start it. Only after a frame was
    // written: a pass that found the header moved on waits for that generation (never a busy loop).
    if (shipped && this.#waiters.length > 0) setTimeout(() => void this.tick(), 0);
  }

  /**
   * The syncs to put in the next frame: all but a trailing sync that only logged a checkpoint (DuckDB
   * syncs the WAL's CHECKPOINT entry just before it writes the new header; the blocks announced with
   * it are the checkpoint's own, which the next generation ships: never twice).
   */
  #shippable(pending: (WalSync & { announcement: number })[]): (WalSync & { announcement: number })[] {
    if (pending.length === 0) return pending;
    const last = pending[pending.length - 1];
    const from = pending.length > 1 ? pending[pending.length - 2].size : this.#shipped;
    const bytes = from > 0 ? readWal(`${this.#options.dbPath}.wal`, from, last.size) : undefined;
    return bytes && onlyCheckpoint(bytes) ? pending.slice(0, -1) : pending;
  }

  /** Builds and writes the frames of `pending`; true when the chain moved on. */
  async #ship(iteration: number, pending: (WalSync & { announcement: number })[]): Promise<boolean> {
    const { dbPath } = this.#options;
    const epoch = this.#epoch;
    const superseded = () => readFileInfo(dbPath)?.iteration !== iteration || this.#epoch !== epoch;
    if (superseded()) return false; // a newer header: its generation supersedes
    const target = pending[pending.length - 1].size;
    const commits: FrameCommit[] = pending.map((sync) => ({ walEnd: sync.size, unixMs: sync.unixMs }));
    const wal = readWal(`${dbPath}.wal`, this.#shipped, target);
    if (!wal) {
      // DuckDB removes the WAL right after a new header: then that generation holds these commits.
      if (!superseded()) this.#stop(`${dbPath}.wal is shorter than its synced size ${target}`);
      return false;
    }
    // The blocks announced up to the last commit taken (later ones belong to later commits).
    const upTo = pending[pending.length - 1].announcement;
    const marks = new Map([...this.#blocks].filter(([, mark]) => mark.announcement <= upTo));
    const blocks = [...marks.keys()].sort((a, b) => a - b);
    let source;
    try {
      source = openFileSource(dbPath, iteration, blocks, this.#options.blockChecksumOk);
    } catch (error) {
      if (superseded()) return false;
      throw error;
    }
    const blockSize = source.fileInfo.blockAllocSize;
    const perFrame = Math.max(1, Math.floor(FRAME_BLOCK_BYTES_MAX / blockSize));
    try {
      for (let start = 0; start === 0 || start < blocks.length; start += perFrame) {
        const ids = blocks.slice(start, start + perFrame);
        const bytes = new Uint8Array(ids.length * blockSize);
        try {
          for (let i = 0; i < ids.length; i++) {
            source.read(bytes.subarray(i * blockSize, (i + 1) * blockSize), start + i, 1);
          }
        } catch (error) {
          if (superseded()) return false;
          throw error;
        }
        const last = start + perFrame >= blocks.length;
        // After the reads: the header still says `iteration`, so no block read belongs to a newer one.
        if (superseded()) return false;
        const written = await this.#put(iteration, { wal: last ? wal : new Uint8Array(0), commits: last ? commits : [],
          blockIds: ids, blocks: bytes, blockSize });
        if (this.#epoch !== epoch) return false; // a generation was published meanwhile: its chain, not ours
        if (!written) return true; // an earlier attempt's frame was there after all: start again from it
        // A block announced again while we uploaded was rewritten: it ships again in the next frame.
        for (const id of ids) if (this.#blocks.get(id)?.announcement === marks.get(id)?.announcement) this.#blocks.delete(id);
        if (!last) continue;
        this.#shipped = target;
        this.#status.lastDurableCommit = new Date(commits[commits.length - 1].unixMs).toISOString();
        this.#syncs = this.#syncs.filter((sync) => sync.iteration > iteration || sync.size > target);
      }
    } finally {
      source.close();
    }
    return true;
  }

  /**
   * Writes the next frame create-only. Returns false when that frame was found written already (our
   * own earlier PUT whose answer was lost) and adopted: the caller starts again from it.
   */
  async #put(iteration: number, body: { wal: Uint8Array; commits: FrameCommit[]; blockIds: number[];
    blocks: Uint8Array; blockSize: number }): Promise<boolean> {
    const { store, dbKey, signal } = this.#options;
    const number = this.#frame + 1;
    const key = frameKey(dbKey, iteration, number);
    const epoch = this.#epoch;
    if (this.#uncertain && await this.#adoptExisting(key, iteration)) return false;
    if (this.#epoch !== epoch) return false;
    const fence = this.#options.fence;
    const frame = encodeFrame({ blockAllocSize: body.blockSize, generation: iteration, number,
      walOffset: this.#shipped, wal: body.wal, commits: body.commits, blockIds: body.blockIds, blocks: body.blocks,
      previousSha256: this.#previous, epoch: fence?.epoch });
    if (fence && !fence.mayWrite()) throw new Error(`not writing ${key}: this node's lease (epoch ${fence.epoch}) ran out`);
    try {
      await store.put(key, frame.bytes, { ifNoneMatch: "*", signal: fence ? AbortSignal.any([signal, fence.signal()]) : signal });
    } catch (error) {
      if (this.#epoch !== epoch) return false;
      if (!(error instanceof PreconditionFailedError)) {
        this.#uncertain = true;
        throw error;
      }
      if (await this.#adoptExisting(key, iteration)) return false;
      const reason = `${key} exists and does not follow this writer's chain: another writer is shipping this ` +
        "database; stop it, then run `haduck verify`";
      this.#stop(reason);
      fence?.fenced(reason);
      return false;
    }
    if (this.#epoch !== epoch) return false;
    this.#uncertain = false;
    this.#frame = number;
    this.#previous = frame.sha256;
    this.#status.framesShipped++;
    if (body.commits.length > 0 && this.#options.onFrame) {
      try {
        this.#options.onFrame({ generation: iteration, frame: number, commitUnixMs: body.commits.map((c) => c.unixMs),
          durableUnixMs: Date.now(), bytes: frame.bytes.byteLength, blocks: body.blockIds.length });
      } catch (error) {
        this.#options.onError(`onFrame threw for frame ${number} of generation ${iteration}: ${(error as Error).message}`);
      }
    }
    return true;
  }

  /**
   * Whether a frame at `key` (our own PUT whose answer was lost) chains to where we stand; if so it
   * is adopted: the chain moves past it. Its blocks were read earlier than any attempt now, so the
   * marks stay and ship again in the next frame (bytes, never a wrong block).
   */
  async #adoptExisting(key: string, iteration: number): Promise<boolean> {
    let bytes: Uint8Array;
    try {
      bytes = await this.#options.store.get(key, { signal: this.#options.signal });
    } catch (error) {
      if (!(error instanceof BlockNotFoundError)) throw error;
      this.#uncertain = false;
      return false;
    }
    let frame;
    try {
      frame = decodeFrame(bytes, key);
    } catch {
      return false; // damaged: not our frame (the caller stops, naming the key)
    }
    // Another epoch's frame (a new leader's fence) is never ours, even where it chains.
    if (frame.generation !== iteration || frame.walOffset !== this.#shipped ||
      Buffer.compare(frame.previousSha256, this.#previous) !== 0 || (frame.epoch ?? 0) !== (this.#options.fence?.epoch ?? 0)) {
      return false;
    }
    this.#uncertain = false;
    this.#frame = frame.number;
    this.#previous = frame.sha256;
    this.#shipped = frame.walOffset + frame.wal.byteLength;
    const last = frame.commits.at(-1);
    if (last) {
      this.#status.lastDurableCommit = new Date(last.unixMs).toISOString();
      this.#syncs = this.#syncs.filter((sync) => sync.iteration > iteration || sync.size > this.#shipped);
    }
    this.#status.framesShipped++;
    return true;
  }
}

/** Bytes [from, to) of the WAL, or undefined when the file is missing or shorter. */
function readWal(path: string, from: number, to: number): Uint8Array | undefined {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch {
    return undefined;
  }
  try {
    if (fstatSync(fd).size < to) return undefined;
    const bytes = new Uint8Array(to - from);
    for (let done = 0; done < bytes.byteLength;) {
      const read = readSync(fd, bytes, done, bytes.byteLength - done, from + done);
      if (read === 0) return undefined;
      done += read;
    }
    return bytes;
  } finally {
    closeSync(fd);
  }
}

/** WAL entry types (DuckDB 1.4.4, wal_type.hpp) that a checkpoint's own sync logs. */
const WAL_CHECKPOINT = 99;
const WAL_FLUSH = 100;

/**
 * Whether WAL bytes (whole entries: u64 size, u64 checksum, payload starting with field 100, the
 * entry's type) hold a CHECKPOINT entry and nothing but WAL_FLUSH besides.
 */
export function onlyCheckpoint(bytes: Uint8Array): boolean {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let checkpoint = false;
  for (let at = 0; at < bytes.byteLength;) {
    if (at + 19 > bytes.byteLength) return false;
    const size = Number(view.getBigUint64(at, true));
    const payload = at + 16;
    if (view.getUint16(payload, true) !== 100) return false;
    const type = bytes[payload + 2];
    if (type === WAL_CHECKPOINT) checkpoint = true;
    else if (type !== WAL_FLUSH) return false;
    at = payload + size;
  }
  return checkpoint;
}
