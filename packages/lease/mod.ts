/**
 * @module
 * `@haduck/lease`: who may write, decided by one object in any `BlockStore` that enforces
 * conditional writes (create-only to claim, compare-and-swap to renew and take over). Expiry is
 * judged on each observer's own monotonic clock, never by comparing wall clocks across machines;
 * the epoch, which grows at every takeover, is the fencing token. No DuckDB, no HTTP.
 *
 * @example
 * ```ts
 * import { openStore } from "@haduck/s3-block-store";
 * import { assertLeaseStore, Lease } from "@haduck/lease";
 * const store = openStore("file:///tmp/haduck-store");
 * await assertLeaseStore(store);
 * const lease = new Lease(store, "demo.duckdb/lease.json", { holder: "node-a", ttlMs: 5000 });
 * console.log(await lease.tryAcquire() ? `leading at epoch ${lease.epoch}` : "following");
 * ```
 */
export {
  assertLeaseStore,
  decodeLeaseRecord,
  Lease,
  LeaseLostError,
  type LeaseObservation,
  type LeaseOptions,
  type LeaseRecord,
  UnsafeLeaseStoreError,
} from "./_lease.ts";
