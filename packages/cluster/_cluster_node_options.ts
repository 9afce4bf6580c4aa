/**
 * @module
 * What a cluster node is given (`ClusterNodeOptions`): the database, the store and the lease's
 * settings, how it opens the writer, and the bounds of SQL over HTTP on it.
 */
import type { AttachedDatabase, SandboxOptions, WriterFence } from "@haduck/duckdb-fs-bridge";
import type { BlockStore } from "@haduck/s3-block-store";
import type { SqlLimits } from "./_sql_run.ts";
import type { LeaseLike } from "./_group.ts";

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
