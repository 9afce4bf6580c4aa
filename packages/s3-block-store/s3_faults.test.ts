/**
 * The S3 store behind a fault-injecting proxy in front of radosgw: under 503/429 bursts, dropped
 * connections, truncated bodies, latency and a blackhole, every call either succeeds with the right
 * bytes or fails with the right typed error. It never returns wrong bytes.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { freshBucket } from "../../tests/harness/s3.ts";
import { failFirst, type Fault, type FaultProxy, startFaultProxy } from "../../tests/harness/fault_proxy.ts";
import {
  PreconditionFailedError,
  S3BlockStore,
  type S3BlockStoreOptions,
  StoreError,
  StoreTimeoutError,
  StoreUnavailableError,
} from "./mod.ts";

let proxy: FaultProxy;
let bucket: string;
let direct: S3BlockStore;
let s3Options: Omit<S3BlockStoreOptions, "bucket" | "endpoint">;

beforeAll(async () => {
  const fresh = await freshBucket("faults");
  bucket = fresh.bucket;
  direct = fresh.store;
  s3Options = { accessKey: fresh.s3.accessKey, secretKey: fresh.s3.secretKey, region: fresh.s3.region };
  proxy = await startFaultProxy(fresh.s3.endpoint);
});

afterAll(async () => {
  await proxy?.close();
});

/** A store through the proxy, with fast retries so the tests do not wait on backoff. */
function proxied(retry: Partial<S3BlockStoreOptions["retry"]> = {}): S3BlockStore {
  return new S3BlockStore({ ...s3Options, bucket, endpoint: proxy.endpoint, prefix: "haduck",
    retry: { delayBaseMs: 5, delayCapMs: 40, attemptTimeoutMs: 5000, ...retry } });
}

const bytes = (length: number, seed: number) => Uint8Array.from({ length }, (_, i) => (i * 31 + seed) & 0xff);
const uniqueKey = (label: string) => `faults/${label}-${crypto.randomUUID().slice(0, 8)}`;
const isPut = (request: { method: string; url: string }) => request.method === "PUT";
const isGet = (request: { method: string; url: string }) => request.method === "GET" && !request.url.includes("list-type");

test("S3BlockStore.put() retries a burst of 503s and succeeds", async () => {
  const store = proxied();
  const key = uniqueKey("503");
  proxy.setRule(failFirst(3, { kind: "status", status: 503 }, isPut));
  await store.put(key, bytes(256 * 1024, 1));
  expect(store.stats.retries).toBe(3);
  expect(await direct.get(key)).toEqual(bytes(256 * 1024, 1));
});

test("S3BlockStore.get() retries a burst of 429s and returns the right bytes", async () => {
  const store = proxied();
  const key = uniqueKey("429");
  await direct.put(key, bytes(100_000, 2));
  proxy.setRule(failFirst(4, { kind: "status", status: 429 }, isGet));
  expect(await store.get(key)).toEqual(bytes(100_000, 2));
  expect(store.stats.retries).toBe(4);
});

test("S3BlockStore gives up on a 503 storm with StoreUnavailableError naming the status and the attempts", async () => {
  const store = proxied({ attemptsMax: 4 });
  const key = uniqueKey("storm");
  proxy.setRule(failFirst(1000, { kind: "status", status: 503 }));
  const error = await store.put(key, bytes(1000, 3)).catch((e) => e);
  proxy.setRule(() => ({ kind: "pass" }));
  expect(error).toBeInstanceOf(StoreUnavailableError);
  expect(error.code).toBe("UNAVAILABLE");
  expect(error.message).toContain("503");
  expect(error.message).toContain("4 attempts");
  expect(await direct.head(key)).toBeUndefined();
});

test("S3BlockStore never retries a 4xx that is not 429", async () => {
  const store = proxied();
  proxy.setRule(failFirst(1, { kind: "status", status: 400 }));
  const error = await store.put(uniqueKey("400"), bytes(10, 4)).catch((e) => e);
  expect(error).toBeInstanceOf(StoreError);
  expect(error.retryable).toBe(false);
  expect(store.stats.retries).toBe(0);
});

test("S3BlockStore.put() survives a connection dropped before and after the server acted", async () => {
  const store = proxied();
  for (const kind of ["reset-before-request", "reset-before-response"] as const) {
    const key = uniqueKey(kind);
    proxy.setRule(failFirst(2, { kind }, isPut));
    await store.put(key, bytes(50_000, 5));
    expect(await direct.get(key)).toEqual(bytes(50_000, 5));
  }
});

test("a create-only put whose answer was lost reads back and reports its own write as a success", async () => {
  const store = proxied();
  const key = uniqueKey("lost-answer");
  const forwardedBefore = proxy.forwarded.length;
  proxy.setRule(failFirst(1, { kind: "reset-before-response" }, isPut));
  await store.put(key, bytes(4096, 6), { ifNoneMatch: "*" });
  // The server got the PUT, and more than once: Bun's fetch resends a request whose reused
  // connection dropped, and the resend meets our own object with 412. The store reads back.
  expect(proxy.forwarded.slice(forwardedBefore).filter(isPut).length).toBeGreaterThanOrEqual(1);
  expect(await direct.get(key)).toEqual(bytes(4096, 6));
});

test("a create-only put whose answer was lost, on a key another writer took, fails with PreconditionFailedError", async () => {
  const store = proxied();
  const key = uniqueKey("taken");
  await direct.put(key, bytes(4096, 7));
  proxy.setRule(failFirst(1, { kind: "reset-before-response" }, isPut));
  const error = await store.put(key, bytes(4096, 8), { ifNoneMatch: "*" }).catch((e) => e);
  expect(error).toBeInstanceOf(PreconditionFailedError);
  expect(await direct.get(key)).toEqual(bytes(4096, 7));
});

test("a compare-and-swap put behind a 503 reads back instead of retrying blindly", async () => {
  const store = proxied();
  const key = uniqueKey("cas");
  const { etag } = await direct.put(key, bytes(100, 9));
  proxy.setRule(failFirst(1, { kind: "reset-before-response" }, isPut));
  await store.put(key, bytes(100, 10), { ifMatch: etag });
  expect(await direct.get(key)).toEqual(bytes(100, 10));
  // The same stale ETag must now lose, also behind a failure.
  proxy.setRule(failFirst(1, { kind: "status", status: 503 }, isPut));
  const error = await store.put(key, bytes(100, 11), { ifMatch: etag }).catch((e) => e);
  expect(error).toBeInstanceOf(PreconditionFailedError);
  expect(await direct.get(key)).toEqual(bytes(100, 10));
});

test("S3BlockStore.get() retries a body cut mid-way and never returns the partial bytes", async () => {
  const store = proxied();
  const key = uniqueKey("truncate");
  await direct.put(key, bytes(256 * 1024, 12));
  proxy.setRule(failFirst(2, { kind: "truncate", bodyBytes: 1000 }, isGet));
  expect(await store.get(key)).toEqual(bytes(256 * 1024, 12));
  expect(proxy.counts.truncate).toBeGreaterThanOrEqual(2);
  proxy.setRule((request) => isGet(request) ? { kind: "truncate", bodyBytes: 1000 } : { kind: "pass" });
  const error = await proxied({ attemptsMax: 3 }).get(key).catch((e) => e);
  proxy.setRule(() => ({ kind: "pass" }));
  expect(error).toBeInstanceOf(StoreUnavailableError);
  expect(error.message).toContain("3 attempts");
});

test("a ranged get cut mid-body is retried and returns exactly the range", async () => {
  const store = proxied();
  const key = uniqueKey("range");
  await direct.put(key, bytes(300_000, 13));
  proxy.setRule(failFirst(1, { kind: "truncate", bodyBytes: 10 }, isGet));
  const part = await store.get(key, { range: { offsetBytes: 100_000, lengthBytes: 50_000 } });
  expect(part).toEqual(bytes(300_000, 13).subarray(100_000, 150_000));
});

test("latency below the attempt timeout is only slower; above it, a blackhole ends in StoreTimeoutError", async () => {
  const key = uniqueKey("latency");
  proxy.setRule(() => ({ kind: "pass", latencyMs: 100 }));
  await proxied({ attemptTimeoutMs: 2000 }).put(key, bytes(1000, 14));
  expect(await direct.get(key)).toEqual(bytes(1000, 14));
  proxy.setRule(() => ({ kind: "blackhole" }));
  const started = performance.now();
  const error = await proxied({ attemptTimeoutMs: 300, attemptsMax: 2 }).get(key).catch((e) => e);
  proxy.setRule(() => ({ kind: "pass" }));
  expect(error).toBeInstanceOf(StoreTimeoutError);
  expect(error.code).toBe("TIMEOUT");
  expect(performance.now() - started).toBeLessThan(10_000);
});

test("under a random mix of faults every call returns the right bytes or a typed error", async () => {
  let seed = 42;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  const faults: Fault[] = [{ kind: "pass" }, { kind: "status", status: 503 }, { kind: "status", status: 429 },
    { kind: "reset-before-request" }, { kind: "reset-before-response" }, { kind: "truncate", bodyBytes: 7 },
    { kind: "pass", latencyMs: 20 }];
  proxy.setRule(() => (random() < 0.5 ? { kind: "pass" } : faults[Math.floor(random() * faults.length)]));
  const store = proxied({ attemptsMax: 4 });
  const written = new Map<string, Uint8Array>();
  let typedErrors = 0;
  for (let i = 0; i < 60; i++) {
    const key = `faults/mix/${i % 12}`;
    try {
      if (random() < 0.5 || !written.has(key)) {
        const body = bytes(1000 + i * 97, i);
        await store.put(key, body);
        written.set(key, body);
      } else {
        expect(await store.get(key)).toEqual(written.get(key)!);
      }
    } catch (error) {
      expect(error).toBeInstanceOf(StoreError);
      typedErrors++;
      written.delete(key); // a failed put leaves the old or the new bytes: either is a whole object
    }
  }
  proxy.setRule(() => ({ kind: "pass" }));
  for (const [key, body] of written) expect(await direct.get(key)).toEqual(body);
  expect(typedErrors).toBeLessThan(60);
});
