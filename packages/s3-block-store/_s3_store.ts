/**
 * @module
 * `S3BlockStore`: the `BlockStore` contract over any S3-compatible endpoint, signed with aws4fetch
 * (SigV4; path-style URLs on a given endpoint, virtual-hosted on AWS's own: see `_s3_address.ts`),
 * with fixed keys or a credentials provider's, fetched again before they expire. A PUT over a transport that does not protect its body (plain HTTP to
 * another host) carries a signed SHA-256 payload hash that the server recomputes and checks; over
 * HTTPS or loopback, where TLS or the kernel already does, it is sent unsigned and neither side
 * spends a hash pass on it (see `signPayload`). DeleteObjects carries the Content-MD5 S3 requires.
 * Every call goes through one retry policy and one bound on requests and bytes in flight. A raw
 * `Response` never leaves this file: statuses become typed errors here.
 */
import { AwsClient } from "aws4fetch";
import { BlockNotFoundError, ChecksumMismatchError, InvalidResponseError, PreconditionFailedError, StoreError,
  StoreTimeoutError, StoreUnavailableError, UnknownOutcomeError } from "./_errors.ts";
import { DEFAULT_RETRY_POLICY, type RetryPolicy, withRetry } from "./_retry.ts";
import { Limiter, type LimiterOptions } from "./_limiter.ts";
import { bytesEqual, md5Base64, sha256Hex } from "./_digest.ts";
import { deleteObjectsBody, parseDeleteErrors, parseListPage, unquoteEtag } from "./_s3_xml.ts";
import { refusesKeys, RejectedCredentialsError, statusError } from "./_s3_status.ts";
import { putMultipart } from "./_s3_multipart.ts";
import { CredentialCache, type CredentialsProvider, type S3Credentials } from "./_credentials.ts";
import { requestUrl, resolveAddress, type S3Address } from "./_s3_address.ts";
import { probeCapabilities } from "./_probe.ts";
import { ERROR_BODY_BYTES_MAX, LIST_EMPTY_PAGES_MAX, readBody, RESPONSE_BYTES_MAX } from "./_s3_body.ts";
import { assertValidKey } from "./_types.ts";
import type {
  BlockStore, GetOptions, ListOptions, ObjectInfo, PutOptions, PutResult, StoreCapabilities,
} from "./_types.ts";

export interface S3BlockStoreOptions extends LimiterOptions {
  bucket: string;
  /**
   * `http(s)://host[:port]`, addressed path-style. Default: AWS S3's endpoint for `region`
   * (`https://s3.<region>.amazonaws.com`), addressed virtual-hosted.
   */
  endpoint?: string;
  /** Path-style (`endpoint/bucket/key`) or virtual-hosted (`bucket.host/key`). Default: path-style on a given endpoint. */
  forcePathStyle?: boolean;
  /** Fixed keys: `accessKey` and `secretKey` (and `sessionToken` for temporary ones), or `credentials`. */
  accessKey?: string;
  secretKey?: string;
  sessionToken?: string;
  /**
   * Where keys come from when they change (the AWS credential chain, a vault): called for the first
   * request, again `credentialsRefreshBeforeExpiryMs` before the `expiration` it returned, and once
   * more when the server refuses a request as expired (ExpiredToken, InvalidAccessKeyId).
   */
  credentials?: CredentialsProvider;
  /** Default 5 minutes (capped at half the keys' lifetime). */
  credentialsRefreshBeforeExpiryMs?: number;
  /** Where `credentials` come from, in words, for error messages. Default "the credentials provider". */
  credentialsDescription?: string;
  /** Default `us-east-1`. */
  region?: string;
  /** Key prefix inside the bucket, without leading or trailing slash. Default `haduck`; `""` for none. */
  prefix?: string;
  /** Overrides of the retry policy (see `DEFAULT_RETRY_POLICY`). */
  retry?: Partial<RetryPolicy>;
  /** Objects larger than this go up in parts. Default 16 MiB; must be at least `multipartPartSizeBytes`. */
  multipartThresholdBytes?: number;
  /** Part size of multipart uploads. Default 8 MiB (S3 requires at least 5 MiB but for the last part). */
  multipartPartSizeBytes?: number;
  /** Keys per ListObjectsV2 page. Default 1000 (the S3 maximum). */
  listPageSize?: number;
  /**
   * The largest answer body the store reads (a whole-object GET, a listing page, an error body);
   * a larger one is refused with InvalidResponseError, never buffered. Ranged GETs are capped at
   * their range. Default 1 GiB.
   */
  responseBytesMax?: number;
  /**
   * Sign each PUT's SHA-256 payload hash, so the server refuses a body altered on the way. Default:
   * only over plain HTTP to a host other than loopback. Over HTTPS the TLS record MAC protects the
   * body already, and loopback bytes never leave the kernel; there the hash costs a pass over every
   * byte on both sides for no protection (AWS's SDKs make the same choice over HTTPS).
   */
  signPayload?: boolean;
  /** Replaceable for tests. Default `globalThis.fetch`. */
  fetch?: typeof fetch;
}

/** True when nothing between us and `endpoint` can alter a body unnoticed: HTTPS, or a loopback host. */
function transportProtectsBody(endpoint: URL): boolean {
  if (endpoint.protocol === "https:") return true;
  const host = endpoint.hostname.replace(/^\[|\]$/g, "");
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** What one request needs; `key` undefined addresses the bucket. */
export interface S3Request {
  method: string;
  key?: string;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  body?: Uint8Array;
  /** Hex SHA-256 of `body`, if known; computed otherwise. */
  bodySha256?: string;
  /** Also send Content-MD5 (S3 requires it for DeleteObjects; PUTs rely on the signed SHA-256). */
  contentMd5?: boolean;
  signal?: AbortSignal;
  operation: string;
  /** The most answer bytes expected (a ranged GET: its range, with room for an error body). */
  bodyBytesMax?: number;
}

export interface S3Answer {
  status: number;
  headers: Headers;
  body: Uint8Array;
}

/** The error a caller sees once the retry policy gives up: a timeout stays one, the rest is "unavailable". */
function giveUp(error: unknown, attempts: number): unknown {
  if (error instanceof StoreTimeoutError) return error;
  const reason = error instanceof Error ? error.message : String(error);
  return new StoreUnavailableError(`${reason} (gave up after ${attempts} attempts)`, error);
}

/**
 * A block store over S3.
 *
 * @example
 * ```ts
 * import { S3BlockStore } from "@haduck/s3-block-store";
 * const store = new S3BlockStore({
 *   bucket: "backups", endpoint: "http://127.0.0.1:9000", accessKey: "AK", secretKey: "SK", prefix: "haduck",
 * });
 * console.log(store.url); // s3://backups/haduck
 * ```
 */
export class S3BlockStore implements BlockStore {
  readonly bucket: string;
  readonly endpoint: string;
  readonly prefix: string;
  readonly retryPolicy: RetryPolicy;
  readonly limiter: Limiter;
  readonly multipartThresholdBytes: number;
  readonly multipartPartSizeBytes: number;
  readonly listPageSize: number;
  /** The largest answer body read (a whole GET or an error body); larger ones are refused, never buffered. */
  readonly responseBytesMax: number;
  /** Whether PUTs sign their payload hash (see `S3BlockStoreOptions.signPayload`). */
  readonly signPayload: boolean;
  /** Counters for status and metrics. */
  readonly stats = { requests: 0, retries: 0, bytesSent: 0, bytesReceived: 0 };
  readonly region: string;
  /** The provider's keys, kept fresh; undefined for fixed keys. */
  readonly credentialCache: CredentialCache | undefined;
  #fixed: S3Credentials | undefined;
  #credentialsDescription: string;
  #signer: { credentials: S3Credentials; client: AwsClient } | undefined;
  #address: S3Address;
  #fetch: typeof fetch;

  constructor(options: S3BlockStoreOptions) {
    if (typeof options.bucket !== "string" || options.bucket.length === 0) {
      throw new TypeError("S3BlockStore needs a non-empty bucket");
    }
    this.region = options.region || "us-east-1";
    this.#address = resolveAddress({ bucket: options.bucket, region: this.region, endpoint: options.endpoint,
      forcePathStyle: options.forcePathStyle });
    const fixed = options.accessKey !== undefined || options.secretKey !== undefined;
    if (fixed === (options.credentials !== undefined)) {
      throw new TypeError("S3BlockStore needs either accessKey and secretKey, or a credentials provider");
    }
    if (fixed) {
      for (const name of ["accessKey", "secretKey"] as const) {
        if (typeof options[name] !== "string" || options[name].length === 0) {
          throw new TypeError(`S3BlockStore needs a non-empty ${name}`);
        }
      }
      this.#fixed = { accessKeyId: options.accessKey!, secretAccessKey: options.secretKey!,
        sessionToken: options.sessionToken || undefined };
    } else {
      this.credentialCache = new CredentialCache(options.credentials!, {
        refreshBeforeExpiryMs: options.credentialsRefreshBeforeExpiryMs,
        translateError: (error) => error instanceof StoreError ? error : new StoreUnavailableError(
          `Cannot get the credentials of ${this.url}: ${error instanceof Error ? error.message : String(error)}`, error),
      });
    }
    this.#credentialsDescription = fixed ? "HADUCK_S3_ACCESS_KEY and HADUCK_S3_SECRET_KEY"
      : options.credentialsDescription ?? "the keys of the credentials provider";
    this.bucket = options.bucket;
    this.endpoint = this.#address.endpoint.origin;
    this.signPayload = options.signPayload ?? !transportProtectsBody(this.#address.endpoint);
    this.prefix = (options.prefix ?? "haduck").replace(/^\/+|\/+$/g, "");
    this.retryPolicy = { ...DEFAULT_RETRY_POLICY, ...options.retry };
    const onRetry = this.retryPolicy.onRetry;
    this.retryPolicy.onRetry = (info) => {
      this.stats.retries++;
      onRetry?.(info);
    };
    this.limiter = new Limiter(options);
    this.multipartPartSizeBytes = options.multipartPartSizeBytes ?? 8 * 1024 * 1024;
    this.multipartThresholdBytes = options.multipartThresholdBytes ?? 16 * 1024 * 1024;
    if (this.multipartThresholdBytes < this.multipartPartSizeBytes) {
      throw new RangeError("multipartThresholdBytes must be at least multipartPartSizeBytes");
    }
    this.listPageSize = options.listPageSize ?? 1000;
    this.responseBytesMax = options.responseBytesMax ?? RESPONSE_BYTES_MAX;
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  get url(): string {
    return `s3://${this.bucket}${this.prefix ? `/${this.prefix}` : ""}`;
  }

  toString(): string {
    return `S3BlockStore(${this.url} at ${this.endpoint})`;
  }

  toJSON(): Record<string, string> {
    return { url: this.url, endpoint: this.endpoint };
  }

  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return this.toString();
  }

  fullKey(key: string): string {
    return this.prefix ? `${this.prefix}/${key}` : key;
  }

  #where(key?: string): string {
    return key === undefined ? this.url : `${this.url}/${key}`;
  }

  /** The signer for `credentials`: one aws4fetch client per set of keys. */
  #signerFor(credentials: S3Credentials): AwsClient {
    if (this.#signer?.credentials !== credentials) {
      this.#signer = { credentials, client: new AwsClient({ accessKeyId: credentials.accessKeyId,
        secretAccessKey: credentials.secretAccessKey, sessionToken: credentials.sessionToken, service: "s3",
        region: this.region, retries: 0 /* one retry policy: ours */ }) };
    }
    return this.#signer.client;
  }

  /**
   * One attempt, signed with the current keys. A provider's keys that the server refuses as expired
   * or unknown are fetched again and the request is sent once more with them.
   */
  async #once(request: S3Request): Promise<S3Answer> {
    const cache = this.credentialCache;
    let credentials = this.#fixed ?? await cache!.current();
    try {
      return await this.#signedOnce(request, credentials);
    } catch (error) {
      if (!cache || !(error instanceof RejectedCredentialsError)) throw error;
      credentials = await cache.refreshAfterRejection(credentials);
    }
    try {
      return await this.#signedOnce(request, credentials);
    } catch (error) {
      if (error instanceof RejectedCredentialsError) throw error.cause;
      throw error;
    }
  }

  /** One request signed with `credentials`: maps statuses to typed errors (retryable ones marked so). */
  async #signedOnce(request: S3Request, credentials: S3Credentials): Promise<S3Answer> {
    const url = requestUrl(this.#address, this.bucket, request.key === undefined ? undefined : this.fullKey(request.key));
    for (const [name, value] of Object.entries(request.query ?? {})) url.searchParams.set(name, value);
    const headers: Record<string, string> = { ...request.headers };
    const body = request.body ?? new Uint8Array(0);
    // A signed payload hash is checked by the server, which refuses a mismatch (see `signPayload`).
    headers["x-amz-content-sha256"] = request.body && !this.signPayload
      ? "UNSIGNED-PAYLOAD"
      : request.bodySha256 ?? sha256Hex(body);
    if (request.body && request.contentMd5) headers["content-md5"] = md5Base64(request.body);
    const timeoutMs = this.retryPolicy.attemptTimeoutMs;
    const signals = [request.signal, timeoutMs > 0 ? AbortSignal.timeout(timeoutMs) : undefined].filter(
      (signal): signal is AbortSignal => signal !== undefined,
    );
    const signal = signals.length > 0 ? AbortSignal.any(signals) : undefined;
    this.stats.requests++;
    let response: Response;
    let bytes: Uint8Array;
    try {
      // Signed without the body (its hash is in the headers already), which goes straight to fetch:
      // a Request built around it would hold a copy of it until the collector runs.
      const signed = await this.#signerFor(credentials).sign(url.toString(), { method: request.method, headers });
      response = await this.#fetch(signed.url, { method: signed.method, headers: signed.headers,
        body: request.body as BodyInit | undefined, signal });
      bytes = await readBody(response, request.bodyBytesMax ?? this.responseBytesMax);
    } catch (error) {
      if (error instanceof InvalidResponseError) throw error;
      if (request.signal?.aborted) throw request.signal.reason;
      if (signal?.aborted) throw new StoreTimeoutError(request.operation, this.#where(request.key), timeoutMs, error);
      throw new StoreUnavailableError(`Cannot ${request.operation} at ${this.#where(request.key)}: ` +
        `network error (${error instanceof Error ? error.message : String(error)})`, error);
    }
    this.stats.bytesSent += body.byteLength;
    this.stats.bytesReceived += bytes.byteLength;
    const declared = response.headers.get("content-length");
    if (declared !== null && request.method !== "HEAD" && Number(declared) !== bytes.byteLength) {
      throw new InvalidResponseError(`Cannot ${request.operation} at ${this.#where(request.key)}: body truncated ` +
        `(${bytes.byteLength} of ${declared} bytes)`, { retryable: true });
    }
    if (response.status >= 200 && response.status < 300) {
      return { status: response.status, headers: response.headers, body: bytes };
    }
    const text = new TextDecoder().decode(bytes);
    const error = statusError({ bucket: this.bucket, endpoint: this.endpoint, url: this.url, region: this.region,
      where: this.#where(request.key), credentials: this.#credentialsDescription }, request, response, text);
    if (this.credentialCache && refusesKeys(response.status, text)) throw new RejectedCredentialsError(error);
    throw error;
  }

  /** A request under the retry policy and the in-flight bounds. */
  request(request: S3Request): Promise<S3Answer> {
    const bytes = request.body?.byteLength ?? 0;
    return this.limiter.run(bytes, () =>
      withRetry(this.retryPolicy, () => this.#once(request), giveUp, request.signal));
  }

  async put(key: string, body: Uint8Array, options: PutOptions = {}): Promise<PutResult> {
    assertValidKey(key);
    if (!(body instanceof Uint8Array)) throw new TypeError("put() needs the body as a Uint8Array");
    const conditional = options.ifNoneMatch !== undefined || options.ifMatch !== undefined;
    if (body.byteLength > this.multipartThresholdBytes) {
      if (conditional) {
        throw new RangeError(`Conditional put of ${key} is ${body.byteLength} bytes, above the multipart threshold ` +
          `(${this.multipartThresholdBytes}); conditional writes must fit in one request`);
      }
      return { etag: await putMultipart(this, key, body, options.signal) };
    }
    const headers: Record<string, string> = {};
    if (options.ifNoneMatch) headers["if-none-match"] = "*";
    // radosgw honours If-Match only with the ETag unquoted (a quoted one always fails with 412).
    if (options.ifMatch !== undefined) headers["if-match"] = unquoteEtag(options.ifMatch);
    const request: S3Request = { method: "PUT", key, headers, body, bodySha256: options.sha256, signal: options.signal,
      operation: `put ${key}` };
    if (!conditional) return { etag: unquoteEtag((await this.request(request)).headers.get("etag")) };
    return await this.#putConditional(request, body, options);
  }

  /**
   * A conditional PUT is not idempotent: a retry after a lost answer could report 412 for our own
   * write. So a 5xx or network failure is "outcome unknown": read the object back and decide. A 412
   * is read back too, because the runtime's HTTP client may itself resend a request whose
   * connection dropped (Bun's fetch does, on a reused connection): when the stored bytes are
   * exactly ours, the write happened, and a conditional put of identical bytes is a success.
   */
  async #putConditional(request: S3Request, body: Uint8Array, options: PutOptions): Promise<PutResult> {
    const key = request.key!;
    let lastError: unknown;
    for (let attempt = 1; attempt <= this.retryPolicy.attemptsMax; attempt++) {
      let lost: PreconditionFailedError | undefined;
      try {
        const answer = await this.limiter.run(body.byteLength, () => this.#once(request));
        return { etag: unquoteEtag(answer.headers.get("etag")) };
      } catch (error) {
        if (error instanceof PreconditionFailedError) lost = error;
        else if (!(error instanceof StoreError) || !error.retryable) throw error;
        lastError = error;
      }
      let current: Uint8Array | undefined;
      let info: ObjectInfo | undefined;
      try {
        info = await this.head(key, { signal: options.signal });
        current = info ? await this.get(key, { signal: options.signal }) : undefined;
      } catch (error) {
        if (error instanceof BlockNotFoundError) current = undefined;
        else throw new UnknownOutcomeError(key, this.url, error);
      }
      if (current && bytesEqual(current, body)) return { etag: info!.etag };
      if (lost) throw lost;
      if (options.ifNoneMatch && current) {
        throw new PreconditionFailedError(key, this.url, "another writer created it first");
      }
      if (options.ifMatch !== undefined && (!info || info.etag !== unquoteEtag(options.ifMatch))) {
        throw new PreconditionFailedError(key, this.url, "it changed or disappeared since the ETag was read");
      }
      this.stats.retries++;
    }
    throw new UnknownOutcomeError(key, this.url, lastError);
  }

  async get(key: string, options: GetOptions = {}): Promise<Uint8Array> {
    assertValidKey(key);
    const headers: Record<string, string> = {};
    const range = options.range;
    if (range) {
      if (!(range.offsetBytes >= 0) || !(range.lengthBytes >= 1)) {
        throw new RangeError(`Invalid range for ${key}: offset >= 0 and length >= 1 are required`);
      }
      headers.range = `bytes=${range.offsetBytes}-${range.offsetBytes + range.lengthBytes - 1}`;
    }
    const attempt = async () => {
      const answer = await this.#once({ method: "GET", key, headers, signal: options.signal, operation: `get ${key}`,
        bodyBytesMax: range ? Math.max(range.lengthBytes, ERROR_BODY_BYTES_MAX) : undefined });
      if (range && answer.body.byteLength !== range.lengthBytes) {
        throw new InvalidResponseError(`Cannot get ${key} at ${this.url}: asked for ${range.lengthBytes} bytes, ` +
          `got ${answer.body.byteLength}`, { retryable: true });
      }
      return answer.body;
    };
    const body = await this.limiter.run(range?.lengthBytes ?? 0, () =>
      withRetry(this.retryPolicy, attempt, giveUp, options.signal));
    if (options.sha256 !== undefined) {
      const actual = sha256Hex(body);
      if (actual !== options.sha256) {
        throw new ChecksumMismatchError(key, `expected sha256 ${options.sha256}, read ${actual}`);
      }
    }
    return body;
  }

  async head(key: string, options: { signal?: AbortSignal } = {}): Promise<ObjectInfo | undefined> {
    assertValidKey(key);
    try {
      const answer = await this.request({ method: "HEAD", key, signal: options.signal, operation: `head ${key}` });
      const modified = answer.headers.get("last-modified");
      return {
        key,
        sizeBytes: Number(answer.headers.get("content-length") ?? "0"),
        etag: unquoteEtag(answer.headers.get("etag")),
        lastModified: modified ? new Date(modified) : undefined,
      };
    } catch (error) {
      if (error instanceof BlockNotFoundError) return undefined;
      throw error;
    }
  }

  async *list(prefix: string, options: ListOptions = {}): AsyncIterable<ObjectInfo> {
    const strip = this.prefix ? `${this.prefix}/` : "";
    let token: string | undefined;
    // A server that repeats a token, or pages on without listing anything, would keep us here forever.
    const tokens = new Set<string>();
    let emptyPages = 0;
    do {
      const query: Record<string, string> = { "list-type": "2", prefix: strip + prefix, "encoding-type": "url",
        "max-keys": String(this.listPageSize) };
      if (token) query["continuation-token"] = token;
      else if (options.startAfter) query["start-after"] = strip + options.startAfter;
      const answer = await this.request({ method: "GET", query, signal: options.signal, operation: `list ${prefix}` });
      const page = parseListPage(new TextDecoder().decode(answer.body), strip);
      if (!page) {
        throw new InvalidResponseError(`Cannot list ${prefix} at ${this.url}: the answer is not a ListObjectsV2 ` +
          "result; check HADUCK_S3_ENDPOINT points at an S3-compatible server");
      }
      yield* page.objects;
      token = page.nextContinuationToken;
      emptyPages = page.objects.length === 0 ? emptyPages + 1 : 0;
      if (token !== undefined && (tokens.has(token) || emptyPages > LIST_EMPTY_PAGES_MAX)) {
        throw new InvalidResponseError(`Cannot list ${prefix} at ${this.url}: the server ` + (tokens.has(token)
          ? "repeated a continuation token" : `sent ${emptyPages} empty pages in a row`) + " (a listing that never ends)");
      }
      if (token !== undefined) tokens.add(token);
    } while (token);
  }

  async delete(key: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    assertValidKey(key);
    try {
      await this.request({ method: "DELETE", key, signal: options.signal, operation: `delete ${key}` });
    } catch (error) {
      if (!(error instanceof BlockNotFoundError)) throw error;
    }
  }

  async deleteMany(keys: string[], options: { signal?: AbortSignal } = {}): Promise<void> {
    keys.forEach(assertValidKey);
    for (let start = 0; start < keys.length; start += 1000) {
      const batch = keys.slice(start, start + 1000).map((key) => this.fullKey(key));
      const body = new TextEncoder().encode(deleteObjectsBody(batch));
      const answer = await this.request({
        method: "POST",
        query: { delete: "" },
        headers: { "content-type": "application/xml" },
        body,
        contentMd5: true,
        signal: options.signal,
        operation: `delete ${batch.length} objects`,
      });
      const failed = parseDeleteErrors(new TextDecoder().decode(answer.body)).filter((e) => e.code !== "NoSuchKey");
      if (failed.length > 0) {
        throw new StoreUnavailableError(`Cannot delete ${failed.length} objects at ${this.url}: ` +
          failed.slice(0, 3).map((e) => `${e.key} (${e.code})`).join(", "));
      }
    }
  }

  probeCapabilities(): Promise<StoreCapabilities> {
    return probeCapabilities(this);
  }
}
