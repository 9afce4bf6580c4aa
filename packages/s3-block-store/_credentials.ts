/**
 * @module
 * The keys an S3 request is signed with: fixed ones, or a provider's (the AWS credential chain, or
 * any async function) kept in one cache that fetches again before they expire. Concurrent requests
 * share one fetch; a request the server refused as expired asks for a fresh set once.
 */

/** One set of S3 keys. `expiration` absent means they do not expire. */
export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  /** Sent as `X-Amz-Security-Token` (temporary credentials from STS, a container, instance metadata). */
  sessionToken?: string;
  expiration?: Date;
}

/**
 * Returns the current keys. `forceRefresh: true` asks a caching provider (the AWS SDK's chain is one)
 * for new ones rather than its cached set; the store passes it whenever it wants a fresh set.
 */
export type CredentialsProvider = (options?: { forceRefresh?: boolean }) => Promise<S3Credentials>;

/** How long before `expiration` credentials are fetched again. Default 5 minutes, as the AWS SDKs do. */
export const CREDENTIALS_REFRESH_BEFORE_EXPIRY_MS = 5 * 60_000;
/** After a failed refresh, while the held keys are still valid, the next try waits this long. */
export const CREDENTIALS_REFRESH_RETRY_MS = 1000;

export interface CredentialCacheOptions {
  /** See `CREDENTIALS_REFRESH_BEFORE_EXPIRY_MS`; capped at half the keys' lifetime, so short-lived keys are not fetched on every request. */
  refreshBeforeExpiryMs?: number;
  /** Turns a failed fetch into the error callers see (`held` tells a first fetch from a refresh). */
  translateError?: (error: unknown, held: boolean) => unknown;
  /** Replaceable for tests. Default `Date.now`. */
  now?: () => number;
}

interface Held {
  credentials: S3Credentials;
  /** When to fetch again (ms since the epoch); Infinity for keys without expiration. */
  refreshAtMs: number;
  expiresAtMs: number;
}

/**
 * Holds a provider's current credentials and fetches new ones before they expire.
 *
 * @example
 * ```ts
 * import { CredentialCache } from "./_credentials.ts";
 * const cache = new CredentialCache(async () => ({ accessKeyId: "AK", secretAccessKey: "SK" }));
 * console.log((await cache.current()).accessKeyId); // AK
 * ```
 */
export class CredentialCache {
  readonly #provider: CredentialsProvider;
  readonly #refreshBeforeExpiryMs: number;
  readonly #translateError: (error: unknown, held: boolean) => unknown;
  readonly #now: () => number;
  #held: Held | undefined;
  #fetching: Promise<S3Credentials> | undefined;
  #retryAtMs = 0;
  /** How many times the provider was asked (for status and tests). */
  fetches = 0;

  constructor(provider: CredentialsProvider, options: CredentialCacheOptions = {}) {
    if (typeof provider !== "function") throw new TypeError("CredentialCache needs a provider function");
    this.#provider = provider;
    this.#refreshBeforeExpiryMs = options.refreshBeforeExpiryMs ?? CREDENTIALS_REFRESH_BEFORE_EXPIRY_MS;
    if (!(this.#refreshBeforeExpiryMs >= 0)) throw new RangeError("refreshBeforeExpiryMs must be 0 or more");
    this.#translateError = options.translateError ?? ((error) => error);
    this.#now = options.now ?? Date.now;
  }

  /** The keys to sign with now: the held ones, or fresh ones when they are due (one fetch for all callers). */
  async current(): Promise<S3Credentials> {
    const held = this.#held;
    const nowMs = this.#now();
    if (held && nowMs < held.refreshAtMs) return held.credentials;
    if (held && nowMs < held.expiresAtMs) {
      // Due but still valid: a refresh that fails keeps them, and is tried again a little later.
      if (nowMs < this.#retryAtMs) return held.credentials;
      try {
        return await this.#fetch();
      } catch {
        this.#retryAtMs = this.#now() + CREDENTIALS_REFRESH_RETRY_MS;
        return held.credentials;
      }
    }
    return await this.#fetch();
  }

  /**
   * The server refused `used` (expired, or a key it no longer knows): fresh keys, unless another
   * request has fetched them already since.
   */
  async refreshAfterRejection(used: S3Credentials): Promise<S3Credentials> {
    if (this.#held && this.#held.credentials !== used) return this.#held.credentials;
    return await this.#fetch();
  }

  #fetch(): Promise<S3Credentials> {
    this.#fetching ??= (async () => {
      this.fetches++;
      try {
        const credentials = checked(await this.#provider({ forceRefresh: this.#held !== undefined }));
        const fetchedAtMs = this.#now();
        const expiresAtMs = credentials.expiration?.getTime() ?? Infinity;
        const lifetimeMs = expiresAtMs - fetchedAtMs;
        this.#held = { credentials, expiresAtMs,
          refreshAtMs: expiresAtMs - Math.min(this.#refreshBeforeExpiryMs, Math.max(0, lifetimeMs) / 2) };
        return credentials;
      } catch (error) {
        throw this.#translateError(error, this.#held !== undefined);
      } finally {
        this.#fetching = undefined;
      }
    })();
    return this.#fetching;
  }
}

/** A provider's answer, checked: both keys non-empty strings, an expiration a valid Date if present. */
function checked(credentials: S3Credentials): S3Credentials {
  if (!credentials || typeof credentials.accessKeyId !== "string" || !credentials.accessKeyId ||
    typeof credentials.secretAccessKey !== "string" || !credentials.secretAccessKey) {
    throw new TypeError("The credentials provider returned no accessKeyId or secretAccessKey");
  }
  if (credentials.expiration !== undefined &&
    !(credentials.expiration instanceof Date && Number.isFinite(credentials.expiration.getTime()))) {
    throw new TypeError("The credentials provider returned an expiration that is not a valid Date");
  }
  return credentials;
}
