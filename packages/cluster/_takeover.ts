/**
 * @module
 * What a promotion does to the files (docs/ARCHITECTURE.md, "A takeover, from the data's point of
 * view", steps 2 to 4): fence the store's history at the new epoch, bring the replica's base up to
 * the fence (or restore, when the replica cannot), move the local file aside and put the new one in
 * its place. A node whose own file already is the newest generation keeps it. Nothing here is
 * ever deleted: what is moved aside is printed.
 */
import { closeSync, existsSync, openSync, readSync, renameSync, statSync } from "node:fs";
import { type FencedHistory, fenceHistory, type Follower, restore } from "@haduck/duckdb-fs-bridge";
import { entryOf, HEADER_REGION_BYTES, headerOf, hex, loadManifestHead, sha256 } from "@haduck/duckblock";
import type { BlockStore } from "@haduck/s3-block-store";

/** What a takeover's file work needs. */
export interface TakeoverFiles {
  store: BlockStore;
  dbKey: string;
  dbPath: string;
  /** The epoch the new leader claimed. */
  epoch: number;
  /** Whether the new leader's lease is still valid (the fence is written only while it is). */
  mayWrite: () => boolean;
  /** A signal that aborts when the lease validity runs out. */
  signal: () => AbortSignal;
  /** The node's replica, if it has one: its base becomes the new file; closed in every case. */
  follower: Follower | undefined;
  log(message: string): void;
}

/**
 * Fences the history and leaves at `dbPath` the store's state up to the fence (the replica's base
 * brought there, a restore, or the local file when it already is that state). Resolves with the fence.
 */
export async function fileAtTheFence(takeover: TakeoverFiles): Promise<FencedHistory> {
  const { store, dbKey, dbPath, epoch, mayWrite, signal, follower, log } = takeover;
  let fenced;
  try {
    fenced = await fenceHistory({ store, dbKey, epoch, mayWrite, signal });
  } catch (error) {
    await follower?.close();
    throw error;
  }
  if (fenced.generation === null) await follower?.close();
  else if (fenced.walBytes === 0 && await isStoredGeneration(dbPath, store, dbKey, fenced.generation)) {
    // This node's own file is the store's newest state already (a clean stop, then a restart): kept.
    await follower?.close();
  } else {
    // The store's history wins: what this node holds locally was never acknowledged past the fence.
    // The replica already holds most of it: its base, brought up to the fence, is the new file.
    const restoring = `${dbPath}.haduck-promoting`;
    const shown = await follower?.materialize(restoring, { generation: fenced.generation }).catch((error) => {
      log(`${dbKey}: the replica could not become the writer's file (${error.message}): restoring instead`);
      return undefined;
    });
    if (shown?.generation !== fenced.generation || shown.frames !== fenced.fence) {
      const restored = await restore({ store, dbKey, to: restoring, force: true });
      // A manifest that landed after the fence (an old leader's write in flight): fence again from it.
      if (restored.generation !== fenced.generation || restored.frames < fenced.fence) {
        throw new Error(`the store moved past the fence (generation ${restored.generation}, frame ` +
          `${restored.frames}; fenced ${fenced.generation} at ${fenced.fence}) while this node took over`);
      }
    }
    moveAside({ dbPath, dbKey, log }, epoch);
    renameSync(restoring, dbPath);
    if (existsSync(`${restoring}.haduck-identity`)) renameSync(`${restoring}.haduck-identity`, `${dbPath}.haduck-identity`);
  }
  return fenced;
}

/** Renames the local file (and its WAL and identity) out of the way, never deleting it; says where. */
export function moveAside(local: { dbPath: string; dbKey: string; log(message: string): void }, epoch: number): void {
  const { dbPath, dbKey, log } = local;
  if (!existsSync(dbPath)) return;
  const aside = `${dbPath}.haduck-aside-epoch${epoch}-${new Date().toISOString().replace(/[:.]/g, "")}`;
  renameSync(dbPath, aside);
  for (const suffix of [".wal", ".haduck-identity"]) {
    if (existsSync(`${dbPath}${suffix}`)) renameSync(`${dbPath}${suffix}`, `${aside}${suffix}`);
  }
  log(`${dbKey}: the local database is kept aside as ${aside} (not part of the store's history; nothing was ` +
    "deleted)");
}

/**
 * Whether the file at `path` is exactly the store's `generation` with nothing after it: no WAL beside
 * it, and its header region is the one the manifest holds (its SHA-256, taken by the writer).
 */
async function isStoredGeneration(path: string, store: BlockStore, dbKey: string, generation: number): Promise<boolean> {
  if (!existsSync(path) || (statSync(`${path}.wal`, { throwIfNoEntry: false })?.size ?? 0) > 0) return false;
  const head = await loadManifestHead(store, dbKey, generation);
  const bytes = new Uint8Array(HEADER_REGION_BYTES);
  const fd = openSync(path, "r");
  try {
    if (readSync(fd, bytes, 0, bytes.byteLength, 0) !== bytes.byteLength) return false;
  } finally {
    closeSync(fd);
  }
  return hex(sha256(bytes)) === entryOf(headerOf(head.head).header).sha256;
}
