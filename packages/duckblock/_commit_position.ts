/**
 * @module
 * A commit position: where a writer's history stood after a commit, as `epoch:generation:walBytes`
 * (the `position` of a `POST /sql` answer, the `after` of read-your-writes, a released lease's last
 * commit). The generation is DuckDB's header iteration the commit follows; `walBytes` how far into
 * that generation's WAL its frames reached; the epoch the lease epoch of the writer that answered.
 * Built, parsed and ordered here only.
 */

export interface CommitPosition {
  /** The lease epoch of the writer that answered (0: a writer without a lease). */
  epoch: number;
  /** The generation the commit follows (-1: none published yet). */
  generation: number;
  /** The WAL bytes of that generation its frames hold (0: the checkpoint alone). */
  walBytes: number;
}

/** What a position token looks like: three integers, the generation possibly -1. */
export const COMMIT_POSITION_PATTERN: RegExp = /^\d{1,15}:-?\d{1,20}:\d{1,20}$/;

/** `epoch:generation:walBytes`. */
export function formatCommitPosition(position: CommitPosition): string {
  return `${position.epoch}:${position.generation}:${position.walBytes}`;
}

/**
 * The position a token names; TypeError for anything else.
 *
 * @example
 * ```ts
 * import { parseCommitPosition } from "@haduck/duckblock";
 * parseCommitPosition("2:14:4096"); // { epoch: 2, generation: 14, walBytes: 4096 }
 * ```
 */
export function parseCommitPosition(text: string): CommitPosition {
  if (!COMMIT_POSITION_PATTERN.test(text)) {
    throw new TypeError(`Invalid position ${JSON.stringify(text)}: expected epoch:generation:walBytes, such as "2:14:4096"`);
  }
  const [epoch, generation, walBytes] = text.split(":").map(Number);
  return { epoch, generation, walBytes };
}

/**
 * Orders two positions by the commit they name: generation, then WAL bytes. The epoch says who wrote
 * it and does not order: a new leader's first generation is newer than every generation before it,
 * whatever epoch a follower saw it under.
 */
export function compareCommitPositions(a: CommitPosition | string, b: CommitPosition | string): number {
  const left = typeof a === "string" ? parseCommitPosition(a) : a;
  const right = typeof b === "string" ? parseCommitPosition(b) : b;
  return left.generation !== right.generation ? left.generation - right.generation : left.walBytes - right.walBytes;
}
