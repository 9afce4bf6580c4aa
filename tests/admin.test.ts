/**
 * The admin endpoint of a real attached database: checkpoint over HTTP creates a generation in the
 * store, metrics parse, no secret shows, and the dashboard in headless Chromium shows the latest
 * generation with the token and nothing without it. The dashboard's charts are checked in the DOM
 * (axes, ticks with units, clock times, one point per sample, WAL lag and frames) and in the
 * screenshot's pixels (each chart many colours, its points drawn, text by its axes), for one node
 * under writes and for a cluster of two `haduck serve` nodes on radosgw after a kill -9 failover
 * (the cluster panel: leader, each node's role, epoch and lag, the last failover from whom to whom).
 * `HADUCK_SCREENSHOT_DIR=DIR` keeps the screenshots (dashboard-single/-leader/-follower.png) to look at.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { attach, type AttachedDatabase, listGenerations } from "@haduck/duckdb-fs-bridge";
import type { S3BlockStore } from "@haduck/s3-block-store";
import { adminDatabase, adminSettings, type AdminServer, serveAdmin } from "../packages/cli/_admin_server.ts";
import { parsePrometheusText } from "../packages/admin/_prometheus_parse.ts";
import type { Page } from "playwright-core";
import { launchChromium } from "./harness/browser.ts";
import { decodePng, regionStats } from "./harness/png.ts";
import { freshBucket, type TestS3 } from "./harness/s3.ts";
import { type ClusterNodeProcess, sql, startNode, TOKEN as CLUSTER_TOKEN, waitForLeader } from "./harness/cluster.ts";

const TOKEN = "admin-test-token-0123456789";
const auth = { authorization: `Bearer ${TOKEN}` };
const dir = mkdtempSync(join(tmpdir(), "haduck-admin-"));
/** Where the screenshots go (to look at them: HADUCK_SCREENSHOT_DIR=/some/dir); else the test's temp dir. */
const SCREENSHOTS = process.env.HADUCK_SCREENSHOT_DIR ?? dir;
let db: AttachedDatabase;
let store: S3BlockStore;
let s3: TestS3;
let server: AdminServer;

beforeAll(async () => {
  ({ store, s3 } = await freshBucket("admin"));
  db = await attach({ dbPath: join(dir, "admin.duckdb"), store });
  await db.connection.run("CREATE TABLE t AS SELECT * FROM range(10000) r(i)");
  await db.checkpoint();
  server = serveAdmin(adminSettings("127.0.0.1:0", { HADUCK_ADMIN_TOKEN: TOKEN }), [adminDatabase(db, store, undefined)]);
});

afterAll(async () => {
  await server?.stop();
  await db?.close();
  rmSync(dir, { recursive: true, force: true });
});

const get = (path: string, headers: Record<string, string> = auth) => fetch(new URL(path, server.url), { headers });

test("POST /checkpoint over HTTP creates a generation in the store", async () => {
  const before = await listGenerations(store, db.dbKey);
  await db.connection.run("INSERT INTO t SELECT * FROM range(5)");
  const response = await fetch(new URL("checkpoint", server.url), { method: "POST", headers: auth });
  expect(response.status).toBe(200);
  const body = await response.json();
  const after = await listGenerations(store, db.dbKey);
  expect(after.length).toBe(before.length + 1);
  expect(body.lastGeneration).toBe(after[after.length - 1]);
  expect(body.lastError).toBeNull();
});

test("/status and /metrics describe the database; no route shows the secret key", async () => {
  const status = await (await get("status")).json();
  expect(status.databases[0]).toMatchObject({ db: "admin.duckdb", role: "leader", store: store.url, lastError: null });
  expect(status.databases[0].lastGeneration).toBeGreaterThan(0);
  const metrics = parsePrometheusText(await (await get("metrics")).text());
  expect(metrics.get("haduck_generations_committed_total")!.samples[0].value).toBeGreaterThanOrEqual(2);
  expect(metrics.get("haduck_store_requests_total")!.samples[0].value).toBeGreaterThan(0);
  for (const path of ["status", "metrics", "generations", "", "healthz"]) {
    const text = await (await get(path)).text();
    expect(text).not.toContain(s3.secretKey);
    expect(text).not.toContain(s3.accessKey);
  }
  expect((await get("status", {})).status).toBe(401);
});

test("the dashboard in Chromium shows the latest generation with the token, and nothing without it", async () => {
  const { browser, close } = await launchChromium();
  try {
    const page = await browser.newPage();
    await page.goto(server.url);
    await page.waitForFunction(() => document.getElementById("state")?.textContent?.includes("token required"));
    expect(await page.locator("[data-field]").count()).toBe(0);
    await page.goto(`${server.url}#token=wrong-token-0000000000`);
    await page.reload();
    await page.waitForFunction(() => document.getElementById("state")?.textContent?.includes("unauthorized"));
    expect(await page.locator("[data-field]").count()).toBe(0);

    await page.goto(`${server.url}#token=${TOKEN}`);
    await page.reload();
    const shown = page.locator('[data-field="lastGeneration"]');
    await shown.waitFor();
    expect(Number(await shown.textContent())).toBe(db.replicator.status.lastGeneration!);
    expect(page.url()).not.toContain(TOKEN); // the fragment is dropped from the address bar
    await db.connection.run("INSERT INTO t SELECT * FROM range(7)");
    await db.checkpoint();
    const latest = db.replicator.status.lastGeneration!;
    await page.waitForFunction((generation) =>
      document.querySelector('[data-field="lastGeneration"]')?.textContent === String(generation), latest,
      { timeout: 10_000 });
    expect(await page.locator('[data-field="lastError"]').textContent()).toBe("none");
  } finally {
    await close();
  }
});

/** The charts every dashboard draws, with the colour of their points (see _dashboard_script.ts). */
const CHARTS = [
  { id: "bytesPerGeneration", unit: "MiB", color: [0x2f, 0x6f, 0xde] },
  { id: "checkpointLag", unit: "ms", color: [0xd9, 0x77, 0x06] },
  { id: "walLag", unit: "ms", color: [0x7c, 0x3a, 0xed] },
  { id: "walFrames", unit: "frames", color: [0x05, 0x96, 0x69] },
] as const;

/** What one chart shows in the DOM: its points, its ticks' texts, its axis label and its empty state. */
async function chartInDom(page: Page, id: string) {
  return await page.evaluate((chartId) => {
    const figure = document.querySelector(`[data-chart="${chartId}"]`);
    const texts = (selector: string) => [...figure?.querySelectorAll(selector) ?? []].map((node) => node.textContent ?? "");
    return {
      found: figure !== null,
      declared: Number(figure?.getAttribute("data-points") ?? -1),
      points: figure?.querySelectorAll("circle.point").length ?? 0,
      pointTitles: texts("circle.point title"),
      yTicks: texts(".y-tick"),
      xTicks: texts(".x-tick"),
      axisLabel: texts(".axis-label").join(""),
      axes: figure?.querySelectorAll(".axis").length ?? 0,
      caption: texts("figcaption").join(""),
      empty: texts(".empty").join(""),
    };
  }, id);
}

/** Asserts a drawn chart: two axes, value ticks in `unit`, clock times on the time axis, one point per sample. */
async function expectDrawnChart(page: Page, id: string, unit: string, minimumPoints: number) {
  const chart = await chartInDom(page, id);
  expect(chart.found).toBe(true);
  expect(chart.empty).toBe("");
  expect(chart.axes).toBe(2);
  expect(chart.caption).toContain(`(${unit})`);
  expect(chart.yTicks.length).toBeGreaterThanOrEqual(2);
  for (const tick of chart.yTicks) expect(tick).toMatch(new RegExp(`^\\d+(\\.\\d+)? ${unit}$`));
  expect(chart.xTicks.length).toBeGreaterThanOrEqual(2);
  for (const tick of chart.xTicks) expect(tick).toMatch(/^\d\d:\d\d(:\d\d)?$/);
  expect(chart.axisLabel).toBe("time (local)");
  expect(chart.points).toBe(chart.declared);
  expect(chart.points).toBeGreaterThanOrEqual(minimumPoints);
  return chart;
}

/**
 * Takes a screenshot and looks at its pixels: each chart's area holds many colours (axes, grid,
 * text, points: not one solid shape), its points' colour shows, and the strip left of its value
 * axis holds dark text pixels (the tick labels). Returns the PNG.
 */
async function expectChartsInPixels(page: Page, charts: readonly { id: string; color: readonly number[] }[]) {
  const png = await page.screenshot({ fullPage: true });
  const image = decodePng(png);
  // Every box in one turn of the page (it re-renders each second; the layout stays the same).
  const boxes = await page.evaluate((ids) => ids.map((id) => {
    const rect = document.querySelector(`[data-chart="${id}"] svg`)?.getBoundingClientRect();
    return rect ? { x: rect.x + scrollX, y: rect.y + scrollY, width: rect.width, height: rect.height } : null;
  }), charts.map((chart) => chart.id));
  for (const [index, { color }] of charts.entries()) {
    const box = boxes[index];
    expect(box).not.toBeNull();
    const whole = regionStats(image, box!, color as [number, number, number]);
    expect(whole.colors).toBeGreaterThan(12);
    expect(whole.matching).toBeGreaterThan(10); // the points (and line or stems) are drawn
    // No solid shape: the points' colour covers a small part of the chart (one generation once filled it).
    expect(whole.matching / whole.pixels).toBeLessThan(0.2);
    const scale = box!.width / 560; // the chart's viewBox is 560 wide; the value axis sits at x = 66
    const tickLabels = regionStats(image, { x: box!.x, y: box!.y, width: 62 * scale, height: box!.height });
    expect(tickLabels.dark).toBeGreaterThan(40);
    const timeLabels = regionStats(image, { x: box!.x + 66 * scale, y: box!.y + 170 * scale, width: 470 * scale,
      height: 16 * scale });
    expect(timeLabels.dark).toBeGreaterThan(40);
  }
  return png;
}

test("the dashboard draws each chart with axes, units and clock times, WAL lag and frames with points, in pixels too", async () => {
  let writing = true;
  const load = (async () => {
    for (let n = 0; writing; n++) {
      await db.connection.run(`INSERT INTO t VALUES (${n})`);
      if (n % 40 === 39) await db.checkpoint();
      await Bun.sleep(50);
    }
  })();
  const { browser, close } = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(`${server.url}#token=${TOKEN}`);
    // Enough samples: the frames chart needs two for its first point.
    await page.waitForFunction(() => Number(document.querySelector('[data-chart="walFrames"]')
      ?.getAttribute("data-points")) >= 4, undefined, { timeout: 30_000 });
    writing = false;
    await load;
    await db.checkpoint();
    await page.waitForFunction((generation) =>
      document.querySelector('[data-field="lastGeneration"]')?.textContent === String(generation),
      db.replicator.status.lastGeneration!, { timeout: 10_000 });

    const generations = await expectDrawnChart(page, "bytesPerGeneration", "MiB", 2);
    expect(generations.points).toBe(Math.min(db.replicator.status.recent.length, 100));
    await expectDrawnChart(page, "checkpointLag", "ms", 4);
    await expectDrawnChart(page, "walLag", "ms", 4);
    const frames = await expectDrawnChart(page, "walFrames", "frames", 3);
    // Frames were shipped while the page sampled: some sample shows more than none per second.
    expect(frames.pointTitles.some((title) => Number(/: ([\d.]+) frames$/.exec(title)?.[1]) > 0)).toBe(true);
    expect(Number(await page.locator('[data-field="framesShipped"]').textContent())).toBeGreaterThan(0);
    expect(await page.locator('[data-field="walLagMs"]').textContent()).toMatch(/^[\d,]+ ms$/);
    // A single node says so instead of an empty cluster panel.
    expect(await page.locator('[data-field="clusterMode"]').textContent()).toContain("a single node");
    // Timestamps are clock times on one line: each <time> is one box, never wrapped mid-word.
    const times = await page.evaluate(() => [...document.querySelectorAll("time")].map((node) => ({
      text: node.textContent, boxes: node.getClientRects().length })));
    expect(times.length).toBeGreaterThanOrEqual(2);
    for (const time of times) {
      expect(time.text).toMatch(/^(\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d$/);
      expect(time.boxes).toBe(1);
    }
    const png = await expectChartsInPixels(page, CHARTS);
    writeFileSync(join(SCREENSHOTS, "dashboard-single.png"), png);
  } finally {
    writing = false;
    await load;
    await close();
  }
}, 90_000);

test("the dashboard of a cluster of two on radosgw names the leader, every node's role, epoch and lag, and the last failover", async () => {
  const { bucket, s3: s3Server } = await freshBucket("dash-cluster");
  const env = { HADUCK_S3_ACCESS_KEY: s3Server.accessKey, HADUCK_S3_SECRET_KEY: s3Server.secretKey,
    HADUCK_S3_REGION: s3Server.region };
  const base = { dir: join(dir, "cluster"), dbKey: "dash.duckdb", ttlMs: 2000, env,
    storeArgs: ["--store", `s3://${bucket}/haduck`, "--endpoint", s3Server.endpoint] };
  const started: ClusterNodeProcess[] = [];
  const start = async (name: string, port?: number) => {
    const node = await startNode({ ...base, name, port });
    started.push(node);
    return node;
  };
  let writing = true;
  let load: Promise<void> = Promise.resolve();
  const chromium = await launchChromium();
  try {
    const a = await start("a");
    expect((await waitForLeader([a], 15_000)).leader).toBe(a);
    const b = await start("b");
    expect((await sql(a.url, { sql: "CREATE TABLE w(n INTEGER)" })).status).toBe(200);
    expect((await sql(a.url, { sql: "INSERT INTO w SELECT * FROM range(1000)" })).status).toBe(200);
    // The leader dies; the other takes over once the lease has not changed for the TTL.
    a.process.kill(9);
    await a.process.exited;
    expect((await waitForLeader([b], 15_000)).leader).toBe(b);
    // The dead node comes back at its address and follows; writes go on through both.
    const back = await start("a", a.port);
    load = (async () => {
      for (let n = 0; writing; n++) {
        await sql(n % 2 === 0 ? b.url : back.url, { sql: "INSERT INTO w VALUES ($1)", params: [n] });
        if (n % 30 === 29) await fetch(`${b.url}checkpoint`, { method: "POST", headers: { authorization: `Bearer ${CLUSTER_TOKEN}` } });
        await Bun.sleep(60);
      }
    })();
    // /status lists both nodes on each, and the failover from a to b.
    let leaderView: NodeClusterView | undefined, followerView: NodeClusterView | undefined;
    const deadline = performance.now() + 20_000;
    while (performance.now() < deadline) {
      [leaderView, followerView] = [await clusterView(b.url), await clusterView(back.url)];
      if (leaderView?.nodes?.length === 2 && followerView?.nodes?.length === 2 && followerView.lastFailover) break;
      await Bun.sleep(200);
    }
    expect(leaderView!.nodes.map((node) => [node.address, node.role]).sort()).toEqual([[a.url, "follower"],
      [b.url, "leader"]].sort());
    expect(followerView!.nodes.find((node) => node.address === b.url)?.role).toBe("leader");
    for (const view of [leaderView!, followerView!]) {
      expect(view.lastFailover).toMatchObject({ from: a.url, to: b.url, kind: "failover" });
      expect(view.lastFailover!.epoch).toBe(leaderView!.epoch);
      expect(Date.parse(view.lastFailover!.at)).toBeGreaterThan(Date.now() - 120_000);
    }

    // The follower's dashboard: the cluster panel, the replica lag chart, and the empty state of generations.
    const page = await chromium.browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(`${back.url}#token=${CLUSTER_TOKEN}`);
    await page.waitForFunction((leader) => document.querySelector('[data-field="leader"]')?.textContent === leader &&
      document.querySelectorAll("tr[data-node]").length === 2 &&
      Number(document.querySelector('[data-chart="replicaLag"]')?.getAttribute("data-points")) >= 3, b.url,
      { timeout: 20_000 });
    expect(await page.locator('[data-field="role"]').textContent()).toBe("follower");
    expect(await page.locator(`tr[data-node="${b.url}"]`).getAttribute("data-role")).toBe("leader");
    expect(await page.locator(`tr[data-node="${a.url}"]`).getAttribute("data-role")).toBe("follower");
    expect(await page.locator(`tr[data-node="${b.url}"] td`).nth(2).textContent()).toBe(String(leaderView!.epoch));
    expect(await page.locator(`tr[data-node="${a.url}"] td`).nth(3).textContent()).toMatch(/^[\d,]+ ms$/);
    const failover = await page.locator('[data-field="lastFailover"]').textContent();
    expect(failover).toMatch(new RegExp(`^\\d\\d:\\d\\d:\\d\\d from ${a.url} to ${b.url} \\(failover, epoch \\d+`));
    await expectDrawnChart(page, "replicaLag", "ms", 3);
    expect((await chartInDom(page, "bytesPerGeneration")).empty).toContain("no generations shipped by this node");
    writeFileSync(join(SCREENSHOTS, "dashboard-follower.png"),
      await expectChartsInPixels(page, [{ id: "replicaLag", color: [0x08, 0x91, 0xb2] }]));

    // The leader's dashboard: the same cluster, and every chart drawn from the writes going on.
    await page.goto(`${b.url}#token=${CLUSTER_TOKEN}`);
    await page.waitForFunction(() => document.querySelectorAll("tr[data-node]").length === 2 &&
      Number(document.querySelector('[data-chart="walFrames"]')?.getAttribute("data-points")) >= 4 &&
      Number(document.querySelector('[data-chart="bytesPerGeneration"]')?.getAttribute("data-points")) >= 1,
      undefined, { timeout: 30_000 });
    expect(await page.locator('[data-field="role"]').textContent()).toBe("leader");
    expect(await page.locator('[data-field="leader"]').textContent()).toBe(b.url);
    expect(await page.locator('[data-field="lastFailover"]').textContent()).toContain(`from ${a.url} to ${b.url}`);
    for (const chart of CHARTS) await expectDrawnChart(page, chart.id, chart.unit, chart.id === "bytesPerGeneration" ? 1 : 3);
    await expectDrawnChart(page, "replicaLag", "ms", 3); // the furthest follower, as the leader last heard it
    const png = await expectChartsInPixels(page, [...CHARTS, { id: "replicaLag", color: [0x08, 0x91, 0xb2] }]);
    writeFileSync(join(SCREENSHOTS, "dashboard-leader.png"), png); // docs/dashboard.png is one of these
  } finally {
    writing = false;
    await load;
    await chromium.close();
    for (const node of started) node.process.kill(9);
  }
}, 180_000);

interface NodeClusterView {
  epoch: number;
  nodes: { address: string; role: string; epoch: number; lagMs: number; seenMsAgo: number }[];
  lastFailover: { at: string; from: string | null; to: string; epoch: number; kind: string } | null;
}

async function clusterView(url: string): Promise<NodeClusterView | undefined> {
  const response = await fetch(`${url}status`, { headers: { authorization: `Bearer ${CLUSTER_TOKEN}` } }).catch(() => undefined);
  return response?.ok ? (await response.json()).databases[0] : undefined;
}
