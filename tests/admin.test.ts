/**
 * The admin endpoint of a real attached database: checkpoint over HTTP creates a generation in the
 * store, metrics parse, no secret shows, and the dashboard in headless Chromium shows the latest
 * generation with the token and nothing without it.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { attach, type AttachedDatabase, listGenerations } from "@haduck/duckdb-fs-bridge";
import type { S3BlockStore } from "@haduck/s3-block-store";
import { adminDatabase, adminSettings, type AdminServer, serveAdmin } from "../packages/cli/_admin_server.ts";
import { parsePrometheusText } from "../packages/admin/_prometheus_parse.ts";
import { launchChromium } from "./harness/browser.ts";
import { freshBucket, type TestS3 } from "./harness/s3.ts";

const TOKEN = "admin-test-token-0123456789";
const auth = { authorization: `Bearer ${TOKEN}` };
const dir = mkdtempSync(join(tmpdir(), "haduck-admin-"));
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
