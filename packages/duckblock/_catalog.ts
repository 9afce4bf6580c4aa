/**
 * @module
 * Reading what is in the store for one database: its generations (manifests, in order), one
 * manifest checked against the chain, and `verifyObjects()` that checks every object and checksum (`verify()`, in _verify.ts, adds the drill).
 */
import { suggestCommand } from "./_suggest.ts";
import { manifestsPrefix, parseManifestKey, parseManifestPath } from "./_keys.ts";
import { BlockNotFoundError, type BlockStore } from "@haduck/s3-block-store";
import {
  decodeManifest,
  HEADER_REGION_ID,
  decodePayload,
  decodeSegment,
  hex,
  type Manifest,
  type ManifestBlock,
  type ManifestV1,
  manifestKey,
  sha256,
} from "./_format.ts";
import { isEncryptionKeyError, ReplicationError } from "./_errors.ts";
import {
  assembleManifest,
  blockTotal,
  checkStoredManifest,
  headerOf,
  manifestParts,
  type StoredManifest,
} from "./_manifest_pages.ts";
import { parseHeaderRegion } from "./_duckdb_file.ts";
import { entryOf, type ManifestEntry } from "./_manifest_entry.ts";
import { RuntimeCopies } from "./_runtime_copies.ts";
import { FRAME_COMMIT_BYTES, FRAME_HEADER_BYTES, listFrames, walkFrames } from "./_frames.ts";

export interface GenerationSummary {
  generation: number;
  time: string;
  blocks: number;
  bytes: number;
  blocksShipped: number;
  bytesShipped: number;
  fileSizeBytes: number;
  /** WAL frames stored after this generation's checkpoint, and the time of the last commit they hold. */
  frames: number;
  lastCommit: string | null;
}

/** Manifest generations of `dbKey`, ascending. */
export async function listGenerations(store: BlockStore, dbKey: string): Promise<number[]> {
  const generations: number[] = [];
  for await (const object of store.list(manifestsPrefix(dbKey))) {
    const generation = parseManifestKey(object.key);
    if (generation !== undefined) generations.push(generation);
  }
  return generations;
}

/** A manifest as loaded: decoded, its bytes, and their SHA-256 (what the next manifest chains to). */
export interface LoadedManifest {
  manifest: Manifest;
  bytes: Uint8Array;
  sha256: string;
}

/** A manifest's own object, its pages not fetched: what listing generations and picking one by time need. */
export interface LoadedHead {
  head: ManifestV1 | StoredManifest;
  bytes: Uint8Array;
  sha256: string;
}

/** Reads and checks a generation's manifest object (not its pages). */
export async function loadManifestHead(store: BlockStore, dbKey: string, generation: number): Promise<LoadedHead> {
  const key = manifestKey(dbKey, generation);
  let bytes: Uint8Array;
  try {
    bytes = await store.get(key);
  } catch (error) {
    if (error instanceof BlockNotFoundError) {
      throw new ReplicationError("GENERATION_NOT_FOUND", `Generation ${generation} of ${dbKey} is not in ` +
        `${store.url}: run ${suggestCommand("generations", { store, dbKey })} to see the kept ones`);
    }
    throw error;
  }
  const head = decodeHead(bytes, key);
  if (head.generation !== generation || head.dbKey !== dbKey) {
    throw new ReplicationError("INTEGRITY", `Manifest ${key} describes ${head.dbKey} generation ` +
      `${head.generation}, not ${dbKey} generation ${generation}`);
  }
  return { head, bytes, sha256: hex(sha256(bytes)) };
}

/** A manifest object's bytes decoded and checked (not its pages); INTEGRITY naming `key` when corrupt. */
function decodeHead(bytes: Uint8Array, key: string): ManifestV1 | StoredManifest {
  try {
    const head = decodeManifest(bytes, key);
    if (head.version === 2) checkStoredManifest(head, key);
    return head;
  } catch (error) {
    throw new ReplicationError("INTEGRITY", `Manifest ${key} is corrupt: ${(error as Error).message}`);
  }
}

/** One database in a store, as `haduck databases` lists it. */
export interface DatabaseSummary {
  /** Its key from the store's root: a database written under a deeper prefix shows as `prefix/key`. */
  dbKey: string;
  lastGeneration: number;
  /** When the last generation was checkpointed (else written), ISO 8601. */
  lastGenerationTime: string;
  /** The database file's size at the last generation. */
  sizeBytes: number;
}

/**
 * Every database in the store, sorted by key: each key that holds a manifest, with its last
 * generation. Only manifests make a database (a lease, a latest hint or a fork's marker alone do
 * not). It lists the whole store once (S3: a request per 1000 objects) and reads one manifest
 * object per database.
 *
 * @example
 * ```ts
 * import { openStore } from "@haduck/s3-block-store";
 * import { listDatabases } from "@haduck/duckblock";
 * for (const db of await listDatabases(openStore("file:///tmp/haduck-store"))) console.log(db.dbKey);
 * ```
 */
export async function listDatabases(store: BlockStore): Promise<DatabaseSummary[]> {
  const lastGenerations = new Map<string, number>();
  for await (const object of store.list("")) {
    const parsed = parseManifestPath(object.key);
    if (parsed && parsed.generation >= (lastGenerations.get(parsed.dbKey) ?? -1)) {
      lastGenerations.set(parsed.dbKey, parsed.generation);
    }
  }
  const databases: DatabaseSummary[] = [];
  for (const [dbKey, generation] of [...lastGenerations].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const key = manifestKey(dbKey, generation);
    const head = decodeHead(await store.get(key), key);
    // The key listed is where the database is: its manifest names the key under the prefix it was
    // written to (the end of this one), or another if its folder was copied; verify checks that, not a listing.
    if (head.generation !== generation) {
      throw new ReplicationError("INTEGRITY", `Manifest ${key} describes generation ${head.generation}, not ` +
        `${generation}: run ${suggestCommand("verify", { store, dbKey })}`);
    }
    databases.push({ dbKey, lastGeneration: generation, lastGenerationTime: head.checkpointedAt ?? head.createdAt,
      sizeBytes: head.fileSizeBytes });
  }
  return databases;
}

/** The newest generation checkpointed (else, written) at or before `untilMs`. */
export async function headAtTime(store: BlockStore, dbKey: string, untilMs: number): Promise<LoadedHead> {
  const generations = await listGenerations(store, dbKey);
  for (const generation of generations.reverse()) {
    const loaded = await loadManifestHead(store, dbKey, generation);
    if (Date.parse(loaded.head.checkpointedAt ?? loaded.head.createdAt) <= untilMs) return loaded;
  }
  throw new ReplicationError(generations.length ? "GENERATION_NOT_FOUND" : "NO_GENERATIONS", `No generation of ` +
    `${dbKey} in ${store.url} is as old as ${new Date(untilMs).toISOString()}: ` +
    `${suggestCommand("generations", { store, dbKey })} lists their times`);
}

/** Reads a generation's manifest whole: its object and (version 2) its pages, each checked. */
export async function loadManifest(store: BlockStore, dbKey: string, generation: number):
  Promise<LoadedManifest> {
  const { head, bytes, sha256 } = await loadManifestHead(store, dbKey, generation);
  if (head.version !== 2) return { manifest: head, bytes, sha256 };
  const key = manifestKey(dbKey, generation);
  try {
    return { manifest: await assembleManifest(store, head, key), bytes, sha256 };
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    throw new ReplicationError("INTEGRITY", `Manifest ${key} is corrupt: ${error.message}`);
  }
}

/** The newest generation's manifest object (its pages not fetched), or undefined when there is none. */
export async function latestHead(store: BlockStore, dbKey: string): Promise<LoadedHead | undefined> {
  const generations = await listGenerations(store, dbKey);
  if (generations.length === 0) return undefined;
  return await loadManifestHead(store, dbKey, generations[generations.length - 1]);
}

export async function latestManifest(store: BlockStore, dbKey: string): Promise<LoadedManifest | undefined> {
  const generations = await listGenerations(store, dbKey);
  if (generations.length === 0) return undefined;
  return await loadManifest(store, dbKey, generations[generations.length - 1]);
}

export async function summarizeGenerations(store: BlockStore, dbKey: string): Promise<GenerationSummary[]> {
  const summaries: GenerationSummary[] = [];
  for (const generation of await listGenerations(store, dbKey)) {
    const { head } = await loadManifestHead(store, dbKey, generation);
    // Every block's raw size is the block size (validated): no page needs reading to count them.
    const blocks = blockTotal(head);
    summaries.push({
      generation,
      time: head.createdAt,
      blocks,
      bytes: blocks * head.database.blockAllocSize,
      blocksShipped: head.stats.blocksShipped,
      bytesShipped: head.stats.bytesShipped,
      fileSizeBytes: head.fileSizeBytes,
      ...await frameSummary(store, dbKey, generation),
    });
  }
  return summaries;
}

/** Decodes a stored block payload and checks its SHA-256; throws ReplicationError naming the object. */
export function decodeBlock(stored: Uint8Array, entry: ManifestEntry, segment: string): Uint8Array {
  const { blockId, rawBytes, compression, sha256: expected } = entry;
  try {
    return decodePayload(stored, compression, rawBytes, expected);
  } catch (error) {
    throw new ReplicationError("INTEGRITY", `Block ${blockId} in ${segment} is corrupt: ${(error as Error).message} ` +
      "(the manifest's SHA-256); it was not applied");
  }
}

/** Checks that a generation's stored header region is the one its manifest describes. */
export function checkHeaderRegion(manifest: Pick<Manifest, "generation" | "database">, region: Uint8Array): void {
  const info = parseHeaderRegion(region);
  const database = manifest.database;
  if (info.generation !== manifest.generation || info.blockAllocSize !== database.blockAllocSize ||
    info.dbIdentifier !== database.dbIdentifier || info.storageVersion !== database.storageVersion) {
    throw new ReplicationError("INTEGRITY", `The header of generation ${manifest.generation} does not match its ` +
      `manifest (generation ${info.generation}, block size ${info.blockAllocSize}, database ${info.dbIdentifier}, ` +
      `storage version ${info.storageVersion}): it belongs to another database or version; nothing was written`);
  }
}

/** How many frames `generation` has and its last commit's time (two small ranged reads of the last frame). */
async function frameSummary(store: BlockStore, dbKey: string, generation: number):
  Promise<{ frames: number; lastCommit: string | null }> {
  const frames = await listFrames(store, dbKey, generation);
  for (const frame of frames.slice(-3).reverse()) {
    const head = await store.get(frame.key, { range: { offsetBytes: 0, lengthBytes: FRAME_HEADER_BYTES } });
    const commits = new DataView(head.buffer, head.byteOffset, head.byteLength).getUint32(48, true);
    if (commits === 0 || frame.sizeBytes < FRAME_HEADER_BYTES + commits * FRAME_COMMIT_BYTES) continue;
    const last = await store.get(frame.key, { range: { offsetBytes: FRAME_HEADER_BYTES + (commits - 1) *
      FRAME_COMMIT_BYTES, lengthBytes: FRAME_COMMIT_BYTES } });
    const unixMs = Number(new DataView(last.buffer, last.byteOffset, 16).getBigUint64(8, true));
    return { frames: frames.length, lastCommit: new Date(unixMs).toISOString() };
  }
  return { frames: frames.length, lastCommit: null };
}

export interface VerifyReport {
  /** WAL frames read and checked (checksum, chain to the manifest and to each other). */
  frames: number;
  generations: number;
  segments: number;
  blocks: number;
  problems: string[];
  /**
   * What the history does not include and why, none of it a problem: frames past the end of a chain
   * (a writer stopped with frames in flight, or a deposed writer's after a fence), never acknowledged.
   */
  skipped: string[];
  /** The lease epochs the history was written at, ascending (one writer outside a cluster: [0]). */
  epochs: number[];
}

/** Segments read and dropped between two collections (see RuntimeCopies): bounds verify's peak. */
const segmentCopies = new RuntimeCopies(16 * 1024 * 1024);

/** What verify learned of one segment: its entries by offset, or why it cannot be used. */
type CheckedSegment = { entries: Map<number, { blockId: number; sha256: string }> } | { problem: string };

/** The generation a segment key was written for (`{db}/segments/{generation}-{attempt}-{seq}.dblk`). */
const segmentGeneration = (key: string) => Number(/\/segments\/(\d{20})-/.exec(key)?.[1] ?? NaN);

/**
 * Walks every generation: the chain (each manifest names the generation stored before it, with
 * that manifest's SHA-256; only the oldest kept may point at one gc removed), every segment once
 * (its checksum, every payload's SHA-256, every header region), and every manifest's entries
 * against the segments' own entries. An entry a generation inherits must be the previous
 * generation's entry for that block: a manifest that takes a block from further back than its
 * predecessor had it is a manifest that lost a change.
 */
export async function verifyObjects(store: BlockStore, dbKey: string,
  options: { onProgress?: (generationsDone: number, generationsTotal: number) => void } = {}): Promise<VerifyReport> {
  const report: VerifyReport = { generations: 0, segments: 0, blocks: 0, frames: 0, problems: [], skipped: [], epochs: [] };
  const epochSeen = (epoch: number) => {
    if (!report.epochs.includes(epoch)) report.epochs.push(epoch);
  };
  let lastEpoch = 0;
  const generations = await listGenerations(store, dbKey);
  if (generations.length === 0) {
    throw new ReplicationError("NO_GENERATIONS", `No generations of ${dbKey} in ${store.url}: nothing to verify`);
  }
  let previous: { generation: number; sha256: string; blocks: Map<number, string> } | undefined;
  const segments = new Map<string, CheckedSegment>();
  // Where an entry points, as a short string: a segment's serial (in order first seen) and the offset.
  const serials = new Map<string, number>();
  const placeOf = (key: string, offset: number) => {
    let serial = serials.get(key);
    if (serial === undefined) serials.set(key, serial = serials.size);
    return `${serial}@${offset}`;
  };
  for (const [position, generation] of generations.entries()) {
    let loaded: LoadedHead;
    try {
      loaded = await loadManifestHead(store, dbKey, generation);
    } catch (error) {
      if (isEncryptionKeyError(error)) throw error;
      report.problems.push((error as Error).message);
      previous = undefined;
      options.onProgress?.(position + 1, generations.length);
      continue;
    }
    report.generations++;
    const manifest = loaded.head;
    if (position > 0 && previous && manifest.previousGeneration !== previous.generation) {
      report.problems.push(`Manifest of generation ${generation} chains to generation ` +
        `${manifest.previousGeneration}, but the generation before it is ${previous.generation}: the chain has a gap ` +
        "or a second writer");
    } else if (previous && manifest.previousManifestSha256 !== previous.sha256) {
      report.problems.push(`Manifest of generation ${generation} does not chain to generation ${previous.generation}`);
    }
    if ((manifest.writerEpoch ?? 0) < lastEpoch) {
      report.problems.push(`Manifest of generation ${generation} was written at epoch ${manifest.writerEpoch}, after ` +
        `epoch ${lastEpoch} had taken over: a deposed writer's generation, not part of the one history`);
    }
    lastEpoch = Math.max(lastEpoch, manifest.writerEpoch ?? 0);
    epochSeen(manifest.writerEpoch ?? 0);
    // The block map a page at a time: what verify holds does not grow with a manifest's size.
    const entries = new Map<number, string>();
    function checkEntry(part: Manifest, block: ManifestBlock): void {
      const { blockId, segmentIndex, offsetBytes, sha256: digest } = entryOf(block);
      const key = part.segments[segmentIndex].key;
      const checked = segments.get(key)!;
      const label = blockId === -1 ? "the header region" : `block ${blockId}`;
      if ("problem" in checked) {
        report.problems.push(`Generation ${generation}: ${label} is in ${key}, which ${checked.problem}`);
        return;
      }
      const entry = checked.entries.get(offsetBytes);
      if (!entry || entry.blockId !== blockId || entry.sha256 !== digest) {
        report.problems.push(`Generation ${generation}: ${label} is not at offset ${offsetBytes} of ${key} (no segment ` +
          "holds the entry its manifest names)");
        return;
      }
      if (blockId === -1) return;
      const place = placeOf(key, offsetBytes);
      entries.set(blockId, place);
      // A generation's own blocks are in segments uploaded after the previous generation: its own
      // pass, or earlier passes that could not publish and whose uploads it reused (the bridge's
      // `ReusableUploads`, writer/_segment_uploader.ts).
      const uploadedAt = segmentGeneration(key);
      const inherited = !(uploadedAt <= generation && uploadedAt > (manifest.previousGeneration ?? -1));
      if (inherited && previous && previous.generation === manifest.previousGeneration &&
        previous.blocks.get(blockId) !== place) {
        report.problems.push(`Generation ${generation}: block ${blockId} comes from ${key}, which generation ` +
          `${previous.generation} did not have for it (a change was lost between them)`);
      }
    }
    let complete = true;
    try {
      const { segment, header } = headerOf(manifest);
      const headerPart = { ...manifest, segments: [segment], header, blocks: [] } as Manifest;
      if (!segments.has(segment.key)) segments.set(segment.key, await checkSegment(store, headerPart, 0, report));
      checkEntry(headerPart, header);
      for await (const part of manifestParts(store, manifest, manifestKey(dbKey, generation))) {
        for (const [index, ref] of part.segments.entries()) {
          if (!segments.has(ref.key)) segments.set(ref.key, await checkSegment(store, part, index, report));
        }
        for (const block of part.blocks) checkEntry(part, block);
      }
    } catch (error) {
      if (isEncryptionKeyError(error)) throw error;
      report.problems.push((error as Error).message);
      complete = false;
    }
    previous = complete ? { generation, sha256: loaded.sha256, blocks: entries } : undefined;
    try {
      const walk = await walkFrames({ store, dbKey, generation, manifestSha256: loaded.sha256 });
      report.frames += walk.frames;
      for (const epoch of walk.epochs) epochSeen(epoch);
      lastEpoch = Math.max(lastEpoch, ...walk.epochs);
      if (walk.gap) report.skipped.push(`Generation ${generation}: WAL ${walk.gap}`);
    } catch (error) {
      if (isEncryptionKeyError(error)) throw error;
      report.problems.push(`Generation ${generation}: ${(error as Error).message}`);
    }
    options.onProgress?.(position + 1, generations.length);
  }
  report.epochs.sort((a, b) => a - b);
  return report;
}

/** Reads one segment, checks its checksum and every payload; the header region against its manifest. */
async function checkSegment(store: BlockStore, manifest: Manifest, index: number, report: VerifyReport):
  Promise<CheckedSegment> {
  const ref = manifest.segments[index];
  report.segments++;
  try {
    const bytes = await store.get(ref.key);
    segmentCopies.add(bytes.byteLength);
    const decoded = decodeSegment(bytes, { payloads: false });
    if (hex(decoded.sha256) !== ref.sha256) throw new Error("its checksum does not match the manifest");
    const entries = new Map<number, { blockId: number; sha256: string }>();
    for (const entry of decoded.entries) {
      const blockId = entry.blockId === HEADER_REGION_ID ? -1 : Number(entry.blockId);
      const stored: ManifestEntry = { blockId, segmentIndex: index, offsetBytes: entry.offsetBytes,
        storedBytes: entry.storedBytes, rawBytes: entry.rawBytes, compression: entry.compression,
        duckdbChecksumValid: entry.duckdbChecksumValid ? 1 : 0, sha256: entry.sha256 };
      const raw = decodeBlock(bytes.subarray(entry.offsetBytes, entry.offsetBytes + entry.storedBytes), stored, ref.key);
      if (blockId === -1 && segmentGeneration(ref.key) === manifest.generation) checkHeaderRegion(manifest, raw);
      entries.set(entry.offsetBytes, { blockId, sha256: entry.sha256 });
      report.blocks++;
    }
    return { entries };
  } catch (error) {
    if (isEncryptionKeyError(error)) throw error;
    const problem = `is corrupt or missing: ${(error as Error).message}`;
    report.problems.push(`Segment ${ref.key} (generation ${manifest.generation}) ${problem}`);
    return { problem };
  }
}
