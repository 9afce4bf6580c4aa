/**
 * @module
 * `attach()`: a DuckDB instance with the extension loaded, the database attached through
 * `haduck://`, and a `Replicator` following it. `close()` ships what is pending, then detaches.
 */
import type { DuckDBConnection, DuckDBInstance } from "@duckdb/node-api";
import type { BlockStore } from "@haduck/s3-block-store";
import { basename, resolve } from "node:path";
import { Native, openDuckDB } from "../native/_native.ts";
import { type FrameShipped, type GenerationShipped, Replicator, type UploadProgress } from "./_replicator.ts";
import type { WriterFence } from "./_replicator_types.ts";
import { checkpointWhenQuiet } from "../local/_checkpoint.ts";
import { readFileInfo } from "../local/_block_source.ts";
import { statSync } from "node:fs";
import { assertValidDbKey } from "@haduck/duckblock";

export interface AttachOptions {
  /** Local path of the database file; created if missing. */
  dbPath: string;
  /** Undefined: local-only mode. */
  store?: BlockStore;
  /** Key of this database in the store. Default: the file's name. */
  dbKey?: string;
  /** SQL alias. Default `db`. */
  alias?: string;
  holdMs?: number;
  /** See `ReplicatorOptions.walFlushMs`. Default 250 ms; 0: no WAL frames (commits ship at checkpoints). */
  walFlushMs?: number;
  /** See `ReplicatorOptions.walFramesInFlight`. Default 4. */
  walFramesInFlight?: number;
  /** See `ReplicatorOptions.catchUpDelayMs`. Default 1000 ms. */
  catchUpDelayMs?: number;
  onGeneration?: (event: GenerationShipped) => void;
  /** See `ReplicatorOptions.onFrame`. */
  onFrame?: (event: FrameShipped) => void;
  onUploadProgress?: (event: UploadProgress) => void;
  /** A cluster's lease over this writer (see `WriterFence`): its epoch, checked before every write. */
  fence?: WriterFence;
}

export interface AttachedDatabase {
  instance: DuckDBInstance;
  connection: DuckDBConnection;
  replicator: Replicator;
  alias: string;
  dbKey: string;
  /**
   * Checkpoints (waiting while other connections write, see `checkpointWhenQuiet`) and resolves once
   * the store holds the file's committed state, or the store failed (`replicator.status.lastError`).
   */
  checkpoint(): Promise<void>;
  /**
   * Resolves true once every commit made before the call is durable in the store: in a WAL frame
   * (concurrent callers share one: group commit), or, when frames cannot carry it (they stopped until
   * the next checkpoint), in a generation after a checkpoint. Waits while the store fails. False in
   * local-only mode, or when the store holds it only after the failure `replicator.status.lastError` names.
   */
  flush(): Promise<boolean>;
  /** Checkpoints, detaches, ships everything the file holds that the store lacks, and closes. */
  close(): Promise<void>;
}

/** Derives the default store key from a database path: its file name. */
export function defaultDbKey(dbPath: string): string {
  return basename(dbPath).replace(/[^A-Za-z0-9._-]/g, "_").replace(/^[.-]/, "_").slice(0, 200) || "_";
}

/**
 * Opens a replicated database.
 *
 * @example
 * ```ts
 * import { attach } from "@haduck/duckdb-fs-bridge";
 * import { openStore } from "@haduck/s3-block-store";
 * const db = await attach({ dbPath: "/tmp/demo.duckdb", store: openStore("file:///tmp/haduck-store") });
 * await db.connection.run("CREATE TABLE IF NOT EXISTS db.t AS SELECT 1 AS x");
 * await db.checkpoint();
 * await db.close();
 * ```
 */
export async function attach(options: AttachOptions): Promise<AttachedDatabase> {
  const dbPath = resolve(options.dbPath);
  const alias = options.alias ?? "db";
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(alias)) throw new TypeError(`Invalid alias ${JSON.stringify(alias)}`);
  const dbKey = options.dbKey ?? defaultDbKey(dbPath);
  assertValidDbKey(dbKey);
  const instance = await openDuckDB();
  const native = new Native();
  const replicator = new Replicator({ native, dbPath, store: options.store, dbKey, holdMs: options.holdMs,
    catchUpDelayMs: options.catchUpDelayMs, walFlushMs: options.walFlushMs, walFramesInFlight: options.walFramesInFlight, onFrame: options.onFrame,
    onGeneration: options.onGeneration, onUploadProgress: options.onUploadProgress, fence: options.fence });
  try {
    await replicator.start(); // a store that cannot be trusted, or cannot be read, stops here
  } catch (error) {
    instance.closeSync();
    throw error;
  }
  try {
    await replicator.reconcile();
  } catch (error) {
    await replicator.stop();
    instance.closeSync();
    throw error;
  }
  const connection = await instance.connect();
  try {
    await connection.run(`ATTACH 'haduck://${dbPath.replaceAll("'", "''")}' AS ${alias}`);
    await connection.run(`USE ${alias}`);
    // The first generation of a database new to the store ships every block.
    await connection.run(`CHECKPOINT ${alias}`);
    await replicator.idle();
  } catch (error) {
    await replicator.stop();
    connection.closeSync();
    throw error;
  }
  return {
    instance,
    connection,
    replicator,
    alias,
    dbKey,
    async checkpoint() {
      await checkpointWhenQuiet(connection, alias);
      await replicator.flush();
    },
    async flush() {
      if (!options.store) return false;
      // What the file held when we were called: the caller's commit is in it (DuckDB synced the WAL
      // before the statement returned). The shipper's word is checked against it, never trusted alone.
      const generation = readFileInfo(dbPath)?.generation ?? -1;
      const walSize = statSync(`${dbPath}.wal`, { throwIfNoEntry: false })?.size ?? 0;
      // The caller's commit ends at or before the newest commit announced for the file's own
      // generation (another connection may be writing past it, not yet synced). Announcements under
      // another generation (a path tracked before: see tests/reattach.test.ts) prove nothing: then the
      // whole WAL must be shipped.
      const synced = replicator.walSynced(generation);
      const before = { generation, wal: synced === undefined ? walSize : Math.min(walSize, synced) };
      const holds = () => {
        const published = replicator.status.lastGeneration ?? -1;
        const chain = replicator.walChain;
        return published > before.generation || (before.wal === 0 && published >= before.generation) ||
          (chain !== undefined && chain.generation === before.generation && chain.walShipped >= before.wal);
      };
      // Bytes past the last announcement (another commit between its write and its sync) ship in the
      // next frame: a second round takes them; a third failing means frames did not carry it.
      for (let round = 0; round < 3; round++) {
        if (!await replicator.flushWal()) break;
        if (holds()) return true;
      }
      await checkpointWhenQuiet(connection, alias);
      const checkpointed = readFileInfo(dbPath)?.generation ?? 0;
      await replicator.flush();
      return (replicator.status.lastGeneration ?? -1) >= checkpointed;
    },
    async close() {
      // The last checkpoint, then DETACH (DuckDB checkpoints what its WAL still holds); then ship
      // whatever the file holds that the store lacks. Other connections of the instance may keep
      // the database open: without a consumer no checkpoint waits for us while we close.
      await checkpointWhenQuiet(connection, alias, { timeoutMs: 5_000 }).catch(() => {});
      const detached = await connection.run(`DETACH ${alias}`).then(() => true, () => false);
      await replicator.idle();
      if (!detached) native.detach();
      connection.closeSync();
      instance.closeSync();
      await replicator.stop({ quiescent: detached });
    },
  };
}
