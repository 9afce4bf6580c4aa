/**
 * @module
 * Fencing a history at a takeover (issue 24). A new leader at epoch E first occupies the key the
 * old leader would write next: an empty WAL frame of epoch E, chained to the last frame of the
 * newest generation, create-only. From then on the old leader's next frame collides and fails (a
 * writer adopts a frame at its next key only when the epoch is its own), so every frame it got into
 * the store landed before the fence, and the new leader's restore, which reads up to the fence,
 * holds each of them: none of its acknowledged commits is lost. A frame that lands first (a 412)
 * is adopted by walking the chain again; a manifest that appears meanwhile (a checkpoint of the old
 * leader that was in flight) is fenced in turn, until the newest generation stands still.
 */
import { type BlockStore, PreconditionFailedError } from "@haduck/s3-block-store";
import { latestManifest } from "./_catalog.ts";
import { frameKey } from "./_keys.ts";
import { encodeFrame, walkFrames } from "./_frames.ts";

/** How often a fence is tried before giving up (each round follows a frame or manifest that landed). */
const FENCE_ROUNDS_MAX = 50;

export interface FencedHistory {
  /** The newest generation, whose frames end at the fence; null for a store that holds nothing yet. */
  generation: number | null;
  /** The fence frame's number (frames 1 .. fence - 1 are the old leaders' commits). */
  fence: number;
  /** The WAL bytes those frames hold after the generation's checkpoint (0: no commit after it). */
  walBytes: number;
}

/**
 * Writes the fence of epoch `epoch` after the newest commit in the store. `mayWrite` is checked
 * before every write (the caller's lease must still be trusted): a lease that ran out throws.
 */
export async function fenceHistory(options: { store: BlockStore; dbKey: string; epoch: number;
  mayWrite: () => boolean; signal?: () => AbortSignal }): Promise<FencedHistory> {
  const { store, dbKey, epoch } = options;
  for (let round = 0; round < FENCE_ROUNDS_MAX; round++) {
    const latest = await latestManifest(store, dbKey);
    if (!latest) return { generation: null, fence: 0, walBytes: 0 };
    const generation = latest.manifest.generation;
    const walk = await walkFrames({ store, dbKey, generation, manifestSha256: latest.sha256 });
    const number = (walk.last?.number ?? 0) + 1;
    const frame = encodeFrame({ blockAllocSize: latest.manifest.database.blockAllocSize, generation, number,
      walOffset: walk.last?.walEnd ?? 0, wal: new Uint8Array(0), commits: [], blockIds: [], blocks: new Uint8Array(0),
      previousSha256: walk.last?.sha256 ?? Buffer.from(latest.sha256, "hex"), epoch });
    if (!options.mayWrite()) throw new Error(`Cannot fence ${dbKey}: the lease of epoch ${epoch} ran out first`);
    // A deposed writer's frames after an earlier fence (sent before it learned of it, never
    // acknowledged, never read) would hold the key: they go.
    const stale = walk.orphans.filter((orphan) => orphan.why === "epoch");
    if (stale.length > 0) await store.deleteMany(stale.map((orphan) => orphan.key), { signal: options.signal?.() });
    try {
      await store.put(frameKey(dbKey, generation, number), frame.bytes, { ifNoneMatch: "*", signal: options.signal?.() });
    } catch (error) {
      if (error instanceof PreconditionFailedError) continue; // a frame landed first: it may be acknowledged
      throw error; // unknown outcome: the caller tries again, and the walk finds our fence if it landed
    }
    // A checkpoint of the old leader may have landed meanwhile: its generation is newer, fence it too.
    const after = await latestManifest(store, dbKey);
    if (after?.manifest.generation === generation) return { generation, fence: number, walBytes: walk.last?.walEnd ?? 0 };
  }
  throw new Error(`Cannot fence ${dbKey}: the old leader kept writing through ${FENCE_ROUNDS_MAX} fences`);
}
