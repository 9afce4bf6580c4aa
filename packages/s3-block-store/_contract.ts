/**
 * @module
 * The one contract every `BlockStore` keeps, as a test suite that any runtime's test runner can
 * register (`bun:test`'s `test`, or `Deno.test`). It uses only `node:assert`.
 */
import assert from "node:assert/strict";
import { BlockNotFoundError, ChecksumMismatchError, PreconditionFailedError } from "./_errors.ts";
import { sha256Hex } from "./_digest.ts";
import type { BlockStore } from "./_types.ts";

export type RegisterTest = (name: string, fn: () => Promise<void>) => void;

/** Random bytes; getRandomValues() gives at most 64 KiB per call. */
function randomBytes(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i += 65536) crypto.getRandomValues(bytes.subarray(i, Math.min(length, i + 65536)));
  return bytes;
}

const text = (value: string) => new TextEncoder().encode(value);
const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

async function collect(iterable: AsyncIterable<{ key: string }>): Promise<string[]> {
  const keys: string[] = [];
  for await (const info of iterable) keys.push(info.key);
  return keys;
}

async function settle<T>(promises: Promise<T>[]): Promise<{ won: number; lost: number; errors: unknown[] }> {
  const results = await Promise.allSettled(promises);
  const errors = results.filter((r) => r.status === "rejected").map((r) => (r as PromiseRejectedResult).reason);
  const lost = errors.filter((error) => error instanceof PreconditionFailedError).length;
  return { won: results.length - errors.length, lost, errors: errors.filter((e) => !(e instanceof PreconditionFailedError)) };
}

/** Registers the contract tests for the store that `makeStore` returns (a fresh, empty one per test). */
export function blockStoreContract(name: string, register: RegisterTest, makeStore: () => Promise<BlockStore>): void {
  const t = (title: string, fn: (store: BlockStore) => Promise<void>) =>
    register(`${name}: ${title}`, async () => fn(await makeStore()));

  t("put() then get() returns the same bytes, and head() the same ETag", async (store) => {
    const body = randomBytes(256 * 1024);
    const { etag } = await store.put("blocks/0001", body);
    assert.deepEqual(await store.get("blocks/0001"), body);
    const info = await store.head("blocks/0001");
    assert.equal(info?.sizeBytes, body.byteLength);
    assert.equal(info?.etag, etag);
  });

  t("get() of a missing key throws BlockNotFoundError and head() returns undefined", async (store) => {
    await assert.rejects(store.get("missing/key"), (error) => error instanceof BlockNotFoundError &&
      error.code === "NOT_FOUND");
    assert.equal(await store.head("missing/key"), undefined);
  });

  t("get() with a range returns exactly those bytes", async (store) => {
    const body = randomBytes(10_000);
    await store.put("ranged", body);
    assert.deepEqual(await store.get("ranged", { range: { offsetBytes: 1234, lengthBytes: 4321 } }),
      body.subarray(1234, 1234 + 4321));
    await assert.rejects(store.get("ranged", { range: { offsetBytes: 0, lengthBytes: 0 } }), RangeError);
  });

  t("get() verifies a caller-supplied sha256 and names the object on mismatch", async (store) => {
    const body = text("checksummed");
    await store.put("sum", body);
    assert.deepEqual(await store.get("sum", { sha256: sha256Hex(body) }), body);
    await assert.rejects(store.get("sum", { sha256: sha256Hex("other") }), (error) =>
      error instanceof ChecksumMismatchError && error.code === "CHECKSUM_MISMATCH" && error.message.includes("sum"));
  });

  t("create-only put() refuses an existing key and leaves it unchanged", async (store) => {
    await store.put("manifest", text("first"), { ifNoneMatch: "*" });
    await assert.rejects(store.put("manifest", text("second"), { ifNoneMatch: "*" }), (error) =>
      error instanceof PreconditionFailedError && error.code === "PRECONDITION_FAILED");
    assert.equal(decode(await store.get("manifest")), "first");
  });

  t("16 concurrent create-only writers: exactly one wins, and its bytes are stored", async (store) => {
    const bodies = Array.from({ length: 16 }, (_, i) => text(`writer ${i}`));
    const outcomes = await Promise.allSettled(bodies.map((body) => store.put("race", body, { ifNoneMatch: "*" })));
    const winners = outcomes.flatMap((outcome, i) => outcome.status === "fulfilled" ? [i] : []);
    const others = outcomes.filter((o) => o.status === "rejected" &&
      !(o.reason instanceof PreconditionFailedError));
    assert.deepEqual(others, []);
    assert.equal(winners.length, 1);
    assert.deepEqual(await store.get("race"), bodies[winners[0]]);
  });

  t("compare-and-swap put() needs the current ETag", async (store) => {
    const { etag } = await store.put("lease", text("v1"), { ifNoneMatch: "*" });
    await assert.rejects(store.put("lease", text("stale"), { ifMatch: "0123456789abcdef" }), PreconditionFailedError);
    const { etag: etag2 } = await store.put("lease", text("v2"), { ifMatch: etag });
    assert.notEqual(etag2, etag);
    await assert.rejects(store.put("lease", text("v3"), { ifMatch: etag }), PreconditionFailedError);
    assert.equal(decode(await store.get("lease")), "v2");
  });

  t("8 concurrent compare-and-swap writers on one ETag: exactly one wins", async (store) => {
    const { etag } = await store.put("cas", text("base"));
    const bodies = Array.from({ length: 8 }, (_, i) => text(`cas ${i}`));
    const outcome = await settle(bodies.map((body) => store.put("cas", body, { ifMatch: etag })));
    assert.deepEqual(outcome.errors, []);
    assert.equal(outcome.won, 1);
    assert.equal(outcome.lost, 7);
    const stored = decode(await store.get("cas"));
    assert.ok(bodies.some((body) => decode(body) === stored), `stored ${stored} is no writer's body`);
  });

  t("list() returns keys under a prefix in order, across pages, after startAfter", async (store) => {
    const keys = ["gen/0003", "gen/0001", "gen/0002", "gen/0005", "gen/0004", "other/0001"];
    await Promise.all(keys.map((key) => store.put(key, text(key))));
    assert.deepEqual(await collect(store.list("gen/")), ["gen/0001", "gen/0002", "gen/0003", "gen/0004", "gen/0005"]);
    assert.deepEqual(await collect(store.list("gen/", { startAfter: "gen/0003" })), ["gen/0004", "gen/0005"]);
    assert.deepEqual(await collect(store.list("nothing/")), []);
  });

  t("delete() and deleteMany() remove objects and ignore missing ones", async (store) => {
    await Promise.all(["d/1", "d/2", "d/3"].map((key) => store.put(key, text(key))));
    await store.delete("d/1");
    await store.delete("d/never");
    await store.deleteMany(["d/2", "d/3", "d/never"]);
    assert.deepEqual(await collect(store.list("d/")), []);
  });

  t("a large object round-trips byte for byte", async (store) => {
    const body = randomBytes(11 * 1024 * 1024 + 17);
    await store.put("large/object", body);
    const read = await store.get("large/object");
    assert.equal(sha256Hex(read), sha256Hex(body));
  });

  t("probeCapabilities() finds create-only and compare-and-swap enforced", async (store) => {
    assert.deepEqual(await store.probeCapabilities(), { createOnly: true, compareAndSwap: true });
  });

  t("invalid keys are refused with TypeError", async (store) => {
    for (const key of ["", "/abs", "a/../b", "a//b", "./a", "a\u0000b"]) {
      await assert.rejects(store.put(key, text("x")), TypeError);
    }
  });
}
