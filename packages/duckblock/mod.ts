/**
 * @module
 * `@haduck/duckblock`: what a haduck database is in the store, DuckDB-free and runtime-neutral:
 * the object keys (one module), the segment, manifest and WAL frame codecs, the chain of frames,
 * the catalog (listing, loading and checking generations), gc, and the fence a new leader writes.
 * Capture (the extension, the replicator) and anything that opens DuckDB live in
 * `@haduck/duckdb-fs-bridge`; leases in `@haduck/lease` (this package never imports it).
 *
 * @example
 * ```ts
 * import { openStore } from "@haduck/s3-block-store";
 * import { listGenerations, manifestKey } from "@haduck/duckblock";
 * const store = openStore("file:///tmp/haduck-store");
 * console.log(manifestKey("demo.duckdb", 3), await listGenerations(store, "demo.duckdb"));
 * ```
 */
export {
  decodeLatestHint,
  encodeLatestHint,
  forkMarkerKey,
  forksPrefix,
  frameKey,
  framesPrefix,
  groupChangesKey,
  type LatestHint,
  latestKey,
  leaseKey,
  manifestKey,
  manifestsPrefix,
  pageKey,
  pagesPrefix,
  parseFrameKey,
  parseManifestKey,
  parseManifestPath,
  segmentKey,
  segmentsPrefix,
} from "./_keys.ts";
export {
  AdaptiveCompressor,
  assertValidDbKey,
  COMPRESSION_NONE,
  COMPRESSION_ZSTD,
  HEADER_REGION_ID,
  hex,
  type Manifest,
  type ManifestBlock,
  SEGMENT_TRAILER_BYTES,
  sealSegment,
  type SealedEntryInput,
  segmentHeadBytes,
  sha256,
} from "./_format.ts";
export { blockTotal, encodeManifest, headerOf, manifestParts, writePages } from "./_manifest_pages.ts";
export { blockOf, buildManifest, entryOf, inSegment, type ManifestEntry, type SegmentRef, type Shipment } from "./_manifest_entry.ts";
export {
  applyFrames,
  type ChainPoint,
  chainsTo,
  decodeFrame,
  encodeFrame,
  type Frame,
  type FrameCommit,
  type FrameWalk,
  listFrames,
  nextInChain,
  walkFrames,
} from "./_frames.ts";
export {
  checkHeaderRegion,
  type DatabaseSummary,
  decodeBlock,
  type GenerationSummary,
  headAtTime,
  latestHead,
  latestManifest,
  listDatabases,
  listGenerations,
  type LoadedHead,
  loadManifest,
  loadManifestHead,
  summarizeGenerations,
  verifyObjects,
  type VerifyReport,
} from "./_catalog.ts";
export { type FencedHistory, fenceHistory } from "./_fence.ts";
export { gc, type GcOptions, type GcReport } from "./_gc.ts";
export { fork, type ForkOptions, type ForkReport } from "./_fork.ts";
export { isEncryptionKeyError, ReplicationError, type ReplicationErrorCode } from "./_errors.ts";
export { blockOffset, type DuckDBFileInfo, HEADER_REGION_BYTES, parseHeaderRegion } from "./_duckdb_file.ts";
export { RuntimeCopies } from "./_runtime_copies.ts";
export {
  type GenerationShipped,
  initialStatus,
  RECENT_GENERATIONS_MAX,
  type ReplicaStoreStatus,
  type ReplicatorStatus,
} from "./_status.ts";
export { MirroredStore, type MirroredStoreOptions } from "./_mirror.ts";
export { type MirrorReconcileReport, reconcileReplica } from "./_mirror_reconcile.ts";
export {
  type CommitPosition,
  COMMIT_POSITION_PATTERN,
  compareCommitPositions,
  formatCommitPosition,
  parseCommitPosition,
} from "./_commit_position.ts";
export { shellQuote, suggestCommand } from "./_suggest.ts";
