/**
 * @module
 * The replicator's publisher: once every segment of a generation is durable, writes the block map
 * pages that changed, the manifest create-only (chained to the last one) and the latest hint, and
 * moves the ledger. A manifest write whose answer was lost is resolved (adopted when it is there
 * and ours) before the next pass decides which blocks are unchanged.
 */
import { PreconditionFailedError } from "@haduck/s3-block-store";
import { suggestCommand } from "@haduck/duckblock";
import {
  buildManifest,
  encodeLatestHint,
  encodeManifest,
  hex,
  latestKey,
  loadManifest,
  manifestKey,
  ReplicationError,
  sha256,
  type Shipment,
  writePages,
} from "@haduck/duckblock";
import type { Published } from "./_ledger.ts";
import type { ReplicatorCore } from "./_replicator_core.ts";
import { type GenerationShipped, RECENT_GENERATIONS_MAX } from "./_replicator_types.ts";

/**
 * A manifest write whose answer was lost may have landed. Before a pass decides which blocks are
 * unchanged (against the newest manifest), find out: adopt it if it is there and ours.
 */
export async function resolveUncertain(core: ReplicatorCore): Promise<void> {
  const generation = core.ledger.uncertainGeneration;
  if (generation === undefined) return;
  const store = core.options.store!;
  if (!await store.head(manifestKey(core.options.dbKey, generation))) {
    core.ledger.uncertainGeneration = undefined;
    return;
  }
  const loaded = await loadManifest(store, core.options.dbKey, generation);
  const ours = loaded.manifest.database.haduckIdentity === core.identity &&
    loaded.manifest.previousManifestSha256 === (core.ledger.published?.sha256 ?? null);
  if (!ours) {
    throw new ReplicationError("INTEGRITY", `Generation ${generation} of ${core.options.dbKey} in ${store.url} was ` +
      `written by another writer: stop the other writer, then run ${suggestCommand("verify",
        { store, dbKey: core.options.dbKey })}`);
  }
  adopt(core, { manifest: loaded.manifest, sha256: loaded.sha256 }, performance.now());
}

/**
 * Writes the block map pages that changed, then the manifest create-only (every segment is durable
 * by now), then the latest hint.
 */
export async function publish(core: ReplicatorCore, generation: number, shipment: Shipment, blocksConsidered: number,
  started: number, checkpointedUnixMs?: number): Promise<boolean> {
  const store = core.options.store!;
  const dbKey = core.options.dbKey;
  const previous = core.ledger.published;
  const fence = core.options.fence;
  const manifest = buildManifest({ dbKey, generation: generation, shipment, previous,
    blocksConsidered, haduckIdentity: core.identity, checkpointedUnixMs, writerEpoch: fence?.epoch });
  const { bytes, pages, newPages } = encodeManifest(manifest, previous?.manifest, crypto.randomUUID().slice(0, 8));
  manifest.pages = pages;
  try {
    await writePages(store, newPages, core.signal);
  } catch (error) {
    // Nothing names these pages yet: the generation is simply not published (gc takes them).
    core.fail(`Cannot publish generation ${generation} of ${dbKey}: ${(error as Error).message}`);
    return false;
  }
  if (fence && !fence.mayWrite()) {
    core.fail(`Not publishing generation ${generation} of ${dbKey}: this node's lease (epoch ` +
      `${fence.epoch}) ran out; its commits stay in the local file`);
    return false;
  }
  try {
    await store.put(manifestKey(dbKey, generation), bytes, { ifNoneMatch: "*",
      signal: fence ? AbortSignal.any([core.signal, fence.signal()]) : core.signal });
  } catch (error) {
    // Refused, or written with the answer lost: find out before the next pass (never guess).
    if (!(error instanceof PreconditionFailedError)) core.ledger.uncertainGeneration = generation;
    const message = `Cannot publish generation ${generation} of ${dbKey}: ${(error as Error).message}`;
    core.fail(message);
    // In a cluster another writer's manifest at our key means a newer epoch took over.
    if (error instanceof PreconditionFailedError) fence?.fenced(message);
    return false;
  }
  const digest = hex(sha256(bytes));
  adopt(core, { manifest, sha256: digest }, started,
    bytes.byteLength + newPages.reduce((sum, page) => sum + page.bytes.byteLength, 0));
  try {
    if (fence && !fence.mayWrite()) throw new Error("this node's lease ran out");
    await store.put(latestKey(dbKey), encodeLatestHint({ generation: generation, manifestSha256: digest }),
      { signal: fence?.signal() });
  } catch (error) {
    // A hint only (nothing reads it to restore): the generation is published all the same.
    core.fail(`Cannot update ${latestKey(dbKey)}: ${(error as Error).message}`);
  }
  return true;
}

/** The store holds `published`: move the ledger and tell status and the caller. */
export function adopt(core: ReplicatorCore, published: Published, started: number, metadataBytes = 0): void {
  const { manifest } = published;
  const status = core.status;
  core.ledger.publish(published);
  core.reusable.clear();
  core.wal?.onPublished(manifest.generation, Buffer.from(published.sha256, "hex"));
  core.loop.resetCatchUpDelay();
  status.catchUpAttempts = 0;
  status.generationsCommitted++;
  status.lastGeneration = manifest.generation;
  status.lastGenerationTime = manifest.createdAt;
  status.lastError = null;
  status.blocksShipped += manifest.stats.blocksShipped;
  status.bytesShipped += manifest.stats.bytesShipped + metadataBytes;
  core.waitingSince = core.loop.queued() > 0 || core.ledger.behind ? performance.now() : undefined;
  const event: GenerationShipped = {
    generation: manifest.generation,
    time: manifest.createdAt,
    blocks: manifest.blocks.length,
    blocksShipped: manifest.stats.blocksShipped,
    bytesShipped: manifest.stats.bytesShipped + metadataBytes,
    durationMs: performance.now() - started,
  };
  status.recent.push(event);
  if (status.recent.length > RECENT_GENERATIONS_MAX) status.recent.shift();
  try {
    core.options.onGeneration?.(event);
  } catch (error) {
    // The caller's callback failing says nothing about the store.
    core.fail(`onGeneration threw for generation ${manifest.generation}: ${(error as Error)?.message ?? error}`);
  }
}
