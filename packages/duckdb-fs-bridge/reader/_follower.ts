/**
 * @module
 * `follow()`: an in-process read replica of a database in the store.
 *
 * From the data's point of view: the follower keeps a **base**, the latest generation restored as
 * the writer stored it (never opened by DuckDB) plus the WAL frames applied since: each frame's
 * blocks written into the base file (they lie on blocks free under the generation's header) and
 * its WAL bytes appended to the base's WAL, each frame checked and chained to the one before. A
 * newer generation is brought into the base in place: only its changed blocks are fetched and written.
 *
 * A **snapshot** is a copy-on-write view of the base (the extension's overlay, snapshot.hpp) with a
 * copy of the base's WAL, ATTACHed writable as `haduck-snapshot://...` in an in-memory DuckDB
 * instance of its own: DuckDB replays the WAL there (writable, and through ATTACH: 1.4.4 replays
 * optimistic writes, CREATE INDEX and some ALTERs wrongly read-only or as the main database), and
 * whatever DuckDB then writes goes to the overlay, never to the base. Every write to the base (a
 * frame's block, a generation's, a promotion's replay, the new leader's DuckDB) first copies what an
 * open snapshot still reads from that range into the snapshot's overlay. So opening a snapshot costs
 * the WAL since the generation, never the database's size. (Without FFI, under Node, a snapshot is a
 * whole copy of the base, as it used to be.) New reads go to the newest snapshot; a read that runs
 * meanwhile finishes on the snapshot it started on, which is closed and removed when its last read
 * ends. Every read sees one committed state of the writer.
 *
 * An idle follower makes two small requests per poll, both HEADs: the next frame, and the
 * `latest.json` hint (a GET only when its ETag changed: a new generation). A LIST of the manifests
 * once a minute catches a hint that was never written. A failing apply backs off, doubling to 30 s.
 */
import { type DuckDBConnection, DuckDBInstance } from "@duckdb/node-api";
import type { SandboxOptions } from "../local/_sandbox.ts";
import type { BlockStore } from "@haduck/s3-block-store";
import { BlockNotFoundError } from "@haduck/s3-block-store";
import { copyFileSync, mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import * as fs from "node:fs/promises";
import { join, resolve } from "node:path";
import { decodeFrame, decodeLatestHint, frameKey, nextInChain } from "@haduck/duckblock";
import { latestKey } from "@haduck/duckblock";
import { restore } from "./_restore.ts";
import { headAtTime, listGenerations, loadManifestHead } from "@haduck/duckblock";
import { blockOffset } from "@haduck/duckblock";
import { ReplicationError } from "@haduck/duckblock";
import { writeIdentity } from "../local/_identity.ts";
import { openDuckDB, Snapshots } from "../native/_native.ts";
import { type Hydration, LazyBase } from "./_lazy_base.ts";
import { openSnapshot, releaseSnapshot as release, sameFileSystem, type Snapshot, VIEWS } from "./_replica_snapshot.ts";

/** How often the manifests are listed as well (the hint is only a hint). */
const LIST_EVERY_MS = 60_000;

export interface FollowOptions {
  store: BlockStore;
  dbKey: string;
  /** A directory of the follower's own for its replica files (created; its replica files are removed on close). */
  dir: string;
  /** How often to look for newer commits. Default 500 ms. */
  pollMs?: number;
  /** Called after each switch to a newer commit. */
  onApply?: (position: FollowerPosition) => void;
  /**
   * Sandbox every snapshot's instance (see `sandbox()`) once its replica is attached: for a follower
   * that serves SQL to others. Its spill goes to a directory beside the snapshot, removed with it.
   */
  sandbox?: SandboxOptions;
  /**
   * Open the first generation lazily (default true where snapshots are views: Bun, Deno): the
   * follower answers as soon as the header is local, DuckDB's reads fetch the blocks they need, and
   * the rest is fetched in the background. A base left by an earlier process (kill -9) is kept: its
   * blocks with the manifest's digests are not fetched again. False: restore it whole first.
   */
  lazy?: boolean;
  /** Show this generation's checkpoint and stay there (time travel): no frames, no following. */
  generation?: number;
  /** Show the last commit at or before this time (Unix ms) and stay there (time travel). */
  untilMs?: number;
}

/** What the replica shows: a generation and the WAL frames applied after it. */
export interface FollowerPosition {
  generation: number;
  frames: number;
  /** Time of the last commit shown (ISO 8601), or null for a checkpoint without frames. */
  lastCommit: string | null;
  /** The generation's WAL bytes its frames applied (the leader's `position` counts the same). */
  walBytes: number;
}

export interface Follower {
  /** Runs a read on the newest snapshot; rows as plain values. */
  query(sql: string): Promise<Record<string, unknown>[]>;
  /** Runs `fn` on a connection to the newest snapshot (and where it stands), which stays open until `fn` settles. */
  withConnection<T>(fn: (connection: DuckDBConnection, shown: FollowerPosition) => Promise<T>): Promise<T>;
  readonly position: FollowerPosition | undefined;
  /** How long the store has held a commit this replica does not show yet (0: caught up). */
  readonly lagMs: number;
  /** Why the last poll or apply failed, or null. */
  readonly lastError: string | null;
  /** How far a lazily opened base is local (undefined: restored whole, or hydrated and let go). */
  readonly hydration: Hydration | undefined;
  /** Looks for newer commits now and applies them; resolves when done. */
  refresh(): Promise<void>;
  /**
   * Stops following and turns the base into a database file for a writer at `to` (a promotion):
   * every frame in the store applied first, its WAL replayed and checkpointed, the identity file
   * written. `generation`: the one to end at (a new leader's fenced generation): a base of an older
   * one is brought to it first, fetching only the blocks that changed. Returns where it stands; the
   * follower is closed after it.
   */
  materialize(to: string, options?: { generation?: number }): Promise<FollowerPosition>;
  close(): Promise<void>;
}

/** The generation as stored plus the frames applied since, in `base.duckdb` and `base.duckdb.wal`. */
interface Base {
  generation: number;
  identity: string | undefined;
  frames: number;
  /** Where the chain stands: the last frame's checksum (the manifest's SHA-256 before any). */
  previous: Uint8Array;
  walEnd: number;
  lastCommitUnixMs: number | undefined;
  /** The lease epoch of the last frame applied (a frame of an older one after it is a deposed writer's). */
  epoch: number;
  blockAllocSize: number;
  /** Each block's SHA-256 in the generation, and the blocks frames wrote since: what a newer generation can reuse. */
  shas: Map<number, string>;
  framed: Set<number>;
}

/**
 * Opens a read replica of `dbKey`, at the latest commit in the store.
 *
 * @example
 * ```ts
 * import { follow } from "@haduck/duckdb-fs-bridge";
 * import { openStore } from "@haduck/s3-block-store";
 * const replica = await follow({ store: openStore("file:///tmp/haduck-store"), dbKey: "demo.duckdb",
 *   dir: "/tmp/demo-replica" });
 * console.log(await replica.query("SELECT count(*) AS n FROM t"));
 * await replica.close();
 * ```
 */
export async function follow(options: FollowOptions): Promise<Follower> {
  const { store, dbKey } = options;
  const dir = resolve(options.dir);
  const pollMs = options.pollMs ?? 500;
  if (!Number.isSafeInteger(pollMs) || pollMs < 10) throw new RangeError(`Invalid pollMs ${pollMs}: expected >= 10 ms`);
  const lazyOpen = VIEWS && options.lazy !== false;
  const pinned = options.generation !== undefined || options.untilMs !== undefined;
  if (options.generation !== undefined && options.untilMs !== undefined) {
    throw new ReplicationError("BAD_ARGUMENT", "Give a generation or a time to follow at, not both");
  }
  mkdirSync(dir, { recursive: true });
  // Files of an earlier process (it crashed before close()) are nobody's now; a lazy base keeps what
  // it fetched (checked block by block against the manifest before it is used).
  for (const name of readdirSync(dir)) {
    if (lazyOpen && name === "base.duckdb") continue;
    if (name.startsWith("replica-") || name.startsWith("base.")) rmSync(join(dir, name), { recursive: true, force: true });
  }
  const basePath = join(dir, "base.duckdb");
  let lazy: LazyBase | undefined;
  let hydration: Hydration | undefined;
  /** Before the follower overwrites [offset, offset + length) of the base: what open snapshots read stays theirs. */
  const beforeBaseWrite = async (offset: number, length?: number) => {
    if (lazy) await lazy.fetchNow(lazy.blocksIn(offset, length).filter((id) => lazy!.isMissing(id)));
    Snapshots.beforeWrite(basePath, offset, length);
  };
  const afterBaseWrite = (offset: number, length: number) => lazy?.markLocal(lazy.blocksIn(offset, length));
  let base: Base | undefined;
  let current: Snapshot | undefined;
  let position: FollowerPosition | undefined;
  let behindSince: number | undefined;
  let lastError: string | null = null;
  let serial = 0;
  let closed = false;
  let applying: Promise<void> | undefined;
  let hintEtag: string | undefined;
  let listedAt = performance.now();
  /** Consecutive failed applies, and until when the next poll waits (backoff). */
  let failures = 0;
  let retryAt = 0;


  /** Restores `generation` (the latest when undefined) as stored, without frames: the new base. */
  const rebuildBase = async (generation?: number) => {
    const latest = generation ?? (await listGenerations(store, dbKey)).at(-1);
    if (latest === undefined) {
      throw new ReplicationError("NO_GENERATIONS", `No generations of ${dbKey} in ${store.url}: nothing to follow ` +
        "(check the store and the key)");
    }
    const head = await loadManifestHead(store, dbKey, latest);
    // A newer generation of the same database reuses the base: only blocks that changed, or that
    // frames wrote since, are fetched.
    const old = base?.blockAllocSize === head.head.database.blockAllocSize ? base : undefined;
    base = undefined; // the base file changes below; a failure leaves no base to build on
    let shas = new Map<number, string>();
    const unchanged = (id: number, sha: string) => !old!.framed.has(id) && old!.shas.get(id) === sha;
    if (!old && lazyOpen) {
      // The first base, lazily: its header now, its blocks when read (and in the background).
      lazy?.close("The replica's base was replaced");
      // Snapshots still read the old file (a base started again after a broken chain): a new one.
      if (current) rmSync(basePath, { force: true });
      lazy = await LazyBase.open(store, dbKey, basePath, head);
      hydration = lazy.hydration;
      shas = lazy.shas();
    } else {
      if (!old) {
        lazy?.close("The replica's base was replaced");
        lazy = undefined;
      }
      // In place where snapshots are views (they keep what they read); else into a copy, renamed over.
      await restore({ store, dbKey, to: basePath, generation: latest, force: true, openCheck: false,
        into: old && VIEWS ? { unchanged, beforeWrite: beforeBaseWrite, afterWrite: afterBaseWrite } : undefined,
        seed: old && !VIEWS ? { path: basePath, unchanged } : undefined,
        onEntry: (id, sha) => shas.set(id, sha) });
      await lazy?.adopt(store, dbKey, head);
    }
    rmSync(`${basePath}.wal`, { force: true });
    base = { generation: latest, identity: head.head.database.haduckIdentity, frames: 0,
      previous: Buffer.from(head.sha256, "hex"), walEnd: 0, lastCommitUnixMs: undefined,
      blockAllocSize: head.head.database.blockAllocSize, shas, framed: new Set(), epoch: 0 };
  };

  /** Applies the frames after the base's last, in order, until the next is not there; returns how many. */
  const applyNewFrames = async (): Promise<number> => {
    const b = base!;
    if (options.generation !== undefined) return 0; // a checkpoint alone
    let applied = 0;
    const file = await fs.open(basePath, "r+");
    const wal = await fs.open(`${basePath}.wal`, "a");
    try {
      for (;;) {
        const key = frameKey(dbKey, b.generation, b.frames + 1);
        let bytes: Uint8Array;
        try {
          bytes = await store.get(key);
        } catch (error) {
          if (error instanceof BlockNotFoundError) break;
          throw error;
        }
        const frame = decodeFrame(bytes, key);
        const next = nextInChain(frame, key, { generation: b.generation, number: b.frames, previous: b.previous,
          walEnd: b.walEnd, epoch: b.epoch }, { untilMs: options.untilMs,
          stops: `the follower stays at frame ${b.frames} until the next generation` });
        // After a new leader's fence, the deposed writer's frame: this generation's chain ends at the fence.
        if (next.fenced) break;
        const taken = next.taken;
        // Pinned at a time: the commits after it are not shown (a frame cut at its last commit before).
        if (taken === 0 && frame.commits.length > 0) break;
        for (const [index, block] of frame.blockIds.entries()) {
          const blockBytes = frame.blocks.subarray(index * frame.blockAllocSize, (index + 1) * frame.blockAllocSize);
          b.framed.add(block);
          const offset = blockOffset(block, frame.blockAllocSize);
          if (VIEWS) await beforeBaseWrite(offset, blockBytes.byteLength);
          await file.write(blockBytes, 0, blockBytes.byteLength, offset);
          afterBaseWrite(offset, blockBytes.byteLength);
        }
        const walBytes = taken < frame.commits.length ? frame.commits[taken - 1].walEnd - frame.walOffset
          : frame.wal.byteLength;
        if (walBytes > 0) await wal.write(frame.wal, 0, walBytes);
        b.frames = frame.number;
        b.previous = frame.sha256;
        b.walEnd = frame.walOffset + walBytes;
        b.lastCommitUnixMs = frame.commits[taken - 1]?.unixMs ?? b.lastCommitUnixMs;
        b.epoch = frame.epoch ?? 0;
        applied++;
        if (taken < frame.commits.length) break;
      }
    } finally {
      await file.close();
      await wal.close();
    }
    return applied;
  };

  /** The generation the store's hint names, when it changed since the last look (a HEAD, and a GET on change). */
  const hintedGeneration = async (): Promise<number | undefined> => {
    const info = await store.head(latestKey(dbKey));
    if (!info || info.etag === hintEtag) return undefined;
    try {
      const hint = decodeLatestHint(await store.get(latestKey(dbKey)));
      hintEtag = info.etag;
      return hint?.generation;
    } catch (error) {
      if (error instanceof BlockNotFoundError || error instanceof SyntaxError) return undefined;
      throw error;
    }
  };

  const apply = async (): Promise<void> => {
    if (lazy?.done) {
      // Every block is local: the base is an ordinary one from now on.
      lazy.close("");
      lazy = undefined;
    }
    let changed = false;
    if (!base) {
      await rebuildBase(options.generation ??
        (options.untilMs === undefined ? undefined : (await headAtTime(store, dbKey, options.untilMs)).head.generation));
      changed = true;
    } else if (pinned) {
      return;
    } else {
      let generation = await hintedGeneration();
      if (generation === undefined && performance.now() - listedAt >= LIST_EVERY_MS) {
        listedAt = performance.now();
        generation = (await listGenerations(store, dbKey)).at(-1);
      }
      if (generation !== undefined && generation > base.generation) {
        behindSince ??= performance.now();
        await rebuildBase(generation);
        changed = true;
      }
    }
    if (await applyNewFrames() > 0) changed = true;
    if (!changed) {
      behindSince = undefined;
      return;
    }
    behindSince ??= performance.now();
    const b = base!;
    const shown = { generation: b.generation, frames: b.frames, walBytes: b.walEnd,
      lastCommit: b.lastCommitUnixMs === undefined ? null : new Date(b.lastCommitUnixMs).toISOString() };
    const snapshot = await openSnapshot(basePath, join(dir, `replica-${++serial}.duckdb`), shown, options.sandbox);
    lazy?.startHydration();
    if (closed) {
      snapshot.retired = true;
      release(snapshot);
      return;
    }
    const previous = current;
    current = snapshot;
    position = shown;
    if (previous) {
      previous.retired = true;
      release(previous);
    }
    behindSince = undefined; // caught up with what the store held when we looked
    options.onApply?.(position);
  };

  const refresh = (): Promise<void> => {
    if (closed || pinned) return Promise.resolve();
    applying ??= apply().then(() => {
      lastError = null;
      failures = 0;
    }, (error) => {
      lastError = `Cannot follow ${dbKey} in ${store.url}: ${(error as Error).message}`;
      if (error instanceof ReplicationError && error.code === "INTEGRITY") base = undefined; // start again from a generation
      retryAt = performance.now() + Math.min(pollMs * 2 ** ++failures, 30_000);
    }).finally(() => applying = undefined);
    return applying;
  };

  try {
    await apply(); // the first snapshot, or the store's error, before anyone reads
  } catch (error) {
    lazy?.close();
    rmSync(basePath, { force: true });
    rmSync(`${basePath}.wal`, { force: true });
    throw error;
  }
  const timer = setInterval(() => {
    if (!closed && performance.now() >= retryAt) void refresh();
  }, pollMs);
  (timer as { unref?: () => void }).unref?.(); // a follower nobody closed does not keep its process alive

  const withConnection = async <T>(fn: (connection: DuckDBConnection, shown: FollowerPosition) => Promise<T>):
    Promise<T> => {
    const snapshot = current;
    if (!snapshot || closed) throw new Error(`The follower of ${dbKey} is closed`);
    snapshot.readers++;
    // A statement abandoned by its caller (its error carries `settled`) still holds the connection:
    // it is closed, and the snapshot let go, only once DuckDB is done with it (closing a busy
    // connection waits for it, on the event loop).
    let busyUntil: Promise<void> | undefined;
    const letGo = () => {
      snapshot.readers--;
      release(snapshot);
    };
    try {
      let connection = snapshot.idle.pop();
      if (!connection) {
        connection = await snapshot.instance.connect();
        await connection.run("USE replica");
      }
      let reusable = false;
      try {
        const result = await fn(connection, snapshot.position);
        reusable = !snapshot.retired;
        return result;
      } catch (error) {
        busyUntil = (error as { settled?: Promise<void> }).settled;
        throw error;
      } finally {
        // A read that failed may have left its connection in any state: only clean ones are kept.
        if (reusable && snapshot.idle.length < 8) snapshot.idle.push(connection);
        else if (busyUntil) void busyUntil.then(() => connection.closeSync());
        else connection.closeSync();
      }
    } finally {
      if (busyUntil) void busyUntil.then(letGo);
      else letGo();
    }
  };

  const close = async () => {
    closed = true;
    clearInterval(timer);
    while (applying) await applying;
    lazy?.close();
    lazy = undefined;
    if (current) {
      current.retired = true;
      await release(current);
    }
    rmSync(basePath, { force: true });
    rmSync(`${basePath}.wal`, { force: true });
  };

  return {
    query: (sql: string) => withConnection(async (connection) => (await connection.runAndReadAll(sql)).getRowObjectsJS()),
    withConnection,
    get position() {
      return position;
    },
    get lagMs() {
      return behindSince === undefined ? 0 : performance.now() - behindSince;
    },
    get lastError() {
      return lastError;
    },
    get hydration() {
      return hydration;
    },
    refresh,
    async materialize(to: string, options: { generation?: number } = {}) {
      closed = true;
      clearInterval(timer);
      while (applying) await applying;
      try {
        if (!base || (options.generation !== undefined && base.generation < options.generation)) {
          await rebuildBase(options.generation);
        }
        await applyNewFrames();
        // The writer's file must be whole: what is not local yet is fetched now.
        if (lazy) {
          await lazy.whenHydrated();
          lazy.close("");
          lazy = undefined;
        }
        const b = base!;
        // The base itself becomes the writer's file, where it can be renamed (the same file system)
        // and snapshots are views (they keep what they still read); else a copy of it does.
        const inPlace = VIEWS && sameFileSystem(basePath, to);
        const temp = inPlace ? basePath : `${to}.haduck-materialize`;
        if (!inPlace) {
          copyFileSync(basePath, temp);
          const walBytes = statSync(`${basePath}.wal`, { throwIfNoEntry: false })?.size ?? 0;
          if (walBytes > 0) copyFileSync(`${basePath}.wal`, `${temp}.wal`);
          else rmSync(`${temp}.wal`, { force: true });
        }
        // Replayed and checkpointed here: the writer opens a file with no WAL, as a restore leaves it.
        // In place through haduck-snapshot://, whose writes keep what open snapshots read.
        if (inPlace) Snapshots.allowBase(temp, true);
        const instance = inPlace ? await openDuckDB(":memory:") : await DuckDBInstance.create(":memory:");
        try {
          const connection = await instance.connect();
          const attached = inPlace ? `haduck-snapshot://${temp}` : temp;
          await connection.run(`ATTACH '${attached.replaceAll("'", "''")}' AS promoted`);
          await connection.run("CHECKPOINT promoted");
          await connection.run("DETACH promoted");
          connection.closeSync();
        } finally {
          instance.closeSync();
          if (inPlace) Snapshots.allowBase(temp, false);
        }
        rmSync(`${temp}.wal`, { force: true });
        if (b.identity) await writeIdentity(to, b.identity);
        rmSync(`${to}.wal`, { force: true });
        await fs.rename(temp, to);
        return { generation: b.generation, frames: b.frames, walBytes: b.walEnd,
          lastCommit: b.lastCommitUnixMs === undefined ? null : new Date(b.lastCommitUnixMs).toISOString() };
      } finally {
        await close();
      }
    },
    close,
  };
}
