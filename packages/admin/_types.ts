/**
 * @module
 * What the admin app needs from a database it serves. The CLI adapts an attached database to it;
 * tests can hand it anything that keeps the same promises.
 */
import type { GenerationSummary, ReplicatorStatus } from "@haduck/duckdb-fs-bridge";

/** A `POST /sql` request, checked: one statement, its parameters, and whether a write waits for the store. */
export interface SqlRequest {
  sql: string;
  params: unknown[];
  /** A write answers only once its commit is durable in the store (default true). */
  durable: boolean;
}

/** What a statement returned, values already JSON-safe (integers beyond 2^53 as strings). */
export interface SqlAnswer {
  columns: string[];
  rows: unknown[][];
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

export interface AdminDatabase {
  /** The database's key in the store. */
  dbKey: string;
  /** The store's URL without secrets, or null in local-only mode. */
  storeUrl: string | null;
  /** This node writes the database (a single node leads itself; followers come with the cluster). */
  role: "leader";
  status(): ReplicatorStatus;
  /** The store client's request counters, when it keeps them (the S3 store does). */
  storeStats?(): { requests: number; retries: number; bytesSent: number; bytesReceived: number };
  generations(): Promise<GenerationSummary[]>;
  /** Checkpoints and waits until the generation is shipped. */
  checkpoint(): Promise<void>;
  /** Runs one statement (`POST /sql`); throws SqlError for what DuckDB refuses, NotDurableError (see there). */
  sql?(request: SqlRequest): Promise<SqlAnswer>;
}
