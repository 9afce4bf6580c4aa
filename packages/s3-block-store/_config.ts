/**
 * @module
 * Store selection: the seed's environment variables, explicit options, or a store URL
 * (`s3://bucket/prefix`, `file:///abs/dir`). Missing or malformed settings produce one message
 * that lists everything wrong at once.
 */
import { StoreConfigError } from "./_errors.ts";
import { FsBlockStore } from "./_fs_store.ts";
import { S3BlockStore, type S3BlockStoreOptions } from "./_s3_store.ts";
import type { BlockStore } from "./_types.ts";

/** The environment variables haduck reads, by name. */
export const S3_ENV = {
  bucket: "HADUCK_S3_BUCKET",
  endpoint: "HADUCK_S3_ENDPOINT",
  accessKey: "HADUCK_S3_ACCESS_KEY",
  secretKey: "HADUCK_S3_SECRET_KEY",
  prefix: "HADUCK_S3_PREFIX",
  region: "HADUCK_S3_REGION",
} as const;

type Env = Record<string, string | undefined>;

/** Whether any S3 variable is set (then all required ones must be). */
export function hasS3Env(env: Env): boolean {
  return [S3_ENV.bucket, S3_ENV.endpoint, S3_ENV.accessKey, S3_ENV.secretKey].some((name) => !!env[name]);
}

/**
 * S3 options from the environment, overridden by `overrides`. Throws `StoreConfigError` listing
 * every missing or malformed setting.
 */
export function s3OptionsFromEnv(env: Env, overrides: Partial<S3BlockStoreOptions> = {}): S3BlockStoreOptions {
  const options = {
    bucket: overrides.bucket ?? env[S3_ENV.bucket],
    endpoint: overrides.endpoint ?? env[S3_ENV.endpoint],
    accessKey: overrides.accessKey ?? env[S3_ENV.accessKey],
    secretKey: overrides.secretKey ?? env[S3_ENV.secretKey],
    prefix: overrides.prefix ?? env[S3_ENV.prefix] ?? "haduck",
    region: overrides.region ?? env[S3_ENV.region] ?? "us-east-1",
  };
  const problems: string[] = [];
  // Each missing setting with where it may come from: the keys only from the environment (a flag
  // would show them in the process list and the shell's history).
  const alternative = { bucket: " (or give --store s3://bucket/prefix)", endpoint: " (or give --endpoint URL)",
    accessKey: "", secretKey: "" };
  for (const field of ["bucket", "endpoint", "accessKey", "secretKey"] as const) {
    if (!options[field]) problems.push(`${S3_ENV[field]} is not set${alternative[field]}`);
  }
  if (options.endpoint && !/^https?:\/\/[^/\s]+\/?$/.test(options.endpoint)) {
    problems.push(`${S3_ENV.endpoint} must look like http(s)://host[:port], not ${JSON.stringify(options.endpoint)}`);
  }
  if (options.bucket && !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(options.bucket)) {
    problems.push(`${S3_ENV.bucket} ${JSON.stringify(options.bucket)} is not a valid bucket name ` +
      "(3-63 lowercase letters, digits, dots, hyphens)");
  }
  if (problems.length > 0) {
    throw new StoreConfigError(`Cannot configure the S3 store: ${problems.join("; ")}. Set the variables ` +
      `(the keys, ${S3_ENV.accessKey} and ${S3_ENV.secretKey}, are read from the environment only)`);
  }
  return { ...overrides, ...options } as S3BlockStoreOptions;
}

/**
 * Opens a store from a URL: `file:///abs/dir` or `s3://bucket/prefix` (endpoint and keys from
 * `overrides` or the environment).
 *
 * @example
 * ```ts
 * import { openStore } from "@haduck/s3-block-store";
 * const store = openStore("file:///tmp/haduck-store");
 * console.log(store.url);
 * ```
 */
export function openStore(url: string, env: Env = {}, overrides: Partial<S3BlockStoreOptions> = {}): BlockStore {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new StoreConfigError(`Invalid store URL ${JSON.stringify(url)}: use s3://bucket/prefix or file:///abs/dir`);
  }
  if (parsed.protocol === "file:") {
    if (parsed.host !== "" || parsed.pathname === "/" || parsed.pathname === "") {
      throw new StoreConfigError(`Invalid store URL ${JSON.stringify(url)}: use file:///absolute/dir`);
    }
    return new FsBlockStore(decodeURIComponent(parsed.pathname).replace(/\/+$/, ""));
  }
  if (parsed.protocol === "s3:") {
    const prefix = decodeURIComponent(parsed.pathname).replace(/^\/+|\/+$/g, "");
    return new S3BlockStore(s3OptionsFromEnv(env, { ...overrides, bucket: parsed.host, prefix }));
  }
  throw new StoreConfigError(`Invalid store URL ${JSON.stringify(url)}: use s3://bucket/prefix or file:///abs/dir`);
}
