/**
 * @module
 * What the admin app needs from a database it serves. The CLI adapts an attached database to it;
 * tests can hand it anything that keeps the same promises.
 */
import type { GenerationSummary, ReplicatorStatus } from "@haduck/duckblock";

/** A `POST /sql` request, checked: one statement, its parameters, and whether a write waits for the store. */
export interface SqlRequest {
  sql: string;
  /** Set by a node that forwarded the request: the receiver runs it or refuses, never forwards again. */
  forwarded?: boolean;
  /** The caller's token may only read (`HADUCK_READ_TOKEN`): a write is refused with 403 (`ReadOnlyError`). */
  readOnly?: boolean;
  /** The caller's Authorization header, carried by a forwarded request. */
  authorization?: string;
  /** Read-your-writes: a `position` from an earlier answer; a follower waits (`waitMs`) until it shows it. */
  after?: string;
  /** How long a follower waits for `after` before it forwards the read to the leader. Default 1000 ms. */
  waitMs?: number;
  /** Bounded staleness: a follower further behind than this forwards the read to the leader. */
  maxLagMs?: number;
  /** `"leader"`: read on the leader once it has confirmed its lease (linearizable). */
  consistency?: "leader";
  params: unknown[];
  /** A write answers only once its commit is durable in the store (default true). */
  durable: boolean;
  /** Aborted when the client goes away: its statement is interrupted. */
  signal?: AbortSignal;
}

/** What a statement returned, values already JSON-safe (integers beyond 2^53 as strings). */
export interface SqlAnswer {
  columns: string[];
  /**
   * The rows as JSON text, in pieces: each piece one or more rows (JSON arrays) joined by commas,
   * serialized as they streamed from DuckDB and sent as they are.
   */
  rowsJson: string[];
  /** DuckDB's own statement type said it writes (anything but SELECT and EXPLAIN). */
  write: boolean;
  /** Where the store stood after it (see `position` in docs/ARCHITECTURE.md): orders commits. */
  position: string;
}

/** A SQL statement DuckDB refused (a syntax error, a missing table, a constraint): HTTP 400 with its message. */
export class SqlError extends Error {
  readonly code = "SQL_ERROR";
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, options);
    this.name = "SqlError";
  }
}

/** A write ran but its commit is not durable in the store (local-only, or the store fails): HTTP 503. */
export class NotDurableError extends Error {
  readonly code = "NOT_DURABLE";
  constructor(message: string) {
    super(message);
    this.name = "NotDurableError";
  }
}

export type ClusterRole = "leader" | "follower" | "candidate";

/** What `GET /status` says of a database in a cluster. */
export interface ClusterView {
  role: ClusterRole;
  /** The leader's address (`http://host:port/`), or null while nobody leads. */
  leader: string | null;
  /** The newest lease epoch this node has seen (0 before any). */
  epoch: number;
  /** How long the store has held a commit this node's reads do not show yet (0: caught up, or the leader). */
  lagMs: number;
  /** The last time this node took over: when (ISO 8601), at which epoch, and how long promotion took. */
  lastTakeover?: { at: string; epoch: number; tookMs: number } | null;
  /** Statements this node sent to the leader. */
  forwarded?: number;
  /** A follower whose replica opened lazily: how much of it is local (null: all of it). */
  hydration?: { blocksLocal: number; blocksTotal: number; bytesFetched: number; done: boolean } | null;
  /** This node's own address (`http://host:port/`). */
  address?: string;
  /**
   * Every node this one knows of for the database, itself included: the leader hears from each
   * follower (`POST /members`), and a follower learns the list from the leader's answer.
   */
  nodes?: ClusterMember[];
  /** The takeover that made the newest leader this node knows of (null: none seen since it started). */
  lastFailover?: Failover | null;
}

/** One node of a cluster, as the node answering knows it. */
export interface ClusterMember {
  /** Where it serves (`http://host:port/`). */
  address: string;
  role: ClusterRole;
  /** The newest lease epoch it has seen. */
  epoch: number;
  /** How far its reads are behind the leader's durable commits (0 for the leader). */
  lagMs: number;
  /** How long ago it was last heard from (0: the node answering, or the leader whose lease holds). */
  seenMsAgo: number;
}

/** A node taking the lease over from another: when, from whom, to whom. */
export interface Failover {
  /** When the new leader started to lead (ISO 8601). */
  at: string;
  /** The address in the lease it took over (null: the record named none). */
  from: string | null;
  /** The new leader's address. */
  to: string;
  /** The new leader's epoch. */
  epoch: number;
  /** `handoff`: the old leader released the lease (SIGTERM, `haduck handoff`); `failover`: it ran out. */
  kind: "failover" | "handoff";
  /** How long the promotion took (fence, restore to the fence, open as the writer). */
  tookMs: number;
}

/** What a follower tells the leader of itself (`POST /members`), per database. */
export interface MemberReport {
  address: string;
  role: ClusterRole;
  epoch: number;
  lagMs: number;
}

/** A write sent with the read-only token: HTTP 403. */
export class ReadOnlyError extends Error {
  readonly code = "READ_ONLY";
  constructor(message = "this token (HADUCK_READ_TOKEN) may only run reads: the statement writes") {
    super(message);
    this.name = "ReadOnlyError";
  }
}

/** Thrown by `sql` when no leader can take a write (none elected, or unreachable): HTTP 503. */
export class NoLeaderError extends Error {
  readonly code = "NO_LEADER";
  constructor(message: string) {
    super(message);
    this.name = "NoLeaderError";
  }
}

export interface AdminDatabase {
  /** The database's key in the store. */
  dbKey: string;
  /** The store's URL without secrets, or null in local-only mode. */
  storeUrl: string | null;
  /** What this node is for the database: it writes (leader), it serves reads of a replica (follower), or neither yet. */
  readonly role: ClusterRole;
  /** The cluster's view of the database (absent: a single node that leads itself). */
  cluster?(): ClusterView;
  status(): ReplicatorStatus;
  /** The store client's request counters, when it keeps them (the S3 store does). */
  storeStats?(): { requests: number; retries: number; bytesSent: number; bytesReceived: number };
  generations(): Promise<GenerationSummary[]>;
  /** Checkpoints and waits until the generation is shipped. */
  checkpoint(): Promise<void>;
  /** A follower reported itself (`POST /members`); the leader lists it among the nodes. */
  memberReport?(report: MemberReport): void;
  /** A leader hands its lease to another node (`to`, or the first follower to look) and follows. */
  handoff?(to?: string): Promise<{ leader: string | null; tookMs: number }>;
  /**
   * Runs one statement (`POST /sql`); throws SqlError for what DuckDB refuses, NotDurableError (see
   * there). A `Response` is a forwarded request's answer, passed on as it came.
   */
  sql?(request: SqlRequest): Promise<SqlAnswer | Response>;
}
