/**
 * Memory of the whole process tree (issue 23, E): `haduck restore` and `haduck verify` start a
 * stock-DuckDB child that reads every row; with DuckDB's default memory limit (80% of RAM) that
 * child cached the whole file (1084 MiB for a 987 MiB database). The tree, parent and children
 * together (Pss summed, see tests/harness/tree_memory.ts), must stay under 128 MiB above an idle
 * `haduck status` of the same store. A 300 MiB database here; bench/scale.ts measures 0.7 to 5.4 GB.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { attach } from "@haduck/duckdb-fs-bridge";
import { openStore } from "@haduck/s3-block-store";
import { runMeasured } from "./harness/tree_memory.ts";

const BIN = resolve(import.meta.dir, "../packages/cli/bin/haduck.ts");
const dir = mkdtempSync(join(tmpdir(), "haduck-memory-tree-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("restore and verify: the whole process tree stays under 128 MiB above an idle haduck status", async () => {
  const url = `file://${join(dir, "store")}`;
  const dbPath = join(dir, "big.duckdb");
  const db = await attach({ dbPath, store: openStore(url) });
  await db.connection.run("CREATE TABLE db.t AS SELECT random() AS r, i, md5(i::VARCHAR) AS s FROM range(12000000) t(i)");
  // A wide table too: a check that read every column at once pinned a block per column (40 here).
  const columns = Array.from({ length: 40 }, (_, k) => `md5((i + ${k})::VARCHAR) AS c${k}`).join(", ");
  await db.connection.run(`CREATE TABLE db.wide AS SELECT i, ${columns} FROM range(100000) t(i)`);
  await db.connection.run("INSERT INTO db.t VALUES (1, 2, 'a commit after the checkpoint')");
  await db.close();
  expect(statSync(dbPath).size).toBeGreaterThan(250 * 1048576);
  const store = ["--store", url, "--db-key", "big.duckdb"];
  const idle = await runMeasured([process.execPath, BIN, "status", ...store]);
  expect(idle.code).toBe(0);
  const restored = await runMeasured([process.execPath, BIN, "restore", ...store, "--to", join(dir, "r.duckdb")]);
  expect({ code: restored.code, stderr: restored.stderr.slice(-300) }).toEqual({ code: 0, stderr: expect.any(String) });
  expect(restored.processes).toBeGreaterThanOrEqual(2); // the DuckDB child was there, and counted
  const verified = await runMeasured([process.execPath, BIN, "verify", ...store]);
  expect(verified.stdout).toContain("0 problems\ndrill: the latest commit");
  const above = { restore: restored.peakTreeMiB - idle.peakTreeMiB, verify: verified.peakTreeMiB - idle.peakTreeMiB };
  console.log(`process tree above an idle haduck status (${idle.peakTreeMiB.toFixed(0)} MiB): ` +
    `restore ${above.restore.toFixed(0)} MiB, verify ${above.verify.toFixed(0)} MiB`);
  expect(above.restore).toBeLessThan(128);
  expect(above.verify).toBeLessThan(128);
}, 300_000);
