/**
 * @module
 * A follower's reads on its replica: a statement runs on the newest snapshot unless it is the
 * leader's (a write, a statement the replica cannot prepare, a linearizable read, a replica behind
 * `after` after waiting or further behind than `maxLagMs`). Read-your-writes waits are bounded like
 * the statement queue. Also the status a follower reports of its replica.
 */
import { type ClusterView, ReadOnlyError, type SqlAnswer, type SqlRequest } from "@haduck/admin";
import { type Follower, initialStatus, type ReplicatorStatus } from "@haduck/duckdb-fs-bridge";
import { compareCommitPositions, formatCommitPosition } from "@haduck/duckblock";
import { executeStatement, type SqlLimits } from "./_sql_run.ts";

/** How a read on the replica ended: answered, or the leader's (`read`: it may go to the next leader too). */
export type ReplicaRead = { answer: SqlAnswer } | { toLeader: { read: boolean } };

export class ReplicaReads {
  readonly #dbKey: string;
  readonly #limits: SqlLimits;
  /** Reads waiting on this replica for a position (`after`): bounded like the statement queue. */
  #waiters = 0;

  constructor(settings: { dbKey: string; sqlLimits: SqlLimits }) {
    this.#dbKey = settings.dbKey;
    this.#limits = settings.sqlLimits;
  }

  /** Runs `request` on the replica (answers carry the position it shows, at `epoch`), or says it is the leader's. */
  async run(follower: Follower | undefined, request: SqlRequest, epoch: () => number): Promise<ReplicaRead> {
    // Linearizable reads are the leader's; a follower behind `after` (after waiting) or further behind
    // than `maxLagMs` sends the read there too, rather than answer stale or fail.
    const stale = follower?.position === undefined || request.consistency === "leader" ||
      (request.after !== undefined && !await this.#caughtUpForRead(follower, request.after, request.waitMs ?? 1000,
        request.signal)) ||
      (request.maxLagMs !== undefined && follower.lagMs > request.maxLagMs);
    if (follower && !stale) {
      const ran = await follower.withConnection(async (connection, shown) => {
        const result = await executeStatement(connection, request, false, this.#limits);
        return "notRun" in result ? result
          : { ...result, position: formatCommitPosition({ epoch: epoch(), ...shown }) };
      });
      if (!("notRun" in ran)) return { answer: ran };
      if (ran.notRun === "write" && request.readOnly) throw new ReadOnlyError();
      // A write, or a statement the replica cannot prepare (a table it does not have yet): the leader's.
      return { toLeader: { read: false } };
    }
    // A read sent to the leader (stale here, or linearizable) may go again to the next leader.
    return { toLeader: { read: Boolean(follower) } };
  }

  /**
   * For a read with `after`: whether the replica shows it, waiting at most `waitMs` capped at the
   * statement timeout, while the client is there. Waiters beyond the statement queue's bound are
   * refused (OVERLOADED).
   */
  async #caughtUpForRead(follower: Follower, after: string, waitMs: number, signal: AbortSignal | undefined):
    Promise<boolean> {
    const limits = this.#limits;
    if (this.#waiters >= limits.gate.queuedMax && !shows(follower, after)) {
      throw Object.assign(new Error(`${this.#dbKey}: ${this.#waiters} reads already wait here for a position; ` +
        "retry shortly (Retry-After)"), { code: "OVERLOADED" });
    }
    this.#waiters++;
    try {
      return await caughtUp(follower, after, Math.min(waitMs, limits.statementTimeoutMs), signal);
    } finally {
      this.#waiters--;
    }
  }
}

/** The status a node without a writer reports: its replica's position and last error. */
export function replicaStatus(follower: Follower | undefined, lastError: string | null): ReplicatorStatus {
  const status = initialStatus("replicating");
  const position = follower?.position;
  status.lastGeneration = position?.generation ?? null;
  status.lastDurableCommit = position?.lastCommit ?? null;
  status.lastError = follower?.lastError ?? lastError;
  return status;
}

/** Whether the replica shows the commit `after` names (or a newer one). */
function shows(follower: Follower, after: string): boolean {
  const shown = follower.position;
  return shown !== undefined && compareCommitPositions({ epoch: 0, ...shown }, after) >= 0;
}

/**
 * Whether the replica shows `after`, waiting at most `waitMs` (until `signal` aborts): it looks
 * again as the replica refreshes, at most every 20 ms.
 */
export async function caughtUp(follower: Follower, after: string, waitMs: number, signal?: AbortSignal):
  Promise<boolean> {
  const deadline = performance.now() + waitMs;
  while (!shows(follower, after) && performance.now() < deadline && !signal?.aborted) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([follower.refresh(), new Promise((resolve) => timer = setTimeout(resolve, Math.min(250,
      Math.max(0, deadline - performance.now()))))]);
    clearTimeout(timer);
    if (shows(follower, after)) return true;
    await new Promise((resolve) => setTimeout(resolve, Math.min(20, Math.max(0, deadline - performance.now()))));
  }
  return shows(follower, after);
}

/** What `/status` says of a follower's lazily opened replica (null: all of it is local). */
export function hydrationOf(follower: Follower | undefined): ClusterView["hydration"] {
  const hydration = follower?.hydration;
  if (!hydration || hydration.done) return null;
  return { blocksLocal: hydration.blocksLocal, blocksTotal: hydration.blocksTotal, bytesFetched: hydration.bytesFetched,
    done: hydration.done };
}

/** Orders two position tokens by the commit they name (see `compareCommitPositions` in duckblock). */
export function comparePositions(a: string, b: string): number {
  return compareCommitPositions(a, b);
}
