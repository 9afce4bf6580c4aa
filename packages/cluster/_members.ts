/**
 * @module
 * Who is in the cluster, for `/status` and the dashboard: nothing in the store lists the nodes (the
 * lease names only its holder), so every follower tells the leader of itself over HTTP
 * (`POST /members`, one request per leader per interval for all the databases it follows there),
 * and learns from the answer the nodes the leader knows and the last failover. The leader keeps
 * what it heard in memory (`MemberTable`): a node not heard from for a while shows its age, and is
 * forgotten after `MEMBER_FORGET_MS`. None of this decides anything: roles come from the lease.
 */
import type { ClusterMember, ClusterRole, Failover, MemberReport } from "@haduck/admin";

/** A node not heard from for this long is dropped from the list. */
export const MEMBER_FORGET_MS = 60_000;
/** At most this many nodes are remembered per database (the oldest heard from go first). */
export const MEMBERS_MAX = 64;
/** A report waits this long for the leader's answer. */
const REPORT_TIMEOUT_MS = 2_000;

/** The nodes a leader has heard from for one database. */
export class MemberTable {
  readonly #heard = new Map<string, { report: MemberReport; at: number }>();

  record(report: MemberReport, now: number = performance.now()): void {
    this.#heard.delete(report.address); // re-inserted last: the map stays ordered by when each was heard
    this.#heard.set(report.address, { report, at: now });
    for (const [address, entry] of this.#heard) {
      if (this.#heard.size <= MEMBERS_MAX && now - entry.at <= MEMBER_FORGET_MS) break;
      this.#heard.delete(address);
    }
  }

  /** `self` first, then the others by address; a node that reported itself under this node's address is this node. */
  list(self: ClusterMember, now: number = performance.now()): ClusterMember[] {
    const others: ClusterMember[] = [];
    for (const { report, at } of this.#heard.values()) {
      if (report.address === self.address || now - at > MEMBER_FORGET_MS) continue;
      others.push({ ...report, seenMsAgo: Math.round(now - at) });
    }
    return [self, ...others.sort((a, b) => a.address.localeCompare(b.address))];
  }
}

/** What a follower learned from the leader's answer to its last report. */
export interface LearnedCluster {
  nodes: ClusterMember[];
  lastFailover: Failover | null;
  /** When it was learned (monotonic ms). */
  at: number;
}

/**
 * The nodes `self` knows for one database, itself first: leading, those that reported to it;
 * following, those its leader named in its last answer (aged by the time since); before any
 * answer, the leader the lease names (it holds, or this node would claim it).
 */
export function nodesKnown(self: ClusterMember, leader: string | null, table: MemberTable,
  learned: LearnedCluster | undefined): ClusterMember[] {
  if (self.role === "leader") return table.list(self);
  if (learned) {
    const ageMs = Math.round(performance.now() - learned.at);
    return [self, ...learned.nodes.filter((node) => node.address !== self.address)
      .map((node) => ({ ...node, seenMsAgo: node.seenMsAgo + ageMs }))];
  }
  return leader && leader !== self.address
    ? [self, { address: leader, role: "leader", epoch: self.epoch, lagMs: 0, seenMsAgo: 0 }] : [self];
}

/**
 * What one node knows of its cluster beyond the lease: the followers that report to it while it
 * leads, and what its leader answered while it follows.
 */
export class Membership {
  readonly table = new MemberTable();
  #learned: (LearnedCluster & { leader: string | null }) | undefined;

  /** The leader's answer to this node's report. */
  learn(answer: { leader: string | null; nodes: ClusterMember[]; lastFailover: Failover | null }): void {
    this.#learned = { leader: answer.leader, nodes: answer.nodes.slice(0, MEMBERS_MAX), lastFailover: answer.lastFailover,
      at: performance.now() };
  }

  /**
   * The nodes and the last failover as `self` shows them: it thinks `leader` leads, and `own` is the
   * newest takeover it made itself (a newer one its leader told it of wins).
   */
  view(self: ClusterMember, leader: string | null, own: Failover | null):
    { nodes: ClusterMember[]; lastFailover: Failover | null } {
    const learned = this.#learned?.leader === leader ? this.#learned : undefined;
    const heard = learned?.lastFailover;
    return { nodes: nodesKnown(self, leader, this.table, learned),
      lastFailover: heard && (!own || heard.epoch > own.epoch) ? heard : own };
  }
}

/** A node of the cluster as the reporter sees it (`ClusterNode` is one). */
export interface ReportingNode {
  readonly dbKey: string;
  /** This node's report for its database and the leader to send it to, or undefined (it leads, or knows no leader). */
  memberReport(): { leader: string; role: ClusterRole; epoch: number; lagMs: number } | undefined;
  /** The leader's answer for this database. */
  learnCluster(answer: { leader: string | null; nodes: ClusterMember[]; lastFailover: Failover | null }): void;
}

/**
 * Sends each leader, every `intervalMs`, one report of the databases this node follows there, and
 * hands each database the leader's answer. A leader that does not answer is skipped until the next
 * round: the list it shows ages, nothing else changes.
 *
 * @example
 * ```ts
 * import { MemberReporter } from "./_members.ts";
 * const reporter = new MemberReporter([], { address: "http://127.0.0.1:8081/", token: "0123456789abcdef",
 *   intervalMs: 2000 });
 * reporter.start();
 * await reporter.stop();
 * ```
 */
export class MemberReporter {
  readonly #nodes: ReportingNode[];
  readonly #settings: { address: string; token: string; ca?: string; intervalMs: number };
  #stopped = false;
  /** Aborts a report in flight at stop: a node that stops does not wait for a leader that is gone. */
  readonly #stopping = new AbortController();
  #loop: Promise<void> | undefined;
  #wake: (() => void) | undefined;

  constructor(nodes: ReportingNode[], settings: { address: string; token: string; ca?: string; intervalMs: number }) {
    if (!Number.isFinite(settings.intervalMs) || settings.intervalMs < 50) {
      throw new RangeError(`Invalid intervalMs ${settings.intervalMs}: expected at least 50 ms`);
    }
    this.#nodes = nodes;
    this.#settings = settings;
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#stopping.abort();
    this.#wake?.();
    await this.#loop;
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      await this.report();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.#settings.intervalMs);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** One round: a report to each leader (in parallel), its answer handed to each database. */
  async report(): Promise<void> {
    const byLeader = new Map<string, { node: ReportingNode; entry: { db: string; role: ClusterRole; epoch: number;
      lagMs: number } }[]>();
    for (const node of this.#nodes) {
      const report = node.memberReport();
      if (!report || report.leader === this.#settings.address) continue;
      const { leader, ...entry } = report;
      const list = byLeader.get(leader) ?? [];
      list.push({ node, entry: { db: node.dbKey, ...entry } });
      byLeader.set(leader, list);
    }
    await Promise.all([...byLeader].map(async ([leader, entries]) => {
      const answer = await this.#send(leader, entries.map(({ entry }) => entry));
      for (const { node } of entries) {
        const found = answer?.databases?.find((entry) => entry.db === node.dbKey);
        if (found && Array.isArray(found.nodes)) node.learnCluster(found);
      }
    }));
  }

  async #send(leader: string, databases: unknown[]) {
    const { address, token, ca } = this.#settings;
    try {
      const response = await fetch(`${leader}members`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ address, databases }),
        signal: AbortSignal.any([AbortSignal.timeout(REPORT_TIMEOUT_MS), this.#stopping.signal]),
        ...(ca ? { tls: { ca } } : {}),
      } as RequestInit);
      if (!response.ok) return undefined;
      return await response.json() as { databases?: ({ db: string; leader: string | null; nodes: ClusterMember[];
        lastFailover: Failover | null })[] };
    } catch {
      return undefined; // the leader is down or moving: the next round tries whoever leads then
    }
  }
}
