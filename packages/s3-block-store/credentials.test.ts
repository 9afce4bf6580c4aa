import { expect, test } from "bun:test";
import { CredentialCache, type S3Credentials } from "./_credentials.ts";
import { requestUrl, resolveAddress } from "./_s3_address.ts";
import { S3BlockStore, StoreConfigError, StoreUnavailableError } from "./mod.ts";

const MINUTE_MS = 60_000;

/** A provider that hands out numbered keys expiring `lifetimeMs` after the fake clock's now. */
function numbered(clock: { nowMs: number }, lifetimeMs: number) {
  const calls: { forceRefresh?: boolean }[] = [];
  let failing = false;
  const provider = async (options?: { forceRefresh?: boolean }): Promise<S3Credentials> => {
    calls.push({ forceRefresh: options?.forceRefresh });
    await Promise.resolve();
    if (failing) throw new Error("the metadata service is down");
    return { accessKeyId: `AK${calls.length}`, secretAccessKey: "SK", expiration: new Date(clock.nowMs + lifetimeMs) };
  };
  return { provider, calls, fail: (value: boolean) => failing = value };
}

test("CredentialCache shares one fetch among concurrent callers and holds the keys until they are due", async () => {
  const clock = { nowMs: 1_000_000 };
  const { provider, calls } = numbered(clock, 60 * MINUTE_MS);
  const cache = new CredentialCache(provider, { now: () => clock.nowMs });
  const keys = await Promise.all(Array.from({ length: 10 }, () => cache.current()));
  expect(new Set(keys.map((key) => key.accessKeyId))).toEqual(new Set(["AK1"]));
  clock.nowMs += 54 * MINUTE_MS; // 6 minutes left: not due yet (5 minutes before expiry)
  expect((await cache.current()).accessKeyId).toBe("AK1");
  clock.nowMs += 2 * MINUTE_MS; // 4 minutes left: due
  expect((await cache.current()).accessKeyId).toBe("AK2");
  expect(calls).toEqual([{ forceRefresh: false }, { forceRefresh: true }]);
});

test("CredentialCache refreshes short-lived keys at half their life, not on every call", async () => {
  const clock = { nowMs: 0 };
  const { provider, calls } = numbered(clock, 6000);
  const cache = new CredentialCache(provider, { now: () => clock.nowMs });
  await cache.current();
  clock.nowMs = 2999;
  expect((await cache.current()).accessKeyId).toBe("AK1");
  clock.nowMs = 3000;
  expect((await cache.current()).accessKeyId).toBe("AK2");
  expect(calls.length).toBe(2);
});

test("CredentialCache keeps valid keys when a refresh fails, and fails by name once they expired", async () => {
  const clock = { nowMs: 0 };
  const { provider, calls, fail } = numbered(clock, 10 * MINUTE_MS);
  const cache = new CredentialCache(provider, { now: () => clock.nowMs,
    translateError: (error, held) => new StoreUnavailableError(`refresh failed (held ${held})`, error) });
  await cache.current();
  fail(true);
  clock.nowMs = 6 * MINUTE_MS; // due, still valid for 4 minutes
  expect((await cache.current()).accessKeyId).toBe("AK1");
  expect((await cache.current()).accessKeyId).toBe("AK1"); // within the retry pause: not asked again
  expect(calls.length).toBe(2);
  clock.nowMs += 1000;
  await cache.current();
  expect(calls.length).toBe(3);
  clock.nowMs = 10 * MINUTE_MS; // expired
  await expect(cache.current()).rejects.toThrow("refresh failed (held true)");
  fail(false);
  clock.nowMs += 1;
  expect((await cache.current()).accessKeyId).toMatch(/^AK\d+$/);
});

test("CredentialCache.refreshAfterRejection() fetches once for the refused keys, not again for a newer set", async () => {
  const clock = { nowMs: 0 };
  const { provider, calls } = numbered(clock, 60 * MINUTE_MS);
  const cache = new CredentialCache(provider, { now: () => clock.nowMs });
  const refused = await cache.current();
  const [a, b] = await Promise.all([cache.refreshAfterRejection(refused), cache.refreshAfterRejection(refused)]);
  expect([a.accessKeyId, b.accessKeyId]).toEqual(["AK2", "AK2"]);
  expect((await cache.refreshAfterRejection(refused)).accessKeyId).toBe("AK2");
  expect(calls.length).toBe(2);
});

test("AWS S3's own endpoint is addressed virtual-hosted, a given endpoint or a dotted bucket path-style", () => {
  const aws = resolveAddress({ bucket: "backups", region: "eu-west-1" });
  expect(requestUrl(aws, "backups", "haduck/a b").href).toBe("https://backups.s3.eu-west-1.amazonaws.com/haduck/a%20b");
  expect(requestUrl(aws, "backups").href).toBe("https://backups.s3.eu-west-1.amazonaws.com/");
  const dotted = resolveAddress({ bucket: "my.backups", region: "us-east-1" });
  expect(requestUrl(dotted, "my.backups", "k").href).toBe("https://s3.us-east-1.amazonaws.com/my.backups/k");
  const given = resolveAddress({ bucket: "backups", region: "us-east-1", endpoint: "http://127.0.0.1:9000/" });
  expect(requestUrl(given, "backups", "k").href).toBe("http://127.0.0.1:9000/backups/k");
  expect(requestUrl(resolveAddress({ bucket: "backups", region: "cn-north-1", forcePathStyle: true }), "backups", "k")
    .href).toBe("https://s3.cn-north-1.amazonaws.com.cn/backups/k");
  expect(() => resolveAddress({ bucket: "b", region: "us-east-1", endpoint: "ftp://x" })).toThrow(TypeError);
});

test("S3BlockStore without an endpoint signs for AWS S3 in its region, and names the bucket's region when it differs", async () => {
  const seen: string[] = [];
  const store = new S3BlockStore({ bucket: "backups", region: "us-east-1", accessKey: "AK", secretKey: "SK",
    retry: { attemptsMax: 1 }, fetch: (async (url: string, init: RequestInit) => {
      seen.push(`${url} ${new Headers(init.headers).get("authorization")?.includes("/us-east-1/s3/")}`);
      return new Response("<Error><Code>PermanentRedirect</Code></Error>", { status: 301,
        headers: { "x-amz-bucket-region": "eu-central-1" } });
    }) as unknown as typeof fetch });
  const error = await store.get("k").catch((e) => e);
  expect(seen).toEqual(["https://backups.s3.us-east-1.amazonaws.com/haduck/k true"]);
  expect(error).toBeInstanceOf(StoreConfigError);
  expect(error.message).toContain("the bucket is in region eu-central-1, not us-east-1; set AWS_REGION=eu-central-1");
});

test("S3BlockStore takes fixed keys or a provider, not both or neither", () => {
  const provider = async () => ({ accessKeyId: "AK", secretAccessKey: "SK" });
  expect(() => new S3BlockStore({ bucket: "backups" })).toThrow("either accessKey and secretKey, or a credentials");
  expect(() => new S3BlockStore({ bucket: "backups", accessKey: "AK", secretKey: "SK", credentials: provider }))
    .toThrow(TypeError);
  expect(() => new S3BlockStore({ bucket: "backups", accessKey: "AK" })).toThrow("non-empty secretKey");
  expect(new S3BlockStore({ bucket: "backups", credentials: provider }).credentialCache).toBeDefined();
});
