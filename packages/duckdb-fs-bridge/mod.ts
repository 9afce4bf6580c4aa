/**
 * @module
 * `@haduck/duckdb-fs-bridge`: loads the haduck extension into `@duckdb/node-api`, follows its
 * event ring, ships generations to a `BlockStore`, restores and verifies them. Bun (bun:ffi).
 *
 * @example
 * ```ts
 * import { attach, restore } from "@haduck/duckdb-fs-bridge";
 * import { openStore } from "@haduck/s3-block-store";
 * const store = openStore("file:///tmp/haduck-store");
 * const db = await attach({ dbPath: "/tmp/demo.duckdb", store });
 * await db.close();
 * await restore({ store, dbKey: db.dbKey, to: "/tmp/restored.duckdb", force: true });
 * ```
 */
export { attach, type AttachedDatabase, type AttachOptions, defaultDbKey } from "./writer/_attach.ts";
export {
  type FrameShipped,
  type GenerationShipped,
  RECENT_GENERATIONS_MAX,
  Replicator,
  type ReplicatorOptions,
  type ReplicatorStatus,
  type UploadProgress,
} from "./writer/_replicator.ts";
export { initialStatus, type WriterFence } from "./writer/_replicator_types.ts";
export { type CheckpointOptions, checkpointWhenQuiet } from "./local/_checkpoint.ts";
export { restore, type RestoreOptions, type RestoreResult } from "./reader/_restore.ts";
export { checkMemoryMaxMb, type OpenCheckOptions, type OpenCheckResult } from "./reader/_open_check.ts";
export { sandbox, type SandboxOptions, sandboxStatements } from "./local/_sandbox.ts";
export { follow, type Follower, type FollowerPosition, type FollowOptions } from "./reader/_follower.ts";
// Moved to @haduck/duckblock (the store's formats and catalog, DuckDB-free); still exported here.
export {
  assertValidDbKey,
  type DatabaseSummary,
  type FencedHistory,
  fenceHistory,
  fork,
  type ForkOptions,
  type ForkReport,
  gc,
  type GcOptions,
  type GcReport,
  type GenerationSummary,
  latestManifest,
  listDatabases,
  listGenerations,
  loadManifest,
  parseHeaderRegion,
  ReplicationError,
  type ReplicationErrorCode,
  summarizeGenerations,
} from "@haduck/duckblock";
export { verify, type VerifyOptions, type VerifyProgress, type VerifyReport } from "./reader/_verify.ts";
export { DUCKDB_VERSION, Native, openDuckDB, snapshotStats } from "./native/_native.ts";
export {
  DuckDBVersionError,
  extensionDuckDBVersion,
  extensionPath,
  hostDuckDBVersion,
  SUPPORTED_DUCKDB_VERSIONS,
} from "./native/_extension_path.ts";
export type { Consumer, GenerationInfo } from "./native/_consumer.ts";
export { PipeConsumer, type PipeConsumerOptions } from "./native/_pipe_consumer.ts";
