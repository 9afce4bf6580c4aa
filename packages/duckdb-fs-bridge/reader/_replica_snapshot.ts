/**
 * @module
 * A follower's snapshots: each a view of its base (the extension's copy-on-write overlay, see
 * extension/src/snapshot.hpp) or, without FFI (Node), a copy of it, ATTACHed writable in an
 * in-memory DuckDB instance of its own so that DuckDB replays the base's WAL there.
 */
import { type DuckDBConnection, DuckDBInstance } from "@duckdb/node-api";
import { copyFileSync, rmSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { sandbox, type SandboxOptions } from "../local/_sandbox.ts";
import { openDuckDB, Snapshots } from "../native/_native.ts";
import type { FollowerPosition } from "./_follower.ts";

/** Snapshots as views of the base need the extension's C API over FFI (Bun, Deno); Node copies. */
export const VIEWS: boolean = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined" || "Deno" in globalThis;

export interface Snapshot {
  instance: DuckDBInstance;
  path: string;
  readers: number;
  retired: boolean;
  /** Connections of finished reads, kept for the next (a connection costs about as much as a small query). */
  idle: DuckDBConnection[];
  /** The commit it shows. */
  position: FollowerPosition;
  /** A view of the base (an overlay the extension keeps), rather than a copy. */
  view: boolean;
  /** Being closed (its last read ended): settles once its files are gone. */
  closing?: Promise<void>;
}

/** A view (or copy) of `basePath` at `path`, attached writable in an instance of its own (DuckDB replays the WAL there). */
export async function openSnapshot(basePath: string, path: string, shown: FollowerPosition,
  sandboxOptions: SandboxOptions | undefined): Promise<Snapshot> {
  const instance = VIEWS ? await openDuckDB(":memory:") : await DuckDBInstance.create(":memory:");
  if (VIEWS) Snapshots.open(basePath, path);
  else copyFileSync(basePath, path);
  if ((statSync(`${basePath}.wal`, { throwIfNoEntry: false })?.size ?? 0) > 0) copyFileSync(`${basePath}.wal`, `${path}.wal`);
  try {
    const connection = await instance.connect();
    try {
      const attached = VIEWS ? `haduck-snapshot://${path}` : path;
      await connection.run(`ATTACH '${attached.replaceAll("'", "''")}' AS replica`);
      if (sandboxOptions) await sandbox(connection, { tempDirectory: `${path}.tmp`, ...sandboxOptions });
    } finally {
      connection.closeSync();
    }
  } catch (error) {
    instance.closeSync();
    if (VIEWS) Snapshots.close(path);
    removeFiles(path);
    throw error;
  }
  return { instance, path, readers: 0, retired: false, idle: [], position: shown, view: VIEWS };
}

/**
 * Closes a retired snapshot once its last read ended, and removes its files. DuckDB lets go of the
 * database in a DETACH on its own threads first: closing the instance with it attached did that work
 * on the event loop (70-110 ms at 600 MiB).
 */
export function releaseSnapshot(snapshot: Snapshot): Promise<void> | undefined {
  if (snapshot.readers > 0 || !snapshot.retired || snapshot.closing) return snapshot.closing;
  const idle = snapshot.idle.splice(0);
  return snapshot.closing = (async () => {
    const connection = idle.pop() ?? await snapshot.instance.connect();
    await connection.run("USE memory");
    await connection.run("DETACH replica");
    connection.closeSync();
  })().catch(() => {}).finally(() => {
    for (const connection of idle) connection.closeSync();
    snapshot.instance.closeSync();
    if (snapshot.view) Snapshots.close(snapshot.path);
    removeFiles(snapshot.path);
  });
}

function removeFiles(path: string): void {
  for (const suffix of ["", ".wal", ".tmp"]) rmSync(`${path}${suffix}`, { recursive: true, force: true });
}

/** Whether `a`'s directory and `b`'s are on one file system (a rename between them works). */
export function sameFileSystem(a: string, b: string): boolean {
  return statSync(dirname(resolve(a))).dev === statSync(dirname(resolve(b))).dev;
}
