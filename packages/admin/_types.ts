/**
 * @module
 * What the admin app needs from a database it serves. The CLI adapts an attached database to it;
 * tests can hand it anything that keeps the same promises.
 */
import type { GenerationSummary, ReplicatorStatus } from "@haduck/duckdb-fs-bridge";

export interface AdminDatabase {
  /** The database's key in the store. */
  dbKey: string;
  /** The store's URL without secrets, or null in local-only mode. */
  storeUrl: string | null;
  role: "writer";
  status(): ReplicatorStatus;
  /** The store client's request counters, when it keeps them (the S3 store does). */
  storeStats?(): { requests: number; retries: number; bytesSent: number; bytesReceived: number };
  generations(): Promise<GenerationSummary[]>;
  /** Checkpoints and waits until the generation is shipped. */
  checkpoint(): Promise<void>;
}
