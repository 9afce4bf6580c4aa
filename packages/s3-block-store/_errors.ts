/**
 * @module
 * Typed errors of the block store. Callers branch on `code`, which is stable; messages say what
 * failed, the value, and what the user can do. Secrets never appear in any of them.
 */

/** The stable error codes of `@haduck/s3-block-store`. */
export type StoreErrorCode =
  | "NOT_FOUND"
  | "PRECONDITION_FAILED"
  | "ACCESS_DENIED"
  | "NO_SUCH_BUCKET"
  | "CHECKSUM_MISMATCH"
  | "TIMEOUT"
  | "UNKNOWN_OUTCOME"
  | "UNAVAILABLE"
  | "INVALID_CONFIG"
  | "INVALID_RESPONSE"
  | "ENCRYPTION_KEY"
  | "NOT_SEALED";

/** Base class of every error the store throws on purpose. */
export class StoreError extends Error {
  readonly code: StoreErrorCode;
  /** Whether the retry policy may try the same request again. */
  readonly retryable: boolean;
  constructor(code: StoreErrorCode, message: string, options: { cause?: unknown; retryable?: boolean } = {}) {
    super(message, { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = options.retryable ?? false;
  }
}

/** The object does not exist (S3 404 NoSuchKey). */
export class BlockNotFoundError extends StoreError {
  readonly key: string;
  constructor(key: string, where: string) {
    super("NOT_FOUND", `Cannot read ${key} from ${where}: no such object`);
    this.key = key;
  }
}

/** A conditional write lost: the object exists (create-only) or changed (compare-and-swap). */
export class PreconditionFailedError extends StoreError {
  readonly key: string;
  constructor(key: string, where: string, detail: string) {
    super("PRECONDITION_FAILED", `Cannot write ${key} to ${where}: ${detail}`);
    this.key = key;
  }
}

/** 403: wrong keys, or keys without permission on the bucket. */
export class AccessDeniedError extends StoreError {
  /** `credentials` says where the keys came from (default: the HADUCK_S3_* variables). */
  constructor(operation: string, where: string, credentials = "HADUCK_S3_ACCESS_KEY and HADUCK_S3_SECRET_KEY") {
    super("ACCESS_DENIED", `Cannot ${operation} at ${where}: access denied (403); check ${credentials}, and ` +
      "that the key may read and write the bucket");
  }
}

/** The bucket does not exist. */
export class NoSuchBucketError extends StoreError {
  constructor(bucket: string, where: string) {
    super("NO_SUCH_BUCKET", `Cannot use bucket ${bucket} at ${where}: it does not exist; create it or fix ` +
      "HADUCK_S3_BUCKET");
  }
}

/** Bytes read do not match the checksum they were stored with. Never retried into success silently. */
export class ChecksumMismatchError extends StoreError {
  readonly key: string;
  constructor(key: string, detail: string) {
    super("CHECKSUM_MISMATCH", `Object ${key} is corrupt: ${detail}`);
    this.key = key;
  }
}

/** A request did not complete within its timeout, after every retry. */
export class StoreTimeoutError extends StoreError {
  constructor(operation: string, where: string, timeoutMs: number, cause?: unknown) {
    super("TIMEOUT", `Cannot ${operation} at ${where}: no answer within ${timeoutMs} ms`, { cause, retryable: true });
  }
}

/** A conditional write whose outcome could not be established (the store failed mid-request). */
export class UnknownOutcomeError extends StoreError {
  readonly key: string;
  constructor(key: string, where: string, cause?: unknown) {
    super("UNKNOWN_OUTCOME", `Cannot tell whether ${key} was written to ${where}: the store failed mid-request; ` +
      "read it back before relying on it", { cause });
    this.key = key;
  }
}

/** The store kept failing with 5xx, 429 or network errors until the retry policy gave up. */
export class StoreUnavailableError extends StoreError {
  constructor(message: string, cause?: unknown) {
    super("UNAVAILABLE", message, { cause, retryable: true });
  }
}

/** Missing or malformed settings. */
export class StoreConfigError extends StoreError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super("INVALID_CONFIG", message, options);
  }
}

/** The store answered something that is not S3 (an HTML page, garbage XML, a wrong length). */
export class InvalidResponseError extends StoreError {
  constructor(message: string, options: { retryable?: boolean; cause?: unknown } = {}) {
    super("INVALID_RESPONSE", message, options);
  }
}

/** A sealed object needs a key this process does not have (none configured, or not that one). */
export class EncryptionKeyError extends StoreError {
  readonly key: string;
  /** The id of the key the object is sealed with. */
  readonly keyId: string;
  constructor(key: string, keyId: string, configuredIds: string[]) {
    super("ENCRYPTION_KEY", `Cannot open ${key}: it is encrypted with key id ${keyId}, and ` +
      (configuredIds.length === 0 ? "no encryption key is configured"
        : `the configured keys are ${configuredIds.join(", ")}`) +
      `: add the key with id ${keyId} to HADUCK_ENCRYPTION_KEY or HADUCK_ENCRYPTION_KEY_FILE`);
    this.key = key;
    this.keyId = keyId;
  }
}

/**
 * A plain object in a store configured for encryption. Refused: whoever can write the store could
 * otherwise slip in unauthenticated content. Moving a plain store to encryption is `haduck rekey`.
 */
export class NotSealedError extends StoreError {
  readonly key: string;
  constructor(key: string, currentKeyId: string) {
    super("NOT_SEALED", `Cannot accept ${key}: it is not encrypted, but this store is configured for encryption ` +
      `(key id ${currentKeyId}): if the store is being moved from plain to encrypted, run \`haduck rekey\` (and set ` +
      "HADUCK_ENCRYPTION_ACCEPT_PLAIN=1 on the writers until it is done); otherwise someone wrote it without the key");
    this.key = key;
  }
}
