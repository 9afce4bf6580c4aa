/**
 * @module
 * Reading a generation's WAL frames back: listing them, walking their chain one frame at a time
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
import { decodeFrame, type Frame, framesPrefix, parseFrameKey } from "./_frame_format.ts";

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
