/**
 * `Lease` against real stores (the filesystem store and radosgw, one suite for both), with a fake
 * monotonic clock per node so that expiry is exercised without sleeping. Cross-process exclusion on
 * the filesystem store is checked with real processes racing for one key.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type BlockStore,
  FsBlockStore,
  type ObjectInfo,
  probeCapabilities,
  type PutOptions,
} from "@haduck/s3-block-store";
import { freshBucket } from "../../tests/harness/s3.ts";
import { assertLeaseStore, Lease, LeaseLostError, UnsafeLeaseStoreError } from "./mod.ts";

const dir = mkdtempSync(join(tmpdir(), "haduck-lease-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A node's own monotonic clock, moved by hand. */
function clock() {
  let now = 1_000;
  return { now: () => now, advance: (ms: number) => now += ms };
}

const stores: [string, () => Promise<BlockStore>][] = [
  ["filesystem store", async () => new FsBlockStore(mkdtempSync(join(dir, "store-")))],
  ["radosgw", async () => (await freshBucket("lease")).store],
];

for (const [kind, open] of stores) {
  describe(`Lease on the ${kind}`, () => {
    test("of 8 nodes racing to claim an empty key, exactly one holds it, at epoch 1", async () => {
      const store = await open();
      const nodes = Array.from({ length: 8 }, (_, i) => new Lease(store, "db/lease.json", { holder: `n${i}` }));
      const won = await Promise.all(nodes.map((node) => node.tryAcquire()));
      expect(won.filter(Boolean).length).toBe(1);
      expect(nodes.filter((node) => node.valid).map((node) => node.epoch)).toEqual([1]);
    });

    test("an observer takes over only once the record stayed unchanged for TTL + margin on its own clock", async () => {
      const store = await open();
      const a = clock();
      const b = clock();
      const leader = new Lease(store, "db/lease.json", { holder: "a", ttlMs: 5000, marginMs: 1000, now: a.now });
      const other = new Lease(store, "db/lease.json", { holder: "b", ttlMs: 5000, marginMs: 1000, now: b.now });
      expect(await leader.tryAcquire()).toBe(true);
      expect(await other.tryAcquire()).toBe(false); // first sight: the clock starts now, for b
      b.advance(5999);
      expect(await other.tryAcquire()).toBe(false);
      // A renew resets b's view: a new record, seen for the first time.
      a.advance(1000);
      await leader.renew();
      b.advance(2);
      expect(await other.tryAcquire()).toBe(false);
      b.advance(5999);
      expect((await other.observe()).claimable).toBe(false);
      b.advance(1);
      expect(await other.tryAcquire()).toBe(true);
      expect(other.epoch).toBe(2);
      // The old holder's next renew fails by name, and it no longer trusts its lease.
      await expect(leader.renew()).rejects.toBeInstanceOf(LeaseLostError);
      expect(leader.valid).toBe(false);
    });

    test("a holder stops trusting its lease TTL - margin after its last renew started, and cannot renew late", async () => {
      const store = await open();
      const a = clock();
      const leader = new Lease(store, "db/lease.json", { holder: "a", ttlMs: 5000, marginMs: 1000, now: a.now });
      expect(await leader.tryAcquire()).toBe(true);
      a.advance(3999);
      expect(leader.valid).toBe(true);
      a.advance(1);
      expect(leader.valid).toBe(false);
      await expect(leader.renew()).rejects.toBeInstanceOf(LeaseLostError);
      expect(leader.epoch).toBeUndefined();
    });

    test("a released lease is claimed at once, with the next epoch", async () => {
      const store = await open();
      const leader = new Lease(store, "db/lease.json", { holder: "a", address: "127.0.0.1:1" });
      const other = new Lease(store, "db/lease.json", { holder: "b" });
      expect(await leader.tryAcquire()).toBe(true);
      expect((await other.observe()).record?.address).toBe("127.0.0.1:1");
      await leader.release();
      expect(await other.tryAcquire()).toBe(true);
      expect(other.epoch).toBe(2);
    });

    test("minEpoch keeps epochs growing when the lease object is gone", async () => {
      const store = await open();
      const node = new Lease(store, "db/lease.json", { holder: "a" });
      expect(await node.tryAcquire({ minEpoch: 7 })).toBe(true);
      expect(node.epoch).toBe(7);
    });
  });
}

test("processes racing on one filesystem store: exactly one holds the lease", async () => {
  const root = mkdtempSync(join(dir, "race-"));
  const racer = join(import.meta.dir, "../../tests/fixtures/lease_race.ts");
  const start = Date.now() + 1500; // every racer loaded and waiting by then
  const children = Array.from({ length: 6 }, () =>
    Bun.spawn([process.execPath, racer, root, String(start)], { stdout: "pipe", stderr: "inherit" }));
  const results = await Promise.all(children.map((child) => new Response(child.stdout).text()));
  expect(results.map((r) => r.trim()).sort()).toEqual(["lost", "lost", "lost", "lost", "lost", "won"]);
});

/** A store that accepts conditional headers and ignores them, as some S3-compatible servers do. */
class IgnoresConditions implements BlockStore {
  constructor(readonly inner: BlockStore) {}
  get url() {
    return `${this.inner.url} (ignoring conditions)`;
  }
  put(key: string, body: Uint8Array, options: PutOptions = {}) {
    return this.inner.put(key, body, { signal: options.signal });
  }
  get(key: string, options?: Parameters<BlockStore["get"]>[1]) {
    return this.inner.get(key, options);
  }
  head(key: string): Promise<ObjectInfo | undefined> {
    return this.inner.head(key);
  }
  list(prefix: string) {
    return this.inner.list(prefix);
  }
  delete(key: string) {
    return this.inner.delete(key);
  }
  deleteMany(keys: string[]) {
    return this.inner.deleteMany(keys);
  }
  probeCapabilities() {
    return probeCapabilities(this);
  }
}

test("a store that ignores If-Match and If-None-Match is refused by name", async () => {
  const store = new IgnoresConditions(new FsBlockStore(mkdtempSync(join(dir, "ignoring-"))));
  const refused = await assertLeaseStore(store).then(() => undefined, (error) => error);
  expect(refused).toBeInstanceOf(UnsafeLeaseStoreError);
  expect(refused.message).toContain("does not enforce If-None-Match: * and If-Match");
  await assertLeaseStore(new FsBlockStore(mkdtempSync(join(dir, "honest-")))); // the real one passes
});

test("a holder past its trusted time gets false from tryAcquire until it may take the lease again", async () => {
  const store = new FsBlockStore(mkdtempSync(join(dir, "expired-")));
  const a = clock();
  const lease = new Lease(store, "db/lease.json", { holder: "a", ttlMs: 5000, marginMs: 1000, now: a.now });
  expect(await lease.tryAcquire()).toBe(true);
  a.advance(4500); // past ttl - margin: others may judge it expired from 6000 on
  expect(await lease.tryAcquire()).toBe(false);
  a.advance(6000); // unchanged for ttl + margin on its own clock too: it takes the lease again, with a new epoch
  expect(await lease.tryAcquire()).toBe(true);
  expect(lease.epoch).toBe(2);
});
