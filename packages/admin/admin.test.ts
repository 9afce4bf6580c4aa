/** The admin app on its own, with a fake database: auth, error mapping, bounded bodies, metrics text. */
import { expect, test } from "bun:test";
import { StoreUnavailableError } from "@haduck/s3-block-store";
import type { ReplicatorStatus } from "@haduck/duckblock";
import { type AdminDatabase, createAdminApp, tokensEqual } from "./mod.ts";
import { parsePrometheusText } from "./_prometheus_parse.ts";
import { lineChart } from "./_chart.ts";

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

test("lineChart() draws two axes, value ticks in its unit, clock times, and one marker per sample", () => {
  const t = new Date(2026, 11, 7, 5, 30, 0).getTime();
  const svg = lineChart([0, 1, 2, 3].map((i) => ({ t: t + i * 1000, v: [12, 180, 40, 0][i] })),
    { id: "walLag", title: "WAL lag", unit: "ms", empty: "no samples yet", valueMin: 10 });
  expect(svg.match(/<circle class="point"/g)?.length).toBe(4);
  expect(svg).toContain('data-points="4"');
  expect(svg.match(/class="axis /g)?.length).toBe(2);
  const yTicks = [...svg.matchAll(/class="tick y-tick"[^>]*>([^<]*)</g)].map((match) => match[1]);
  expect(yTicks).toEqual(["0 ms", "50 ms", "100 ms", "150 ms", "200 ms"]);
  const xTicks = [...svg.matchAll(/class="tick x-tick"[^>]*>([^<]*)</g)].map((match) => match[1]);
  expect(xTicks.length).toBeGreaterThanOrEqual(2);
  for (const tick of xTicks) expect(tick).toMatch(/^\d\d:\d\d(:\d\d)?$/);
  expect(xTicks).toContain("05:30:00");
  expect(svg).toContain("<title>05:30:01: 180 ms</title>");
  expect(svg).toContain("time (local)");
});

test("lineChart() says what is missing instead of drawing a shape, and one generation is one stem", () => {
  const empty = lineChart([], { id: "bytes", title: "Bytes", unit: "MiB", empty: "no generations yet", kind: "stem" });
  expect(empty).toContain("no generations yet");
  expect(empty).not.toContain("<svg");
  const one = lineChart([{ t: Date.now(), v: 0.37 }], { id: "bytes", title: "Bytes", unit: "MiB", empty: "-",
    kind: "stem", valueMin: 0.01 });
  expect(one).not.toContain("<rect");
  expect(one.match(/<line class="stem"/g)?.length).toBe(1);
  expect(one.match(/<circle class="point"/g)?.length).toBe(1);
  expect([...one.matchAll(/y-tick"[^>]*>([^<]*)</g)].map((match) => match[1])).toEqual(["0 MiB", "0.1 MiB",
    "0.2 MiB", "0.3 MiB", "0.4 MiB"]);
  // The time axis spans a minute around the sample: the stem is not at the edge and not full width.
  const x = Number(/class="stem" x1="([\d.]+)"/.exec(one)![1]);
  expect(x).toBeGreaterThan(66);
  expect(x).toBeLessThan(546);
  // Counts tick on whole numbers; text from outside is escaped.
  const frames = lineChart([{ t: 0, v: 1 }, { t: 1000, v: 2 }], { id: "f", title: "<b>", unit: "frames", empty: "-",
    integer: true, valueMin: 4 });
  expect([...frames.matchAll(/y-tick"[^>]*>([^<]*)</g)].map((match) => match[1])).toEqual(["0 frames", "1 frames",
    "2 frames", "3 frames", "4 frames"]);
  expect(frames).toContain("&lt;b&gt;");
});

test("the dashboard embeds the chart code whole: its script ends once, at its end", async () => {
  const html = await (await createAdminApp({ token: TOKEN, databases: [fakeDatabase()] }).request("/")).text();
  expect(html).toContain("const lineChart = function lineChart(");
  expect(html.match(/<\/script>/g)?.length).toBe(1);
});

test("POST /members hands each report to its database and answers the cluster it knows; bad reports are 400", async () => {
  const reports: unknown[] = [];
  const member = { address: "http://127.0.0.1:2/", role: "follower" as const, epoch: 3, lagMs: 120, seenMsAgo: 0 };
  const database = fakeDatabase({
    memberReport: (report) => reports.push(report),
    cluster: () => ({ role: "leader", leader: "http://127.0.0.1:1/", epoch: 3, lagMs: 0, address: "http://127.0.0.1:1/",
      nodes: [{ address: "http://127.0.0.1:1/", role: "leader", epoch: 3, lagMs: 0, seenMsAgo: 0 }, member],
      lastFailover: { at: "2026-12-07T05:00:00.000Z", from: "http://127.0.0.1:2/", to: "http://127.0.0.1:1/", epoch: 3,
        kind: "failover", tookMs: 300 } }),
  });
  const app = createAdminApp({ token: TOKEN, readToken: "read-token-0123456789abcdef", databases: [database] });
  const post = (body: unknown, headers: Record<string, string> = auth) =>
    app.request("/members", { method: "POST", headers, body: JSON.stringify(body) });
  const report = { address: "http://127.0.0.1:2/", databases: [{ db: database.dbKey, role: "follower", epoch: 3,
    lagMs: 120.4 }, { db: "other.duckdb", role: "follower", epoch: 1, lagMs: 0 }] };
  expect((await post(report, {})).status).toBe(401);
  expect((await post(report, { authorization: "Bearer read-token-0123456789abcdef" })).status).toBe(403);
  const answer = await post(report);
  expect(answer.status).toBe(200);
  expect(reports).toEqual([{ address: "http://127.0.0.1:2/", role: "follower", epoch: 3, lagMs: 120 }]);
  const body = await answer.json();
  expect(body.databases.length).toBe(1); // a database not served here is passed over
  expect(body.databases[0]).toMatchObject({ db: database.dbKey, leader: "http://127.0.0.1:1/", epoch: 3,
    lastFailover: { from: "http://127.0.0.1:2/", kind: "failover" } });
  expect(body.databases[0].nodes).toContainEqual(member);
  for (const bad of [{ address: "not a url", databases: [] }, { address: "http://x/" },
    { address: "http://x/", databases: [{ db: database.dbKey, role: "boss", epoch: 1, lagMs: 0 }] },
    { address: "http://x/", databases: [{ db: database.dbKey, role: "follower", epoch: -1, lagMs: 0 }] }]) {
    const refused = await post(bad);
    expect(refused.status).toBe(400);
    expect((await refused.json()).message).toContain('"databases"');
  }
  expect(reports.length).toBe(1);
  const status = await (await app.request("/status", { headers: auth })).json();
  expect(status.databases[0]).toMatchObject({ address: "http://127.0.0.1:1/", lastFailover: { to: "http://127.0.0.1:1/" } });
  expect(status.databases[0].nodes.length).toBe(2);
});

test("POST /sql refuses params nested deeper than 32 with 400 before the statement is seen", async () => {
  let seen = 0;
  const app = createAdminApp({ token: TOKEN, databases: [fakeDatabase({ sql: async () => {
    seen++;
    return { columns: [], rows: [], position: "0:0:0" } as never;
  } })] });
  // A nesting this deep overflowed JSON.stringify when a follower forwarded the statement (503 UNKNOWN_OUTCOME).
  const body = `{"sql":"SELECT 1","params":[${"[".repeat(400_000)}1${"]".repeat(400_000)}]}`;
  const refused = await app.request("/sql", { method: "POST", headers: auth, body });
  expect(refused.status).toBe(400);
  expect(await refused.text()).toContain("nested at most 32 deep");
  expect(seen).toBe(0);
  const fine = await app.request("/sql", { method: "POST", headers: auth,
    body: JSON.stringify({ sql: "SELECT 1", params: [[[1, 2]], { a: [1] }] }) });
  expect(fine.status).toBe(200);
  expect(seen).toBe(1);
});
