/**
 * @module
 * A haduck cluster node (`haduck serve` with a store): a lease in the store decides who writes; the
 * leader runs writes and ships them, followers keep a replica, run reads and forward writes, and a
 * node takes over when the leader dies, pauses or is cut off (`ClusterNode`). Several databases may
 * share one lease (`SharedLease`, `GroupChanges`). `POST /sql` runs through `executeStatement` and
 * `runSql`: judged by what a statement does (`_sql_judge.ts`), on a sandboxed instance, bounded in
 * time, size and concurrency (`SqlLimits`). See docs/ARCHITECTURE.md and docs/SECURITY.md.
 *
 * @example
 * ```ts
 * import { sqlLimits } from "@haduck/cluster";
 * const limits = sqlLimits({ statementTimeoutMs: 10_000 });
 * console.log(limits.gate.runningMax); // 4
 * ```
 */
export { addressProof, vouchedAddress } from "./_forward.ts";
export { ClusterNode, type ClusterNodeOptions } from "./_cluster_node.ts";
export { comparePositions } from "./_replica_reads.ts";
export { GroupChanges, type LeaseLike, SharedLease } from "./_group.ts";
export { MEMBER_FORGET_MS, MemberReporter, MemberTable } from "./_members.ts";
export {
  executeStatement,
  type NotRun,
  RESULT_BYTES_MAX_DEFAULT,
  runSql,
  scrubPaths,
  STATEMENT_TIMEOUT_MS_DEFAULT,
  StatementGate,
  statementError,
  type SqlLimits,
  sqlLimits,
} from "./_sql_run.ts";
export {
  CLASS_OF_TYPE,
  explainedStatement,
  judgeAnyStatement,
  judgeReaderStatement,
  READER_TABLE_FUNCTIONS,
  type StatementClass,
  StatementRefused,
  statementToRun,
} from "./_sql_judge.ts";
