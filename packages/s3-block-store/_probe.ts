/**
 * @module
 * Finds out, by trying, whether a store enforces create-only and compare-and-swap writes. Some
 * S3-compatible servers accept the conditional headers and ignore them; leases and manifests are
 * only safe where both hold.
 */
import { PreconditionFailedError } from "./_errors.ts";
import type { BlockStore, StoreCapabilities } from "./_types.ts";

async function refused(write: () => Promise<unknown>): Promise<boolean> {
  try {
    await write();
    return false;
  } catch (error) {
    if (error instanceof PreconditionFailedError) return true;
    throw error;
  }
}

/** Tries create-only and compare-and-swap on a scratch key of `store` (removed afterwards); any BlockStore. */
export async function probeCapabilities(store: BlockStore): Promise<StoreCapabilities> {
  const key = `_probe/${Date.now()}-${crypto.randomUUID()}`;
  const first = new TextEncoder().encode("haduck capability probe 1");
  const second = new TextEncoder().encode("haduck capability probe 2");
  try {
    const { etag } = await store.put(key, first, { ifNoneMatch: "*" });
    const createOnly = await refused(() => store.put(key, second, { ifNoneMatch: "*" }));
    const current = (await store.head(key))?.etag ?? etag;
    // A stale ETag of the same shape: radosgw 16 compares If-Match as a prefix of the stored ETag, so
    // a longer string would pass; a same-length one that differs in its last character must not.
    const stale = current.slice(0, -1) + (current.endsWith("0") ? "1" : "0");
    const staleRefused = await refused(() => store.put(key, second, { ifMatch: stale }));
    const currentAccepted = !(await refused(() => store.put(key, second, { ifMatch: current })));
    return { createOnly, compareAndSwap: staleRefused && currentAccepted };
  } finally {
    await store.delete(key).catch(() => {});
  }
}
