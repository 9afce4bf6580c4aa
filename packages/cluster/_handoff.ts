/**
 * @module
 * The end of a leader's handoff, after it released the lease: it waits (at most TTL + 2 s) for the
 * next leader to claim the lease and say it leads, so that the statements that waited during the
 * handoff can be forwarded there. A node that stops with no statement waiting does not wait.
 */
import type { LeaseLike } from "./_group.ts";
import { roleAt } from "./_forward.ts";

export interface SuccessorWait {
  lease: LeaseLike;
  /** This node's name in the lease. */
  holder: string;
  dbKey: string;
  token: string;
  ca?: string;
  ttlMs: number;
  /** When the handoff started (performance.now()). */
  started: number;
  log(message: string): void;
  /** The node stops and answers no request: nothing needs the next leader. */
  nothingWaits(): boolean;
  /** The leader the node knows (set as soon as another node holds the lease). */
  leader(): string | null;
  /** Takes the new leader from its lease record (the node checks the record's proof). */
  setLeader(record: { holder: string; address: string | null; proof?: string | null }): void;
}

/** Waits for the next leader after a handoff released the lease, and says how the handoff went. */
export async function awaitSuccessor(wait: SuccessorWait): Promise<void> {
  const { lease, holder, dbKey, ttlMs, started, log, nothingWaits } = wait;
  // Someone else leads within a poll or two; the statements that waited are forwarded meanwhile.
  // A node that stops and has no statement waiting has nothing to forward: it is done (a lone
  // leader does not wait out a TTL for a successor that may not exist).
  const deadline = performance.now() + ttlMs + 2000;
  if (nothingWaits()) {
    log(`${dbKey}: released the lease after shipping everything in ` +
      `${(performance.now() - started).toFixed(0)} ms; no statement waits, so this node stops now (a follower ` +
      "claims the lease at its next look, without waiting for the TTL)");
    return;
  }
  log(`${dbKey}: released the lease; waiting (at most ${deadline - performance.now() > 0
    ? ((deadline - performance.now()) / 1000).toFixed(1) : 0} s) for the next leader to forward the statements that waited`);
  while (performance.now() < deadline && !nothingWaits()) {
    const seen = await lease.observe().catch(() => undefined);
    if (seen?.record && !seen.record.released && seen.record.holder !== holder) {
      wait.setLeader(seen.record);
      break;
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  // Claimed is not yet leading (it fences and opens its file first): done once it says it leads.
  while (wait.leader() && performance.now() < deadline) {
    const role = await roleAt(wait.leader()!, wait);
    if (role === "leader") break;
    await new Promise((r) => setTimeout(r, 25));
  }
  log(`${dbKey}: handed off in ${(performance.now() - started).toFixed(0)} ms` +
    (wait.leader() ? ` to ${wait.leader()}` : " (no other node took the lease)"));
}
