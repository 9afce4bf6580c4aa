/**
 * @module
 * Restore: any kept generation into a new local file, its block map read a page at a time, with
 * parallel ranged reads, every block checked against its SHA-256 before it is written, blocks
 * written and fsynced before the headers, and the file renamed into place only when complete.
 */
import type { BlockStore } from "@haduck/s3-block-store";
import { constants } from "node:fs";
import * as fs from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import {
  checkHeaderRegion,
  decodeBlock,
  latestHead,
  listGenerations,
  type LoadedHead,
  loadManifestHead,
} from "@haduck/duckblock";
import { blockTotal, headerOf, manifestParts } from "@haduck/duckblock";
import { applyFrames, type FrameWalk } from "@haduck/duckblock";
import { blockOffset, HEADER_REGION_BYTES } from "@haduck/duckblock";
import { headAtTime, ReplicationError, suggestCommand } from "@haduck/duckblock";
import { writeIdentity } from "../local/_identity.ts";
import { checkOpensInDuckDB, type OpenCheckResult } from "./_open_check.ts";
import { RuntimeCopies } from "@haduck/duckblock";
import { COMPRESSION_NONE, entryOf, type Manifest, type ManifestEntry, manifestKey } from "@haduck/duckblock";

export interface RestoreOptions {
  store: BlockStore;
  dbKey: string;
  /** The local file to create. */
  to: string;
  /**
   * The checkpoint of this generation only (no WAL frames). Default: the latest durable commit, the
   * latest generation plus its WAL frames.
   */
  generation?: number;
  /** The last commit at or before this time (ISO 8601 or a Date): a generation plus its frames up to it. */
  time?: string | Date;
  /** Replace an existing file. Default false. */
  force?: boolean;
  /** Ranged reads in flight. Default 8. */
  concurrency?: number;
  /**
   * @deprecated Ignored. Every block is checked against its SHA-256, taken by the writer of the very
   * bytes whose DuckDB checksum it recorded: bytes that pass it cannot fail DuckDB's checksum.
   */
  blockChecksumOk?: (block: Uint8Array) => boolean;
  onProgress?: (done: number, total: number, bytes: number) => void;
  /**
   * Open the result with stock DuckDB in a child process (reading every table) before it is renamed
   * into place. Default true; a file DuckDB refuses or dies on is never put at the target.
   */
  openCheck?: boolean;
  /** The ceiling of the open check's DuckDB memory, MiB (see `OpenCheckOptions.memoryMaxMb`). */
  checkMemoryMaxMb?: number;
  /**
   * Start from a copy of this file (a follower's base of an earlier generation) and fetch only the
   * blocks for which `unchanged` says no: the rest are already there, byte for byte.
   */
  seed?: { path: string; unchanged: (blockId: number, sha256: string) => boolean };
  /**
   * Bring the file at `to` (a follower's base of an earlier generation) to this generation in place:
   * only the blocks for which `unchanged` says no, and the header, are written, each after
   * `beforeWrite` for its range (`length` undefined: before the file is cut at `offset`), so that
   * snapshots of the file copy what they still read first. No temporary file, no open check, no
   * frames (give `generation`); a failure leaves the file unusable, for a full restore.
   */
  into?: {
    unchanged: (blockId: number, sha256: string) => boolean;
    beforeWrite: (offset: number, length?: number) => void | Promise<void>;
    afterWrite?: (offset: number, length: number) => void;
  };
  /** Called with every block entry of the generation restored (fetched or seeded). */
  onEntry?: (blockId: number, sha256: string) => void;
}

export interface RestoreResult {
  generation: number;
  blocks: number;
  bytes: number;
  path: string;
  /** WAL frames applied after the generation's checkpoint, and the commits they held. */
  frames: number;
  commits: number;
  /** The generation's WAL bytes up to the last commit restored (0 for the checkpoint alone). */
  walBytes: number;
  /** Time of the last commit restored (ISO 8601): the last frame's, or null for the checkpoint alone. */
  lastCommit: string | null;
  /** Set when frames stopped before the last one listed (a missing frame): what was not applied. */
  warning: string | null;
  /** The open check's memory: the limit DuckDB needed in the end and the child's peak, MiB (null: not checked). */
  openCheck: { memoryLimitMb: number; peakRssMb: number } | null;
}

async function fsyncPath(path: string, flags = constants.O_RDONLY): Promise<void> {
  const handle = await fs.open(path, flags);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function segmentOf(manifest: Pick<Manifest, "generation" | "segments">, entry: ManifestEntry) {
  const segment = manifest.segments[entry.segmentIndex];
  if (!segment) {
    throw new ReplicationError("INTEGRITY", `Manifest of generation ${manifest.generation} names segment ` +
      `${entry.segmentIndex}, which it does not list`);
  }
  return segment;
}

/** One ranged GET that serves several blocks lying close together in one segment. */
export interface RangeRead {
  segment: number;
  offsetBytes: number;
  lengthBytes: number;
  blocks: ManifestEntry[];
}

/** Response bodies read and dropped between two collections (see RuntimeCopies): bounds restore's peak. */
const responseCopies = new RuntimeCopies(32 * 1024 * 1024);

/** Bytes one ranged read may span; bounds restore's memory to about `concurrency` times this. */
const RANGE_BYTES_MAX = 4 * 1024 * 1024;
/** Blocks separated by at most this many unused bytes share a read (reading the gap is cheaper). */
const RANGE_GAP_BYTES_MAX = 256 * 1024;

/** Two blocks of one read that follow each other in the file and, stored raw, in the segment. */
function adjacentRaw(a: ManifestEntry, b: ManifestEntry): boolean {
  return b.blockId === a.blockId + 1 && a.compression === COMPRESSION_NONE && b.compression === COMPRESSION_NONE &&
    b.offsetBytes === a.offsetBytes + a.storedBytes;
}

/**
 * Groups the entries (each naming a segment of `part`) into few ranged reads: per segment, by
 * offset, merged while close and small.
 */
export function planRangeReads(part: Pick<Manifest, "generation" | "segments">, entries: Iterable<ManifestEntry>):
  RangeRead[] {
  const bySegment = new Map<number, ManifestEntry[]>();
  for (const entry of entries) {
    segmentOf(part, entry);
    (bySegment.get(entry.segmentIndex) ?? bySegment.set(entry.segmentIndex, []).get(entry.segmentIndex)!).push(entry);
  }
  const reads: RangeRead[] = [];
  for (const [segment, inSegment] of bySegment) {
    inSegment.sort((a, b) => a.offsetBytes - b.offsetBytes);
    let current: RangeRead | undefined;
    for (const entry of inSegment) {
      const end = entry.offsetBytes + entry.storedBytes;
      const currentEnd = current ? current.offsetBytes + current.lengthBytes : 0;
      if (current && entry.offsetBytes - currentEnd <= RANGE_GAP_BYTES_MAX &&
        end - current.offsetBytes <= RANGE_BYTES_MAX && entry.offsetBytes >= currentEnd) {
        current.lengthBytes = end - current.offsetBytes;
        current.blocks.push(entry);
      } else {
        current = { segment, offsetBytes: entry.offsetBytes, lengthBytes: entry.storedBytes, blocks: [entry] };
        reads.push(current);
      }
    }
  }
  return reads;
}

/** The stored bytes of `entry` within a ranged read's answer. */
export function within(range: Uint8Array, read: RangeRead, entry: ManifestEntry): Uint8Array {
  return range.subarray(entry.offsetBytes - read.offsetBytes, entry.offsetBytes - read.offsetBytes + entry.storedBytes);
}

/**
 * Restores a generation to `options.to`.
 *
 * @example
 * ```ts
 * import { openStore } from "@haduck/s3-block-store";
 * import { restore } from "@haduck/duckdb-fs-bridge";
 * await restore({ store: openStore("file:///tmp/haduck-store"), dbKey: "demo.duckdb", to: "/tmp/restored.duckdb" })
 *   .catch((error) => console.error(error.message));
 * ```
 */
export async function restore(options: RestoreOptions): Promise<RestoreResult> {
  const { store, dbKey, into } = options;
  if (into && options.generation === undefined) throw new RangeError("restore({ into }) needs a generation");
  const to = into ? resolve(options.to) : await restoreTarget(options.to, options.force ?? false);
  if (!into) await removeInterruptedRestores(to);
  const untilMs = options.time === undefined ? undefined : parseTime(options.time);
  // The manifest's own object now; its block map a page at a time below (memory does not grow with
  // the database: a page is 512 blocks).
  const loaded = options.generation !== undefined
    ? await loadManifestHead(store, dbKey, options.generation)
    : untilMs !== undefined
    ? await headAtTime(store, dbKey, untilMs)
    : await latestHead(store, dbKey);
  if (!loaded) {
    throw new ReplicationError("NO_GENERATIONS", `No generations of ${dbKey} in ${store.url}: nothing to restore ` +
      "(check --store and --db-key)");
  }
  const manifest = loaded.head;
  const total = blockTotal(manifest);
  const temp = into ? to : `${to}.haduck-restore-${crypto.randomUUID().slice(0, 8)}`;
  if (options.seed) await fs.copyFile(options.seed.path, temp, fs.constants.COPYFILE_EXCL);
  const handle = await fs.open(temp, options.seed || into ? "r+" : "wx");
  let written = 0;
  let walk: FrameWalk | undefined;
  let checked: OpenCheckResult | undefined;
  try {
    const { segment: headerSegment, header: headerBlock } = headerOf(manifest);
    const headerEntry = entryOf(headerBlock);
    const header = decodeBlock(await store.get(headerSegment.key, { range: { offsetBytes: headerEntry.offsetBytes,
      lengthBytes: headerEntry.storedBytes } }), headerEntry, headerSegment.key);
    checkHeaderRegion(manifest, header);
    await into?.beforeWrite(manifest.fileSizeBytes);
    await handle.truncate(manifest.fileSizeBytes);
    const where = manifestKey(dbKey, manifest.generation);
    // Workers take reads one at a time from here; the next page is fetched when a page's run out.
    const { onEntry } = options;
    const unchanged = options.seed?.unchanged ?? into?.unchanged;
    let done = 0;
    const reads = (async function* () {
      for await (const part of manifestParts(store, manifest, where)) {
        const entries = part.blocks.map(entryOf);
        if (onEntry) for (const entry of entries) onEntry(entry.blockId, entry.sha256);
        const wanted = unchanged ? entries.filter((entry) => !unchanged(entry.blockId, entry.sha256)) : entries;
        if (unchanged) done += entries.length - wanted.length;
        for (const read of planRangeReads(part, wanted)) yield { read, key: part.segments[read.segment].key };
      }
    })();
    // The first failure stops every worker (their requests are aborted) before the file is removed.
    const abort = new AbortController();
    const worker = async () => {
      while (!abort.signal.aborted) {
        const next = await reads.next();
        if (next.done) return;
        const { read, key } = next.value;
        const range = await store.get(key, { range: { offsetBytes: read.offsetBytes, lengthBytes: read.lengthBytes },
          signal: abort.signal });
        responseCopies.add(range.byteLength);
        // Blocks adjacent in the file and stored raw side by side go down in one write.
        for (let first = 0; first < read.blocks.length;) {
          let last = first;
          const raw = decodeBlock(within(range, read, read.blocks[first]), read.blocks[first], key);
          while (last + 1 < read.blocks.length && adjacentRaw(read.blocks[last], read.blocks[last + 1])) {
            const entry = read.blocks[++last];
            decodeBlock(within(range, read, entry), entry, key);
          }
          const bytes = last === first ? raw : range.subarray(read.blocks[first].offsetBytes - read.offsetBytes,
            read.blocks[last].offsetBytes + read.blocks[last].storedBytes - read.offsetBytes);
          const offset = blockOffset(read.blocks[first].blockId, manifest.database.blockAllocSize);
          await into?.beforeWrite(offset, bytes.byteLength);
          await handle.write(bytes, 0, bytes.byteLength, offset);
          into?.afterWrite?.(offset, bytes.byteLength);
          written += bytes.byteLength;
          done += last - first + 1;
          options.onProgress?.(done, total, written);
          first = last + 1;
        }
      }
    };
    const workers = Array.from({ length: Math.max(1, options.concurrency ?? 8) }, () => worker().catch((error) => {
      abort.abort(error);
      throw error;
    }));
    const settled = await Promise.allSettled(workers);
    if (abort.signal.aborted) throw abort.signal.reason;
    for (const result of settled) if (result.status === "rejected") throw result.reason;
    await handle.sync(); // blocks durable before the headers that reference them
    await into?.beforeWrite(0, HEADER_REGION_BYTES);
    await handle.write(header, 0, HEADER_REGION_BYTES, 0);
    await handle.sync();
    if (into) {
      await handle.close();
      return { generation: manifest.generation, blocks: total, bytes: written + HEADER_REGION_BYTES, path: to,
        frames: 0, commits: 0, walBytes: 0, lastCommit: null, warning: null, openCheck: null };
    }
    if (options.generation === undefined) walk = await applyWalFrames(options, loaded, handle, temp, untilMs);
    await handle.close();
    const what = `Generation ${manifest.generation} of ${dbKey}` + (walk?.commits ? ` with ${walk.commits} commits ` +
      `from ${walk.frames} WAL frames` : "");
    if (options.openCheck !== false || walk?.commits) {
      responseCopies.collect(); // the response bodies are garbage now; the child's memory comes on top of ours
      checked = await checkOpensInDuckDB(temp, what, { replay: (walk?.commits ?? 0) > 0,
        memoryMaxMb: options.checkMemoryMaxMb, verifyCommand: suggestCommand("verify", { store: options.store, dbKey }) });
    }
    await fs.rm(`${temp}.wal`, { force: true });
    // The identity first: a crash between the two leaves an identity without a file, which attach
    // refuses with a hint to restore again; never a restored file that looks like a stranger.
    if (manifest.database.haduckIdentity) await writeIdentity(to, manifest.database.haduckIdentity);
    // A WAL beside the target belongs to the file being replaced: DuckDB would replay it onto this one
    // (a default 1.4.4 file's WAL is not bound to its database), applying commits twice.
    await fs.rm(`${to}.wal`, { force: true });
    await fs.rename(temp, to);
    await fsyncPath(dirname(to));
  } catch (error) {
    await handle.close().catch(() => {});
    if (into) throw error; // the file is the caller's, unusable now: it restores in full next
    await fs.rm(temp, { force: true });
    await fs.rm(`${temp}.wal`, { force: true });
    throw error;
  }
  return { generation: manifest.generation, blocks: total, bytes: written + HEADER_REGION_BYTES, path: to,
    frames: walk?.frames ?? 0, commits: walk?.commits ?? 0, walBytes: walk?.walBytes ?? 0,
    lastCommit: walk?.lastCommitUnixMs === undefined ? null : new Date(walk.lastCommitUnixMs).toISOString(),
    warning: walk?.gap ?? null,
    openCheck: checked ? { memoryLimitMb: checked.memoryLimitMb, peakRssMb: checked.peakRssMb } : null };
}

function parseTime(time: string | Date): number {
  const ms = time instanceof Date ? time.getTime() : Date.parse(time);
  if (Number.isNaN(ms)) {
    throw new ReplicationError("BAD_ARGUMENT", `Invalid time ${JSON.stringify(String(time))}: give an ISO 8601 time ` +
      "such as 2026-11-28T09:30:00Z");
  }
  return ms;
}

/**
 * Writes the generation's WAL frames into the restored file (their blocks) and `<temp>.wal` (their
 * commits); DuckDB replays that WAL in the open check. With no commit to apply, the file is cut back
 * to the generation's size (frames of blocks alone lie on free blocks past it).
 */
async function applyWalFrames(options: RestoreOptions, loaded: LoadedHead, handle: fs.FileHandle, temp: string,
  untilMs: number | undefined): Promise<FrameWalk> {
  const wal = await fs.open(`${temp}.wal`, "wx");
  try {
    const walk = await applyFrames({ store: options.store, dbKey: options.dbKey, generation: loaded.head.generation,
      manifestSha256: loaded.sha256, untilMs, file: handle, wal });
    if (walk.commits === 0) await handle.truncate(loaded.head.fileSizeBytes);
    await handle.sync();
    await wal.sync();
    return walk;
  } finally {
    await wal.close();
  }
}

/**
 * Where the restored file goes. A missing path is fine (its directory must exist); an existing one
 * needs `force` and must be a regular file: a device, directory, socket or FIFO is refused, never
 * replaced. A symbolic link is followed: the file it points to is replaced, the link stays.
 */
async function restoreTarget(path: string, force: boolean): Promise<string> {
  const target = await fs.realpath(path).catch(() => path);
  const stat = await fs.stat(target).catch(() => undefined);
  if (!stat) {
    const parent = await fs.stat(dirname(target)).catch(() => undefined);
    if (!parent?.isDirectory()) {
      throw new ReplicationError("BAD_TARGET", `Cannot restore to ${path}: the directory ${dirname(target)} does not ` +
        "exist; create it or choose another --to");
    }
    return target;
  }
  if (!stat.isFile()) {
    const kind = stat.isDirectory() ? "a directory" : stat.isCharacterDevice() || stat.isBlockDevice()
      ? "a device" : stat.isSocket() ? "a socket" : stat.isFIFO() ? "a FIFO" : "not a regular file";
    throw new ReplicationError("BAD_TARGET", `Cannot restore to ${path}${target === path ? "" : ` (${target})`}: it ` +
      `is ${kind}; restore writes a regular file: choose a file path`);
  }
  if (!force) {
    throw new ReplicationError("TARGET_EXISTS", `Cannot restore to ${path}: the file exists; choose another path ` +
      "or pass --force to replace it");
  }
  return target;
}

/** A restore killed midway leaves `<to>.haduck-restore-<id>`: the next restore to `to` removes it. */
async function removeInterruptedRestores(to: string): Promise<void> {
  const prefix = `${basename(to)}.haduck-restore-`;
  for (const name of await fs.readdir(dirname(to)).catch(() => [] as string[])) {
    if (name.startsWith(prefix)) await fs.rm(join(dirname(to), name), { force: true });
  }
}
