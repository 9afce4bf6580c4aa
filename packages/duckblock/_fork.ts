/**
 * @module
 * `fork()`: a new database in the store at a point of another's history, without copying a block.
 *
 * The fork's first generation is the source generation's manifest under the new key: the same
 * segments and block map pages (the source's objects, named by their keys), a new haduck identity,
 * and `sources` naming the databases whose objects it may reference. Forked at a commit after that
 * checkpoint, the source's WAL frames up to it are written again under the new key, chained to the
 * new manifest (they are the WAL since the last checkpoint: small next to the database). Before the
 * manifest, a marker under every source (`{source}/forks/{fork}.json`) tells the source's gc to keep
 * what the fork references. Writers of the fork carry `sources` into every later generation.
 */
import type { BlockStore } from "@haduck/s3-block-store";
import { headAtTime, type LoadedHead, latestHead, listGenerations, loadManifestHead } from "./_catalog.ts";
import { ReplicationError } from "./_errors.ts";
import { type Manifest, sha256, hex } from "./_format.ts";
import { encodeFrame, walkFrames } from "./_frames.ts";
import { assertValidDbKey } from "./_format.ts";
import { encodeLatestHint, forkMarkerKey, frameKey, latestKey, manifestKey } from "./_keys.ts";

export interface ForkOptions {
  store: BlockStore;
  /** The database to fork. */
  dbKey: string;
  /** The new database's key: nothing may be stored under it yet. */
  toKey: string;
  /** Fork at this generation's checkpoint (no frames after it). */
  generation?: number;
  /** Fork at the last commit at or before this time (Unix ms). Default: the latest commit. */
  untilMs?: number;
  /** The new database's haduck identity. Default: a random UUID. */
  identity?: string;
}

export interface ForkReport {
  dbKey: string;
  toKey: string;
  generation: number;
  /** WAL frames written again under the new key, and the commits they hold. */
  frames: number;
  commits: number;
  /** Time of the last commit the fork holds (ISO 8601), or null for a checkpoint alone. */
  lastCommit: string | null;
  /** Bytes and objects the fork wrote (the database's own blocks: none). */
  bytesWritten: number;
  objectsWritten: number;
}

/**
 * Forks `dbKey` into `toKey`.
 *
 * @example
 * ```ts
 * import { fork } from "@haduck/duckblock";
 * import { openStore } from "@haduck/s3-block-store";
 * const report = await fork({ store: openStore("file:///tmp/haduck-store"), dbKey: "demo.duckdb",
 *   toKey: "demo-experiment.duckdb" });
 * console.log(`forked at generation ${report.generation}, ${report.bytesWritten} bytes written`);
 * ```
 */
export async function fork(options: ForkOptions): Promise<ForkReport> {
  const { store, dbKey, toKey } = options;
  assertValidDbKey(toKey);
  if (toKey === dbKey) {
    throw new ReplicationError("BAD_ARGUMENT", `Cannot fork ${dbKey} into itself: give another --to-key`);
  }
  if (options.generation !== undefined && options.untilMs !== undefined) {
    throw new ReplicationError("BAD_ARGUMENT", "Give --generation or --time, not both");
  }
  if ((await listGenerations(store, toKey)).length > 0) {
    throw new ReplicationError("BAD_ARGUMENT", `${toKey} already holds generations in ${store.url}: a fork needs a ` +
      "new key (choose another --to-key, or delete that database first)");
  }
  const loaded: LoadedHead | undefined = options.generation !== undefined
    ? await loadManifestHead(store, dbKey, options.generation)
    : options.untilMs !== undefined
    ? await headAtTime(store, dbKey, options.untilMs)
    : await latestHead(store, dbKey);
  if (!loaded) {
    throw new ReplicationError("NO_GENERATIONS", `No generations of ${dbKey} in ${store.url}: nothing to fork ` +
      "(check --store and --db-key)");
  }
  const source = loaded.head;
  const sources = [dbKey, ...(source.sources ?? []).filter((key) => key !== toKey)];
  let bytesWritten = 0;
  let objectsWritten = 0;
  const put = async (key: string, bytes: Uint8Array, createOnly: boolean) => {
    await store.put(key, bytes, createOnly ? { ifNoneMatch: "*" } : undefined);
    bytesWritten += bytes.byteLength;
    objectsWritten++;
  };
  // The markers first: a source's gc that runs from now on keeps what the fork names.
  const marker = new TextEncoder().encode(JSON.stringify({ fork: toKey, createdAt: new Date().toISOString() }));
  for (const owner of sources) await put(forkMarkerKey(owner, toKey), marker, false);
  const manifest = {
    ...source,
    dbKey: toKey,
    previousGeneration: null,
    previousManifestSha256: null,
    createdAt: new Date().toISOString(),
    database: { ...source.database, haduckIdentity: options.identity ?? crypto.randomUUID() },
    sources,
    forkedFrom: { dbKey, generation: source.generation, manifestSha256: loaded.sha256, frames: 0 },
  } as Manifest;
  // The frames after the checkpoint, up to the commit asked for, chained anew from the fork's manifest;
  // written before the manifest, so that the fork never shows a generation without its frames.
  const frames: { number: number; bytes: Uint8Array }[] = [];
  let commits = 0;
  let lastCommitUnixMs: number | undefined;
  if (options.generation === undefined) {
    // The new manifest's digest depends on the frame count it records: walk first, then chain.
    const taken: Parameters<typeof encodeFrame>[0][] = [];
    await walkFrames({ store, dbKey, generation: source.generation, manifestSha256: loaded.sha256,
      untilMs: options.untilMs, visit: async (frame, commitsTaken) => {
        if (commitsTaken === 0 && frame.commits.length > 0) return; // past the time asked for
        const commitsKept = frame.commits.slice(0, commitsTaken);
        const walEnd = commitsKept.at(-1)?.walEnd ?? frame.walOffset + frame.wal.byteLength;
        taken.push({ ...frame, commits: commitsKept, wal: frame.wal.subarray(0, walEnd - frame.walOffset) });
        commits += commitsKept.length;
        lastCommitUnixMs = commitsKept.at(-1)?.unixMs ?? lastCommitUnixMs;
      } });
    manifest.forkedFrom!.frames = taken.length;
    let previous = sha256(encoded(manifest));
    for (const frame of taken) {
      const { bytes, sha256: digest } = encodeFrame({ ...frame, previousSha256: previous });
      frames.push({ number: frame.number, bytes });
      previous = digest;
    }
  }
  for (const frame of frames) await put(frameKey(toKey, source.generation, frame.number), frame.bytes, true);
  const bytes = encoded(manifest);
  await put(manifestKey(toKey, source.generation), bytes, true);
  await put(latestKey(toKey), encodeLatestHint({ generation: source.generation, manifestSha256: hex(sha256(bytes)) }),
    false);
  return { dbKey, toKey, generation: source.generation, frames: frames.length, commits,
    lastCommit: lastCommitUnixMs === undefined ? null : new Date(lastCommitUnixMs).toISOString(), bytesWritten,
    objectsWritten };
}

const encoded = (manifest: Manifest): Uint8Array => new TextEncoder().encode(JSON.stringify(manifest));
