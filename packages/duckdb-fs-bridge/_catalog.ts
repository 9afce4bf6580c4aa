/**
 * @module
 * Reading what is in the store for one database: its generations (manifests, in order), one
 * manifest checked against the chain, and `verify()` that checks every object and checksum.
 */
import { BlockNotFoundError, type BlockStore } from "@haduck/s3-block-store";
import {
  decodeManifest,
  decodePayload,
  decodeSegment,
  hex,
  type Manifest,
  type ManifestBlock,
  manifestKey,
  sha256,
} from "./_format.ts";
import { ReplicationError } from "./_errors.ts";
import { parseHeaderRegion } from "./_duckdb_file.ts";

export interface GenerationSummary {
  generation: number;
  time: string;
  blocks: number;
  bytes: number;
  blocksShipped: number;
  bytesShipped: number;
  fileSizeBytes: number;
}

/** Manifest generations of `dbKey`, ascending. */
export async function listGenerations(store: BlockStore, dbKey: string): Promise<number[]> {
  const generations: number[] = [];
  for await (const object of store.list(`${dbKey}/manifests/`)) {
    const match = /\/manifests\/(\d{20})\.json$/.exec(object.key);
    if (match) generations.push(Number(match[1]));
  }
  return generations;
}

export async function loadManifest(store: BlockStore, dbKey: string, generation: number):
  Promise<{ manifest: Manifest; bytes: Uint8Array; sha256: string }> {
  const key = manifestKey(dbKey, generation);
  let bytes: Uint8Array;
  try {
    bytes = await store.get(key);
  } catch (error) {
    if (error instanceof BlockNotFoundError) {
      throw new ReplicationError("GENERATION_NOT_FOUND", `Generation ${generation} of ${dbKey} is not in ` +
        `${store.url}: run \`haduck generations\` to see the kept ones`);
    }
    throw error;
  }
  let manifest: Manifest;
  try {
    manifest = decodeManifest(bytes, key);
  } catch (error) {
    throw new ReplicationError("INTEGRITY", `Manifest ${key} is corrupt: ${(error as Error).message}`);
  }
  if (manifest.generation !== generation || manifest.dbKey !== dbKey) {
    throw new ReplicationError("INTEGRITY", `Manifest ${key} describes ${manifest.dbKey} generation ` +
      `${manifest.generation}, not ${dbKey} generation ${generation}`);
  }
  return { manifest, bytes, sha256: hex(sha256(bytes)) };
}

export async function latestManifest(store: BlockStore, dbKey: string) {
  const generations = await listGenerations(store, dbKey);
  if (generations.length === 0) return undefined;
  return await loadManifest(store, dbKey, generations[generations.length - 1]);
}

export async function summarizeGenerations(store: BlockStore, dbKey: string): Promise<GenerationSummary[]> {
  const summaries: GenerationSummary[] = [];
  for (const generation of await listGenerations(store, dbKey)) {
    const { manifest } = await loadManifest(store, dbKey, generation);
    summaries.push({
      generation,
      time: manifest.createdAt,
      blocks: manifest.blocks.length,
      bytes: manifest.blocks.reduce((sum, block) => sum + block[4], 0),
      blocksShipped: manifest.stats.blocksShipped,
      bytesShipped: manifest.stats.bytesShipped,
      fileSizeBytes: manifest.fileSizeBytes,
    });
  }
  return summaries;
}

/** Decodes a stored block payload and checks its SHA-256; throws ReplicationError naming the object. */
export function decodeBlock(stored: Uint8Array, block: ManifestBlock, segment: string): Uint8Array {
  const [blockId, , , , rawBytes, compression, , expected] = block;
  try {
    return decodePayload(stored, compression, rawBytes, expected);
  } catch (error) {
    throw new ReplicationError("INTEGRITY", `Block ${blockId} in ${segment} is corrupt: ${(error as Error).message} ` +
      "(the manifest's SHA-256); it was not applied");
  }
}

/** Checks that a generation's stored header region is the one its manifest describes. */
export function checkHeaderRegion(manifest: Manifest, region: Uint8Array): void {
  const info = parseHeaderRegion(region);
  const database = manifest.database;
  if (info.iteration !== manifest.generation || info.blockAllocSize !== database.blockAllocSize ||
    info.dbIdentifier !== database.dbIdentifier || info.storageVersion !== database.storageVersion) {
    throw new ReplicationError("INTEGRITY", `The header of generation ${manifest.generation} does not match its ` +
      `manifest (iteration ${info.iteration}, block size ${info.blockAllocSize}, database ${info.dbIdentifier}, ` +
      `storage version ${info.storageVersion}): it belongs to another database or version; nothing was written`);
  }
}

export interface VerifyReport {
  generations: number;
  segments: number;
  blocks: number;
  problems: string[];
}

/** Walks every generation's chain and every segment it references, checking every checksum. */
export async function verify(store: BlockStore, dbKey: string): Promise<VerifyReport> {
  const report: VerifyReport = { generations: 0, segments: 0, blocks: 0, problems: [] };
  const generations = await listGenerations(store, dbKey);
  if (generations.length === 0) {
    throw new ReplicationError("NO_GENERATIONS", `No generations of ${dbKey} in ${store.url}: nothing to verify`);
  }
  let previous: { generation: number; sha256: string } | undefined;
  const segmentsChecked = new Set<string>();
  for (const generation of generations) {
    let loaded;
    try {
      loaded = await loadManifest(store, dbKey, generation);
    } catch (error) {
      report.problems.push((error as Error).message);
      previous = undefined;
      continue;
    }
    report.generations++;
    const { manifest } = loaded;
    if (previous && manifest.previousGeneration === previous.generation &&
      manifest.previousManifestSha256 !== previous.sha256) {
      report.problems.push(`Manifest of generation ${generation} does not chain to generation ${previous.generation}`);
    }
    previous = { generation, sha256: loaded.sha256 };
    const blockAt = new Map([...manifest.blocks, manifest.header].map((block) => [`${block[1]}:${block[2]}`, block]));
    for (const [index, segment] of manifest.segments.entries()) {
      if (segmentsChecked.has(segment.key)) continue;
      segmentsChecked.add(segment.key);
      report.segments++;
      try {
        const bytes = await store.get(segment.key);
        // Payloads are checked below, against the manifest's digests (which equal the entries').
        const decoded = decodeSegment(bytes, { payloads: false });
        if (hex(decoded.sha256) !== segment.sha256) throw new Error("its checksum does not match the manifest");
        for (const entry of decoded.entries) {
          const block = blockAt.get(`${index}:${entry.offsetBytes}`);
          if (!block) continue; // superseded by a later write in the same generation chain
          const raw = decodeBlock(bytes.subarray(entry.offsetBytes, entry.offsetBytes + entry.storedBytes), block,
            segment.key);
          if (block[0] === -1) checkHeaderRegion(manifest, raw);
          report.blocks++;
        }
      } catch (error) {
        report.problems.push(`Segment ${segment.key} (generation ${generation}) is corrupt or missing: ` +
          (error as Error).message);
      }
    }
  }
  return report;
}
