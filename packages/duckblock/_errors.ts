/**
 * @module
 * Errors of replication and restore, with stable codes that the CLI maps to exit codes and the
 * admin app to HTTP statuses.
 */
export type ReplicationErrorCode =
  | "INTEGRITY"
  | "NO_GENERATIONS"
  | "GENERATION_NOT_FOUND"
  | "TARGET_EXISTS"
  | "DIVERGED"
  | "FOREIGN_DATABASE"
  | "NO_LOCAL_FILE"
  | "UNSAFE_STORE"
  | "BUSY"
  | "BAD_TARGET"
  | "BAD_ARGUMENT"
  /** The open check could not run here (memory, temp space, a full disk, a killed child): not the store's fault. */
  | "CHECK_UNAVAILABLE";

export class ReplicationError extends Error {
  readonly code: ReplicationErrorCode;
  constructor(code: ReplicationErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, options);
    this.name = "ReplicationError";
    this.code = code;
  }
}
