/**
 * Large databases, at the size a test can afford: a restore killed with kill -9 part-way leaves
 * its temp file, and the next restore to the same target removes it (one copy on disk, not two);
 * and bench/scale.ts at its smallest size (the sizes are 1, 4 and 8 GiB), whose peak memory
 * per operation must stay under 128 MiB above the process's own baseline and whose one-row update
 * must ship under 2 MiB (memory and bytes, never speed: tests do not fail on a slow machine).
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { attach, listGenerations, loadManifest, restore, verify } from "@haduck/duckdb-fs-bridge";
import { openStore } from "@haduck/s3-block-store";
import { queryFile } from "./harness/duckdb.ts";

const ROOT = resolve(import.meta.dir, "..");
const BIN = join(ROOT, "packages/cli/bin/haduck.ts");
const dir = mkdtempSync(join(tmpdir(), "haduck-large-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("a restore killed with kill -9 at 30% is cleaned up by the next restore to the same target", async () => {
  const store = `file://${join(dir, "store")}`;
  const db = await attach({ dbPath: join(dir, "big.duckdb"), store: openStore(store) });
  await db.connection.run("CREATE TABLE t AS SELECT i, random() AS a, random() AS b, md5(i::VARCHAR) AS s " +
    "FROM range(4000000) r(i)");
  await db.checkpoint();
  await db.close();
  const to = join(dir, "target.duckdb");
  const args = [process.execPath, BIN, "restore", "--store", store, "--db-key", "big.duckdb", "--to", to, "--force",
    "--progress"];
  const child = Bun.spawn(args, { stdout: "pipe", stderr: "pipe" });
  let seen = "";
  for await (const chunk of child.stderr) {
    seen += new TextDecoder().decode(chunk);
    const percents = [...seen.matchAll(/restore: (\d+)%/g)].map((m) => Number(m[1]));
    if (percents.some((percent) => percent >= 30)) break;
  }
  child.kill("SIGKILL");
  await child.exited;
  const leftovers = () => readdirSync(dir).filter((name) => name.startsWith("target.duckdb.haduck-restore-"));
  expect(leftovers().length).toBe(1); // what a killed restore leaves: its temp file, never the target
  expect(readdirSync(dir)).not.toContain("target.duckdb");
  const again = Bun.spawnSync(args, { stdout: "pipe", stderr: "pipe" });
  expect(again.exitCode).toBe(0);
  expect(leftovers()).toEqual([]);
  const sql = "SELECT count(*)::INT AS n, sum(hash(i, a, b, s))::VARCHAR AS h FROM t";
  expect(await queryFile(to, sql)).toEqual(await queryFile(join(dir, "big.duckdb"), sql));
  expect(statSync(to).size).toBeGreaterThan(100 * 1024 * 1024);
}, 300_000);

test("a one-row update writes only the block map pages it changed; the restore reads them a page at a time", async () => {
  // About 640 blocks of random doubles: two pages (a page holds 512 blocks).
  const store = openStore(`file://${join(dir, "paged-store")}`);
  const dbPath = join(dir, "paged.duckdb");
  const db = await attach({ dbPath, store });
  await db.connection.run("CREATE TABLE t AS SELECT i, random() AS a, random() AS b, random() AS c " +
    "FROM range(7000000) r(i)");
  await db.checkpoint();
  const before = await listGenerations(store, "paged.duckdb");
  await db.connection.run("UPDATE t SET a = -1 WHERE i = 6999999");
  await db.checkpoint();
  await db.close();
  const after = await listGenerations(store, "paged.duckdb");
  const [previous, latest] = [after[after.length - 2], after[after.length - 1]];
  expect(previous).toBe(before[before.length - 1]);
  const { manifest } = await loadManifest(store, "paged.duckdb", latest);
  const pages = manifest.pages!;
  expect(pages.length).toBeGreaterThanOrEqual(2);
  const written = pages.filter((page) => page.key.includes(`/blockmaps/${String(latest).padStart(20, "0")}-`));
  const named = pages.filter((page) => !written.includes(page));
  expect(written.length).toBeGreaterThan(0);
  expect(named.length).toBeGreaterThan(0); // the rest are the predecessor's, named again
  const { manifest: older } = await loadManifest(store, "paged.duckdb", previous);
  for (const page of named) expect(older.pages!.map((ref) => ref.key)).toContain(page.key);
  const to = join(dir, "paged-restored.duckdb");
  const result = await restore({ store, dbKey: "paged.duckdb", to });
  expect(result.blocks).toBe(manifest.blocks.length);
  const sql = "SELECT count(*)::INT AS n, sum(hash(i, a, b, c))::VARCHAR AS h, min(a) AS low FROM t";
  expect(await queryFile(to, sql)).toEqual(await queryFile(dbPath, sql));
  expect((await verify(store, "paged.duckdb")).problems).toEqual([]);
}, 300_000);

test("bench/scale.ts at its smallest size: bounded memory per operation, a one-row update under 2 MiB", () => {
  const run = Bun.spawnSync([process.execPath, join(ROOT, "bench/scale.ts"), "0.25"], { cwd: ROOT, stdout: "pipe",
    stderr: "inherit" });
  expect(run.exitCode).toBe(0);
  const { results } = JSON.parse(readFileSync(join(ROOT, "bench/results/scale.json"), "utf8"));
  const [result] = results;
  const peaks = Object.fromEntries(["upload", "restore", "drill", "verify", "gc"]
    .map((operation) => [operation, Math.round(result[operation].peakAboveBaselineMiB)]));
  for (const [operation, peak] of Object.entries(peaks)) expect({ operation, under128: peak < 128 }).toEqual({ operation,
    under128: true });
  expect(result.oneRowUpdateBytes).toBeLessThan(2 * 1048576);
}, 600_000);
