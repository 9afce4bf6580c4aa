/**
 * Under Node the ring is drained through the extension's SQL functions: a real `node` process
 * loads the extension, checkpoints, and sees each generation with DuckDB's iteration and the
 * blocks that changed, releases it, and no checkpoint waits on the hold.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { extensionPath } from "@haduck/duckdb-fs-bridge";
import { readFileInfo } from "../packages/duckdb-fs-bridge/local/_block_source.ts";

const dir = mkdtempSync(join(tmpdir(), "haduck-node-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("node drains generation events through haduck_drain_events() and releases them", async () => {
  const dbPath = join(dir, "node.duckdb");
  const child = Bun.spawn(["node", resolve(import.meta.dir, "fixtures/node_sql_consumer.mjs"), extensionPath(), dbPath],
    { cwd: resolve(import.meta.dir, ".."), stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(),
    child.exited]);
  expect(stderr).toBe("");
  expect(code).toBe(0);
  const seen = JSON.parse(stdout.trim().split("\n").pop()!);
  expect(seen.runtime).toStartWith("node v");
  expect(seen.holdTimeouts).toBe(0);
  const generations: { iteration: number; path: string; blocks: number[]; released: number }[] = seen.generations;
  expect(generations.length).toBeGreaterThanOrEqual(2);
  for (const generation of generations) {
    expect(generation.path).toBe(dbPath);
    expect(generation.released).toBe(1);
  }
  const iterations = generations.map((g) => g.iteration);
  expect(iterations).toEqual([...iterations].sort((a, b) => a - b));
  expect(iterations[iterations.length - 1]).toBe(readFileInfo(dbPath)!.generation);
  // The bulk load's generation carries every block; the one-row update's only the rewritten ones.
  const [load, update] = [generations[generations.length - 2], generations[generations.length - 1]];
  expect(load.blocks.length).toBeGreaterThan(update.blocks.length);
  expect(update.blocks.length).toBeGreaterThan(0);
}, 60_000);
