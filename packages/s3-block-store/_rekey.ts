/**
 * @module
 * `rekey()`: every object under a prefix sealed with the current key, by `SealedStore.reseal()` each,
 * a bounded number at a time. Plain objects (a store moving to encryption) and objects sealed with an
 * older key are rewritten with the same plaintext; objects already current are skipped, so a run that
 * crashed is resumed by running it again. Objects written meanwhile are sealed with the current key by
 * their writers already (every writer must have the new key first, as the current one).
 */
import type { SealedStore } from "./_sealed_store.ts";

export interface RekeyOptions {
  /** Only objects whose key starts with this (a database: `{dbKey}/`). Default: the whole store. */
  prefix?: string;
  /** Count what would be rewritten, write nothing. Default false. */
  dryRun?: boolean;
  /** Objects read and rewritten at once. Default 8. */
  concurrencyMax?: number;
  /** Called after each object. */
  onProgress?: (report: RekeyReport) => void;
  signal?: AbortSignal;
}

export interface RekeyReport {
  /** The key id every object is sealed with afterwards. */
  currentKeyId: string;
  objectsChecked: number;
  /** Already sealed with the current key: skipped. */
  objectsCurrent: number;
  /** Rewritten (or, in a dry run, to rewrite), by what they were sealed with before: a key id or `plain`. */
  objectsResealed: Record<string, number>;
  bytesResealed: number;
  /** Objects that stay plain by design (`lease.json`). */
  objectsPlainKept: number;
  /** Deleted while rekey ran (gc): nothing to do. */
  objectsGone: number;
  dryRun: boolean;
}

/**
 * Seals every object under `options.prefix` with `store`'s current key.
 *
 * @example
 * ```ts
 * import { FsBlockStore, Keyring, rekey, SealedStore } from "@haduck/s3-block-store";
 * const store = new SealedStore(new FsBlockStore("/tmp/haduck-rekey"),
 *   { keyring: Keyring.fromEnv({ HADUCK_ENCRYPTION_KEY: "33".repeat(32) }) });
 * console.log(await rekey(store, { dryRun: true }));
 * ```
 */
export async function rekey(store: SealedStore, options: RekeyOptions = {}): Promise<RekeyReport> {
  const current = store.keyring.current;
  if (!current) throw new RangeError("rekey() needs a current key");
  const report: RekeyReport = { currentKeyId: current.id, objectsChecked: 0, objectsCurrent: 0, objectsResealed: {},
    bytesResealed: 0, objectsPlainKept: 0, objectsGone: 0, dryRun: options.dryRun ?? false };
  const concurrencyMax = options.concurrencyMax ?? 8;
  if (!Number.isSafeInteger(concurrencyMax) || concurrencyMax < 1) {
    throw new RangeError(`concurrencyMax must be a whole number of at least 1, not ${concurrencyMax}`);
  }
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;
  for await (const info of store.inner.list(options.prefix ?? "", { signal: options.signal })) {
    if (failure) break;
    const task = store.reseal(info, { dryRun: options.dryRun, signal: options.signal }).then((done) => {
      report.objectsChecked++;
      if (done.outcome === "current") report.objectsCurrent++;
      else if (done.outcome === "plain-kept") report.objectsPlainKept++;
      else if (done.outcome === "gone") report.objectsGone++;
      else {
        report.objectsResealed[done.from!] = (report.objectsResealed[done.from!] ?? 0) + 1;
        report.bytesResealed += done.bytes;
      }
      options.onProgress?.(report);
    }, (error) => {
      failure ??= error;
    }).finally(() => inFlight.delete(task));
    inFlight.add(task);
    if (inFlight.size >= concurrencyMax) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  if (failure) throw failure;
  return report;
}
