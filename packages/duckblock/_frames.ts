/**
 * @module
 * WAL frames (spec: docs/FORMAT.md): what ships between two checkpoints. A frame holds a run of
 * DuckDB's WAL bytes (whole commits, each with its end offset and time) and the database blocks those
 * commits reference (DuckDB's optimistic writes), chained to the previous frame of its generation, the
 * first to the generation's manifest. Written create-only, never changed, checked end to end by a
 * SHA-256 of every byte before the trailer. Version 2 stores the WAL run and each block zstd-compressed
 * where that pays (the segments' rule); readers read version 1 frames as well.
 *
 * Then, reading a generation's WAL frames back: listing them, walking their chain one frame at a time
 * (memory stays at one frame), and applying them to a restored file (blocks into the file, WAL bytes
 * into `<file>.wal`, cut at a commit). A missing frame ends the walk at the last contiguous one,
 * said out loud (the frames after it are orphans: a pipelined writer stopped with them in flight), and
 * so does a deposed writer's frame after a fence; a damaged one, or one that does not chain, is
 * refused by name.
 */
import type { BlockStore } from "@haduck/s3-block-store";
import type { FileHandle } from "node:fs/promises";
import { blockOffset } from "./_duckdb_file.ts";
import { ReplicationError } from "./_errors.ts";
import { AdaptiveCompressor, COMPRESSION_NONE, COMPRESSION_ZSTD, requireZstd, sha256 } from "./_format.ts";
import { frameKey, framesPrefix, parseFrameKey } from "./_keys.ts";

export const FRAME_MAGIC = "HDUCKWAL";
/** Version 2 compresses the WAL run and each block (zstd where it pays); readers read 1 and 2. */
export const FRAME_VERSION = 2;
export const FRAME_HEADER_BYTES = 96;
export const FRAME_COMMIT_BYTES = 16;
export const FRAME_TRAILER_BYTES = 32;
/** Version 2: per block its id, stored length and compression; then one such entry for the WAL run. */
export const FRAME_PIECE_BYTES = 16;
/** The raw WAL or block bytes one frame may claim, at most (a reader allocates them). */
const FRAME_RAW_BYTES_MAX = 1024 * 1024 * 1024;

/** One commit: the WAL is durable up to `walEnd` (an offset in the generation's WAL) since `unixMs`. */
export interface FrameCommit {
  walEnd: number;
  unixMs: number;
}

export interface Frame {
  blockAllocSize: number;
  generation: number;
  /** 1 for the first frame of a generation. */
  number: number;
  /** Where `wal` starts in the generation's WAL: the previous frame's end (0 for the first). */
  walOffset: number;
  wal: Uint8Array;
  /** Ascending by walEnd; the last ends at walOffset + wal.length. Empty for a frame of blocks only. */
  commits: FrameCommit[];
  /** Ascending block ids, and their bytes end to end (`blockAllocSize` each). */
  blockIds: number[];
  blocks: Uint8Array;
  /** The previous frame's checksum, or for frame 1 the SHA-256 of the generation's manifest. */
  previousSha256: Uint8Array;
  /**
   * The lease epoch of the writer (0 outside a cluster; bytes 56-63, zero in frames written before
   * epochs). A writer adopts a frame it finds at its next key only if the epoch is its own.
   */
  epoch?: number;
}


/** How a frame's pieces are stored: `compress` answers the stored bytes, or undefined to keep them raw. */
export interface FrameEncoding {
  /** 2 (the default) or 1 (raw, for readers' compatibility tests). */
  version?: 1 | 2;
  compress?: (raw: Uint8Array) => Uint8Array | undefined;
}

/** Encodes a frame; returns it with its checksum (the trailer), which the next frame's chain names. */
export function encodeFrame(frame: Frame, encoding: FrameEncoding = {}): { bytes: Uint8Array; sha256: Uint8Array } {
  if (frame.blocks.byteLength !== frame.blockIds.length * frame.blockAllocSize) {
    throw new RangeError(`${frame.blockIds.length} blocks need ${frame.blockIds.length * frame.blockAllocSize} bytes`);
  }
  if (frame.previousSha256.byteLength !== 32) throw new RangeError("previousSha256 must be 32 bytes");
  const version = encoding.version ?? FRAME_VERSION;
  const compress = version === 1 ? () => undefined
    : (encoding.compress ?? ((raw: Uint8Array) => new AdaptiveCompressor(true).compress(raw)));
  // The pieces as stored: the WAL run, then each block (version 1: all raw, no piece table).
  const raws = [frame.wal, ...frame.blockIds.map((_, i) =>
    frame.blocks.subarray(i * frame.blockAllocSize, (i + 1) * frame.blockAllocSize))];
  const pieces = raws.map((raw) => {
    const stored = raw.byteLength > 0 ? compress(raw) : undefined;
    return stored ? { bytes: stored, compression: COMPRESSION_ZSTD } : { bytes: raw, compression: COMPRESSION_NONE };
  });
  const tables = frame.commits.length * FRAME_COMMIT_BYTES +
    (version === 1 ? frame.blockIds.length * 8 : (frame.blockIds.length + 1) * FRAME_PIECE_BYTES);
  const payload = pieces.reduce((sum, piece) => sum + piece.bytes.byteLength, 0);
  const bytes = new Uint8Array(FRAME_HEADER_BYTES + tables + payload + FRAME_TRAILER_BYTES);
  const view = new DataView(bytes.buffer);
  bytes.set(new TextEncoder().encode(FRAME_MAGIC), 0);
  view.setUint16(8, version, true);
  view.setUint32(12, frame.blockAllocSize, true);
  view.setBigUint64(16, BigInt(frame.generation), true);
  view.setBigUint64(24, BigInt(frame.number), true);
  view.setBigUint64(32, BigInt(frame.walOffset), true);
  view.setBigUint64(40, BigInt(frame.wal.byteLength), true);
  view.setUint32(48, frame.commits.length, true);
  view.setUint32(52, frame.blockIds.length, true);
  view.setBigUint64(56, BigInt(frame.epoch ?? 0), true);
  bytes.set(frame.previousSha256, 64);
  let at = FRAME_HEADER_BYTES;
  for (const commit of frame.commits) {
    view.setBigUint64(at, BigInt(commit.walEnd), true);
    view.setBigUint64(at + 8, BigInt(commit.unixMs), true);
    at += FRAME_COMMIT_BYTES;
  }
  const setPiece = (id: number, piece: { bytes: Uint8Array; compression: number }) => {
    view.setBigUint64(at, BigInt(id), true);
    view.setUint32(at + 8, piece.bytes.byteLength, true);
    view.setUint8(at + 12, piece.compression);
    at += FRAME_PIECE_BYTES;
  };
  if (version === 1) {
    for (const block of frame.blockIds) {
      view.setBigUint64(at, BigInt(block), true);
      at += 8;
    }
  } else {
    for (const [i, block] of frame.blockIds.entries()) setPiece(block, pieces[i + 1]);
    setPiece(0, pieces[0]); // the WAL run's entry: its id field is zero
  }
  for (const piece of pieces) {
    bytes.set(piece.bytes, at);
    at += piece.bytes.byteLength;
  }
  const checksum = sha256(bytes.subarray(0, bytes.byteLength - FRAME_TRAILER_BYTES));
  bytes.set(checksum, bytes.byteLength - FRAME_TRAILER_BYTES);
  return { bytes, sha256: checksum };
}

/**
 * Decodes and checks a frame (version 1 or 2): its checksum over every byte, its shape (sizes that
 * add up, commits inside its WAL run and ascending, blocks ascending), every compressed piece back to
 * exactly its raw size. `what` names it in errors (its key). Memory: the raw frame, one piece at a
 * time decompressed into it.
 */
export function decodeFrame(bytes: Uint8Array, what: string): Frame & { sha256: Uint8Array; version: number } {
  const bad = (why: string) =>
    new ReplicationError("INTEGRITY", `WAL frame ${what} is damaged (${why}): restore stops before it; ` +
      "`haduck restore --generation N` gives the checkpoint without frames");
  if (bytes.byteLength < FRAME_HEADER_BYTES + FRAME_TRAILER_BYTES) throw bad(`${bytes.byteLength} bytes is too short`);
  const checksum = sha256(bytes.subarray(0, bytes.byteLength - FRAME_TRAILER_BYTES));
  if (Buffer.compare(checksum, bytes.subarray(bytes.byteLength - FRAME_TRAILER_BYTES)) !== 0) {
    throw bad("its SHA-256 does not match its trailer");
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (new TextDecoder().decode(bytes.subarray(0, 8)) !== FRAME_MAGIC) throw bad("no HDUCKWAL magic");
  const version = view.getUint16(8, true);
  if (version !== 1 && version !== 2) throw bad(`version ${version}, expected 1 or 2`);
  const blockAllocSize = view.getUint32(12, true);
  const u64 = (at: number) => {
    const value = view.getBigUint64(at, true);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw bad(`a field at ${at} is out of range`);
    return Number(value);
  };
  const [generation, number, walOffset, walLength, epoch] = [u64(16), u64(24), u64(32), u64(40), u64(56)];
  const commitCount = view.getUint32(48, true);
  const blockCount = view.getUint32(52, true);
  if (blockCount > 0 && (blockAllocSize < 16384 || blockAllocSize > 262144 || (blockAllocSize & (blockAllocSize - 1)))) {
    throw bad(`block size ${blockAllocSize}`);
  }
  const tables = FRAME_HEADER_BYTES + commitCount * FRAME_COMMIT_BYTES +
    (version === 1 ? blockCount * 8 : (blockCount + 1) * FRAME_PIECE_BYTES);
  if (tables + FRAME_TRAILER_BYTES > bytes.byteLength) throw bad(`its tables run past its ${bytes.byteLength} bytes`);
  // What it expands to is bounded (a frame carries at most 16 MiB of blocks; a crafted size must be
  // refused by name, not allocated).
  if (walLength > FRAME_RAW_BYTES_MAX || blockCount * blockAllocSize > FRAME_RAW_BYTES_MAX) {
    throw bad(`it claims ${walLength + blockCount * blockAllocSize} raw bytes`);
  }
  const rawBytes = tables + walLength + blockCount * blockAllocSize + FRAME_TRAILER_BYTES;
  if (version === 1 && rawBytes !== bytes.byteLength) throw bad(`its fields add up to ${rawBytes} bytes, not ${bytes.byteLength}`);
  let at = FRAME_HEADER_BYTES;
  const commits: FrameCommit[] = [];
  for (let i = 0; i < commitCount; i++, at += FRAME_COMMIT_BYTES) {
    const commit = { walEnd: u64(at), unixMs: u64(at + 8) };
    const floor = commits.length ? commits[commits.length - 1].walEnd : walOffset;
    if (commit.walEnd <= floor || commit.walEnd > walOffset + walLength) throw bad(`commit ${i} ends outside its WAL`);
    commits.push(commit);
  }
  if (commitCount > 0 && commits[commitCount - 1].walEnd !== walOffset + walLength) {
    throw bad("its WAL bytes run past its last commit");
  }
  if (commitCount === 0 && walLength > 0) throw bad("WAL bytes without a commit");
  // Every piece: its id, stored length, compression (version 1: block ids only, everything raw).
  const pieces: { id: number; stored: number; compression: number; raw: number }[] = [];
  for (let i = 0; i < blockCount; i++) {
    const id = u64(at);
    if (pieces.length && id <= pieces[pieces.length - 1].id) throw bad("its blocks are not ascending");
    if (version === 1) {
      pieces.push({ id, stored: blockAllocSize, compression: COMPRESSION_NONE, raw: blockAllocSize });
      at += 8;
    } else {
      if (view.getUint8(at + 13) | view.getUint16(at + 14, true)) throw bad("a piece entry's reserved bytes are not zero");
      pieces.push({ id, stored: view.getUint32(at + 8, true), compression: view.getUint8(at + 12), raw: blockAllocSize });
      at += FRAME_PIECE_BYTES;
    }
  }
  const walPiece = version === 1 ? { id: 0, stored: walLength, compression: COMPRESSION_NONE, raw: walLength }
    : { id: 0, stored: view.getUint32(at + 8, true), compression: view.getUint8(at + 12), raw: walLength };
  if (version === 2) at += FRAME_PIECE_BYTES;
  const stored = walPiece.stored + pieces.reduce((sum, piece) => sum + piece.stored, 0);
  if (at + stored + FRAME_TRAILER_BYTES !== bytes.byteLength) {
    throw bad(`its fields add up to ${at + stored + FRAME_TRAILER_BYTES} bytes, not ${bytes.byteLength}`);
  }
  const expand = (piece: typeof walPiece, into: Uint8Array) => {
    const storedBytes = bytes.subarray(at, at + piece.stored);
    at += piece.stored;
    if (piece.compression === COMPRESSION_NONE) {
      if (piece.stored !== piece.raw) throw bad(`a raw piece of ${piece.stored} bytes where ${piece.raw} belong`);
      into.set(storedBytes);
      return;
    }
    if (piece.compression !== COMPRESSION_ZSTD) throw bad(`unknown compression ${piece.compression}`);
    let raw: Uint8Array;
    const zstdDecompressSync = requireZstd(); // outside the try: a runtime without zstd is not a bad frame
    try {
      raw = zstdDecompressSync(storedBytes, { maxOutputLength: Math.max(1, piece.raw) });
    } catch (error) {
      throw bad(`a piece does not decompress: ${(error as Error).message}`);
    }
    if (raw.byteLength !== piece.raw) throw bad(`a piece decompresses to ${raw.byteLength} bytes, not ${piece.raw}`);
    into.set(raw);
  };
  if (version === 1) {
    // Raw: views of its bytes.
    return { blockAllocSize, generation, number, walOffset, wal: bytes.subarray(at, at + walLength), commits,
      blockIds: pieces.map((piece) => piece.id), blocks: bytes.subarray(at + walLength, at + stored),
      previousSha256: bytes.slice(64, 96), epoch, sha256: checksum, version };
  }
  if (view.getBigUint64(at - FRAME_PIECE_BYTES, true) !== 0n) throw bad("its WAL entry names a block");
  const wal = new Uint8Array(walLength);
  expand(walPiece, wal);
  const blocks = new Uint8Array(blockCount * blockAllocSize);
  for (const [i, piece] of pieces.entries()) expand(piece, blocks.subarray(i * blockAllocSize, (i + 1) * blockAllocSize));
  return { blockAllocSize, generation, number, walOffset, wal, commits, blockIds: pieces.map((piece) => piece.id), blocks,
    previousSha256: bytes.slice(64, 96), epoch, sha256: checksum, version };
}

// Reading frames back: the chain.

/** Frames fetched ahead of the one being applied, at most (and their bytes, beyond the first). */
const FETCH_AHEAD_MAX = 16;
const FETCH_AHEAD_BYTES_MAX = 48 * 1024 * 1024;

/** Frame numbers of `generation`, ascending, with their keys. */
export async function listFrames(store: BlockStore, dbKey: string, generation: number):
  Promise<{ number: number; key: string; sizeBytes: number }[]> {
  const frames: { number: number; key: string; sizeBytes: number }[] = [];
  for await (const object of store.list(framesPrefix(dbKey, generation))) {
    const parsed = parseFrameKey(object.key);
    if (parsed?.generation === generation) frames.push({ number: parsed.number, key: object.key, sizeBytes: object.sizeBytes });
  }
  return frames.sort((a, b) => a.number - b.number);
}

export interface FrameWalk {
  /** Frames read and checked, in chain order. */
  frames: number;
  commits: number;
  /** WAL bytes from the generation's start to the last commit taken. */
  walBytes: number;
  lastCommitUnixMs: number | undefined;
  /** Why the walk stopped before the last listed frame (a gap), or undefined. */
  gap: string | undefined;
  /**
   * Listed frames past where the chain ends that are no part of the history: written past a frame
   * that never landed (a writer stopped with frames in flight) or by a deposed writer after the
   * fence. None was ever acknowledged: a commit is acknowledged only once every frame up to its own
   * is stored, in its writer's chain.
   */
  orphans: { number: number; key: string; why: "gap" | "epoch" }[];
  /** Where the chain stands after the last frame walked: its number, checksum, and WAL end. */
  last: { number: number; sha256: Uint8Array; walEnd: number } | undefined;
  /** The lease epochs of the frames walked, in order, each once (a takeover's fence starts a new one). */
  epochs: number[];
}

/** Where a chain of frames stands: after frame `number` of `generation` (0: at its manifest). */
export interface ChainPoint {
  generation: number;
  number: number;
  /** The checksum the next frame must name: the last frame's, or the manifest's. */
  previous: Uint8Array;
  /** Where the next frame's WAL must start. */
  walEnd: number;
  /** The newest lease epoch in the chain so far (0 before any). */
  epoch: number;
}

/** Whether `frame` names `at.previous` as its predecessor and its WAL starts where the chain's ends. */
export function chainsTo(frame: Pick<Frame, "previousSha256" | "walOffset">,
  at: Pick<ChainPoint, "previous" | "walEnd">): boolean {
  return Buffer.compare(frame.previousSha256, at.previous) === 0 && frame.walOffset === at.walEnd;
}

/**
 * The frame-chain rule, the one every reader of frames applies (restore and verify through
 * `walkFrames`, the follower frame by frame): `frame`, stored at `key`, must be the next frame of
 * `at`'s generation and chain to it. `fenced`: it is older than the chain's epoch, a deposed writer's
 * frame sent before it learned of the new leader's fence (never acknowledged, no part of the
 * history): the chain ends before it. Otherwise the commits to take from it: all, or those at or
 * before `untilMs`. Throws ReplicationError("INTEGRITY") naming the frame, ending with `stops`
 * (what the reader does about it), when it was written for another place or does not chain.
 */
export function nextInChain(frame: Frame, key: string, at: ChainPoint, options: { untilMs?: number; stops: string }):
  { fenced: true } | { fenced: false; taken: number } {
  if (frame.generation !== at.generation || frame.number !== at.number + 1) {
    throw new ReplicationError("INTEGRITY", `WAL frame ${key} says it is frame ${frame.number} of generation ` +
      `${frame.generation}, where frame ${at.number + 1} of generation ${at.generation} belongs: it was written ` +
      `for another place; ${options.stops}`);
  }
  if ((frame.epoch ?? 0) < at.epoch) return { fenced: true };
  if (!chainsTo(frame, at)) {
    throw new ReplicationError("INTEGRITY", `WAL frame ${key} does not chain to ` +
      `${at.number === 0 ? `the manifest of generation ${at.generation}` : `frame ${at.number}`} (another writer, or ` +
      `a frame replaced): ${options.stops}`);
  }
  const taken = options.untilMs === undefined ? frame.commits.length
    : frame.commits.filter((commit) => commit.unixMs <= options.untilMs!).length;
  return { fenced: false, taken };
}

/**
 * Walks the chain of `generation`'s frames from its manifest (`manifestSha256`, hex), handing each
 * checked frame to `visit` with the commits to take from it (all, or those at or before `untilMs`).
 * Throws ReplicationError("INTEGRITY") naming the frame when one is damaged or does not chain.
 */
export async function walkFrames(options: {
  store: BlockStore;
  dbKey: string;
  generation: number;
  manifestSha256: string;
  untilMs?: number;
  visit?: (frame: Frame, commitsTaken: number) => Promise<void>;
}): Promise<FrameWalk> {
  const { store, dbKey, generation } = options;
  const walk: FrameWalk = { frames: 0, commits: 0, walBytes: 0, lastCommitUnixMs: undefined, gap: undefined,
    last: undefined, epochs: [], orphans: [] };
  const orphansFrom = (index: number, why: "gap" | "epoch") => {
    walk.orphans = listed.slice(index).map((listing) => ({ number: listing.number, key: listing.key, why }));
  };
  let previous = Buffer.from(options.manifestSha256, "hex");
  let walEnd = 0;
  const listed = await listFrames(store, dbKey, generation);
  // Frames are small and many (one per commit under --sync): fetch ahead, bounded in count and bytes.
  const fetches = new Map<number, Promise<Uint8Array>>();
  let fetchedTo = 0;
  let bytesAhead = 0;
  const fetchAhead = (from: number) => {
    while (fetchedTo < listed.length && fetchedTo < from + FETCH_AHEAD_MAX &&
      (fetchedTo === from || bytesAhead + listed[fetchedTo].sizeBytes <= FETCH_AHEAD_BYTES_MAX)) {
      const listing = listed[fetchedTo++];
      bytesAhead += listing.sizeBytes;
      const fetched = store.get(listing.key);
      fetched.catch(() => {}); // awaited in order below; a walk that stops early leaves it unread
      fetches.set(listing.number, fetched);
    }
  };
  for (const [index, listing] of listed.entries()) {
    fetchAhead(index);
    if (listing.number !== index + 1) {
      walk.gap = `frame ${index + 1} of generation ${generation} is missing: restored up to frame ${index}` +
        (walk.lastCommitUnixMs === undefined ? "" : ` (last commit ${new Date(walk.lastCommitUnixMs).toISOString()})`) +
        `; frames ${listing.number}..${listed.at(-1)!.number} were written past it and not applied (a writer that ` +
        "stopped with frames in flight: none of their commits was acknowledged)";
      orphansFrom(index, "gap");
      break;
    }
    const bytes = await fetches.get(listing.number)!;
    fetches.delete(listing.number);
    bytesAhead -= listing.sizeBytes;
    const frame = decodeFrame(bytes, listing.key);
    const next = nextInChain(frame, listing.key, { generation, number: index, previous, walEnd,
      epoch: walk.epochs.at(-1) ?? 0 }, { untilMs: options.untilMs,
      stops: "restore stops before it; `--generation N` gives the checkpoint without frames" });
    const epoch = frame.epoch ?? 0;
    if (next.fenced) {
      walk.gap = `frame ${listing.number} of generation ${generation} was written at epoch ${epoch}, after a frame of ` +
        `epoch ${walk.epochs.at(-1)}: a deposed writer's, never acknowledged; frames ${listing.number}..` +
        `${listed.at(-1)!.number} were not applied`;
      orphansFrom(index, "epoch");
      break;
    }
    if (epoch !== walk.epochs.at(-1)) walk.epochs.push(epoch);
    const taken = next.taken;
    await options.visit?.(frame, taken);
    walk.frames++;
    if (taken > 0) {
      walk.commits += taken;
      walk.walBytes = frame.commits[taken - 1].walEnd;
      walk.lastCommitUnixMs = frame.commits[taken - 1].unixMs;
    }
    if (taken < frame.commits.length) break; // --time: the commits after this one are later
    previous = Buffer.from(frame.sha256);
    walEnd = frame.walOffset + frame.wal.byteLength;
    walk.last = { number: frame.number, sha256: frame.sha256, walEnd };
  }
  return walk;
}

/**
 * Applies `generation`'s frames to a restored file: each frame's blocks are written into `file` (they
 * lie on blocks free under the generation's header), its WAL bytes (up to the last commit taken)
 * appended to `wal`. DuckDB replays the WAL when it opens the file next.
 */
export async function applyFrames(options: {
  store: BlockStore;
  dbKey: string;
  generation: number;
  manifestSha256: string;
  untilMs?: number;
  file: FileHandle;
  wal: FileHandle;
}): Promise<FrameWalk> {
  return await walkFrames({
    ...options,
    visit: async (frame, taken) => {
      for (const [index, block] of frame.blockIds.entries()) {
        const bytes = frame.blocks.subarray(index * frame.blockAllocSize, (index + 1) * frame.blockAllocSize);
        await options.file.write(bytes, 0, bytes.byteLength, blockOffset(block, frame.blockAllocSize));
      }
      const end = taken > 0 ? frame.commits[taken - 1].walEnd - frame.walOffset : 0;
      if (end > 0) await options.wal.write(frame.wal, 0, end, frame.walOffset);
    },
  });
}
