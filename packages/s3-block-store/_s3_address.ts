/**
 * @module
 * Where a request goes: the endpoint (given, or AWS S3's for the region) and the addressing style.
 * A given endpoint (radosgw, MinIO, a proxy) is addressed path-style, `endpoint/bucket/key`, which
 * every S3-compatible server takes without DNS for each bucket. AWS S3's own endpoint is addressed
 * virtual-hosted, `bucket.s3.region.amazonaws.com/key`, which AWS recommends and which new regions
 * require; a bucket whose name has dots stays path-style there, because `a.b.s3...` does not match
 * AWS's wildcard TLS certificate (the AWS SDKs make the same exception).
 */

export interface S3Address {
  /** The origin requests are made against, as configured (`https://s3.eu-west-1.amazonaws.com`). */
  endpoint: URL;
  /** True: the bucket is in the host name; false: in the path. */
  virtualHosted: boolean;
}

/** AWS S3's endpoint for a region (the `cn-` regions live under amazonaws.com.cn). */
export function awsEndpoint(region: string): string {
  return `https://s3.${region}.amazonaws.com${region.startsWith("cn-") ? ".cn" : ""}`;
}

/** A bucket name that can be a DNS label under the endpoint's host, TLS included: no dots. */
function hostSafe(bucket: string): boolean {
  return /^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/.test(bucket);
}

/**
 * The address of a bucket: `endpoint` if given (path-style unless `forcePathStyle` is false), else
 * AWS's for `region` (virtual-hosted unless `forcePathStyle` is true or the name has dots).
 * Throws TypeError for an endpoint that is not `http(s)://host[:port]`.
 *
 * @example
 * ```ts
 * import { resolveAddress, requestUrl } from "./_s3_address.ts";
 * const address = resolveAddress({ bucket: "backups", region: "eu-west-1" });
 * console.log(requestUrl(address, "backups", "haduck/k").href); // https://backups.s3.eu-west-1.amazonaws.com/haduck/k
 * ```
 */
export function resolveAddress(options: { bucket: string; region: string; endpoint?: string; forcePathStyle?: boolean }):
  S3Address {
  const given = options.endpoint !== undefined && options.endpoint !== "";
  const text = given ? options.endpoint! : awsEndpoint(options.region);
  let endpoint: URL;
  try {
    endpoint = new URL(text);
  } catch {
    throw new TypeError(`Invalid S3 endpoint ${JSON.stringify(text)}: expected http(s)://host[:port]`);
  }
  if (endpoint.protocol !== "http:" && endpoint.protocol !== "https:") {
    throw new TypeError(`Invalid S3 endpoint ${JSON.stringify(text)}: expected http(s)://host[:port]`);
  }
  const pathStyle = options.forcePathStyle ?? given;
  return { endpoint: new URL(endpoint.origin), virtualHosted: !pathStyle && hostSafe(options.bucket) };
}

/** The URL of `fullKey` in `bucket` (the bucket itself when `fullKey` is undefined). */
export function requestUrl(address: S3Address, bucket: string, fullKey?: string): URL {
  const path = fullKey === undefined ? "" : fullKey.split("/").map(encodeURIComponent).join("/");
  if (!address.virtualHosted) return new URL(`/${bucket}${fullKey === undefined ? "" : `/${path}`}`, address.endpoint);
  const url = new URL(`/${path}`, address.endpoint);
  url.hostname = `${bucket}.${address.endpoint.hostname}`;
  return url;
}
