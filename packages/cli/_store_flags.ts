/**
 * @module
 * The store flags every command shares: `--store`, `--endpoint`, `--db-key`. The store is `--store`,
 * else the URL in `HADUCK_STORE` (as the extension's sidecar reads it), else the `HADUCK_S3_*`
 * variables; without any the command runs local-only (attach) or refuses. Every store is opened
 * through `sealedStoreFromEnv`: with `HADUCK_ENCRYPTION_KEY` (or `_FILE`) set, what haduck writes is
 * encrypted, and without it an encrypted object is refused by the key id it needs.
 */
import {
  type BlockStore,
  hasS3Env,
  openStore,
  S3_ENV,
  S3BlockStore,
  type S3BlockStoreOptions,
  s3OptionsFromEnv,
  type SealedStore,
  sealedStoreFromEnv,
} from "@haduck/s3-block-store";

/** The variable that holds a store URL (`file:///abs/dir`, `s3://bucket/prefix`) when --store is not given. */
export const STORE_ENV = "HADUCK_STORE";

export const STORE_OPTIONS = {
  store: { type: "string" },
  endpoint: { type: "string" },
  "db-key": { type: "string" },
} as const;

export function storeFromFlags(values: { store?: string; endpoint?: string }, env: Record<string, string | undefined>,
  extra: Partial<S3BlockStoreOptions> = {}): SealedStore | undefined {
  const overrides = values.endpoint ? { ...extra, endpoint: values.endpoint } : extra;
  // An empty variable counts as unset, as in the extension (`HADUCK_STORE= haduck ...` turns it off).
  const url = values.store || env[STORE_ENV] || undefined;
  let store: BlockStore | undefined;
  if (url) store = openStore(url, env, overrides);
  else if (hasS3Env(env)) store = new S3BlockStore(s3OptionsFromEnv(env, overrides));
  return store && sealedStoreFromEnv(store, env);
}

export const NO_STORE_HINT = `no store: pass --store file:///abs/dir or --store s3://bucket/prefix, or set ` +
  `${STORE_ENV} to such a URL, or set ${S3_ENV.bucket}, ${S3_ENV.endpoint}, ${S3_ENV.accessKey} and ${S3_ENV.secretKey}`;
