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

/**
 * Whether `error` (or what caused it) is a missing or wrong encryption key, or a plain object in an
 * encrypted store: configuration for the operator to fix, never a verdict on the store's history.
 */
export function isEncryptionKeyError(error: unknown): boolean {
  for (let cause = error, depth = 0; cause instanceof Error && depth < 8; cause = cause.cause, depth++) {
    const code = (cause as { code?: string }).code;
    if (code === "ENCRYPTION_KEY" || code === "NOT_SEALED") return true;
  }
  return false;
}
