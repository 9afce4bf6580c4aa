/**
 * @module
 * One pass of the replicator: the blocks of one generation (staged under the hold, then released),
 * or a catch-up (read from the file while its header stays put, checked like a seqlock), uploaded
 * as segments and published. A pass takes the ledger's carried blocks; unless it publishes it
 * gives every one of them back (a torn read, a failed upload, a manifest refused or with its
 * answer lost), and the catch-up or the next generation ships them. Publishing ends a pass: once
 * every segment is durable, the block map pages that changed, the manifest create-only (chained to
 * the last one) and the latest hint are written and the ledger moves; a manifest write whose answer
 * was lost is resolved (adopted when it is there and ours) before the next pass decides which
 * blocks are unchanged.
 */
import { PreconditionFailedError } from "@haduck/s3-block-store";
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
  suggestCommand,
  writePages,
} from "@haduck/duckblock";
import type { Published } from "./_ledger.ts";
import { type GenerationShipped, RECENT_GENERATIONS_MAX } from "./_replicator_types.ts";
import { READ_RUN_BLOCKS_MAX, readAndUpload, type UploadedBlock, withReused } from "./_segment_uploader.ts";
import {
  type BlockSource,
  openFileSource,
  ReadRaceError,
  readFileInfo,
  stageBlocks,
  type StagedSource,
} from "../local/_block_source.ts";
import type { ReplicatorCore } from "./_replicator_core.ts";

/** How one attempt to ship blocks ended. */
type Outcome = "published" | "race" | "store" | "local";

/** One generation, under the hold: stage its blocks, release, then upload and publish. */
export async function shipGeneration(core: ReplicatorCore, seq: bigint): Promise<void> {
  const { native } = core.options;
  const started = performance.now();
  const info = native.generationInfo(seq);
  if (!info) return;
  const dirty = native.generationBlocks(seq, info.blockCount);
  markWritten(core, dirty, info);
  if (!core.options.store) {
    await native.release(seq);
    core.waitingSince = undefined;
    core.status.generationsCommitted++;
    core.status.lastGeneration = info.generation;
    core.status.lastGenerationTime = new Date().toISOString();
    return;
  }
  if (core.ledger.storeFailing) {
    // Re-sending every carried block at each checkpoint of an outage only burns bandwidth: carry
    // this generation too and let the catch-up find out, with one small request, when to resume.
    carryGeneration(core, dirty, info);
    await native.release(seq);
    core.status.generationsDeferred++;
    core.loop.scheduleCatchUp();
    return;
  }
  const wanted = core.ledger.take(dirty);
  if ((info.needsFullScan || !core.ledger.published) && info.headerBlockCount > 0) {
    wanted.markRange(0, info.headerBlockCount - 1); // a first or rescanned generation ships every block
  }
  const blocks = [...wanted.blocks()].filter((block) => block < info.headerBlockCount);
  const { toRead, reused } = core.reusable.split(blocks);
  core.reusable.beginPass();
  let source: StagedSource;
  try {
    core.stagingMemory ??= new Uint8Array(core.options.stagingMemoryBytesMax);
    source = stageBlocks({ dbPath: core.options.dbPath, generation: info.generation, blocks: toRead,
      memory: core.stagingMemory, runBlocksMax: READ_RUN_BLOCKS_MAX,
      blockChecksumOk: (block) => native.blockChecksumOk(block),
      deadline: performance.now() + core.options.holdMs / 2 });
  } catch (error) {
    giveBack(core, blocks, info.generation, error instanceof ReadRaceError ? "race" : "local", error);
    await native.release(seq);
    return;
  }
  // 1: the hold was in force for every read. DuckDB's next header waited for our reads only.
  let released: number;
  try {
    released = await native.release(seq);
  } catch (error) {
    released = -1;
    core.fail(`Cannot release generation ${info.generation} of ${core.options.dbKey}: ${(error as Error).message}`);
  }
  if (released !== 1 || source.blocks.length === 0 && toRead.length > 0) {
    source.close();
    giveBack(core, blocks, info.generation, "race");
    return;
  }
  if (source.blocks.length < toRead.length) {
    // Staging ran out of time: upload what it read, for the next pass to reuse, and carry the generation.
    core.status.generationsDeferred++;
    await shipFrom(core, info.generation, blocks, { source, toRead: source.blocks, reused: [] }, started, () => false);
    return;
  }
  await shipFrom(core, info.generation, blocks, { source, toRead, reused }, started, undefined, info.createdUnixMs);
}

/**
 * Ships what the store lacks at `generation` without waiting for another checkpoint, as long as
 * the file still holds that header. The hold does not protect these reads, so they are checked
 * like a seqlock: DuckDB overwrites a block the active header references only after writing a
 * newer header, so if the header is unchanged after every read, every read saw committed bytes;
 * otherwise the newer generation's event carries them. The carried blocks are what changed since
 * the last manifest when they were carried at `generation`; otherwise every block is compared.
 */
export async function catchUp(core: ReplicatorCore, generation: number,
  options: { everyBlock?: boolean } = {}): Promise<boolean> {
  const store = core.options.store!;
  core.status.catchUpAttempts++;
  if (core.ledger.storeFailing) {
    try {
      await store.head(latestKey(core.options.dbKey), { signal: core.signal }); // one small request
    } catch (error) {
      core.fail(`Cannot reach ${store.url} for ${core.options.dbKey}: ${(error as Error).message}`);
      core.loop.scheduleCatchUp();
      return false;
    }
  }
  const local = readFileInfo(core.options.dbPath);
  if (local?.generation !== generation) return false; // a newer generation's event carries the blocks
  const complete = !options.everyBlock && core.ledger.published &&
    core.ledger.carriedGeneration === generation;
  const taken = core.ledger.take([]);
  const blocks = (complete ? [...taken.blocks()] : allBlocks(local.blockCount))
    .filter((block) => block < local.blockCount);
  const { toRead, reused } = core.reusable.split(blocks);
  core.reusable.beginPass();
  let source: BlockSource;
  try {
    source = openFileSource(core.options.dbPath, generation, toRead,
      (block) => core.options.native.blockChecksumOk(block));
  } catch (error) {
    giveBack(core, blocks, generation, error instanceof ReadRaceError ? "race" : "local", error);
    return false;
  }
  const unchanged = () => readFileInfo(core.options.dbPath)?.generation === generation;
  return await shipFrom(core, generation, blocks, { source, toRead, reused }, performance.now(), unchanged);
}

/** DuckDB wrote a generation's blocks: what passes uploaded of them earlier is stale. */
export function markWritten(core: ReplicatorCore, dirty: number[], info: { needsFullScan: boolean }): void {
  if (info.needsFullScan) core.reusable.writtenAll();
  else core.reusable.written(dirty);
}

/** Carries a generation's own blocks (all of them when it needs a full scan, or nothing was published yet). */
export function carryGeneration(core: ReplicatorCore, blocks: number[],
  info: { generation: number; headerBlockCount: number; needsFullScan: boolean }): void {
  const all = (info.needsFullScan || !core.ledger.published) && info.headerBlockCount > 0;
  core.ledger.carry(all ? allBlocks(info.headerBlockCount) : blocks.filter((b) => b < info.headerBlockCount),
    info.generation);
}

/** Every block of a file of `count` blocks. */
export function allBlocks(count: number): number[] {
  return Array.from({ length: count }, (_, block) => block);
}

/**
 * Publishes generation `generation`, which consists of `blocks`: uploads `toRead` from `source`, and
 * takes the rest from uploads of earlier passes (`reused`). On any failure gives every block back
 * to the ledger, and keeps what was uploaded for the next pass. `readsDone` (the catch-up's
 * seqlock) may say the reads were torn.
 */
async function shipFrom(core: ReplicatorCore, generation: number, blocks: number[],
  pass: { source: BlockSource; toRead: readonly number[]; reused: readonly UploadedBlock[] }, started: number,
  readsDone?: () => boolean, checkpointedUnixMs?: number): Promise<boolean> {
  const { source } = pass;
  let outcome: Outcome = "published";
  let failure: unknown;
  try {
    await resolveUncertain(core);
  } catch (error) {
    source.close();
    giveBack(core, blocks, generation, "store", error);
    return false;
  }
  if (core.ledger.published?.manifest.generation === generation) { // a lost answer had landed after all
    source.close();
    return true;
  }
  try {
    const result = await readAndUpload({ store: core.options.store!, dbKey: core.options.dbKey, generation,
      blocks: pass.toRead, source, readsDone, previous: core.ledger.published,
      uploadedBefore: core.reusable.byContent, signal: core.signal, segmentBytesMax: core.options.segmentBytesMax,
      uploadsInFlightMax: core.options.uploadsInFlightMax, compress: core.options.compress,
      onProgress: progress(core, generation) });
    if (result.uploaded) core.reusable.keep([...result.uploaded, ...result.matched]);
    if (result.uploadError) [outcome, failure] = ["store", result.uploadError];
    else if (!result.shipment) outcome = "race";
    else if (!await publish(core, generation, withReused(result.shipment, [...pass.reused, ...result.matched]),
      blocks.length, started,
      checkpointedUnixMs)) {
      outcome = "store";
    }
  } catch (error) {
    // Thrown by the reads (the uploads' and the store's failures are returned): the local file.
    [outcome, failure] = [error instanceof ReadRaceError ? "race" : "local", error];
  } finally {
    source.close();
  }
  if (outcome !== "published") giveBack(core, blocks, generation, outcome, failure);
  return outcome === "published";
}

/** An attempt that did not publish: its blocks are carried, and the catch-up or the next generation ships them. */
function giveBack(core: ReplicatorCore, blocks: number[], generation: number, outcome: Exclude<Outcome, "published">,
  failure?: unknown): void {
  core.ledger.giveBack(blocks, generation);
  core.status.generationsAbandoned++;
  if (outcome === "store") core.ledger.storeFailing = true;
  if (failure !== undefined && outcome !== "race") {
    const where = outcome === "local" ? `cannot read ${core.options.dbPath}` : (failure as Error).message;
    core.fail(`Cannot ship generation ${generation} of ${core.options.dbKey}: ` +
      (outcome === "local" ? `${where}: ${(failure as Error).message}` : where));
  }
  core.loop.scheduleCatchUp();
}

/** The pass's progress reporter, made as the pass starts: its reports carry the time since then. */
function progress(core: ReplicatorCore, generation: number) {
  const report = core.options.onUploadProgress;
  const startedMs = performance.now();
  return report && ((blocksDone: number, blocksTotal: number, bytesSent: number) =>
    report({ generation, blocksDone, blocksTotal, bytesSent, elapsedMs: performance.now() - startedMs }));
}

// Publishing: the end of a pass.

/**
 * A manifest write whose answer was lost may have landed. Before a pass decides which blocks are
 * unchanged (against the newest manifest), find out: adopt it if it is there and ours.
 */
async function resolveUncertain(core: ReplicatorCore): Promise<void> {
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
async function publish(core: ReplicatorCore, generation: number, shipment: Shipment, blocksConsidered: number,
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
function adopt(core: ReplicatorCore, published: Published, started: number, metadataBytes = 0): void {
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
