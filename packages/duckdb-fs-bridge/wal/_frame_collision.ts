/**
 * @module
 * The collision and fence check of a frame PUT that found its key taken (412): what the stored bytes
 * are to this writer. Its own frame (a lost answer), a newer epoch's (a new leader's fence), an
 * orphan (written past a frame that never landed, so never acknowledged), its own epoch's frame it
 * can continue after, or another writer on this chain.
 */
import { chainsTo, decodeFrame, type FrameCommit, suggestCommand } from "@haduck/duckblock";
import type { BlockStore } from "@haduck/s3-block-store";
import { type Outgoing, readWal } from "./_frame_builder.ts";

/** A stored frame the chain can go on after. */
export interface FoundFrame {
  number: number;
  sha256: Uint8Array;
  walOffset: number;
  wal: Uint8Array;
  commits: FrameCommit[];
}

/** What the bytes at a frame's key are to the writer that built the frame. */
export type Collision =
  /** Our own bytes: the PUT whose answer was lost had landed. */
  | { kind: "ours" }
  /** Another writer's (a newer epoch, a damaged frame, a writer on this chain): frames stop, the fence hears of it. */
  | { kind: "fenced"; reason: string }
  /** An orphan; `next`: it stands right after the durable chain, so it may be removed now. */
  | { kind: "orphan"; next: boolean }
  /** Our own epoch's frame, chained as ours and holding our WAL bytes: the chain goes on after it. */
  | { kind: "adopt"; found: FoundFrame };

/**
 * Judges the `bytes` stored at `frame`'s key. `durableFrame`: the last frame stored in order;
 * `epoch`: the writer's lease epoch; `dbPath`: whose WAL our bytes come from; `store` and `dbKey`:
 * where (a refusal names the command that checks it).
 */
export function judgeCollision(bytes: Uint8Array, frame: Outgoing,
  writer: { durableFrame: number; epoch: number | undefined; dbPath: string; store: BlockStore; dbKey: string }):
  Collision {
  const verifyCommand = () => suggestCommand("verify", { store: writer.store, dbKey: writer.dbKey });
  if (Buffer.compare(bytes, frame.bytes) === 0) return { kind: "ours" };
  let found;
  try {
    found = decodeFrame(bytes, frame.key);
  } catch (error) {
    return { kind: "fenced", reason: `${frame.key} holds a damaged frame (${(error as Error).message}); run ` +
      verifyCommand() };
  }
  if ((found.epoch ?? 0) > (writer.epoch ?? 0)) {
    return { kind: "fenced", reason: `${frame.key} holds a frame of lease epoch ${found.epoch}: a newer writer took over` };
  }
  if (!chainsTo(found, { previous: frame.previous, walEnd: frame.walOffset })) {
    return { kind: "orphan", next: frame.number === writer.durableFrame + 1 };
  }
  // Our own epoch's frame where ours goes, chained the same way, holding the WAL bytes ours would
  // (an earlier attempt of this writer, built before its chain was set again; a new leader's own
  // fence): the chain goes on after it, and what was built after ours is built again.
  const local = found.wal.byteLength === 0 ? found.wal
    : readWal(`${writer.dbPath}.wal`, found.walOffset, found.walOffset + found.wal.byteLength);
  if ((found.epoch ?? 0) === (writer.epoch ?? 0) && frame.number === writer.durableFrame + 1 && local &&
    Buffer.compare(local, found.wal) === 0) {
    return { kind: "adopt", found };
  }
  return { kind: "fenced", reason: `${frame.key} exists and does not follow this writer's chain: another writer ` +
    `is shipping this database; stop it, then run ${verifyCommand()}` };
}
