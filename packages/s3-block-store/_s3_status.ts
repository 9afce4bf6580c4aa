/**
 * @module
 * What an S3 error status means, as the typed error a caller sees: the translation at the
 * boundary, so a raw `Response` never leaves the store. Also which refusals mean "these keys are
 * stale", after which the store fetches a provider's keys again and sends the request once more.
 */
import {
  AccessDeniedError,
  BlockNotFoundError,
  InvalidResponseError,
  NoSuchBucketError,
  PreconditionFailedError,
  StoreConfigError,
  StoreError,
  StoreUnavailableError,
} from "./_errors.ts";
import { parseErrorBody } from "./_s3_xml.ts";

/** The store as error messages name it. */
export interface StatusContext {
  bucket: string;
  endpoint: string;
  /** `s3://bucket/prefix`. */
  url: string;
  region: string;
  /** The object (or the store) the request was about. */
  where: string;
  /** Where the keys came from, in words (an access-denied error says what to check). */
  credentials: string;
}

/** S3 error codes that mean the keys are stale: expired, or no longer known to the server. */
const STALE_KEY_CODES = new Set(["ExpiredToken", "InvalidToken", "TokenRefreshRequired", "InvalidAccessKeyId"]);

/** Whether a refusal says the keys are stale (a HEAD's 403 has no body to say which, so it may be). */
export function refusesKeys(status: number, text: string): boolean {
  return status === 403 && (text.length === 0 || STALE_KEY_CODES.has(parseErrorBody(text).code ?? ""));
}

/** Inside the store only: the server refused a provider's keys; `cause` is what to report if fresh ones fail too. */
export class RejectedCredentialsError extends Error {
  override readonly cause: StoreError;
  constructor(cause: StoreError) {
    super(cause.message);
    this.cause = cause;
  }
}

/**
 * The typed error of a non-2xx answer.
 *
 * @example
 * ```ts
 * import { statusError } from "./_s3_status.ts";
 * const error = statusError({ bucket: "b", endpoint: "http://127.0.0.1:9000", url: "s3://b/p", region: "us-east-1",
 *   where: "s3://b/p/k", credentials: "the keys" }, { operation: "get k", key: "k" }, new Response(null, { status: 404 }), "");
 * console.log(error.code); // NOT_FOUND
 * ```
 */
export function statusError(context: StatusContext, request: { operation: string; key?: string },
  response: Response, text: string): StoreError {
  const { status } = response;
  const { where } = context;
  const { code, message } = parseErrorBody(text);
  if (code === "NoSuchBucket") return new NoSuchBucketError(context.bucket, context.endpoint);
  // AWS answers a request signed for (or sent to) another region than the bucket's with its region.
  const bucketRegion = response.headers.get("x-amz-bucket-region") ?? /<Region>([^<]+)<\/Region>/.exec(text)?.[1];
  if (bucketRegion && bucketRegion !== context.region && (status === 301 || status === 400 || status === 403)) {
    return new StoreConfigError(`Cannot ${request.operation} at ${where}: the bucket is in region ${bucketRegion}, ` +
      `not ${context.region}; set AWS_REGION=${bucketRegion} (or HADUCK_S3_REGION)`);
  }
  if (status === 404) return new BlockNotFoundError(request.key ?? "(bucket)", context.url);
  if (status === 403) return new AccessDeniedError(request.operation, where, context.credentials);
  if (status === 412) {
    return new PreconditionFailedError(request.key ?? "", context.url, "the object exists or changed (412)");
  }
  if (status >= 500 || status === 429 || code === "BadDigest" || code === "XAmzContentSHA256Mismatch" ||
    code === "RequestTimeout") {
    return new StoreUnavailableError(`Cannot ${request.operation} at ${where}: S3 returned ${status}` +
      `${code ? ` ${code}` : ""}`, undefined);
  }
  const detail = code ? `${code}${message ? `: ${message}` : ""}` : "the answer is not an S3 error document";
  return new InvalidResponseError(`Cannot ${request.operation} at ${where}: S3 returned ${status} (${detail}); ` +
    "check HADUCK_S3_ENDPOINT points at an S3-compatible server");
}
