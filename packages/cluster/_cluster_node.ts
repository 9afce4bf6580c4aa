/**
 * @module
 * One node of a cluster (`haduck serve` with a store): every node runs the same command, the lease
 * in the store decides who writes (issue 24; docs/ARCHITECTURE.md, "The cluster").
 *
 * - **Candidate** (at start, and between roles): observes the lease (one HEAD while it does not
 *   change). Free (absent, released, or unchanged for TTL + margin on this node's clock): claim it
 *   and promote. Held by another: follow.
 * - **Follower**: a read replica (`follow()`) in `<db>.haduck-follower/`; reads run on it, writes
 *   (DuckDB's statement type says so, or the replica refuses it read-only) are forwarded to the
 *   leader's address in the lease. It keeps observing the lease and claims it once it expires.
 * - **Promotion**: fence the history (an empty frame of the new epoch at the old leader's next key,
 *   see _fence.ts), restore up to the fence into a new file, move the local file aside (printed,
 *   never deleted), open it as the writer with the epoch in every manifest and frame.
 * - **Leader**: renews every TTL/3; answers a write only while its lease still holds. It steps down
 *   (moving its local state aside) when a renew finds another epoch, when its lease validity runs out, or when
 *   a create-only write finds another writer's object at its key.
 */
import { type AdminDatabase, type ClusterMember, type ClusterRole, type ClusterView, type Failover, NoLeaderError,
  type SqlAnswer, type SqlRequest } from "@haduck/admin";
import { type AttachedDatabase, type Follower, follow, type ReplicatorStatus, summarizeGenerations } from
  "@haduck/duckdb-fs-bridge";
import { leaseKey } from "@haduck/duckblock";
import { assertLeaseStore, Lease } from "@haduck/lease";
import { runSql } from "./_sql_run.ts";
import type { ClusterNodeOptions } from "./_cluster_node_options.ts";
import type { LeaseLike } from "./_group.ts";
import { addressProof, forwardStatement, vouching } from "./_forward.ts";
import { LeaseKeeper } from "./_lease_keeper.ts";
import { caughtUp, hydrationOf, ReplicaReads, replicaStatus } from "./_replica_reads.ts";
import { fileAtTheFence, moveAside } from "./_takeover.ts";
import { awaitSuccessor } from "./_handoff.ts";
import { Membership, type ReportingNode } from "./_members.ts";

/** How long a follower behind a released lease's last commit lets a caught-up one claim first. */
const HANDOFF_GRACE_MS = 500;

export type { ClusterNodeOptions } from "./_cluster_node_options.ts";

/** How many leaders in turn a statement refused unrun is sent to. */
const FORWARD_RETRIES = 3;

export class ClusterNode implements ReportingNode {
  readonly #options: ClusterNodeOptions;
  #lease!: LeaseLike;
  readonly #ttlMs: number;
  readonly #marginMs: number;
  readonly #pollMs: number;
  #address = "";
  #role: ClusterRole = "candidate";
  #leader: string | null = null;
  #epoch = 0;
  #db: AttachedDatabase | undefined;
  #follower: Follower | undefined;
  #followerStarting: Promise<void> | undefined;
  #promoting = false;
  /** How long until the lease record last seen expires by this node's clock (Infinity: unknown). */
  #expiresInMs = Infinity;
  /** Renews the lease while this node leads, and confirms it for linearizable reads. */
  readonly #keeper: LeaseKeeper;
  /** After stepping down (or a failed promotion) this node claims a free lease only after this (monotonic ms). */
  #claimAfter = 0;
  /** This node's last takeover; and whom it took over from (a newer one its leader tells of wins in `/status`). */
  #lastTakeover: { at: string; epoch: number; tookMs: number } | null = null;
  #lastFailover: Failover | null = null;
  /** The followers that reported to this node (it leads), and what this node learned from its leader (it follows). */
  readonly #members = new Membership();
  #forwarded = 0;
  /** Set while this node takes over: statements wait for it. */
  #promotion: Promise<void> | undefined;
  /** Set while a leader hands off: statements wait for it. */
  #handoff: { promise: Promise<void>; resolve: () => void } | undefined;
  /** Statements running on this node as the leader; requests this node is answering (any role). */
  #running = 0;
  #requests = 0;
  /** Reads on the replica, and their read-your-writes waits. */
  readonly #replicaReads: ReplicaReads;
  /** Why this node may not write any more (set the moment it learns it), until it steps down. */
  #deposed: string | undefined;
  #stopped = false;
  #loop: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #lastError: string | null = null;
  /** Settles once this node knows its first role (leader, or follower of another). */
  #decided: { promise: Promise<void>; resolve: () => void };

  constructor(options: ClusterNodeOptions) {
    this.#options = options;
    const ttlMs = options.ttlMs;
    this.#ttlMs = ttlMs;
    // The margin covers clock rates (monotonic clocks agree far better than 10%), not the network:
    // the holder's deadline counts from the start of its write, an observer's from after it.
    this.#marginMs = Math.max(50, Math.floor(ttlMs / 20));
    this.#pollMs = Math.max(50, Math.min(250, Math.floor(ttlMs / 20)));
    let resolve!: () => void;
    this.#decided = { promise: new Promise<void>((r) => resolve = r), resolve };
    this.#replicaReads = new ReplicaReads(options);
    this.#keeper = new LeaseKeeper({ lease: () => this.#lease, ttlMs, retryMs: this.#pollMs,
      deposed: () => this.#deposed, depose: (reason) => this.#deposed ??= reason, ended: () => this.#wake?.() });
  }

  get dbKey(): string {
    return this.#options.dbKey;
  }

  /** The store changed for this database (a group's change object said so): the replica looks now. */
  refreshReplica(): void {
    const follower = this.#follower;
    // A refresh already in flight may have looked before this change landed: one more after it.
    void follower?.refresh().then(() => follower.refresh());
  }

  /** The role as others should see it: a leader whose lease validity ran out (a paused process) says candidate at once. */
  get role(): ClusterRole {
    return this.#role === "leader" && this.#notLeading() ? "candidate" : this.#role;
  }

  /** Checks the store can fence (refused by name when it ignores conditional writes) and starts; resolves at the first role. */
  async start(address: string): Promise<void> {
    await assertLeaseStore(this.#options.store);
    this.#address = address;
    this.#lease = this.#options.lease?.({ address, marginMs: this.#marginMs }) ??
      new Lease(this.#options.store, leaseKey(this.#options.dbKey), {
        holder: this.#options.holder, address, ttlMs: this.#ttlMs, marginMs: this.#marginMs,
        proof: addressProof(this.#options.token, address),
      });
    this.#loop = this.#run();
    await this.#decided.promise;
  }

  /** Stops: a leader ships what it has and releases the lease (a follower claims it at once); a follower leaves. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#wake?.();
    await this.#loop;
    if (this.#db) {
      await this.#handOff();
    } else {
      await this.#keeper.stop();
      await this.#lease.release().catch((error) =>
        this.#options.log(`${this.#options.dbKey}: cannot release the lease: ${error.message}`));
    }
    await this.#followerStarting;
    await this.#follower?.close();
    this.#follower = undefined;
  }

  /**
   * Hands the lease to another node without stopping (`haduck handoff`): as at SIGTERM, then this
   * node follows. `to`: the address of the node that takes over (it may claim at once; the others
   * wait for the TTL); without it, whichever follower looks first. Resolves with the new leader.
   */
  async handoff(to?: string): Promise<{ leader: string | null; tookMs: number }> {
    if (this.#role !== "leader" || !this.#db) {
      throw new NoLeaderError(`${this.#options.dbKey}: this node does not lead (${this.#leader ?? "nobody does"} ` +
        "does): send the handoff there");
    }
    const started = performance.now();
    this.#claimAfter = performance.now() + this.#ttlMs; // the lease goes to another: no claim back meanwhile
    await this.#handOff(to);
    this.#wake?.();
    return { leader: this.#leader, tookMs: Math.round(performance.now() - started) };
  }

  /**
   * A handoff: new statements wait; those running finish; everything ships while the lease is still
   * renewed; the lease is released (a follower claims it at its next look, no TTL); the statements
   * that waited go to the new leader.
   */
  async #handOff(successor?: string): Promise<void> {
    let resolve!: () => void;
    this.#handoff = { promise: new Promise<void>((r) => resolve = r), resolve };
    const started = performance.now();
    while (this.#running > 0 && performance.now() - started < 30_000) await new Promise((r) => setTimeout(r, 10));
    const db = this.#db!;
    this.#db = undefined;
    this.#role = "candidate";
    this.#leader = null;
    // Its last durable commit (nothing runs now): a follower that shows it has everything; the closing
    // checkpoint's generation holds the same commits.
    const position = db.replicator.position;
    try {
      await db.close();
    } finally {
      await this.#keeper.stop();
      await this.#lease.release({ successor, position }).catch((error) =>
        this.#options.log(`${this.#options.dbKey}: cannot release the lease: ${error.message}`));
      this.#handoff = undefined;
      resolve();
    }
    const { holder, dbKey, token, ca, log } = this.#options;
    await awaitSuccessor({ lease: this.#lease, holder, dbKey, token, ca, ttlMs: this.#ttlMs, started, log,
      nothingWaits: () => this.#stopped && this.#requests === 0, leader: () => this.#leader,
      setLeader: (record) => this.#leader = this.#vouched(record) });
  }

  /** The lease's address when its record vouches for it (`addressProof`), else null (said once). */
  readonly #vouched = vouching(() => this.#options);

  /** Resolves once no request is being answered (at most `timeoutMs`): the server may close then. */
  async quiet(timeoutMs = 20_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (this.#requests > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  }

  /** The database as the admin app serves it: role, status and SQL follow this node's role. */
  database(): AdminDatabase {
    const node = this;
    const { store, dbKey } = this.#options;
    return {
      dbKey,
      storeUrl: store.url,
      get role() {
        return node.role;
      },
      cluster: () => node.#view(),
      status: () => node.#status(),
      generations: () => summarizeGenerations(store, dbKey),
      async checkpoint() {
        const db = node.#db;
        if (!db || node.#role !== "leader") {
          throw new NoLeaderError(`${dbKey}: checkpoints run on the leader (${node.#leader ?? "none now"})`);
        }
        await db.checkpoint();
      },
      handoff: (to) => node.handoff(to),
      memberReport: (report) => node.#members.table.record(report),
      async sql(request) {
        node.#requests++;
        try {
          return await node.#sql(request);
        } finally {
          node.#requests--;
        }
      },
    };
  }

  #view(): ClusterView {
    const role = this.role;
    const leader = role === "leader" ? this.#address : this.#role === "leader" ? null : this.#leader;
    const lagMs = role === "leader" ? 0 : this.#follower?.lagMs ?? 0;
    const self = { address: this.#address, role, epoch: this.#epoch, lagMs: Math.round(lagMs), seenMsAgo: 0 };
    return { role, leader, epoch: this.#epoch, lagMs, lastTakeover: this.#lastTakeover, forwarded: this.#forwarded,
      hydration: hydrationOf(role === "leader" ? undefined : this.#follower), address: this.#address,
      ...this.#members.view(self, leader, this.#lastFailover) };
  }

  /** What this node tells its leader of itself (`POST /members`); undefined while it leads or knows no leader. */
  memberReport(): { leader: string; role: ClusterRole; epoch: number; lagMs: number } | undefined {
    const role = this.role;
    if (role === "leader" || !this.#leader || this.#leader === this.#address) return undefined;
    return { leader: this.#leader, role, epoch: this.#epoch, lagMs: Math.round(this.#follower?.lagMs ?? 0) };
  }

  /** The leader's answer to this node's report: the nodes it knows and the last failover. */
  learnCluster(answer: { leader: string | null; nodes: ClusterMember[]; lastFailover: Failover | null }): void {
    this.#members.learn(answer);
  }

  #status(): ReplicatorStatus {
    if (this.#db) return this.#db.replicator.status;
    return replicaStatus(this.#follower, this.#lastError);
  }

  /** Why a leader may not acknowledge now, or undefined while it may. */
  #notLeading(): string | undefined {
    if (this.#deposed) return this.#deposed;
    if (!this.#lease.valid) return `its lease of epoch ${this.#epoch} ran out before it was renewed`;
    return undefined;
  }

  async #sql(request: SqlRequest, attempt = 0): Promise<SqlAnswer | Response> {
    const arrivedAt = performance.now();
    await this.#handoff?.promise; // a leader handing off holds new statements, then sends them to the next
    await this.#promotion; // a node taking over runs them once it leads (forwarders sent them here already)
    const db = this.#db;
    if (this.#role === "leader" && db) {
      // A leader that may not lead (a paused process woken after its lease validity ran out) runs nothing: its
      // local state may hold commits no one acknowledged, past a history another leader fenced.
      const deposed = this.#notLeading();
      if (deposed) throw new NoLeaderError(`${this.#options.dbKey}: this node stopped leading (${deposed}); retry`);
      if (request.consistency === "leader") {
        // Linearizable: this node still leads *now* (a renew lands), so no newer leader has a commit it lacks.
        try {
          await this.#keeper.confirm(arrivedAt);
        } catch (error) {
          throw new NoLeaderError(`${this.#options.dbKey}: this node cannot confirm its lease (${(error as Error).message}); ` +
            "retry");
        }
      }
      this.#running++;
      try {
        const answer = await runSql(db, this.#options.store, request, this.#options.sqlLimits, () => this.#notLeading());
        if (answer.write && !request.durable && this.#notLeading()) {
          throw Object.assign(new Error(`${this.#options.dbKey}: the statement ran, but this node stopped leading ` +
            "meanwhile (its outcome is unknown): read before you run it again"), { code: "UNKNOWN_OUTCOME" });
        }
        return answer;
      } finally {
        this.#running--;
      }
    }
    const read = await this.#replicaReads.run(this.#follower, request, () => this.#epoch);
    if ("answer" in read) return read.answer;
    return await this.#forward(request, attempt, read.toLeader.read);
  }

  /**
   * Sends the statement to the leader and passes its answer on; 503 when there is none to reach.
   * When the leader refused it unrun (it is stepping down, or handing off) or could not be reached
   * at all, the statement waits for the next leader (at most TTL + 2 s) and goes there: a client
   * writing through a follower sees a handoff or a failover as a pause, not an error.
   */
  async #forward(request: SqlRequest, attempt = 0, read = false): Promise<SqlAnswer | Response> {
    const leader = this.#leader;
    if (request.forwarded) {
      throw new NoLeaderError(`${this.#options.dbKey}: this node (${this.#address}) does not lead any more; ` +
        "retry: the cluster is electing or has a new leader");
    }
    const retry = async (why: string) => {
      if (attempt < FORWARD_RETRIES && await this.#nextLeader(leader)) return await this.#sql(request, attempt + 1);
      throw new NoLeaderError(`${this.#options.dbKey}: no leader took the statement (${why}); retry in a few seconds`);
    };
    if (!leader || leader === this.#address) return await retry(`this node is a ${this.#role} and knows no leader`);
    this.#forwarded++;
    const sent = await forwardStatement(leader, request, { dbKey: this.#options.dbKey, token: this.#options.token,
      ca: this.#options.ca, read });
    return sent instanceof Response ? sent : await retry(sent.retry);
  }

  /** Waits (at most TTL + 2 s) until the lease names a leader other than `than`, or this node leads. */
  async #nextLeader(than: string | null): Promise<boolean> {
    const deadline = performance.now() + this.#ttlMs + 2000;
    while (performance.now() < deadline) {
      if (this.#role === "leader" && this.#db && !this.#notLeading()) return true;
      // A stopping node no longer watches the lease in its loop: it looks itself.
      if (this.#stopped && !this.#handoff) {
        const seen = await this.#lease.observe().catch(() => undefined);
        if (seen?.record && !seen.record.released && seen.record.holder !== this.#options.holder) {
          this.#leader = this.#vouched(seen.record);
        }
      }
      if (this.#leader && this.#leader !== than && this.#leader !== this.#address) return true;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return false;
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      try {
        if (this.#role === "leader") {
          const reason = this.#notLeading();
          if (reason) await this.#stepDown(reason);
        } else if (!this.#handoff) {
          // (Not while handing off: the lease is still ours until the close has shipped everything.)
          await this.#candidateStep();
        }
        this.#lastError = null;
      } catch (error) {
        this.#lastError = `${this.#options.dbKey}: ${(error as Error).message}`;
        this.#options.log(this.#lastError);
      }
      if (this.#stopped) break;
      // A record about to expire is looked at again the moment it does: the claim comes at once.
      const wait = this.#role === "leader" ? this.#pollMs : Math.max(1, Math.min(this.#pollMs, this.#expiresInMs));
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, wait);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  async #candidateStep(): Promise<void> {
    const seen = await this.#lease.observe({ signal: AbortSignal.timeout(Math.max(1000, this.#ttlMs / 2)) });
    if (seen.record) this.#epoch = Math.max(this.#epoch, seen.record.epoch);
    this.#expiresInMs = seen.record ? seen.record.ttlMs + this.#marginMs - seen.unchangedForMs + 1 : Infinity;
    // Our own record (a claim whose answer was lost, then found): adopt it rather than follow ourselves.
    const ours = seen.record?.holder === this.#options.holder && !seen.record.released;
    if (!seen.claimable && !ours) {
      this.#leader = seen.record ? this.#vouched(seen.record) : null;
      this.#ensureFollower();
      if (this.#role === "candidate" && this.#leader !== this.#address) {
        this.#role = "follower";
        this.#decided.resolve();
      }
      return;
    }
    this.#leader = null;
    // We just stepped down: others first. In a group the record stays ours while the group's other
    // databases lead, so this database waits out its own pause too.
    if ((!ours || this.#options.lease) && performance.now() < this.#claimAfter && seen.record) return;
    // A lease handed to whoever comes (a handoff without --to) goes to the most caught-up follower:
    // one whose replica shows the old leader's last commit claims at once; one behind first waits
    // (at most HANDOFF_GRACE_MS) to show it, so that a follower that already does gets there first.
    const handedOver = seen.record?.released && !seen.record.successor ? seen.record.position : undefined;
    const grace = Math.min(HANDOFF_GRACE_MS, this.#ttlMs / 2);
    if (handedOver && !this.#follower) await new Promise((resolve) => setTimeout(resolve, grace)); // no replica: last
    else if (handedOver && this.#follower && !await caughtUp(this.#follower, handedOver, grace)) {
      this.#options.log(`${this.#options.dbKey}: the lease was handed over at ${handedOver}; this replica is behind ` +
        "it, so it claims only after the others had their chance");
    }
    // Whom this node takes over from, for /status (a record that names no holder but ours: nobody).
    const previous = seen.record && !ours
      ? { from: seen.record.address, kind: seen.record.released ? "handoff" as const : "failover" as const }
      : undefined;
    if (await this.#lease.tryAcquire({ signal: AbortSignal.timeout(Math.max(1000, this.#ttlMs / 2)) })) {
      const promotion = this.#promote(previous);
      this.#promotion = promotion.catch(() => {});
      try {
        await promotion;
      } finally {
        this.#promotion = undefined;
      }
    }
  }

  /** Starts the replica in the background: a slow first restore must not keep this node from watching the lease. */
  #ensureFollower(): void {
    if (this.#follower || this.#followerStarting) return;
    const { store, dbKey, dbPath } = this.#options;
    this.#followerStarting = follow({ store, dbKey, dir: `${dbPath}.haduck-follower`,
      pollMs: this.#options.followerPollMs ?? this.#pollMs, sandbox: this.#options.sandbox })
      .then(async (follower) => {
        // Promoted meanwhile (or stopping): this replica is nobody's.
        if (this.#role === "leader" || this.#promoting || this.#stopped) await follower.close();
        else this.#follower = follower;
      }, (error) => {
        // An empty store (the leader has not published its first generation yet): try again at the next poll.
        this.#lastError = `${dbKey}: no replica yet: ${(error as Error).message}`;
      }).finally(() => this.#followerStarting = undefined);
  }

  async #promote(previous?: { from: string | null; kind: Failover["kind"] }): Promise<void> {
    const { store, dbKey, dbPath, log } = this.#options;
    const epoch = this.#lease.epoch!;
    this.#epoch = Math.max(this.#epoch, epoch);
    this.#deposed = undefined;
    this.#role = "candidate";
    this.#keeper.start();
    const started = performance.now();
    this.#promoting = true;
    try {
      await this.#followerStarting;
      const follower = this.#follower;
      this.#follower = undefined;
      const mayWrite = () => this.#notLeading() === undefined;
      const signal = () => AbortSignal.timeout(Math.max(0, this.#lease.validUntil - performance.now()));
      const fenced = await fileAtTheFence({ store, dbKey, dbPath, epoch, mayWrite, signal, follower, log });
      const db = await this.#options.attach({ epoch, mayWrite, signal, fenced: (reason) => this.#deposed ??= reason });
      this.#db = db;
      const reason = this.#notLeading();
      if (reason) {
        await this.#stepDown(reason);
        return;
      }
      this.#role = "leader";
      this.#leader = this.#address;
      this.#lastTakeover = { at: new Date().toISOString(), epoch, tookMs: Math.round(performance.now() - started) };
      if (previous) this.#lastFailover = { ...this.#lastTakeover, ...previous, to: this.#address };
      this.#decided.resolve();
      log(`${dbKey}: leading at epoch ${epoch} (fenced generation ${fenced.generation ?? "none"} at frame ` +
        `${fenced.fence}; promoted in ${(performance.now() - started).toFixed(0)} ms)`);
    } catch (error) {
      this.#deposed ??= `promotion failed: ${(error as Error).message}`;
      const db = this.#db;
      this.#db = undefined;
      await this.#letGo(db, "promotion failed");
      throw new Error(`cannot lead at epoch ${epoch}: ${(error as Error).message}`);
    } finally {
      this.#promoting = false;
    }
  }

  /** Stops writing and acknowledging at once; the local state is moved aside, never merged; then follows. */
  async #stepDown(reason: string): Promise<void> {
    const { dbKey, log } = this.#options;
    this.#deposed ??= reason;
    this.#role = "candidate";
    this.#leader = null;
    const db = this.#db;
    this.#db = undefined;
    log(`${dbKey}: stepping down from epoch ${this.#epoch}: ${reason}`);
    await this.#letGo(db, `stepped down: ${reason}`);
    moveAside(this.#options, this.#epoch);
  }

  /** A lease this node holds but may not use keeps everyone else from leading: it lets go of it and of `db`. */
  async #letGo(db: AttachedDatabase | undefined, why: string): Promise<void> {
    db?.replicator.cancelRequests(why);
    await this.#keeper.stop();
    await this.#lease.release({ signal: AbortSignal.timeout(this.#ttlMs) }).catch(() => {});
    this.#claimAfter = performance.now() + this.#ttlMs; // and leave the next claim to the others
    await db?.close().catch((error) => this.#options.log(`${this.#options.dbKey}: closing (${why}): ${error.message}`));
  }
}
