import { expect, test } from "bun:test";
import { inspect } from "node:util";
import { freshBucket, testS3 } from "../../tests/harness/s3.ts";
import { blockStoreContract } from "./_contract.ts";
import {
  AccessDeniedError,
  NoSuchBucketError,
  openStore,
  S3BlockStore,
  s3OptionsFromEnv,
  sha256Hex,
  StoreConfigError,
  StoreUnavailableError,
} from "./mod.ts";

blockStoreContract("S3BlockStore (radosgw)", test, async () =>
  (await freshBucket("contract", {
    listPageSize: 2,
    multipartThresholdBytes: 5 * 1024 * 1024,
    multipartPartSizeBytes: 5 * 1024 * 1024,
  })).store);

test("S3BlockStore with a wrong secret gets AccessDeniedError that says to check the keys", async () => {
  const { bucket, s3 } = await freshBucket("denied");
  const store = new S3BlockStore({ ...s3, bucket, secretKey: "wrong-secret" });
  const error = await store.put("x", new Uint8Array([1])).catch((e) => e);
  expect(error).toBeInstanceOf(AccessDeniedError);
  expect(error.code).toBe("ACCESS_DENIED");
  expect(error.message).toContain("HADUCK_S3_SECRET_KEY");
  expect(error.message).not.toContain("wrong-secret");
});

test("S3BlockStore on a missing bucket gets NoSuchBucketError", async () => {
  const s3 = await testS3();
  const store = new S3BlockStore({ ...s3, bucket: "no-such-bucket-haduck" });
  const error = await store.put("x", new Uint8Array([1])).catch((e) => e);
  expect(error).toBeInstanceOf(NoSuchBucketError);
  expect(error.message).toContain("no-such-bucket-haduck");
});

test("S3BlockStore never shows its secret in toString, JSON, inspect or errors", async () => {
  const { store, s3 } = await freshBucket("secret");
  for (const shown of [String(store), JSON.stringify(store), inspect(store, { depth: 5 }), store.url]) {
    expect(shown).not.toContain(s3.secretKey);
  }
  const error = await store.get("missing").catch((e) => e);
  expect(`${error.message} ${inspect(error)}`).not.toContain(s3.secretKey);
});

test("S3BlockStore multipart upload leaves no upload in progress", async () => {
  const { store } = await freshBucket("multipart", {
    multipartThresholdBytes: 5 * 1024 * 1024,
    multipartPartSizeBytes: 5 * 1024 * 1024,
  });
  const body = new Uint8Array(12 * 1024 * 1024).fill(7);
  await store.put("big", body);
  const answer = await store.request({ method: "GET", query: { uploads: "" }, operation: "list uploads" });
  expect(new TextDecoder().decode(answer.body)).not.toContain("<Upload>");
  expect((await store.head("big"))?.sizeBytes).toBe(body.byteLength);
});

test("PUTs sign their payload hash only where the transport does not protect the body", () => {
  const signs = (endpoint: string, signPayload?: boolean) =>
    new S3BlockStore({ bucket: "b", endpoint, accessKey: "a", secretKey: "s", signPayload }).signPayload;
  expect(signs("http://10.1.2.3:9000")).toBe(true);
  expect(signs("http://s3.internal:80")).toBe(true);
  expect(signs("https://s3.internal")).toBe(false);
  expect(signs("http://127.0.0.1:9000")).toBe(false);
  expect(signs("http://localhost:9000")).toBe(false);
  expect(signs("http://[::1]:9000")).toBe(false);
  expect(signs("http://127.0.0.1:9000", true)).toBe(true);
  expect(signs("http://10.1.2.3:9000", false)).toBe(false);
});

test("a signed payload hash is what the PUT carries, and radosgw refuses a body that does not match it", async () => {
  const sent: string[] = [];
  const capture: typeof fetch = Object.assign((input: Request | string | URL, init?: RequestInit) => {
    if (init?.method === "PUT") sent.push(new Headers(init.headers).get("x-amz-content-sha256") ?? "");
    return fetch(input, init);
  }, { preconnect: fetch.preconnect });
  const body = new TextEncoder().encode("signed body");
  const unsigned = (await freshBucket("unsigned", { fetch: capture })).store;
  await unsigned.put("a", body);
  expect(sent.pop()).toBe("UNSIGNED-PAYLOAD");
  expect(await unsigned.get("a")).toEqual(body);

  const { store } = await freshBucket("signed", { fetch: capture, signPayload: true, retry: { attemptsMax: 1 } });
  await store.put("a", body);
  expect(sent.pop()).toBe(sha256Hex(body));
  const wrong = sha256Hex(new TextEncoder().encode("another body"));
  const error = await store.put("b", body, { sha256: wrong }).catch((e) => e);
  expect(error).toBeInstanceOf(StoreUnavailableError);
  expect(error.message).toContain("XAmzContentSHA256Mismatch");
  expect(await store.head("b")).toBeUndefined(); // refused, never stored
});

test("s3OptionsFromEnv() lists every missing variable in one message", () => {
  const error = (() => {
    try {
      s3OptionsFromEnv({ HADUCK_S3_BUCKET: "Bad_Bucket", HADUCK_S3_ACCESS_KEY: "AK", AWS_ENDPOINT_URL: "s3.local" });
    } catch (e) {
      return e as Error;
    }
  })();
  expect(error).toBeInstanceOf(StoreConfigError);
  for (const text of ["HADUCK_S3_SECRET_KEY is not set (HADUCK_S3_ACCESS_KEY is", "not a valid bucket",
    'AWS_ENDPOINT_URL must look like http(s)://host[:port], not "s3.local"']) {
    expect(error!.message).toContain(text);
  }
  expect(() => s3OptionsFromEnv({})).toThrow("HADUCK_S3_BUCKET is not set");
});

test("openStore() takes an s3:// URL's own endpoint and region over the environment's, and refuses other settings", () => {
  const env = { HADUCK_S3_ENDPOINT: "http://127.0.0.1:1", HADUCK_S3_ACCESS_KEY: "AK", HADUCK_S3_SECRET_KEY: "SK" };
  const store = openStore("s3://my-bucket/p?endpoint=http://127.0.0.1:2&region=eu-west-1", env) as S3BlockStore;
  expect(store.url).toBe("s3://my-bucket/p");
  expect(String(store.endpoint)).toContain("127.0.0.1:2");
  expect(() => openStore("s3://my-bucket/p?access_key=x", env)).toThrow("only ?endpoint=");
  expect(() => openStore("s3://my-bucket/p?endpoint=ftp://x", env)).toThrow("must look like http(s)://host[:port]");
});

test("openStore() builds an S3 store from s3://bucket/prefix and the environment", () => {
  const store = openStore("s3://my-bucket/some/prefix", {
    HADUCK_S3_ENDPOINT: "http://127.0.0.1:1",
    HADUCK_S3_ACCESS_KEY: "AK",
    HADUCK_S3_SECRET_KEY: "SK",
  });
  expect(store.url).toBe("s3://my-bucket/some/prefix");
});

test("openStore() without an environment argument reads the process's (HADUCK_S3_* and AWS_*)", () => {
  const saved = { ...process.env };
  try {
    Object.assign(process.env, { HADUCK_S3_ACCESS_KEY: "AK", HADUCK_S3_SECRET_KEY: "SK",
      AWS_ENDPOINT_URL_S3: "http://127.0.0.1:7" });
    delete process.env.HADUCK_S3_ENDPOINT;
    expect(openStore("s3://my-bucket/p").toString()).toBe("S3BlockStore(s3://my-bucket/p at http://127.0.0.1:7)");
  } finally {
    for (const name of ["HADUCK_S3_ACCESS_KEY", "HADUCK_S3_SECRET_KEY", "AWS_ENDPOINT_URL_S3", "HADUCK_S3_ENDPOINT"]) {
      if (saved[name] === undefined) delete process.env[name];
      else process.env[name] = saved[name];
    }
  }
});
