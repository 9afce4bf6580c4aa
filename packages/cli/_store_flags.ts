/**
 * @module
 * The store flags every command shares: `--store`, `--endpoint`, `--db-key`. The store is `--store`,
 * else the URL in `HADUCK_STORE` (as the extension's sidecar reads it), else the `HADUCK_S3_*`
 * variables; an s3:// store takes what HADUCK_S3_* leave unset from AWS's variables and credential
 * chain (`s3OptionsFromEnv`). Without any store, `attach` uses `./haduck-store` in the working
 * directory (said where, once), `serve` runs local-only, and the other commands refuse. And the
 * replica stores of `attach`, `serve`, `gc` and the sidecar: `--replica-store URL` (repeatable), else
 * the URLs in `HADUCK_REPLICA_STORES` (separated by commas or spaces). Every store, replicas too, is
 * opened through `sealedStoreFromEnv`: with `HADUCK_ENCRYPTION_KEY` (or `_FILE`) set, what haduck
 * writes is encrypted, and without it an encrypted object is refused by the key id it needs.
 */
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { MirroredStore } from "@haduck/duckblock";
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
  `${STORE_ENV} to such a URL, or set ${S3_ENV.bucket}, ${S3_ENV.endpoint}, ${S3_ENV.accessKey} and ${S3_ENV.secretKey} ` +
  "(an s3:// store also takes AWS_ENDPOINT_URL_S3, AWS_REGION and the AWS credential chain)";

/** The variable that holds the replica stores' URLs (commas or spaces between them) when --replica-store is not given. */
export const REPLICA_STORES_ENV = "HADUCK_REPLICA_STORES";

/** `--replica-store URL`, repeatable: for the commands that write (attach, serve) and gc. */
export const REPLICA_STORE_OPTIONS = { "replica-store": { type: "string", multiple: true } } as const;

/**
 * A replica's own requests give up sooner than the primary's: the mirror retries a failed copy
 * itself, forever, and a stalled replica should show as failing within seconds, not minutes.
 */
const REPLICA_RETRY = { retry: { attemptsMax: 3, attemptTimeoutMs: 10_000 } };

/** The replica stores from `--replica-store` (all of them), else from `HADUCK_REPLICA_STORES`; none: []. */
export function replicaStoresFromFlags(values: { "replica-store"?: string[] }, env: Record<string, string | undefined>):
  BlockStore[] {
  const given = values["replica-store"] ?? [];
  const fromEnv = given.length === 0;
  const urls = fromEnv ? (env[REPLICA_STORES_ENV] ?? "").split(/[\s,]+/).filter(Boolean) : given;
  return urls.map((url) => {
    if (url.trim() === "") {
      throw new TypeError("--replica-store needs a URL: file:///abs/dir or s3://bucket/prefix[?endpoint=https://host]");
    }
    try {
      // Sealed as the primary is: the mirror copies what it reads through the primary's seal, and a
      // replica must hold nothing the store's key did not seal (a fresh salt per copy, the same key).
      return sealedStoreFromEnv(openStore(url, env, REPLICA_RETRY), env);
    } catch (error) {
      throw new TypeError(`${fromEnv ? REPLICA_STORES_ENV : "--replica-store"}: ${(error as Error).message}`, { cause: error });
    }
  });
}

/**
 * The store a writer of `dbKey` uses: `store` itself, or, with replica stores, a `MirroredStore`
 * over it that copies each object it accepts to each replica. Refuses replicas without a store.
 */
export function mirroredStore(store: BlockStore | undefined, replicas: BlockStore[], dbKey: string,
  log: (message: string) => void): BlockStore | undefined {
  if (replicas.length === 0) return store;
  if (!store) {
    throw new TypeError(`a replica store copies the primary store: give --store (or ${STORE_ENV}) with --replica-store ` +
      `(or ${REPLICA_STORES_ENV})`);
  }
  return new MirroredStore(store, replicas, { dbKey, log });
}

/** How long a writer that stops waits for its replica stores to catch up before it leaves the rest to the next start. */
export const REPLICA_DRAIN_MS = 10_000;

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
