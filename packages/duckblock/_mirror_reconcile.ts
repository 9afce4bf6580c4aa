/**
 * @module
 * The reconcile pass of a replica store: lists a database's objects in the primary store and in the
 * replica, and copies what the replica lacks (by key and size) in the order a reader needs, without
 * re-sending what it holds. It runs when a mirror starts (a previous writer may have stopped with
 * copies owed) and after a backlog outgrew its bound (the keys were dropped; the listing finds them).
 *
 * Order: the primary is listed manifests, frames and forks first, then block map pages and segments
 * (whatever a listed manifest names existed before it, so the later listing sees it); the copies go
 * pages, segments and fork markers, then manifests, then frames in key order, then `latest.json`. A
 * reader of the replica never finds a manifest without what it names. Nothing is deleted here: what
 * the replica holds beyond the primary (a generation the primary's gc removed) is the replica's own
 * gc's to judge.
 */
import { BlockNotFoundError, type BlockStore, bytesEqual } from "@haduck/s3-block-store";
import { framesPrefix, latestKey, manifestsPrefix, pagesPrefix, segmentsPrefix } from "./_keys.ts";

/** What one reconcile pass found and did. */
export interface MirrorReconcileReport {
  /** Objects of the database the primary holds (the lease excluded). */
  objectsListed: number;
  /** Objects the replica lacked (or held with another size) and that were copied. */
  objectsCopied: number;
  bytesCopied: number;
  /** Objects the replica already held: not sent again. */
  objectsHeld: number;
}

export interface MirrorReconcileOptions {
  primary: BlockStore;
  replica: BlockStore;
  dbKey: string;
  /** Copies in flight at once for pages, segments and manifests. */
  concurrencyMax: number;
  /** Called before each copy with how many remain (for the status's objects behind). */
  onRemaining?: (objects: number, bytes: number) => void;
  signal?: AbortSignal;
}

interface Listed {
  key: string;
  sizeBytes: number;
}

async function listAll(store: BlockStore, prefix: string, signal?: AbortSignal): Promise<Listed[]> {
  const out: Listed[] = [];
  for await (const info of store.list(prefix, { signal })) out.push({ key: info.key, sizeBytes: info.sizeBytes });
  return out;
}

/**
 * Copies what `replica` lacks of `dbKey` from `primary`. Throws on the first failure (the caller
 * retries the pass; what was copied is not sent again).
 *
 * @example
 * ```ts
 * import { openStore } from "@haduck/s3-block-store";
 * import { reconcileReplica } from "@haduck/duckblock";
 * const report = await reconcileReplica({ primary: openStore("file:///tmp/haduck-store"),
 *   replica: openStore("file:///tmp/haduck-replica"), dbKey: "demo.duckdb", concurrencyMax: 4 });
 * console.log(`${report.objectsCopied} copied, ${report.objectsHeld} already there`);
 * ```
 */
export async function reconcileReplica(options: MirrorReconcileOptions): Promise<MirrorReconcileReport> {
  const { primary, replica, dbKey, signal } = options;
  const manifests = await listAll(primary, manifestsPrefix(dbKey), signal);
  const frames = await listAll(primary, framesPrefix(dbKey), signal);
  const forks = await listAll(primary, `${dbKey}/forks/`, signal);
  const latest = await primary.head(latestKey(dbKey), { signal });
  const data = [...await listAll(primary, pagesPrefix(dbKey), signal), ...await listAll(primary, segmentsPrefix(dbKey),
    signal), ...forks];
  const held = new Map<string, number>();
  for await (const info of replica.list(`${dbKey}/`, { signal })) held.set(info.key, info.sizeBytes);
  const lacking = (object: Listed) => held.get(object.key) !== object.sizeBytes;
  const stages = [data.filter(lacking), manifests.filter(lacking), frames.filter(lacking)];
  const report: MirrorReconcileReport = { objectsListed: manifests.length + frames.length + data.length + (latest ? 1 : 0),
    objectsCopied: 0, bytesCopied: 0, objectsHeld: 0 };
  let remaining = stages.reduce((sum, stage) => sum + stage.length, 0);
  let remainingBytes = stages.reduce((sum, stage) => sum + stage.reduce((bytes, o) => bytes + o.sizeBytes, 0), 0);
  report.objectsHeld = report.objectsListed - remaining - (latest ? 1 : 0);
  const copy = async (object: Listed) => {
    options.onRemaining?.(remaining, remainingBytes);
    let bytes: Uint8Array;
    try {
      bytes = await primary.get(object.key, { signal });
    } catch (error) {
      if (error instanceof BlockNotFoundError) return; // deleted meanwhile (gc): nothing to copy
      throw error;
    }
    await replica.put(object.key, bytes, { signal });
    remaining--;
    remainingBytes -= object.sizeBytes;
    report.objectsCopied++;
    report.bytesCopied += bytes.byteLength;
  };
  for (const [index, stage] of stages.entries()) {
    // Frames one by one, in key order: a reader of the replica walks them in order and stops at a gap.
    const width = index === 2 ? 1 : Math.max(1, options.concurrencyMax);
    for (let start = 0; start < stage.length; start += width) {
      await Promise.all(stage.slice(start, start + width).map(copy));
    }
  }
  if (latest) {
    // A hint overwritten in place: its size says little, its bytes are few.
    const bytes = await primary.get(latestKey(dbKey), { signal }).catch((error) => {
      if (error instanceof BlockNotFoundError) return undefined;
      throw error;
    });
    const theirs = held.has(latestKey(dbKey)) ? await replica.get(latestKey(dbKey), { signal }).catch(() => undefined)
      : undefined;
    if (bytes && !(theirs && bytesEqual(theirs, bytes))) {
      await replica.put(latestKey(dbKey), bytes, { signal });
      report.objectsCopied++;
      report.bytesCopied += bytes.byteLength;
    } else if (bytes) report.objectsHeld++;
  }
  options.onRemaining?.(0, 0);
  return report;
}
