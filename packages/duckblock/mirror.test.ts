/**
 * `MirroredStore` and `reconcileReplica` against filesystem stores: the order a replica receives
 * objects in, what is never copied, a replica that stalls or refuses and comes back, a backlog past
 * its bound, and a reconcile pass that copies only what is missing (its puts counted).
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BlockStore, openStore, type PutOptions, StoreUnavailableError } from "@haduck/s3-block-store";
import { frameKey, latestKey, leaseKey, manifestKey, pageKey, segmentKey } from "./_keys.ts";
import { MirroredStore } from "./_mirror.ts";
import { reconcileReplica } from "./_mirror_reconcile.ts";

const dir = mkdtempSync(join(tmpdir(), "haduck-mirror-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let stores = 0;
const fresh = () => openStore(`file://${join(dir, `store-${++stores}`)}`);
const bytes = (text: string) => new TextEncoder().encode(text);
const DB = "m.duckdb";

/** A store that records the keys put into it, and can be made to stall or refuse every request. */
function controlled(store: BlockStore) {
  const puts: string[] = [];
  let mode: "up" | "refuse" | "stall" = "up";
  let release: () => void = () => {};
  let healed = Promise.resolve();
  const gate = async () => {
    if (mode === "stall") await healed;
    if (mode === "refuse") throw new StoreUnavailableError("injected: the replica refuses");
  };
  const wrapped: BlockStore = {
    url: store.url,
    put: async (key: string, body: Uint8Array, options?: PutOptions) => {
      await gate();
      puts.push(key);
      return store.put(key, body, options);
    },
    get: async (key, options) => (await gate(), store.get(key, options)),
    head: async (key, options) => (await gate(), store.head(key, options)),
    list: (prefix, options) => store.list(prefix, options),
    delete: async (key, options) => (await gate(), store.delete(key, options)),
    deleteMany: async (keys, options) => (await gate(), store.deleteMany(keys, options)),
    probeCapabilities: () => store.probeCapabilities(),
  };
  return {
    store: wrapped,
    puts,
    set(next: "up" | "refuse" | "stall") {
      if (next === "stall") healed = new Promise((resolve) => release = resolve);
      if (mode === "stall" && next !== "stall") release();
      mode = next;
    },
  };
}

async function keysOf(store: BlockStore): Promise<string[]> {
  const keys: string[] = [];
  for await (const info of store.list(`${DB}/`)) keys.push(info.key);
  return keys;
}

/** One generation as the writer publishes it: segments and a page, then the manifest, then the hint. */
async function publish(store: BlockStore, generation: number) {
  await Promise.all([0, 1, 2].map((sequence) =>
    store.put(segmentKey(DB, generation, "a", sequence), bytes(`segment ${generation}.${sequence}`), { ifNoneMatch: "*" })
  ));
  await store.put(pageKey(DB, generation, "a", 0), bytes(`page ${generation}`), { ifNoneMatch: "*" });
  await store.put(manifestKey(DB, generation), bytes(`manifest ${generation}`), { ifNoneMatch: "*" });
  await store.put(frameKey(DB, generation, 1), bytes(`frame ${generation}.1`), { ifNoneMatch: "*" });
  await store.put(latestKey(DB), bytes(`{"generation":${generation}}`));
}

test("a replica receives every object after the primary, segments and pages before their manifest, never the lease", async () => {
  const primary = fresh();
  const replica = controlled(fresh());
  const mirror = new MirroredStore(primary, [replica.store], { dbKey: DB });
  await mirror.put(leaseKey(DB), bytes("lease"), { ifNoneMatch: "*" });
  await mirror.put("other.duckdb/latest.json", bytes("not this database"));
  for (const generation of [1, 2, 3]) await publish(mirror, generation);
  expect(await mirror.drained(10_000)).toBe(true);
  const expected = (await keysOf(primary)).filter((key) => key !== leaseKey(DB));
  expect(await keysOf(replica.store)).toEqual(expected);
  expect(replica.puts).not.toContain(leaseKey(DB));
  expect(replica.puts).not.toContain("other.duckdb/latest.json");
  for (const generation of [1, 2, 3]) {
    const manifestAt = replica.puts.indexOf(manifestKey(DB, generation));
    for (const sequence of [0, 1, 2]) {
      expect(replica.puts.indexOf(segmentKey(DB, generation, "a", sequence))).toBeLessThan(manifestAt);
    }
    expect(replica.puts.indexOf(pageKey(DB, generation, "a", 0))).toBeLessThan(manifestAt);
    expect(replica.puts.indexOf(frameKey(DB, generation, 1))).toBeGreaterThan(manifestAt);
  }
  // Deletes follow, in order.
  await mirror.deleteMany([manifestKey(DB, 1), frameKey(DB, 1, 1)]);
  expect(await mirror.drained(10_000)).toBe(true);
  expect(await replica.store.head(manifestKey(DB, 1))).toBeUndefined();
  expect(new TextDecoder().decode(await replica.store.get(latestKey(DB)))).toBe('{"generation":3}');
  expect(mirror.replicaStatus()[0]).toMatchObject({ state: "caught-up", objectsBehind: 0, bytesBehind: 0, lagMs: 0 });
  await mirror.close();
});

test("a stalled replica costs the writer nothing; a refusing one shows lag and its error, then catches up", async () => {
  const primary = fresh();
  const replica = controlled(fresh());
  const logged: string[] = [];
  const mirror = new MirroredStore(primary, [replica.store], { dbKey: DB, retryDelayBaseMs: 5, retryDelayCapMs: 20,
    log: (message) => logged.push(message) });
  expect(await mirror.drained(10_000)).toBe(true); // the start's reconcile pass
  replica.set("stall");
  const started = performance.now();
  for (const generation of [1, 2]) await publish(mirror, generation);
  // Every put answered with the primary; nothing waited for the replica (a stall has no end).
  expect(performance.now() - started).toBeLessThan(5000);
  expect((await keysOf(replica.store)).length).toBe(0);
  let status = mirror.replicaStatus()[0];
  expect(status.objectsBehind).toBeGreaterThan(0);
  expect(status.bytesBehind).toBeGreaterThan(0);
  replica.set("refuse");
  while (mirror.replicaStatus()[0].state !== "failing") await Bun.sleep(5);
  status = mirror.replicaStatus()[0];
  expect(status.lastError).toContain("injected: the replica refuses");
  expect(status.lastError).toContain(replica.store.url);
  expect(status.errors).toBeGreaterThan(0);
  expect(status.lagMs).toBeGreaterThan(0);
  await publish(mirror, 3);
  expect(mirror.replicaStatus()[0].objectsBehind).toBe(7 * 3);
  replica.set("up");
  expect(await mirror.drained(10_000)).toBe(true);
  expect(await keysOf(replica.store)).toEqual(await keysOf(primary));
  expect(mirror.replicaStatus()[0].state).toBe("caught-up");
  expect(logged.some((line) => /answering again after/.test(line))).toBe(true);
  await mirror.close();
});

test("a backlog past its bound is dropped and the reconcile pass copies what the replica lacks", async () => {
  const primary = fresh();
  const replica = controlled(fresh());
  const mirror = new MirroredStore(primary, [replica.store], { dbKey: DB, keysQueuedMax: 5, bytesHeldMax: 0,
    retryDelayBaseMs: 5, retryDelayCapMs: 20 });
  expect(await mirror.drained(10_000)).toBe(true);
  replica.set("refuse");
  for (const generation of [1, 2, 3]) await publish(mirror, generation);
  expect(mirror.replicaStatus()[0].backlogsDropped).toBeGreaterThan(0);
  replica.set("up");
  expect(await mirror.drained(10_000)).toBe(true);
  expect(await keysOf(replica.store)).toEqual(await keysOf(primary));
  for (const key of await keysOf(primary)) {
    expect(await replica.store.get(key)).toEqual(await primary.get(key));
  }
  await mirror.close();
});

test("reconcile copies only what the replica lacks or holds at another size, and nothing the second time", async () => {
  const primary = fresh();
  for (const generation of [1, 2, 3]) await publish(primary, generation);
  await primary.put(leaseKey(DB), bytes("lease"));
  const replica = controlled(fresh());
  const first = await reconcileReplica({ primary, replica: replica.store, dbKey: DB, concurrencyMax: 4 });
  expect(first.objectsCopied).toBe(7 * 3 - 2); // latest.json once, the lease never
  expect(replica.puts.length).toBe(first.objectsCopied);
  expect(replica.puts).not.toContain(leaseKey(DB));
  // Manifests after every segment and page; frames after the manifests; the hint last.
  const lastData = Math.max(...replica.puts.map((key, i) => /segments|blockmaps/.test(key) ? i : -1));
  const manifests = replica.puts.map((key, i) => key.includes("/manifests/") ? i : -1).filter((i) => i >= 0);
  expect(Math.min(...manifests)).toBeGreaterThan(lastData);
  expect(replica.puts.at(-1)).toBe(latestKey(DB));
  replica.puts.length = 0;
  const again = await reconcileReplica({ primary, replica: replica.store, dbKey: DB, concurrencyMax: 4 });
  expect(again.objectsCopied).toBe(0);
  expect(again.objectsHeld).toBe(first.objectsCopied);
  expect(replica.puts).toEqual([]);
  // Two objects lost on the replica, one truncated: exactly those three are sent.
  await replica.store.delete(segmentKey(DB, 2, "a", 1));
  await replica.store.delete(frameKey(DB, 3, 1));
  await replica.store.put(manifestKey(DB, 1), bytes("short"));
  replica.puts.length = 0;
  const third = await reconcileReplica({ primary, replica: replica.store, dbKey: DB, concurrencyMax: 4 });
  expect(third.objectsCopied).toBe(3);
  expect(replica.puts.sort()).toEqual([frameKey(DB, 3, 1), manifestKey(DB, 1), segmentKey(DB, 2, "a", 1)].sort());
});

test("MirroredStore refuses a replica given twice, or the primary as its own replica", () => {
  const primary = fresh();
  const replica = fresh();
  expect(() => new MirroredStore(primary, [primary], { dbKey: DB })).toThrow("given twice (or is the primary)");
  expect(() => new MirroredStore(primary, [], { dbKey: DB })).toThrow("at least one replica");
  expect(() => new MirroredStore(primary, [replica], { dbKey: DB, concurrencyMax: 0 })).toThrow(RangeError);
});
