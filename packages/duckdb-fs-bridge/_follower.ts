/**
 * @module
 * `follow()`: an in-process read replica of a database in the store. It polls the store, and when
 * the store holds a newer commit (a new generation, or a WAL frame after the one it shows) it
 * restores the latest commit into a new local file, opens that read-only in its own DuckDB
 * instance, and switches new reads to it. Reads that run meanwhile finish on the snapshot they
 * started on, which is closed and removed once the last of them ends.
 *
 * Why whole restores rather than applying blocks in place: every read sees one committed state of
 * the writer, never a mix, and a running query is never cut off; and the restore's DuckDB child has
 * already replayed the WAL writable and checkpointed, so the replica opens read-only with no WAL,
 * around DuckDB 1.4.4's read-only replay bugs (optimistic writes, CREATE INDEX). The price is a full
 * restore per change, which bounds this to databases a restore handles within the poll interval;
 * applying changed blocks into a copy is the next step for large ones.
 *
 * An idle follower makes two small requests per poll: a GET of `latest.json` and a HEAD of the frame
 * after the newest it shows; one poll in `LIST_EVERY` lists the manifests too (the hint is only a
 * hint). A failing apply backs off (it restores everything), doubling to 30 s.
 */
import { type DuckDBConnection, DuckDBInstance } from "@duckdb/node-api";
import type { BlockStore } from "@haduck/s3-block-store";
import { BlockNotFoundError } from "@haduck/s3-block-store";
import { mkdirSync, readdirSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { frameKey } from "./_frame_format.ts";
import { latestKey } from "./_format.ts";
import { restore } from "./_restore.ts";
import { listGenerations } from "./_catalog.ts";

/** Every this many idle polls, the manifests are listed as well (the hint may be stale). */
const LIST_EVERY = 20;

export interface FollowOptions {
  store: BlockStore;
  dbKey: string;
  /** A directory of the follower's own for its replica files (created; its replica files are removed on close). */
  dir: string;
  /** How often to look for newer commits. Default 500 ms. */
  pollMs?: number;
  /** Called after each switch to a newer commit. */
  onApply?: (position: FollowerPosition) => void;
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
  /** Runs `fn` on a connection to the newest snapshot, which stays open until `fn` settles. */
  withConnection<T>(fn: (connection: DuckDBConnection) => Promise<T>): Promise<T>;
  readonly position: FollowerPosition | undefined;
  /** How long the store has held a commit this replica does not show yet (0: caught up). */
  readonly lagMs: number;
  /** Why the last poll or apply failed, or null. */
  readonly lastError: string | null;
  /** Looks for newer commits now and applies them; resolves when done. */
  refresh(): Promise<void>;
  close(): Promise<void>;
}

interface Snapshot {
  instance: DuckDBInstance;
  path: string;
  readers: number;
  retired: boolean;
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
  mkdirSync(dir, { recursive: true });
  // Replica files of an earlier process (it crashed before close()) are nobody's now.
  for (const name of readdirSync(dir)) if (name.startsWith("replica-")) rmSync(join(dir, name), { force: true });
  let current: Snapshot | undefined;
  let position: FollowerPosition | undefined;
  let behindSince: number | undefined;
  let lastError: string | null = null;
  /** A restore that stopped before the last frame listed (a missing frame): what the replica lacks. */
  let lastWarning: string | null = null;
  let serial = 0;
  let closed = false;
  let applying: Promise<void> | undefined;
  let polls = 0;
  /** Consecutive failed applies, and until when the next poll waits (backoff: a failing apply restores everything). */
  let failures = 0;
  let retryAt = 0;

  const release = (snapshot: Snapshot) => {
    if (snapshot.readers > 0 || !snapshot.retired) return;
    snapshot.instance.closeSync();
    rmSync(snapshot.path, { force: true });
    rmSync(`${snapshot.path}.haduck-identity`, { force: true });
  };

  /**
   * Whether the store holds a commit newer than `position`: two small requests (the hint, and the
   * next frame), no LIST; every LIST_EVERY polls the manifests are listed too, since the hint is
   * only a hint (its writer does not fail a generation when the hint's PUT fails).
   */
  const newer = async (): Promise<boolean> => {
    if (!position) return true;
    let hint: { generation?: number } = {};
    try {
      hint = JSON.parse(new TextDecoder().decode(await store.get(latestKey(dbKey))));
    } catch (error) {
      if (!(error instanceof BlockNotFoundError) && !(error instanceof SyntaxError)) throw error;
    }
    if (typeof hint.generation === "number" && hint.generation > position.generation) return true;
    if (await store.head(frameKey(dbKey, position.generation, position.frames + 1)) !== undefined) return true;
    if (++polls % LIST_EVERY !== 0) return false;
    return ((await listGenerations(store, dbKey)).at(-1) ?? -1) > position.generation;
  };

  const apply = async (): Promise<void> => {
    if (!await newer()) {
      behindSince = undefined;
      return;
    }
    behindSince ??= performance.now();
    const path = join(dir, `replica-${++serial}.duckdb`);
    const discard = () => {
      rmSync(path, { force: true });
      rmSync(`${path}.haduck-identity`, { force: true });
    };
    let result;
    let instance: DuckDBInstance;
    try {
      result = await restore({ store, dbKey, to: path, force: true });
      if (result.warning) lastWarning = result.warning;
      instance = await DuckDBInstance.create(path, { access_mode: "READ_ONLY", threads: "1" });
    } catch (error) {
      discard();
      throw error;
    }
    if (closed) { // closed while we restored: nobody will read this one
      instance.closeSync();
      discard();
      return;
    }
    const previous = current;
    current = { instance, path, readers: 0, retired: false };
    position = { generation: result.generation, frames: result.frames, lastCommit: result.lastCommit,
      walBytes: result.walBytes };
    if (previous) {
      previous.retired = true;
      release(previous);
    }
    // Caught up with what the store held when we looked; a commit since then shows at the next poll.
    behindSince = undefined;
    options.onApply?.(position);
  };

  const refresh = (): Promise<void> => {
    if (closed) return Promise.resolve();
    applying ??= apply().then(() => {
      lastError = null;
      failures = 0;
    }, (error) => {
      lastError = `Cannot follow ${dbKey} in ${store.url}: ${(error as Error).message}`;
      retryAt = performance.now() + Math.min(pollMs * 2 ** ++failures, 30_000);
    }).finally(() => applying = undefined);
    return applying;
  };

  await apply(); // the first snapshot, or the store's error, before anyone reads
  const timer = setInterval(() => {
    if (!closed && performance.now() >= retryAt) void refresh();
  }, pollMs);
  (timer as { unref?: () => void }).unref?.(); // a follower nobody closed does not keep its process alive

  const withConnection = async <T>(fn: (connection: DuckDBConnection) => Promise<T>): Promise<T> => {
    const snapshot = current;
    if (!snapshot || closed) throw new Error(`The follower of ${dbKey} is closed`);
    snapshot.readers++;
    try {
      const connection = await snapshot.instance.connect();
      try {
        return await fn(connection);
      } finally {
        connection.closeSync();
      }
    } finally {
      snapshot.readers--;
      release(snapshot);
    }
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
      return lastError ?? lastWarning;
    },
    refresh,
    async close() {
      closed = true;
      clearInterval(timer);
      while (applying) await applying;
      if (current) {
        current.retired = true;
        release(current);
      }
    },
  };
}
