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
 *   (moving its local state aside) when a renew finds another epoch, when its hold runs out, or when
 *   a create-only write finds another writer's object at its key.
 */
import { closeSync, existsSync, openSync, readSync, renameSync, statSync } from "node:fs";
import {
  type AdminDatabase,
  type ClusterRole,
  type ClusterView,
  NoLeaderError,
  ReadOnlyError,
  type SqlAnswer,
  type SqlRequest,
} from "@haduck/admin";
import {
  type AttachedDatabase,
  fenceHistory,
  type Follower,
  follow,
  initialStatus,
  type ReplicatorStatus,
  type SandboxOptions,
  restore,
  summarizeGenerations,
  type WriterFence,
} from "@haduck/duckdb-fs-bridge";
import {
  compareCommitPositions,
  formatCommitPosition,
  HEADER_REGION_BYTES,
  headerOf,
  hex,
  leaseKey,
  loadManifestHead,
  sha256,
} from "@haduck/duckblock";
import { assertLeaseStore, Lease, LeaseLostError } from "@haduck/lease";
import type { BlockStore } from "@haduck/s3-block-store";
import { executeStatement, runSql, type SqlLimits } from "./_sql_run.ts";
import type { LeaseLike } from "./_group.ts";

/** How long a follower behind a released lease's last commit lets a caught-up one claim first. */
const HANDOFF_GRACE_MS = 500;

/** Orders two position tokens by the commit they name (see `compareCommitPositions` in duckblock). */
export function comparePositions(a: string, b: string): number {
  return compareCommitPositions(a, b);
}

/**
 * Whether the file at `path` is exactly the store's `generation` with nothing after it: no WAL beside
 * it, and its header region is the one the manifest holds (its SHA-256, taken by the writer).
 */
async function isStoredGeneration(path: string, store: BlockStore, dbKey: string, generation: number): Promise<boolean> {
  if (!existsSync(path) || (statSync(`${path}.wal`, { throwIfNoEntry: false })?.size ?? 0) > 0) return false;
  const head = await loadManifestHead(store, dbKey, generation);
  const bytes = new Uint8Array(HEADER_REGION_BYTES);
  const fd = openSync(path, "r");
  try {
    if (readSync(fd, bytes, 0, bytes.byteLength, 0) !== bytes.byteLength) return false;
  } finally {
    closeSync(fd);
  }
  return hex(sha256(bytes)) === headerOf(head.head).header[7];
}

export interface ClusterNodeOptions {
  dbPath: string;
  store: BlockStore;
  dbKey: string;
  /** This node's name in the lease (unique in the cluster). */
  holder: string;
  /** The lease's time to live. Default 5000 ms. */
  ttlMs: number;
  /** The bearer token of every node (forwarded writes carry it). */
  token: string;
  /** PEM of the CA the other nodes' certificates are checked against when they serve HTTPS (`--tls-ca`). */
  ca?: string;
  /** Opens the database as the writer, under `fence`. */
  attach(fence: WriterFence): Promise<AttachedDatabase>;
  log(message: string): void;
  /**
   * The lease to use instead of this database's own (`<key>/lease.json`): a group's share (see
   * _group.ts), made once this node knows its address.
   */
  lease?: (settings: { address: string; marginMs: number }) => LeaseLike;
  /** How often the replica polls the store on its own. Default: the lease's poll (a group: slowly, told of changes). */
  followerPollMs?: number;
  /** The bounds of SQL over HTTP (timeout, answer size, the gate) on this node. */
  sqlLimits: SqlLimits;
  /** The sandbox of the replica's snapshots (the leader's instance is sandboxed by `attach`). */
  sandbox?: SandboxOptions;
}

/** A forwarded statement may wait this long for the leader's answer (a durable write waits for the store). */
const FORWARD_TIMEOUT_MS = 15_000;
/** How many leaders in turn a statement refused unrun is sent to. */
const FORWARD_RETRIES = 3;

/** What `/status` says of a follower's lazily opened replica (null: all of it is local). */
function hydrationOf(follower: Follower | undefined): ClusterView["hydration"] {
  const hydration = follower?.hydration;
  if (!hydration || hydration.done) return null;
  return { blocksLocal: hydration.blocksLocal, blocksTotal: hydration.blocksTotal, bytesFetched: hydration.bytesFetched,
    done: hydration.done };
}

export class ClusterNode {
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
  /** Set to end the renew loop; its sleep's wake-up. */
  #renewStop = false;
  #renewWake: (() => void) | undefined;
  /** After stepping down (or a failed promotion) this node claims a free lease only after this (monotonic ms). */
  #claimAfter = 0;
  #lastTakeover: { at: string; epoch: number; tookMs: number } | null = null;
  #forwarded = 0;
  /** Set while this node takes over: statements wait for it. */
  #promotion: Promise<void> | undefined;
  /** Set while a leader hands off: statements wait for it. */
  #handoff: { promise: Promise<void>; resolve: () => void } | undefined;
  /** Statements running on this node as the leader; requests this node is answering (any role). */
  #running = 0;
  #requests = 0;
  /** Reads waiting on this replica for a position (`after`): bounded like the statement queue. */
  #waiters = 0;
  /** The lease renew that confirms linearizable reads, and when it started (see `#confirmLease`). */
  #confirming: { startedAt: number; promise: Promise<void> } | undefined;
  /** Why this node may not write any more (set the moment it learns it), until it steps down. */
  #deposed: string | undefined;
  #stopped = false;
  #loop: Promise<void> | undefined;
  #renewing: Promise<void> | undefined;
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

  /** The role as others should see it: a leader whose hold ran out (a paused process) says candidate at once. */
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
      await this.#stopRenewing();
      await this.#lease.release().catch((error) => this.#options.log(`cannot release the lease: ${error.message}`));
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
      await this.#stopRenewing();
      await this.#lease.release({ successor, position }).catch((error) =>
        this.#options.log(`cannot release the lease: ${error.message}`));
      this.#handoff = undefined;
      resolve();
    }
    // Someone else leads within a poll or two; the statements that waited are forwarded meanwhile.
    // A node that stops and has no statement waiting has nothing to forward: it is done (a lone
    // leader does not wait out a TTL for a successor that may not exist).
    const deadline = performance.now() + this.#ttlMs + 2000;
    const nothingWaits = () => this.#stopped && this.#requests === 0;
    if (nothingWaits()) {
      this.#options.log(`${this.#options.dbKey}: released the lease after shipping everything in ` +
        `${(performance.now() - started).toFixed(0)} ms; no statement waits, so this node stops now (a follower ` +
        "claims the lease at its next look, without waiting for the TTL)");
      return;
    }
    this.#options.log(`${this.#options.dbKey}: released the lease; waiting (at most ${deadline - performance.now() > 0
      ? ((deadline - performance.now()) / 1000).toFixed(1) : 0} s) for the next leader to forward the statements that waited`);
    while (performance.now() < deadline && !nothingWaits()) {
      const seen = await this.#lease.observe().catch(() => undefined);
      if (seen?.record && !seen.record.released && seen.record.holder !== this.#options.holder) {
        this.#leader = seen.record.address;
        break;
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    // Claimed is not yet leading (it fences and opens its file first): done once it says it leads.
    while (this.#leader && performance.now() < deadline) {
      const role = await fetch(`${this.#leader}status`, { headers: { authorization: `Bearer ${this.#options.token}` },
        signal: AbortSignal.timeout(1000), ...(this.#options.ca ? { tls: { ca: this.#options.ca } } : {}) } as RequestInit)
        .then(async (response) => {
          // A node serving several databases: this one's entry (the top-level role is its first's).
          const body = await response.json();
          return body.databases?.find((entry: { db?: string }) => entry.db === this.#options.dbKey)?.role ?? body.role;
        }, () => undefined);
      if (role === "leader") break;
      await new Promise((r) => setTimeout(r, 25));
    }
    this.#options.log(`${this.#options.dbKey}: handed off in ${(performance.now() - started).toFixed(0)} ms` +
      (this.#leader ? ` to ${this.#leader}` : " (no other node took the lease)"));
  }

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
        if (!db || node.#role !== "leader") throw new NoLeaderError(`${dbKey}: checkpoints run on the leader (${node.#leader ?? "none now"})`);
        await db.checkpoint();
      },
      handoff: (to) => node.handoff(to),
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
    return { role, leader: role === "leader" ? this.#address : this.#role === "leader" ? null : this.#leader,
      epoch: this.#epoch, lagMs: role === "leader" ? 0 : this.#follower?.lagMs ?? 0, lastTakeover: this.#lastTakeover,
      forwarded: this.#forwarded, hydration: hydrationOf(role === "leader" ? undefined : this.#follower) };
  }

  #status(): ReplicatorStatus {
    if (this.#db) return this.#db.replicator.status;
    const status = initialStatus("replicating");
    const position = this.#follower?.position;
    status.lastGeneration = position?.generation ?? null;
    status.lastDurableCommit = position?.lastCommit ?? null;
    status.lastError = this.#follower?.lastError ?? this.#lastError;
    return status;
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
      // A leader that may not lead (a paused process woken after its hold ran out) runs nothing: its
      // local state may hold commits no one acknowledged, past a history another leader fenced.
      const deposed = this.#notLeading();
      if (deposed) throw new NoLeaderError(`${this.#options.dbKey}: this node stopped leading (${deposed}); retry`);
      if (request.consistency === "leader") {
        // Linearizable: this node still leads *now* (a renew lands), so no newer leader has a commit it lacks.
        try {
          await this.#confirmLease(arrivedAt);
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
    const follower = this.#follower;
    // Linearizable reads are the leader's; a follower behind `after` (after waiting) or further behind
    // than `maxLagMs` sends the read there too, rather than answer stale or fail.
    const stale = follower?.position === undefined || request.consistency === "leader" ||
      (request.after !== undefined && !await this.#caughtUpForRead(follower, request.after, request.waitMs ?? 1000,
        request.signal)) ||
      (request.maxLagMs !== undefined && follower.lagMs > request.maxLagMs);
    if (follower && !stale) {
      const ran = await follower.withConnection(async (connection, shown) => {
        const result = await executeStatement(connection, request, false, this.#options.sqlLimits);
        return "notRun" in result ? result
          : { ...result, position: formatCommitPosition({ epoch: this.#epoch, ...shown }) };
      });
      if (!("notRun" in ran)) return ran;
      if (ran.notRun === "write" && request.readOnly) throw new ReadOnlyError();
      // A write, or a statement the replica cannot prepare (a table it does not have yet): the leader's.
      return await this.#forward(request, attempt, false);
    }
    // A read sent to the leader (stale here, or linearizable) may go again to the next leader.
    return await this.#forward(request, attempt, Boolean(follower));
  }

  /**
   * Confirms this node still leads *now*: a lease renew that started after `arrivedAt` lands. One
   * renew in flight confirms every request that arrived before it started, so a crowd of
   * linearizable reads costs a renew per round trip, not one each.
   */
  #confirmLease(arrivedAt: number): Promise<void> {
    const current = this.#confirming;
    if (current && current.startedAt >= arrivedAt) return current.promise;
    const entry: { startedAt: number; promise: Promise<void> } = { startedAt: Infinity, promise: Promise.resolve() };
    const next: Promise<void> = (current?.promise.catch(() => {}) ?? Promise.resolve()).then(() => {
      if (this.#confirming && this.#confirming !== entry && this.#confirming.startedAt >= arrivedAt) {
        return this.#confirming.promise;
      }
      entry.startedAt = performance.now();
      return this.#lease.renew({ signal: AbortSignal.timeout(Math.max(50, this.#lease.validUntil - performance.now())) });
    });
    entry.promise = next;
    this.#confirming = entry;
    void next.finally(() => {
      if (this.#confirming === entry) this.#confirming = undefined;
    }).catch(() => {});
    return next;
  }

  /**
   * For a read with `after`: whether the replica shows it, waiting at most `waitMs` capped at the
   * statement timeout, while the client is there. Waiters beyond the statement queue's bound are
   * refused (OVERLOADED).
   */
  async #caughtUpForRead(follower: Follower, after: string, waitMs: number, signal: AbortSignal | undefined):
    Promise<boolean> {
    const limits = this.#options.sqlLimits;
    if (this.#waiters >= limits.gate.queuedMax && !this.#shows(follower, after)) {
      throw Object.assign(new Error(`${this.#options.dbKey}: ${this.#waiters} reads already wait here for a position; ` +
        "retry shortly (Retry-After)"), { code: "OVERLOADED" });
    }
    this.#waiters++;
    try {
      return await this.#caughtUp(follower, after, Math.min(waitMs, limits.statementTimeoutMs), signal);
    } finally {
      this.#waiters--;
    }
  }

  #shows(follower: Follower, after: string): boolean {
    const shown = follower.position;
    return shown !== undefined && compareCommitPositions({ epoch: 0, ...shown }, after) >= 0;
  }

  /**
   * Whether the replica shows `after`, waiting at most `waitMs` (until `signal` aborts): it looks
   * again as the replica refreshes, at most every 20 ms.
   */
  async #caughtUp(follower: Follower, after: string, waitMs: number, signal?: AbortSignal): Promise<boolean> {
    const deadline = performance.now() + waitMs;
    while (!this.#shows(follower, after) && performance.now() < deadline && !signal?.aborted) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([follower.refresh(), new Promise((resolve) => timer = setTimeout(resolve, Math.min(250,
        Math.max(0, deadline - performance.now()))))]);
      clearTimeout(timer);
      if (this.#shows(follower, after)) return true;
      await new Promise((resolve) => setTimeout(resolve, Math.min(20, Math.max(0, deadline - performance.now()))));
    }
    return this.#shows(follower, after);
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
    let answer: Response;
    this.#forwarded++;
    try {
      answer = await fetch(`${leader}sql`, {
        method: "POST",
        // The caller's token goes on: the leader allows what the caller may do, no more.
        headers: { authorization: request.authorization ?? `Bearer ${this.#options.token}`,
          "content-type": "application/json", "x-haduck-forwarded": "1" },
        body: JSON.stringify({ sql: request.sql, params: request.params, durable: request.durable,
          db: this.#options.dbKey, consistency: request.consistency }),
        // A client that leaves takes its statement with it: the leader sees the disconnect and interrupts it.
        signal: request.signal ? AbortSignal.any([AbortSignal.timeout(FORWARD_TIMEOUT_MS), request.signal])
          : AbortSignal.timeout(FORWARD_TIMEOUT_MS),
        // Bun's fetch: the nodes' certificates are checked against --tls-ca (else the system's CAs).
        ...(this.#options.ca ? { tls: { ca: this.#options.ca } } : {}),
      } as RequestInit);
    } catch (error) {
      // Refused before it connected: the statement never reached the leader, so it may go to the next.
      const code = (error as { code?: string }).code ?? "";
      if (code === "ECONNREFUSED") return await retry(`${leader} refused the connection`);
      // A read changes nothing: whatever became of it, it may be asked of the next leader.
      if (read && !request.signal?.aborted) return await retry(`${leader} did not answer the read (${code})`);
      if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|TLS|SSL/i.test(code)) {
        // The handshake failed: nothing was sent. Retrying would fail the same way.
        throw new NoLeaderError(`${this.#options.dbKey}: the leader ${leader} is not trusted (${code}: ` +
          `${(error as Error).message}); give --tls-ca the PEM of the CA that signed the nodes' certificates`);
      }
      throw Object.assign(new Error(`${this.#options.dbKey}: the leader ${leader} did not answer ` +
        `(${(error as Error).message}); the statement's outcome is unknown: read before you run it again`),
        { code: "UNKNOWN_OUTCOME" });
    }
    const body = await answer.arrayBuffer();
    if (answer.status === 503) {
      let code: unknown;
      try {
        code = JSON.parse(new TextDecoder().decode(body)).code;
      } catch {
        // not ours: passed on as it came
      }
      if (code === "NO_LEADER") return await retry(`${leader} does not lead now`); // refused unrun
    }
    return new Response(body, { status: answer.status,
      headers: { "content-type": answer.headers.get("content-type") ?? "application/json",
        ...(answer.headers.get("x-haduck-position") ? { "x-haduck-position": answer.headers.get("x-haduck-position")! }
          : {}) } });
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
          this.#leader = seen.record.address;
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
      this.#leader = seen.record?.address ?? null;
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
    else if (handedOver && this.#follower && !await this.#caughtUp(this.#follower, handedOver, grace)) {
      this.#options.log(`${this.#options.dbKey}: the lease was handed over at ${handedOver}; this replica is behind ` +
        "it, so it claims only after the others had their chance");
    }
    if (await this.#lease.tryAcquire({ signal: AbortSignal.timeout(Math.max(1000, this.#ttlMs / 2)) })) {
      const promotion = this.#promote();
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

  async #promote(): Promise<void> {
    const { store, dbKey, dbPath, log } = this.#options;
    const epoch = this.#lease.epoch!;
    this.#epoch = Math.max(this.#epoch, epoch);
    this.#deposed = undefined;
    this.#role = "candidate";
    this.#renewing ??= this.#renew();
    const started = performance.now();
    this.#promoting = true;
    try {
      await this.#followerStarting;
      const follower = this.#follower;
      this.#follower = undefined;
      const mayWrite = () => this.#notLeading() === undefined;
      const signal = () => AbortSignal.timeout(Math.max(0, this.#lease.validUntil - performance.now()));
      let fenced;
      try {
        fenced = await fenceHistory({ store, dbKey, epoch, mayWrite, signal });
      } catch (error) {
        await follower?.close();
        throw error;
      }
      if (fenced.generation === null) await follower?.close();
      else if (fenced.walBytes === 0 && await isStoredGeneration(dbPath, store, dbKey, fenced.generation)) {
        // This node's own file is the store's newest state already (a clean stop, then a restart): kept.
        await follower?.close();
      } else {
        // The store's history wins: what this node holds locally was never acknowledged past the fence.
        // The replica already holds most of it: its base, brought up to the fence, is the new file.
        const restoring = `${dbPath}.haduck-promoting`;
        const shown = await follower?.materialize(restoring, { generation: fenced.generation }).catch((error) => {
          log(`${dbKey}: the replica could not become the writer's file (${error.message}): restoring instead`);
          return undefined;
        });
        if (shown?.generation !== fenced.generation || shown.frames !== fenced.fence) {
          const restored = await restore({ store, dbKey, to: restoring, force: true });
          // A manifest that landed after the fence (an old leader's write in flight): fence again from it.
          if (restored.generation !== fenced.generation || restored.frames < fenced.fence) {
            throw new Error(`the store moved past the fence (generation ${restored.generation}, frame ` +
              `${restored.frames}; fenced ${fenced.generation} at ${fenced.fence}) while this node took over`);
          }
        }
        this.#moveAside(epoch);
        renameSync(restoring, dbPath);
        if (existsSync(`${restoring}.haduck-identity`)) renameSync(`${restoring}.haduck-identity`, `${dbPath}.haduck-identity`);
      }
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
      this.#decided.resolve();
      log(`${dbKey}: leading at epoch ${epoch} (fenced generation ${fenced.generation ?? "none"} at frame ` +
        `${fenced.fence}; promoted in ${(performance.now() - started).toFixed(0)} ms)`);
    } catch (error) {
      // Nobody leads while we hold a lease we cannot use: let it go for the next candidate.
      this.#deposed ??= `promotion failed: ${(error as Error).message}`;
      const db = this.#db;
      this.#db = undefined;
      db?.replicator.abandon("promotion failed");
      await this.#stopRenewing();
      await this.#lease.release().catch(() => {});
      this.#claimAfter = performance.now() + this.#ttlMs;
      await db?.close().catch(() => {});
      throw new Error(`cannot lead at epoch ${epoch}: ${(error as Error).message}`);
    } finally {
      this.#promoting = false;
    }
  }

  /**
   * Renews TTL/3 after the start of the last successful renew while this node holds the lease; a
   * failed renew is tried again soon, each attempt bounded by what is left of the hold. A renew that
   * finds another epoch deposes this node at once.
   */
  async #renew(): Promise<void> {
    const every = Math.floor(this.#ttlMs / 3);
    let next = performance.now() + every;
    try {
      while (this.#lease.epoch !== undefined && !this.#deposed && !this.#renewStop) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.max(0, next - performance.now()));
          this.#renewWake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        if (this.#lease.epoch === undefined || this.#deposed || this.#renewStop) break;
        const started = performance.now();
        try {
          await this.#lease.renew({ signal: AbortSignal.timeout(Math.max(50, this.#lease.validUntil - started)) });
          next = started + every;
        } catch (error) {
          if (error instanceof LeaseLostError) {
            this.#deposed ??= error.message;
            break;
          }
          if (!this.#lease.valid) {
            this.#deposed ??= `its lease ran out: the store did not take a renew (${(error as Error).message})`;
            break;
          }
          next = performance.now() + this.#pollMs; // try again soon: the hold is still good for a while
        }
      }
    } finally {
      this.#renewing = undefined;
      this.#renewWake = undefined;
      this.#wake?.();
    }
  }

  /** Ends the renew loop (it may be sleeping) and waits for a renew in flight. */
  async #stopRenewing(): Promise<void> {
    this.#renewStop = true;
    this.#renewWake?.();
    await this.#renewing;
    this.#renewStop = false;
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
    db?.replicator.abandon(`stepped down: ${reason}`);
    await this.#stopRenewing();
    // A lease we still hold but may not use would keep everyone else from leading: let it go.
    await this.#lease.release({ signal: AbortSignal.timeout(this.#ttlMs) }).catch(() => {});
    this.#claimAfter = performance.now() + this.#ttlMs; // and leave the next claim to the others
    await db?.close().catch((error) => log(`${dbKey}: closing after stepping down: ${error.message}`));
    this.#moveAside(this.#epoch);
  }

  /** Renames the local file (and its WAL and identity) out of the way, never deleting it; says where. */
  #moveAside(epoch: number): void {
    const { dbPath, dbKey, log } = this.#options;
    if (!existsSync(dbPath)) return;
    const aside = `${dbPath}.haduck-aside-epoch${epoch}-${new Date().toISOString().replace(/[:.]/g, "")}`;
    renameSync(dbPath, aside);
    for (const suffix of [".wal", ".haduck-identity"]) {
      if (existsSync(`${dbPath}${suffix}`)) renameSync(`${dbPath}${suffix}`, `${aside}${suffix}`);
    }
    log(`${dbKey}: the local database is kept aside as ${aside} (not part of the store's history; nothing was ` +
      "deleted)");
  }
}
