/** The admin app on its own, with a fake database: auth, error mapping, bounded bodies, metrics text. */
import { expect, test } from "bun:test";
import { StoreUnavailableError } from "@haduck/s3-block-store";
import type { ReplicatorStatus } from "@haduck/duckblock";
import { type AdminDatabase, createAdminApp, tokensEqual } from "./mod.ts";
import { parsePrometheusText } from "./_prometheus_parse.ts";

const TOKEN = "test-token-0123456789abcdef";
const auth = { authorization: `Bearer ${TOKEN}` };

function fakeDatabase(overrides: Partial<AdminDatabase> = {}): AdminDatabase & { checkpoints: number } {
  const status: ReplicatorStatus = {
    mode: "replicating", lastGeneration: 7, lastGenerationTime: "2026-11-25T00:00:00.000Z", generationsCommitted: 3,
    generationsAbandoned: 1, generationsPending: 0, blocksShipped: 10, bytesShipped: 2048, blocksCarried: 0,
    catchUpAttempts: 0, errors: 1, lagMs: 0, recent: [], lastError: null, lastErrorTime: null,
  };
  const fake = {
    checkpoints: 0,
    dbKey: 'odd"name\\.duckdb',
    storeUrl: "s3://bucket/prefix",
    role: "leader" as const,
    status: () => status,
    storeStats: () => ({ requests: 5, retries: 2, bytesSent: 100, bytesReceived: 50 }),
    generations: () => Promise.resolve([]),
    async checkpoint() {
      fake.checkpoints++;
    },
    ...overrides,
  };
  return fake;
}

test("every route but /healthz and the dashboard shell refuses a missing or wrong token with 401", async () => {
  const app = createAdminApp({ token: TOKEN, databases: [fakeDatabase()] });
  expect((await app.request("/healthz")).status).toBe(200);
  expect((await app.request("/")).status).toBe(200);
  for (const [method, path] of [["GET", "/status"], ["GET", "/metrics"], ["GET", "/generations"],
    ["POST", "/checkpoint"]]) {
    const none = await app.request(path, { method });
    expect(none.status).toBe(401);
    expect(none.headers.get("www-authenticate")).toContain("Bearer");
    const wrong = await app.request(path, { method, headers: { authorization: `Bearer ${TOKEN}x` } });
    expect(wrong.status).toBe(401);
    expect((await app.request(path, { method, headers: auth })).status).toBe(200);
  }
});

test("the dashboard shell holds no data: no generation and no store in its HTML", async () => {
  const app = createAdminApp({ token: TOKEN, databases: [fakeDatabase()] });
  const html = await (await app.request("/")).text();
  expect(html).toContain("<title>haduck admin</title>");
  expect(html).not.toContain("s3://bucket/prefix");
  expect(html).not.toContain(TOKEN);
});

test("tokensEqual() compares whole tokens and refuses short admin tokens", async () => {
  expect(await tokensEqual("abc", "abc")).toBe(true);
  expect(await tokensEqual("abc", "abd")).toBe(false);
  expect(await tokensEqual("abc", "abcd")).toBe(false);
  expect(() => createAdminApp({ token: "short", databases: [] })).toThrow(RangeError);
});

test("/metrics is Prometheus text with a HELP and TYPE per family and escaped labels", async () => {
  const app = createAdminApp({ token: TOKEN, databases: [fakeDatabase()] });
  const response = await app.request("/metrics", { headers: auth });
  expect(response.headers.get("content-type")).toContain("text/plain; version=0.0.4");
  const families = parsePrometheusText(await response.text());
  expect(families.get("haduck_generations_committed_total")?.type).toBe("counter");
  expect(families.get("haduck_store_retries_total")?.samples[0]).toEqual({
    labels: { db: 'odd"name\\.duckdb' }, value: 2 });
  expect(families.get("haduck_lag_seconds")?.type).toBe("gauge");
});

test("store errors map to HTTP statuses in one place, and a body over the bound gets 413", async () => {
  const failing = fakeDatabase({ generations: () => Promise.reject(new StoreUnavailableError("S3 returned 503")) });
  const app = createAdminApp({ token: TOKEN, databases: [failing], bodyBytesMax: 1024 });
  const unavailable = await app.request("/generations", { headers: auth });
  expect(unavailable.status).toBe(503);
  expect(await unavailable.json()).toEqual({ error: "UNAVAILABLE", message: "S3 returned 503" });
  const big = await app.request("/checkpoint", { method: "POST", headers: { ...auth, "content-length": "5000" },
    body: "x".repeat(5000) });
  expect(big.status).toBe(413);
  const badJson = await app.request("/checkpoint", { method: "POST", headers: auth, body: "{nope" });
  expect(badJson.status).toBe(400);
  const unknownDb = await app.request("/checkpoint", { method: "POST", headers: auth, body: '{"db":"other"}' });
  expect(unknownDb.status).toBe(404);
  expect(failing.checkpoints).toBe(0);
  const ok = await app.request("/checkpoint", { method: "POST", headers: auth });
  expect(ok.status).toBe(200);
  expect(failing.checkpoints).toBe(1);
});
