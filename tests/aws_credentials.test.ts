/**
 * The AWS credential chain against the real S3 server (radosgw): each source in turn signs real
 * requests (put, get, list succeed; a wrong key is refused): AWS_ACCESS_KEY_ID/SECRET, a session
 * token, AWS_PROFILE in the shared config and credentials files, container credentials and IMDSv2
 * served by local fakes on 127.0.0.1 named through the SDK's own variables, and expiring keys that
 * must be fetched again during a long run. HADUCK_S3_* win over AWS_* without touching any of it,
 * a machine with no source fails fast with one message, and the CLI works with AWS_* alone.
 *
 * The chain reads the process's environment (as the AWS SDK does), so each test sets exactly the
 * variables it means and restores them after.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AccessDeniedError, type BlockStore, openStore, StoreConfigError } from "@haduck/s3-block-store";
import { startFaultProxy } from "./harness/fault_proxy.ts";
import { HADUCK_BIN } from "./harness/cli.ts";
import { createBucketAs, createTestKeys, freshBucket, type TestKey, testS3 } from "./harness/s3.ts";

const dir = mkdtempSync(join(tmpdir(), "haduck-aws-credentials-"));
const emptyHome = join(dir, "empty-home");
mkdirSync(emptyHome);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs `fn` with no AWS_* or HADUCK_S3_* variable but `vars` (HOME an empty dir unless given). */
async function withEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const saved = { ...process.env };
  for (const name of Object.keys(process.env)) {
    if (/^(AWS_|HADUCK_S3_|HADUCK_STORE$)/.test(name)) delete process.env[name];
  }
  Object.assign(process.env, { HOME: emptyHome, ...vars });
  try {
    return await fn();
  } finally {
    for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
    Object.assign(process.env, saved);
  }
}

/** put, get and list through `store`: the keys it signed with were accepted. */
async function roundTrip(store: BlockStore, label: string): Promise<void> {
  const body = new TextEncoder().encode(`signed by ${label}`);
  await store.put(`objects/${label}`, body);
  expect(new TextDecoder().decode(await store.get(`objects/${label}`))).toBe(`signed by ${label}`);
  const keys: string[] = [];
  for await (const object of store.list("objects/")) keys.push(object.key);
  expect(keys).toContain(`objects/${label}`);
}

async function refused(store: BlockStore): Promise<unknown> {
  return await store.put("objects/refused", new Uint8Array([1])).then(() => "accepted", (error) => error);
}

/** What a put meets at the store `url` opens to with `env` in force: "accepted", or the error. */
async function refusedAt(env: Record<string, string>, url: string): Promise<unknown> {
  return await withEnv(env, () => refused(openStore(url, process.env)));
}

/** A fake HTTP server on 127.0.0.1 (ephemeral port) that records every request it answers. */
async function fakeServer(handle: (request: http.IncomingMessage, response: http.ServerResponse) => void) {
  const requests: { method: string; url: string; headers: http.IncomingHttpHeaders }[] = [];
  const server = http.createServer((request, response) => {
    requests.push({ method: request.method ?? "GET", url: request.url ?? "/", headers: request.headers });
    handle(request, response);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }) };
}

/** The JSON both instance metadata and container credentials answer with. */
function credentialsJson(key: TestKey, expiresInMs: number, token = "fake-session-token"): string {
  return JSON.stringify({ Code: "Success", Type: "AWS-HMAC", LastUpdated: new Date().toISOString(),
    AccessKeyId: key.accessKey, SecretAccessKey: key.secretKey, Token: token,
    Expiration: new Date(Date.now() + expiresInMs).toISOString() });
}

/** A fake IMDSv2: a token from PUT /latest/api/token, required by every GET; `next()` picks the keys. */
function fakeImds(next: () => { key: TestKey; expiresInMs: number }) {
  const token = `imds-token-${crypto.randomUUID()}`;
  return fakeServer((request, response) => {
    if (request.method === "PUT" && request.url === "/latest/api/token") {
      return void response.end(token);
    }
    if (request.headers["x-aws-ec2-metadata-token"] !== token) {
      response.statusCode = 401;
      return void response.end();
    }
    if (request.url === "/latest/meta-data/iam/security-credentials/") return void response.end("haduck-role");
    if (request.url === "/latest/meta-data/iam/security-credentials/haduck-role") {
      const { key, expiresInMs } = next();
      return void response.end(credentialsJson(key, expiresInMs));
    }
    response.statusCode = 404;
    response.end();
  });
}

const roleCredentialRequests = (requests: { url: string }[]) =>
  requests.filter((request) => request.url.endsWith("/haduck-role")).length;

test("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY sign real requests, with AWS_ENDPOINT_URL_S3 and AWS_REGION", async () => {
  const { bucket, s3 } = await freshBucket("aws-env");
  const base = { AWS_ENDPOINT_URL_S3: s3.endpoint, AWS_ENDPOINT_URL: "http://127.0.0.1:1", AWS_REGION: s3.region,
    AWS_EC2_METADATA_DISABLED: "true" };
  await withEnv({ ...base, AWS_ACCESS_KEY_ID: s3.accessKey, AWS_SECRET_ACCESS_KEY: s3.secretKey }, async () => {
    const store = openStore(`s3://${bucket}/env`, process.env);
    expect(store.toString()).toContain(s3.endpoint); // the S3-specific endpoint wins over AWS_ENDPOINT_URL
    await roundTrip(store, "env");
  });
  await withEnv({ ...base, AWS_ACCESS_KEY_ID: s3.accessKey, AWS_SECRET_ACCESS_KEY: "wrong-secret" }, async () => {
    const error = await refused(openStore(`s3://${bucket}/env`, process.env));
    expect(error).toBeInstanceOf(AccessDeniedError);
    expect((error as Error).message).toContain("AWS credential chain");
  });
});

test("AWS_SESSION_TOKEN is sent as a signed X-Amz-Security-Token (radosgw ignores it for a plain user)", async () => {
  // Found on radosgw 16.2.15 without STS configured: a request carrying a made-up session token with
  // a plain user's keys succeeds, so the server cannot show the token was sent. A recording proxy does.
  const { bucket, s3 } = await freshBucket("aws-session");
  const proxy = await startFaultProxy(s3.endpoint);
  try {
    await withEnv({ AWS_ENDPOINT_URL: proxy.endpoint, AWS_ACCESS_KEY_ID: s3.accessKey,
      AWS_SECRET_ACCESS_KEY: s3.secretKey, AWS_SESSION_TOKEN: "session-token-of-this-test",
      AWS_EC2_METADATA_DISABLED: "true" }, () => roundTrip(openStore(`s3://${bucket}/session`, process.env), "session"));
    expect(proxy.forwarded.length).toBeGreaterThanOrEqual(3);
    for (const request of proxy.forwarded) {
      expect(request.headers["x-amz-security-token"]).toBe("session-token-of-this-test");
      expect(String(request.headers.authorization)).toMatch(/SignedHeaders=[^,]*x-amz-security-token/);
    }
  } finally {
    await proxy.close();
  }
});

test("AWS_PROFILE picks a profile from the shared credentials file in HOME, or from AWS_CONFIG_FILE", async () => {
  const { bucket, s3 } = await freshBucket("aws-profile");
  const home = join(dir, "profile-home");
  mkdirSync(join(home, ".aws"), { recursive: true });
  writeFileSync(join(home, ".aws/credentials"), `[default]\naws_access_key_id = ${s3.accessKey}\n` +
    `aws_secret_access_key = wrong-secret-in-default\n\n[haduck]\naws_access_key_id = ${s3.accessKey}\n` +
    `aws_secret_access_key = ${s3.secretKey}\n`);
  const base = { AWS_ENDPOINT_URL_S3: s3.endpoint, AWS_EC2_METADATA_DISABLED: "true" };
  await withEnv({ ...base, HOME: home, AWS_PROFILE: "haduck" }, () =>
    roundTrip(openStore(`s3://${bucket}/profile`, process.env), "profile"));
  // The default profile holds a wrong secret: without AWS_PROFILE it is the one used, and refused.
  expect(await refusedAt({ ...base, HOME: home }, `s3://${bucket}/profile`)).toBeInstanceOf(AccessDeniedError);
  // The keys in the config file itself, named by AWS_CONFIG_FILE, with an empty credentials file.
  const config = join(dir, "aws-config");
  const credentials = join(dir, "aws-credentials-empty");
  writeFileSync(config, `[profile from-config]\nregion = ${s3.region}\naws_access_key_id = ${s3.accessKey}\n` +
    `aws_secret_access_key = ${s3.secretKey}\n`);
  writeFileSync(credentials, "");
  await withEnv({ ...base, AWS_CONFIG_FILE: config, AWS_SHARED_CREDENTIALS_FILE: credentials,
    AWS_PROFILE: "from-config" }, () => roundTrip(openStore(`s3://${bucket}/config`, process.env), "config-file"));
});

test("container credentials from AWS_CONTAINER_CREDENTIALS_FULL_URI with an authorization token", async () => {
  const { bucket, s3 } = await freshBucket("aws-container");
  let key: TestKey = { accessKey: s3.accessKey, secretKey: s3.secretKey };
  const fake = await fakeServer((request, response) => {
    if (request.headers.authorization !== "container-token-of-this-test") {
      response.statusCode = 403;
      return void response.end(JSON.stringify({ Code: "AccessDenied", Message: "no token" }));
    }
    response.end(credentialsJson(key, 3_600_000));
  });
  try {
    const env = { AWS_CONTAINER_CREDENTIALS_FULL_URI: `${fake.url}/v2/credentials`,
      AWS_CONTAINER_AUTHORIZATION_TOKEN: "container-token-of-this-test", AWS_ENDPOINT_URL_S3: s3.endpoint,
      AWS_EC2_METADATA_SERVICE_ENDPOINT: "http://127.0.0.1:1" };
    await withEnv(env, () => roundTrip(openStore(`s3://${bucket}/container`, process.env), "container"));
    expect(fake.requests.length).toBeGreaterThanOrEqual(1);
    expect(fake.requests.every((request) => request.url === "/v2/credentials")).toBe(true);
    key = { accessKey: s3.accessKey, secretKey: "wrong-secret" };
    expect(await refusedAt(env, `s3://${bucket}/container`)).toBeInstanceOf(AccessDeniedError);
  } finally {
    await fake.close();
  }
});

test("instance metadata (IMDSv2) at AWS_EC2_METADATA_SERVICE_ENDPOINT: a token, the role, its keys", async () => {
  const { bucket, s3 } = await freshBucket("aws-imds");
  let key: TestKey = { accessKey: s3.accessKey, secretKey: s3.secretKey };
  const fake = await fakeImds(() => ({ key, expiresInMs: 3_600_000 }));
  try {
    const env = { AWS_EC2_METADATA_SERVICE_ENDPOINT: fake.url, AWS_ENDPOINT_URL_S3: s3.endpoint };
    await withEnv(env, () => roundTrip(openStore(`s3://${bucket}/imds`, process.env), "imds"));
    expect(fake.requests[0]).toMatchObject({ method: "PUT", url: "/latest/api/token" });
    expect(fake.requests[0].headers["x-aws-ec2-metadata-token-ttl-seconds"]).toBeDefined();
    // One fetch served every request of the round trip: the keys are held until they are due.
    expect(roleCredentialRequests(fake.requests)).toBe(1);
    key = { accessKey: s3.accessKey, secretKey: "wrong-secret" };
    expect(await refusedAt(env, `s3://${bucket}/imds`)).toBeInstanceOf(AccessDeniedError);
  } finally {
    await fake.close();
  }
});

test("expiring keys from instance metadata are fetched again before they expire, through 20 s of puts", async () => {
  const s3 = await testS3();
  const lifetimeMs = 6000;
  const rotating = await createTestKeys(12);
  const bucket = `aws-expiring-${crypto.randomUUID().slice(0, 8)}`;
  await createBucketAs(bucket, rotating.keys[0]);
  // Each ask gets the next key, valid for 6 s; the key before the previous one is then removed from
  // the server, so a store that kept signing with expired keys would be refused.
  const handedOut: { accessKey: string; expiresAtMs: number }[] = [];
  const removals: Promise<unknown>[] = [];
  const fake = await fakeImds(() => {
    const key = rotating.keys[Math.min(handedOut.length, rotating.keys.length - 1)];
    handedOut.push({ accessKey: key.accessKey, expiresAtMs: Date.now() + lifetimeMs });
    const stale = handedOut.length >= 3 ? handedOut[handedOut.length - 3] : undefined;
    if (stale && stale.accessKey !== key.accessKey) {
      removals.push(new Promise((resolve) => setTimeout(resolve, Math.max(0, stale.expiresAtMs - Date.now())))
        .then(() => rotating.removeKey(stale.accessKey)));
    }
    return { key, expiresInMs: lifetimeMs };
  });
  const proxy = await startFaultProxy(s3.endpoint);
  const signed: { atMs: number; accessKey: string }[] = [];
  proxy.setRule((request) => {
    const accessKey = /Credential=([^/]+)\//.exec(String(request.headers.authorization))?.[1] ?? "";
    signed.push({ atMs: Date.now(), accessKey });
    return { kind: "pass" };
  });
  try {
    await withEnv({ AWS_EC2_METADATA_SERVICE_ENDPOINT: fake.url, AWS_ENDPOINT_URL_S3: proxy.endpoint }, async () => {
      const store = openStore(`s3://${bucket}/expiring`, process.env);
      const deadline = Date.now() + 22_000;
      let puts = 0;
      // Four writers at once: concurrent requests share each refresh.
      await Promise.all(Array.from({ length: 4 }, async (_, writer) => {
        while (Date.now() < deadline) {
          await store.put(`objects/${writer}-${puts++}`, new TextEncoder().encode(String(puts)));
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }));
      expect(puts).toBeGreaterThan(40);
    });
    await Promise.all(removals);
    // 22 s of 6 s keys fetched again at half their life: about 7 fetches, never one per request.
    expect(roleCredentialRequests(fake.requests)).toBeGreaterThanOrEqual(5);
    expect(roleCredentialRequests(fake.requests)).toBeLessThan(12);
    expect(removals.length).toBeGreaterThanOrEqual(2);
    // Every request was signed with keys that had not expired when it was sent.
    const expiry = new Map(handedOut.map((key) => [key.accessKey, key.expiresAtMs]));
    const late = signed.filter((request) => !(request.atMs < (expiry.get(request.accessKey) ?? 0)));
    expect(late).toEqual([]);
    expect(new Set(signed.map((request) => request.accessKey)).size).toBeGreaterThanOrEqual(5);
  } finally {
    await proxy.close();
    await fake.close();
  }
}, 120_000);

test("HADUCK_S3_* win over AWS_*: their keys and endpoint are used, and no credential source is asked", async () => {
  const { bucket, s3 } = await freshBucket("aws-precedence");
  const imds = await fakeImds(() => ({ key: { accessKey: "IMDSKEY", secretKey: "imds" }, expiresInMs: 3_600_000 }));
  const container = await fakeServer((_, response) => response.end("{}"));
  try {
    await withEnv({ HADUCK_S3_ENDPOINT: s3.endpoint, HADUCK_S3_ACCESS_KEY: s3.accessKey,
      HADUCK_S3_SECRET_KEY: s3.secretKey, AWS_ACCESS_KEY_ID: "AWSWRONGKEY", AWS_SECRET_ACCESS_KEY: "wrong",
      AWS_ENDPOINT_URL_S3: "http://127.0.0.1:1", AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url,
      AWS_CONTAINER_CREDENTIALS_FULL_URI: container.url }, async () => {
      const store = openStore(`s3://${bucket}/precedence`, process.env);
      expect(store.toString()).toContain(s3.endpoint);
      await roundTrip(store, "precedence");
    });
    expect({ imds: imds.requests.length, container: container.requests.length }).toEqual({ imds: 0, container: 0 });
  } finally {
    await imds.close();
    await container.close();
  }
});

test("with no credentials anywhere the first request fails within seconds, naming every source and the fix", async () => {
  // A metadata endpoint that accepts connections and never answers: the chain's timeouts bound the wait.
  const blackhole = await fakeServer(() => {});
  try {
    await withEnv({ AWS_ENDPOINT_URL_S3: "http://127.0.0.1:1", AWS_EC2_METADATA_SERVICE_ENDPOINT: blackhole.url },
      async () => {
        const started = performance.now();
        const error = await refused(openStore("s3://some-bucket/prefix", process.env));
        const elapsedMs = performance.now() - started;
        expect(error).toBeInstanceOf(StoreConfigError);
        for (const text of ["Cannot find credentials for s3://some-bucket/prefix", "AWS_ACCESS_KEY_ID",
          "AWS_PROFILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "instance metadata", "Set HADUCK_S3_ACCESS_KEY"]) {
          expect((error as Error).message).toContain(text);
        }
        expect(elapsedMs).toBeLessThan(10_000);
      });
    expect(blackhole.requests.length).toBeGreaterThanOrEqual(1); // it did try, and gave up
  } finally {
    await blackhole.close();
  }
});

test("the CLI with only AWS_* variables: attach ships to s3://bucket/prefix, databases and generations list it", async () => {
  const { bucket, s3 } = await freshBucket("aws-cli");
  const cwd = join(dir, "cli");
  mkdirSync(cwd);
  const env = { PATH: process.env.PATH!, HOME: emptyHome, AWS_ACCESS_KEY_ID: s3.accessKey,
    AWS_SECRET_ACCESS_KEY: s3.secretKey, AWS_ENDPOINT_URL_S3: s3.endpoint, AWS_DEFAULT_REGION: s3.region,
    AWS_EC2_METADATA_DISABLED: "true" };
  const haduck = async (args: string[], extra: Record<string, string> = {}) => {
    const child = Bun.spawn([process.execPath, HADUCK_BIN, ...args], { cwd, env: { ...env, ...extra },
      stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(),
      new Response(child.stderr).text(), child.exited]);
    return { stdout, stderr, code };
  };
  const store = `s3://${bucket}/cli`;
  const attached = await haduck(["attach", "aws.duckdb", "--store", store, "-c",
    "CREATE TABLE t AS SELECT i FROM range(1000) r(i)", "-c", "CHECKPOINT"]);
  expect({ code: attached.code, stderr: attached.stderr }).toEqual({ code: 0,
    stderr: expect.stringMatching(/generation \d+/) });
  const databases = await haduck(["databases", "--store", store, "--json"]);
  expect(databases.code).toBe(0);
  expect(JSON.parse(databases.stdout).map((db: { dbKey: string }) => db.dbKey)).toEqual(["aws.duckdb"]);
  const generations = await haduck(["generations", "--db-key", "aws.duckdb", "--json"], { HADUCK_STORE: store });
  expect(generations.code).toBe(0);
  expect(JSON.parse(generations.stdout).length).toBeGreaterThan(0);
  const denied = await haduck(["generations", "--db-key", "aws.duckdb"], { HADUCK_STORE: store,
    AWS_SECRET_ACCESS_KEY: "wrong-secret" });
  expect(denied.code).toBe(4);
  expect(denied.stderr).toContain("access denied");
}, 120_000);
