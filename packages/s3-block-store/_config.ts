/**
 * @module
 * Store selection: haduck's environment variables (`HADUCK_S3_*`, which win), AWS's (`AWS_REGION`,
 * `AWS_ENDPOINT_URL(_S3)`, and the AWS credential chain when no keys are given), explicit options,
 * or a store URL (`s3://bucket/prefix`, `file:///abs/dir`). Missing or malformed settings produce
 * one message that lists everything wrong at once.
 */
import { awsCredentialChain, chainError } from "./_aws_chain.ts";
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

/**
 * The AWS variables read when the matching `HADUCK_S3_*` one is not set: the region (first set
 * wins), the endpoint (the S3-specific one first), and the profile of the credential chain. The
 * chain itself (`_aws_chain.ts`) reads the rest of AWS's variables from the process environment.
 */
export const AWS_ENV = {
  region: ["AWS_REGION", "AWS_DEFAULT_REGION"],
  endpoint: ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"],
  profile: "AWS_PROFILE",
} as const;

type Env = Record<string, string | undefined>;

/** The process's environment where the runtime has one (Node, Bun, Deno's `process`), else none. */
function processEnv(): Env {
  return (globalThis as { process?: { env?: Env } }).process?.env ?? {};
}

/** Whether any S3 variable is set (then all required ones must be). */
export function hasS3Env(env: Env): boolean {
  return [S3_ENV.bucket, S3_ENV.endpoint, S3_ENV.accessKey, S3_ENV.secretKey].some((name) => !!env[name]);
}

/** The first of `names` set to a non-empty value, with its name. */
function firstSet(env: Env, names: readonly string[]): { name: string; value: string } | undefined {
  const name = names.find((candidate) => !!env[candidate]);
  return name === undefined ? undefined : { name, value: env[name]! };
}

/**
 * S3 options from the environment, overridden by `overrides`. The bucket is required; the endpoint
 * is `HADUCK_S3_ENDPOINT`, else `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`, else AWS S3's for the
 * region (`HADUCK_S3_REGION`, `AWS_REGION`, `AWS_DEFAULT_REGION`, default us-east-1). The keys are
 * `HADUCK_S3_ACCESS_KEY` and `HADUCK_S3_SECRET_KEY` when set (then nothing else is consulted, and no
 * network is touched for credentials), else the AWS credential chain's. Throws `StoreConfigError`
 * listing every missing or malformed setting.
 */
export function s3OptionsFromEnv(env: Env, overrides: Partial<S3BlockStoreOptions> = {}): S3BlockStoreOptions {
  const endpoint = overrides.endpoint ? { name: "--endpoint", value: overrides.endpoint }
    : firstSet(env, [S3_ENV.endpoint, ...AWS_ENV.endpoint]);
  const options = {
    bucket: overrides.bucket ?? env[S3_ENV.bucket],
    endpoint: endpoint?.value,
    accessKey: overrides.accessKey ?? (env[S3_ENV.accessKey] || undefined),
    secretKey: overrides.secretKey ?? (env[S3_ENV.secretKey] || undefined),
    prefix: overrides.prefix ?? env[S3_ENV.prefix] ?? "haduck",
    region: overrides.region || firstSet(env, [S3_ENV.region, ...AWS_ENV.region])?.value || "us-east-1",
  };
  const problems: string[] = [];
  if (!options.bucket) problems.push(`${S3_ENV.bucket} is not set (or give --store s3://bucket/prefix)`);
  if (!options.accessKey !== !options.secretKey) {
    const [set, unset] = options.accessKey ? [S3_ENV.accessKey, S3_ENV.secretKey] : [S3_ENV.secretKey, S3_ENV.accessKey];
    problems.push(`${unset} is not set (${set} is: set both, or neither to use the AWS credential chain)`);
  }
  if (endpoint && !/^https?:\/\/[^/\s]+\/?$/.test(endpoint.value)) {
    problems.push(`${endpoint.name} must look like http(s)://host[:port], not ${JSON.stringify(endpoint.value)}`);
  }
  if (options.bucket && !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(options.bucket)) {
    problems.push(`${S3_ENV.bucket} ${JSON.stringify(options.bucket)} is not a valid bucket name ` +
      "(3-63 lowercase letters, digits, dots, hyphens)");
  }
  if (problems.length > 0) {
    throw new StoreConfigError(`Cannot configure the S3 store: ${problems.join("; ")}. Set the variables ` +
      `(the keys, ${S3_ENV.accessKey} and ${S3_ENV.secretKey}, are read from the environment only)`);
  }
  const result: S3BlockStoreOptions = { ...overrides, ...options, bucket: options.bucket! };
  if (!options.accessKey && !overrides.credentials) {
    const where = `s3://${options.bucket}${options.prefix ? `/${options.prefix.replace(/^\/+|\/+$/g, "")}` : ""}`;
    // With neither keys nor an endpoint, a user of some other S3 server most likely forgot both.
    const hint = endpoint ? "" : `; ${S3_ENV.endpoint} is not set either (nor AWS_ENDPOINT_URL_S3 or ` +
      `AWS_ENDPOINT_URL), so the endpoint is AWS S3 in ${options.region}: set it for any other S3 server`;
    const chain = awsCredentialChain({ profile: env[AWS_ENV.profile] || undefined });
    result.credentials = async (fetchOptions) => {
      try {
        return await chain(fetchOptions);
      } catch (error) {
        throw chainError(error, fetchOptions?.forceRefresh === true, where, hint);
      }
    };
    result.credentialsDescription = "the keys the AWS credential chain found (AWS_* variables, ~/.aws, container " +
      "or instance metadata)";
    delete result.accessKey;
    delete result.secretKey;
  }
  return result;
}

/**
 * Opens a store from a URL: `file:///abs/dir` or `s3://bucket/prefix` (endpoint, region and keys
 * from `overrides` or `env`, default the process's environment, as `s3OptionsFromEnv` reads them). An
 * `s3://` URL may name its own endpoint and region in its query,
 * `s3://bucket/prefix?endpoint=https://host:port&region=eu-west-1`, which win over both: a second
 * store (`--replica-store`) can live with another provider than the first.
 *
 * @example
 * ```ts
 * import { openStore } from "@haduck/s3-block-store";
 * const store = openStore("file:///tmp/haduck-store");
 * console.log(store.url);
 * ```
 */
export function openStore(url: string, env: Env = processEnv(), overrides: Partial<S3BlockStoreOptions> = {}):
  BlockStore {
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
    const fromQuery: Partial<S3BlockStoreOptions> = {};
    for (const [name, value] of parsed.searchParams) {
      if (name === "endpoint" || name === "region") fromQuery[name] = value;
      else {
        throw new StoreConfigError(`Invalid store URL ${JSON.stringify(url)}: unknown setting ${JSON.stringify(name)}; ` +
          "an s3:// URL takes only ?endpoint=http(s)://host[:port] and &region=NAME");
      }
    }
    return new S3BlockStore(s3OptionsFromEnv(env, { ...overrides, ...fromQuery, bucket: parsed.host, prefix }));
  }
  throw new StoreConfigError(`Invalid store URL ${JSON.stringify(url)}: use s3://bucket/prefix or file:///abs/dir`);
}
