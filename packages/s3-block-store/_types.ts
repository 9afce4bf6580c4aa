/**
 * @module
 * The `BlockStore` interface: the one contract both the S3 store and the filesystem store keep.
 * Keys are relative to the store's prefix and use `/` as separator.
 */

/** What a listing or a head returns about one object. */
export interface ObjectInfo {
  key: string;
  sizeBytes: number;
  /** The store's entity tag, unquoted. Pass it to `put(..., { ifMatch })` for compare-and-swap. */
  etag: string;
  lastModified?: Date;
}

export interface PutOptions {
  /** `"*"`: create only; fails with `PreconditionFailedError` when the key exists. */
  ifNoneMatch?: "*";
  /** Compare-and-swap: write only if the current ETag (unquoted) equals this one. */
  ifMatch?: string;
  /**
   * Hex SHA-256 of the body, when the caller has it already. An S3 store that signs payloads (see
   * `S3BlockStoreOptions.signPayload`) signs it as the payload hash, which the server checks (a wrong
   * one is refused, never stored), and skips hashing the body itself. Other stores ignore it.
   */
  sha256?: string;
  signal?: AbortSignal;
}

export interface PutResult {
  etag: string;
}

export interface GetOptions {
  /** A byte range; `lengthBytes` 0 is refused (there is nothing to read). */
  range?: { offsetBytes: number; lengthBytes: number };
  /** Hex SHA-256 the bytes must have; a mismatch throws `ChecksumMismatchError`. */
  sha256?: string;
  signal?: AbortSignal;
}

export interface ListOptions {
  /** List keys strictly after this one (relative to the store's prefix). */
  startAfter?: string;
  signal?: AbortSignal;
}

/** What `probeCapabilities()` found by trying, not by trusting documentation. */
export interface StoreCapabilities {
  /** `If-None-Match: *` refused a second create. */
  createOnly: boolean;
  /** `If-Match` refused a stale ETag and accepted the current one. */
  compareAndSwap: boolean;
}

/** One object store: S3-compatible or a local directory. */
export interface BlockStore {
  /** Where this store points, without secrets: `s3://bucket/prefix` or `file:///dir`. */
  readonly url: string;
  /** Stores `body` under `key`. The store keeps no reference to `body` once the promise settles: callers reuse it. */
  put(key: string, body: Uint8Array, options?: PutOptions): Promise<PutResult>;
  get(key: string, options?: GetOptions): Promise<Uint8Array>;
  /** `undefined` when the object does not exist. */
  head(key: string, options?: { signal?: AbortSignal }): Promise<ObjectInfo | undefined>;
  /** Every object whose key starts with `prefix`, in key order, across pages. */
  list(prefix: string, options?: ListOptions): AsyncIterable<ObjectInfo>;
  /** Deleting a missing object is not an error. */
  delete(key: string, options?: { signal?: AbortSignal }): Promise<void>;
  deleteMany(keys: string[], options?: { signal?: AbortSignal }): Promise<void>;
  probeCapabilities(): Promise<StoreCapabilities>;
}

/** Checks a key: relative, no empty or dot segments, no control characters. */
export function assertValidKey(key: string): void {
  if (typeof key !== "string" || key.length === 0 || key.length > 900) {
    throw new TypeError(`Invalid object key ${JSON.stringify(key)}: expected 1 to 900 characters`);
  }
  // deno-lint-ignore no-control-regex
  if (key.startsWith("/") || /[\u0000-\u001f\u007f\\]/.test(key) ||
    key.split("/").some((part) => part === "" || part === "." || part === "..")) {
    throw new TypeError(`Invalid object key ${JSON.stringify(key)}: use relative keys of non-empty segments ` +
      "without '.', '..', backslashes or control characters");
  }
}
