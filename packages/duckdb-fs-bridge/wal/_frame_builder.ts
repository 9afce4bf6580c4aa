/**
 * @module
 * Building WAL frames: which announced commits go in the next frame, their WAL bytes and blocks read
 * from the local files (a group of commits), and one frame of a group encoded and chained to the tip.
 * Every read is checked against the file's header: once DuckDB wrote a newer one, that generation
 * supersedes the frames, and a block read after it could belong to it, so nothing is built.
 * At the end, the local WAL as bytes: a range of `<db>.wal` read synchronously (undefined when the
 * file is gone or shorter: DuckDB removed or cut it), and whether a run of entries only logs a
 * checkpoint.
 */
import { type AdaptiveCompressor, encodeFrame, type FrameCommit, frameKey } from "@haduck/duckblock";
import { openFileSource, readFileInfo, readRange } from "../local/_block_source.ts";
import type { WalSync } from "./_wal_types.ts";

/** Blocks carried by one frame at most: a larger set ships as frames of blocks only, then the commits. */
const FRAME_BLOCK_BYTES_MAX = 16 * 1024 * 1024;

/** A sync as the shipper keeps it: when it came, and the announcement that brought its blocks. */
export type PendingSync = WalSync & { receivedAt: number; announcement: number };

/** Where the chain stands counting the frames built and in flight. */
export interface ChainTip {
  frame: number;
  sha256: Uint8Array;
  walEnd: number;
}

/** A frame built and not yet known to be stored: its bytes go again, unchanged, until they are. */
export interface Outgoing {
  number: number;
  key: string;
  bytes: Uint8Array;
  sha256: Uint8Array;
  /** The checksum it chains to (the frame built before it, or the manifest) and where its WAL starts. */
  previous: Uint8Array;
  walOffset: number;
  /** The WAL end once it is stored (its walOffset for a frame of blocks only). */
  walEnd: number;
  commits: FrameCommit[];
  blocks: number;
  blockIds: number[];
  /** The WAL and block bytes it carries, before compression. */
  rawBytes: number;
  sending: boolean;
  stored: boolean;
  attempts: number;
  retryAt: number;
}

/** Commits being built into frames: blocks beyond FRAME_BLOCK_BYTES_MAX go in frames before the last. */
export interface Group {
  generation: number;
  blocks: number[];
  marks: Map<number, { announcement: number; generation: number }>;
  /** Index in `blocks` of the next block to build into a frame. */
  next: number;
  wal: Uint8Array;
  commits: FrameCommit[];
  target: number;
}

/** What building a frame reads and names. */
export interface FrameSettings {
  dbPath: string;
  dbKey: string;
  blockChecksumOk: (block: Uint8Array) => boolean;
  /** The writer's lease epoch, recorded in the frame. */
  epoch: number | undefined;
  compressor: AdaptiveCompressor;
}

/**
 * The syncs to put in the next frame: all but a trailing sync that only logged a checkpoint (DuckDB
 * syncs the WAL's CHECKPOINT entry just before it writes the new header; the blocks announced with
 * it are the checkpoint's own, which the next generation ships: never twice).
 */
export function shippable<T extends WalSync & { announcement: number }>(pending: T[], dbPath: string,
  tipWalEnd: number): T[] {
  if (pending.length === 0) return pending;
  const last = pending[pending.length - 1];
  const from = pending.length > 1 ? pending[pending.length - 2].size : tipWalEnd;
  const bytes = from > 0 ? readWal(`${dbPath}.wal`, from, last.size) : undefined;
  return bytes && onlyCheckpoint(bytes) ? pending.slice(0, -1) : pending;
}

/**
 * The WAL bytes and blocks of `pending` (the blocks announced up to its last commit, from `blocks`),
 * to build into frames after `tipWalEnd`; undefined when a newer header supersedes them, or when the
 * WAL is shorter than its synced size under the same header (then `stop` says why).
 */
export function startGroup(generation: number, pending: (WalSync & { announcement: number })[], chain: {
  dbPath: string;
  tipWalEnd: number;
  blocks: Map<number, { announcement: number; generation: number }>;
  stop: (why: string) => void;
}): Group | undefined {
  const { dbPath } = chain;
  if (readFileInfo(dbPath)?.generation !== generation) return undefined; // a newer header: its generation supersedes
  const target = pending[pending.length - 1].size;
  const wal = readWal(`${dbPath}.wal`, chain.tipWalEnd, target);
  if (!wal) {
    // DuckDB removes the WAL right after a new header: then that generation holds these commits.
    if (readFileInfo(dbPath)?.generation === generation) chain.stop(`${dbPath}.wal is shorter than its synced size ${target}`);
    return undefined;
  }
  // The blocks announced up to the last commit taken (later ones belong to later commits).
  const upTo = pending[pending.length - 1].announcement;
  const marks = new Map([...chain.blocks].filter(([, mark]) => mark.announcement <= upTo));
  return { generation, blocks: [...marks.keys()].sort((a, b) => a - b), marks, next: 0, wal,
    commits: pending.map((sync) => ({ walEnd: sync.size, unixMs: sync.unixMs })), target };
}

/**
 * Reads and encodes the group's next frame, chained to `tip`, and moves the group past it
 * (`last`: the group is done). Undefined when a newer header superseded the group.
 */
export function buildFrame(group: Group, tip: ChainTip, settings: FrameSettings):
  { frame: Outgoing; last: boolean } | undefined {
  const { dbPath } = settings;
  const superseded = () => readFileInfo(dbPath)?.generation !== group.generation;
  let source;
  try {
    source = openFileSource(dbPath, group.generation, group.blocks, settings.blockChecksumOk);
  } catch (error) {
    if (!superseded()) throw error;
    return undefined;
  }
  try {
    const blockSize = source.fileInfo.blockAllocSize;
    const count = Math.min(Math.max(1, Math.floor(FRAME_BLOCK_BYTES_MAX / blockSize)), group.blocks.length - group.next);
    const ids = group.blocks.slice(group.next, group.next + count);
    const blocks = new Uint8Array(ids.length * blockSize);
    try {
      for (let i = 0; i < ids.length; i++) source.read(blocks.subarray(i * blockSize, (i + 1) * blockSize), group.next + i, 1);
    } catch (error) {
      if (!superseded()) throw error;
    }
    // After the reads: the header still says `generation`, so no block read belongs to a newer one.
    if (superseded()) return undefined;
    const last = group.next + count >= group.blocks.length;
    const number = tip.frame + 1;
    const wal = last ? group.wal : new Uint8Array(0);
    const commits = last ? group.commits : [];
    const encoded = encodeFrame({ blockAllocSize: blockSize, generation: group.generation, number,
      walOffset: tip.walEnd, wal, commits, blockIds: ids, blocks, previousSha256: tip.sha256,
      epoch: settings.epoch }, { compress: (raw) => settings.compressor.compress(raw) });
    const frame: Outgoing = { number, key: frameKey(settings.dbKey, group.generation, number), bytes: encoded.bytes,
      blockIds: ids, sha256: encoded.sha256, previous: tip.sha256, walOffset: tip.walEnd,
      walEnd: last ? group.target : tip.walEnd, commits, blocks: ids.length,
      rawBytes: wal.byteLength + blocks.byteLength, sending: false, stored: false,
      attempts: 0, retryAt: 0 };
    group.next += count;
    return { frame, last };
  } finally {
    source.close();
  }
}

// The local WAL as bytes.

/** Bytes [from, to) of the WAL, or undefined when the file is missing or shorter. */
export function readWal(path: string, from: number, to: number): Uint8Array | undefined {
  return readRange(path, from, to - from);
}

/** WAL entry types (DuckDB 1.4.4, wal_type.hpp) that a checkpoint's own sync logs. */
const WAL_CHECKPOINT = 99;
const WAL_FLUSH = 100;

/**
 * Whether WAL bytes (whole entries: u64 size, u64 checksum, payload starting with field 100, the
 * entry's type) hold a CHECKPOINT entry and nothing but WAL_FLUSH besides.
 */
export function onlyCheckpoint(bytes: Uint8Array): boolean {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let checkpoint = false;
  for (let at = 0; at < bytes.byteLength;) {
    if (at + 19 > bytes.byteLength) return false;
    const size = Number(view.getBigUint64(at, true));
    const payload = at + 16;
    if (view.getUint16(payload, true) !== 100) return false;
    const type = bytes[payload + 2];
    if (type === WAL_CHECKPOINT) checkpoint = true;
    else if (type !== WAL_FLUSH) return false;
    at = payload + size;
  }
  return checkpoint;
}
