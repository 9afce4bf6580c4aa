/**
 * @module
 * WAL frames (spec: docs/FORMAT.md): what ships between two checkpoints. A frame holds a run of
 * DuckDB's WAL bytes (whole commits, each with its end offset and time) and the database blocks those
 * commits reference (DuckDB's optimistic writes), chained to the previous frame of its generation, the
 * first to the generation's manifest. Written create-only, never changed, checked end to end by a
 * SHA-256 of every byte before the trailer.
 */
import { ReplicationError } from "./_errors.ts";
import { sha256 } from "./_format.ts";
import { frameKey, framesPrefix, parseFrameKey } from "./_keys.ts";

export const FRAME_MAGIC = "HDUCKWAL";
export const FRAME_VERSION = 1;
export const FRAME_HEADER_BYTES = 96;
export const FRAME_COMMIT_BYTES = 16;
export const FRAME_TRAILER_BYTES = 32;

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

export { frameKey, framesPrefix, parseFrameKey };

function frameBytes(frame: Pick<Frame, "wal" | "commits" | "blockIds" | "blocks">): number {
  return FRAME_HEADER_BYTES + frame.commits.length * FRAME_COMMIT_BYTES + frame.blockIds.length * 8 +
    frame.wal.byteLength + frame.blocks.byteLength + FRAME_TRAILER_BYTES;
}

/** Encodes a frame; returns it with its checksum (the trailer), which the next frame's chain names. */
export function encodeFrame(frame: Frame): { bytes: Uint8Array; sha256: Uint8Array } {
  if (frame.blocks.byteLength !== frame.blockIds.length * frame.blockAllocSize) {
    throw new RangeError(`${frame.blockIds.length} blocks need ${frame.blockIds.length * frame.blockAllocSize} bytes`);
  }
  if (frame.previousSha256.byteLength !== 32) throw new RangeError("previousSha256 must be 32 bytes");
  const bytes = new Uint8Array(frameBytes(frame));
  const view = new DataView(bytes.buffer);
  bytes.set(new TextEncoder().encode(FRAME_MAGIC), 0);
  view.setUint16(8, FRAME_VERSION, true);
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
  for (const block of frame.blockIds) {
    view.setBigUint64(at, BigInt(block), true);
    at += 8;
  }
  bytes.set(frame.wal, at);
  bytes.set(frame.blocks, at + frame.wal.byteLength);
  const checksum = sha256(bytes.subarray(0, bytes.byteLength - FRAME_TRAILER_BYTES));
  bytes.set(checksum, bytes.byteLength - FRAME_TRAILER_BYTES);
  return { bytes, sha256: checksum };
}

/**
 * Decodes and checks a frame: its checksum over every byte, its shape (sizes that add up, commits
 * inside its WAL run and ascending, blocks ascending). `what` names it in errors (its key).
 */
export function decodeFrame(bytes: Uint8Array, what: string): Frame & { sha256: Uint8Array } {
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
  if (view.getUint16(8, true) !== FRAME_VERSION) throw bad(`version ${view.getUint16(8, true)}, expected 1`);
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
  const expected = FRAME_HEADER_BYTES + commitCount * FRAME_COMMIT_BYTES + blockCount * 8 + walLength +
    blockCount * blockAllocSize + FRAME_TRAILER_BYTES;
  if (expected !== bytes.byteLength) throw bad(`its fields add up to ${expected} bytes, not ${bytes.byteLength}`);
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
  const blockIds: number[] = [];
  for (let i = 0; i < blockCount; i++, at += 8) {
    const id = u64(at);
    if (blockIds.length && id <= blockIds[blockIds.length - 1]) throw bad("its blocks are not ascending");
    blockIds.push(id);
  }
  const wal = bytes.subarray(at, at + walLength);
  const blocks = bytes.subarray(at + walLength, at + walLength + blockCount * blockAllocSize);
  return { blockAllocSize, generation, number, walOffset, wal, commits, blockIds, blocks,
    previousSha256: bytes.slice(64, 96), epoch, sha256: checksum };
}
