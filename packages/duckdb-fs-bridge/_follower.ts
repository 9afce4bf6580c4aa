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
 * after the newest it shows. No LIST until something changed.
 */
import { DuckDBInstance } from "@duckdb/node-api";
import type { BlockStore } from "@haduck/s3-block-store";
import { BlockNotFoundError } from "@haduck/s3-block-store";
import { mkdirSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { frameKey } from "./_frame_format.ts";
import { latestKey } from "./_format.ts";
import { restore } from "./_restore.ts";

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
}

export interface Follower {
  /** Runs a read on the newest snapshot; rows as plain values. */
  query(sql: string): Promise<Record<string, unknown>[]>;
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
  let current: Snapshot | undefined;
  let position: FollowerPosition | undefined;
  let behindSince: number | undefined;
  let lastError: string | null = null;
  let serial = 0;
  let closed = false;
  let applying: Promise<void> | undefined;

  const release = (snapshot: Snapshot) => {
    if (snapshot.readers > 0 || !snapshot.retired) return;
    snapshot.instance.closeSync();
    rmSync(snapshot.path, { force: true });
    rmSync(`${snapshot.path}.haduck-identity`, { force: true });
  };

  /** Whether the store holds a commit newer than `position`: two small requests, no LIST. */
  const newer = async (): Promise<boolean> => {
    if (!position) return true;
    let hint: { generation?: number };
    try {
      hint = JSON.parse(new TextDecoder().decode(await store.get(latestKey(dbKey))));
    } catch (error) {
      if (error instanceof BlockNotFoundError) return false;
      throw error;
    }
    if (typeof hint.generation === "number" && hint.generation > position.generation) return true;
    return await store.head(frameKey(dbKey, position.generation, position.frames + 1)) !== undefined;
  };

  const apply = async (): Promise<void> => {
    if (!await newer()) {
      behindSince = undefined;
      return;
    }
    behindSince ??= performance.now();
    const path = join(dir, `replica-${++serial}.duckdb`);
    const result = await restore({ store, dbKey, to: path, force: true });
    const instance = await DuckDBInstance.create(path, { access_mode: "READ_ONLY", threads: "1" });
    const previous = current;
    current = { instance, path, readers: 0, retired: false };
    position = { generation: result.generation, frames: result.frames, lastCommit: result.lastCommit };
    if (previous) {
      previous.retired = true;
      release(previous);
    }
    // Caught up with what the store held when we looked; a commit since then shows at the next poll.
    behindSince = undefined;
    options.onApply?.(position);
  };

  const refresh = (): Promise<void> => {
    applying ??= apply().then(() => {
      lastError = null;
    }, (error) => {
      lastError = `Cannot follow ${dbKey} in ${store.url}: ${(error as Error).message}`;
    }).finally(() => applying = undefined);
    return applying;
  };

  await apply(); // the first snapshot, or the store's error, before anyone reads
  const timer = setInterval(() => {
    if (!closed) void refresh();
  }, pollMs);

  return {
    async query(sql: string) {
      const snapshot = current;
      if (!snapshot || closed) throw new Error(`The follower of ${dbKey} is closed`);
      snapshot.readers++;
      const connection = await snapshot.instance.connect();
      try {
        return (await connection.runAndReadAll(sql)).getRowObjectsJS();
      } finally {
        connection.closeSync();
        snapshot.readers--;
        release(snapshot);
      }
    },
    get position() {
      return position;
    },
    get lagMs() {
      return behindSince === undefined ? 0 : performance.now() - behindSince;
    },
    get lastError() {
      return lastError;
    },
    refresh,
    async close() {
      closed = true;
      clearInterval(timer);
      await applying;
      if (current) {
        current.retired = true;
        release(current);
      }
    },
  };
}
