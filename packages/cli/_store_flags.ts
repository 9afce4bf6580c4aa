/**
 * @module
 * The store flags every command shares: `--store`, `--endpoint`, `--db-key`. The store is `--store`,
 * else the URL in `HADUCK_STORE` (as the extension's sidecar reads it), else the `HADUCK_S3_*`
 * variables; without any, `attach` uses `./haduck-store` in the working directory (said where, once),
 * `serve` runs local-only, and the other commands refuse.
 */
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import {
  type BlockStore,
  hasS3Env,
  openStore,
  S3_ENV,
  S3BlockStore,
  type S3BlockStoreOptions,
  s3OptionsFromEnv,
} from "@haduck/s3-block-store";

/** The variable that holds a store URL (`file:///abs/dir`, `s3://bucket/prefix`) when --store is not given. */
export const STORE_ENV = "HADUCK_STORE";

export const STORE_OPTIONS = {
  store: { type: "string" },
  endpoint: { type: "string" },
  "db-key": { type: "string" },
} as const;

export function storeFromFlags(values: { store?: string; endpoint?: string }, env: Record<string, string | undefined>,
  extra: Partial<S3BlockStoreOptions> = {}): BlockStore | undefined {
  const overrides = values.endpoint ? { ...extra, endpoint: values.endpoint } : extra;
  // An empty variable counts as unset, as in the extension (`HADUCK_STORE= haduck ...` turns it off).
  const url = values.store || env[STORE_ENV] || undefined;
  if (url) return openStore(url, env, overrides);
  if (hasS3Env(env)) return new S3BlockStore(s3OptionsFromEnv(env, overrides));
  return undefined;
}

export const NO_STORE_HINT = `no store: pass --store file:///abs/dir or --store s3://bucket/prefix, or set ` +
  `${STORE_ENV} to such a URL, or set ${S3_ENV.bucket}, ${S3_ENV.endpoint}, ${S3_ENV.accessKey} and ${S3_ENV.secretKey}`;

/** The folder `attach` keeps its store in when none is configured, in the working directory (the README's default). */
export const DEFAULT_STORE_DIR = "haduck-store";

/**
 * `attach`'s store when none is configured: `file://$PWD/haduck-store`, else undefined. "None" means
 * no --store, no HADUCK_S3_* and HADUCK_STORE unset: set but empty (`HADUCK_STORE= haduck attach ...`)
 * asks for local-only, as it turns the extension's sidecar off.
 */
export function defaultAttachStore(values: { store?: string }, env: Record<string, string | undefined>,
  cwd: string): string | undefined {
  if (values.store || env[STORE_ENV] !== undefined || hasS3Env(env)) return undefined;
  return pathToFileURL(join(cwd, DEFAULT_STORE_DIR)).href;
}
