/** `SharedLease` and `GroupChanges` (serve --group) against the filesystem store, counting its requests. */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Lease } from "@haduck/lease";
import { type BlockStore, openStore, type PutOptions } from "@haduck/s3-block-store";
import { GroupChanges, SharedLease } from "./_group.ts";

const dir = mkdtempSync(join(tmpdir(), "haduck-group-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function counted(store: BlockStore) {
  const counts = { put: 0, get: 0, head: 0 };
  const wrapped: BlockStore = {
    url: store.url,
    put: (key: string, body: Uint8Array, options?: PutOptions) => (counts.put++, store.put(key, body, options)),
    get: (key, options) => (counts.get++, store.get(key, options)),
    head: (key, options) => (counts.head++, store.head(key, options)),
    list: (prefix, options) => store.list(prefix, options),
    delete: (key, options) => store.delete(key, options),
    deleteMany: (keys, options) => store.deleteMany(keys, options),
    probeCapabilities: () => store.probeCapabilities(),
  };
  return { store: wrapped, counts };
}

test("a group's shares: one claim, coalesced looks and renews, released only when the last holder lets go", async () => {
  const { store, counts } = counted(openStore(`file://${join(dir, "lease-store")}`));
  const lease = new Lease(store, "grp/lease.json", { holder: "node-a", address: "http://a/", ttlMs: 2000, marginMs: 100 });
  const group = new SharedLease(lease, { freshMs: 100, ttlMs: 2000 });
  const [a, b, c] = [group.share(), group.share(), group.share()];
  // Three looks at once are one request.
  const before = counts.get + counts.head;
  await Promise.all([a.observe(), b.observe(), c.observe()]);
  expect(counts.get + counts.head - before).toBeLessThanOrEqual(2);
  // One claim for all: the first writes, the others hold it without a request.
  const putsBefore = counts.put;
  expect(await a.tryAcquire()).toBe(true);
  const claimPuts = counts.put - putsBefore;
  expect(claimPuts).toBeGreaterThanOrEqual(1);
  expect(await b.tryAcquire()).toBe(true);
  expect(await c.tryAcquire()).toBe(true);
  expect(counts.put - putsBefore).toBe(claimPuts);
  expect([a.epoch, b.epoch, c.epoch]).toEqual([1, 1, 1]);
  // Renews at once are one PUT; right after, none.
  await Bun.sleep(400);
  const renewBefore = counts.put;
  await Promise.all([a.renew(), b.renew(), c.renew()]);
  expect(counts.put - renewBefore).toBe(1);
  await a.renew();
  expect(counts.put - renewBefore).toBe(1);
  // Released only when the last holder lets go.
  const record = async () => JSON.parse(new TextDecoder().decode(await store.get("grp/lease.json")));
  await a.release();
  await b.release();
  expect((await record()).released).toBe(false);
  expect(c.valid).toBe(true);
  await c.release();
  expect((await record()).released).toBe(true);
});

test("the group's change object: the leader's changes coalesce into one write; a watcher hears which database moved", async () => {
  const { store, counts } = counted(openStore(`file://${join(dir, "changes-store")}`));
  const leader = new GroupChanges(store, "grp");
  const follower = new GroupChanges(store, "grp");
  const heard: (string[] | "all")[] = [];
  follower.watch(20, (changed) => heard.push(changed));
  for (let i = 0; i < 10; i++) leader.changed("a.duckdb");
  await Bun.sleep(300);
  expect(counts.put).toBe(1); // ten changes within the coalescing window: one PUT
  expect(heard).toEqual(["all"]); // the first look: every database
  leader.changed("b.duckdb");
  await Bun.sleep(300);
  expect(heard).toEqual(["all", ["b.duckdb"]]);
  const headsBefore = counts.head;
  await Bun.sleep(300);
  expect(heard.length).toBe(2); // nothing changed: nothing heard
  expect(counts.head - headsBefore).toBeGreaterThan(3); // one HEAD per look while idle, no GET
  await follower.close();
  await leader.close();
});
