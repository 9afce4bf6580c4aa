/**
 * @module
 * Retention: keep the newest N generations (and, optionally, every generation younger than a
 * duration) with their WAL frames, delete the manifests and frames of the others, then every segment
 * and block map page no kept manifest references.
 *
 * Safe against a writer running at the same time: the newest generation is always kept, and a
 * segment or page newer than the newest manifest seen is never deleted (it may belong to a
 * generation being uploaded right now; a page's key carries the generation that wrote it, and later
 * generations name it again only while it is their predecessor's). Manifests go before segments and
 * pages, so a crash halfway leaves only unreferenced objects behind, which the next run deletes;
 * never a manifest without what it names.
 *
 * Forks (_fork.ts) reference their source's segments and pages: every generation of every fork
 * that left a marker under this database keeps what it names, and the report says which fork holds
 * how many objects. (A fork of an old generation made while gc runs can lose the race: fork the
 * newest generation, which gc always keeps, or run gc when no fork is being made.)
 */
import { forksPrefix, framesPrefix, pagesPrefix, parseForkMarkerKey, parseFrameKey, segmentsPrefix } from "./_keys.ts";
import type { BlockStore } from "@haduck/s3-block-store";
import { listGenerations, loadManifestHead } from "./_catalog.ts";
import { addReferences } from "./_manifest_pages.ts";
import { manifestKey } from "./_format.ts";

export interface GcOptions {
  store: BlockStore;
  dbKey: string;
  /** Generations to keep, the newest first. At least 1. Default 10. */
  keepLast?: number;
  /** Also keep every generation created within this many milliseconds. Default 0 (none). */
  keepWithinMs?: number;
  /** Delete what the plan names. Default false: a dry run that only reports. */
  apply?: boolean;
  /** Replaceable for tests. Default `Date.now`. */
  now?: () => number;
  /**
   * Called as the pass goes: `"read"` counts the manifests read of all, `"delete"` the objects
   * deleted of all (with `apply`). For a progress bar; it must not throw.
   */
  onProgress?: (step: "read" | "delete", done: number, total: number) => void;
}

export interface GcReport {
  kept: number[];
  deletedGenerations: number[];
  deletedSegments: string[];
  /** Block map pages (manifests version 2) no kept generation names. */
  deletedPages: string[];
  /** WAL frames of the deleted generations. */
  deletedFrames: string[];
  /** Segments found in the store and not referenced by a kept generation, newer ones excluded. */
  bytesFreed: number;
  applied: boolean;
  /** Forks that reference this database's objects, and how many objects each kept from deletion. */
  heldByForks: Record<string, number>;
}

const WRITTEN_FOR = /\/(?:segments|blockmaps)\/(\d{20})-/;

/**
 * Plans (and with `apply`, carries out) one retention pass.
 *
 * @example
 * ```ts
 * import { gc } from "@haduck/duckdb-fs-bridge";
 * import { openStore } from "@haduck/s3-block-store";
 * const report = await gc({ store: openStore("file:///tmp/haduck-store"), dbKey: "demo.duckdb", keepLast: 5 });
 * console.log(`${report.deletedGenerations.length} generations would go`);
 * ```
 */
export async function gc(options: GcOptions): Promise<GcReport> {
  const { store, dbKey } = options;
  const keepLast = options.keepLast ?? 10;
  if (!Number.isSafeInteger(keepLast) || keepLast < 1) {
    throw new RangeError(`keepLast must be a whole number of at least 1, not ${keepLast}: the newest generation ` +
      "is always kept");
  }
  const keepWithinMs = options.keepWithinMs ?? 0;
  if (!(keepWithinMs >= 0)) throw new RangeError(`keepWithinMs must be 0 or more, not ${keepWithinMs}`);
  const now = (options.now ?? Date.now)();
  const generations = await listGenerations(store, dbKey);
  const report: GcReport = { kept: [], deletedGenerations: [], deletedSegments: [], deletedPages: [], deletedFrames: [], bytesFreed: 0,
    applied: options.apply === true, heldByForks: {} };
  if (generations.length === 0) return report;
  const newest = generations[generations.length - 1];
  // Every segment and page a kept generation names (a page shared by several is read once).
  const referenced = new Set<string>();
  for (const [index, generation] of generations.entries()) {
    const { head } = await loadManifestHead(store, dbKey, generation);
    const young = keepWithinMs > 0 && now - Date.parse(head.createdAt) <= keepWithinMs;
    if (index >= generations.length - keepLast || young) {
      report.kept.push(generation);
      await addReferences(store, head, referenced);
    } else {
      report.deletedGenerations.push(generation);
    }
    options.onProgress?.("read", index + 1, generations.length);
  }
  // What forks reference, by the first fork found naming each object.
  const forkHolds = new Map<string, string>();
  for await (const object of store.list(forksPrefix(dbKey))) {
    const forkKey = parseForkMarkerKey(object.key);
    if (forkKey === undefined) continue;
    report.heldByForks[forkKey] = 0;
    for (const generation of await listGenerations(store, forkKey)) {
      const names = new Set<string>();
      await addReferences(store, (await loadManifestHead(store, forkKey, generation)).head, names);
      for (const key of names) if (!forkHolds.has(key)) forkHolds.set(key, forkKey);
    }
  }
  for (const [prefix, deleted] of [[segmentsPrefix(dbKey), report.deletedSegments],
    [pagesPrefix(dbKey), report.deletedPages]] as const) {
    for await (const object of store.list(prefix)) {
      const match = WRITTEN_FOR.exec(object.key);
      if (!match || Number(match[1]) > newest || referenced.has(object.key)) continue;
      const fork = forkHolds.get(object.key);
      if (fork !== undefined) {
        report.heldByForks[fork]++;
        continue;
      }
      deleted.push(object.key);
      report.bytesFreed += object.sizeBytes;
    }
  }
  // Frames of a generation newer than the newest manifest seen belong to one published since: kept.
  const kept = new Set(report.kept);
  for await (const object of store.list(framesPrefix(dbKey))) {
    const frame = parseFrameKey(object.key);
    if (!frame || frame.generation > newest || kept.has(frame.generation)) continue;
    report.deletedFrames.push(object.key);
    report.bytesFreed += object.sizeBytes;
  }
  if (report.applied) {
    const batches = [report.deletedGenerations.map((generation) => manifestKey(dbKey, generation)),
      report.deletedFrames, report.deletedSegments, report.deletedPages];
    const total = batches.reduce((sum, keys) => sum + keys.length, 0);
    let done = 0;
    for (const keys of batches) {
      await store.deleteMany(keys);
      done += keys.length;
      options.onProgress?.("delete", done, total);
    }
  }
  return report;
}
