/**
 * `haduck attach --from-store` (issue 34): the database in the store opened at once, without a
 * restore, read-only, at the latest commit, at a generation's checkpoint or at a moment (time
 * travel); a write is refused by name, and the flags that do not apply are usage errors.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { attach } from "@haduck/duckdb-fs-bridge";
import { openStore } from "@haduck/s3-block-store";
import { runHaduck } from "./harness/cli.ts";

const dir = mkdtempSync(join(tmpdir(), "haduck-from-store-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("attach --from-store: latest, --generation, --time; writes refused; bad flags are usage errors", async () => {
  const storeUrl = `file://${join(dir, "store")}`;
  const store = openStore(storeUrl);
  const writer = await attach({ dbPath: join(dir, "w.duckdb"), store, dbKey: "tt.duckdb" });
  await writer.connection.run("CREATE TABLE db.t AS SELECT 1 AS x");
  await writer.checkpoint();
  const checkpointed = writer.replicator.status.lastGeneration!;
  await writer.connection.run("INSERT INTO db.t VALUES (2)");
  expect(await writer.flush()).toBe(true);
  await Bun.sleep(300);
  const between = new Date().toISOString();
  await Bun.sleep(300);
  await writer.connection.run("INSERT INTO db.t VALUES (3)");
  expect(await writer.flush()).toBe(true);
  await writer.close();
  const base = ["attach", "--from-store", "--store", storeUrl, "--db-key", "tt.duckdb"];
  const count = async (extra: string[]) => {
    const ran = await runHaduck(dir, [...base, ...extra, "-c", "SELECT count(*) AS n, max(x) AS m FROM t"]);
    expect(ran.code).toBe(0);
    return { out: ran.stdout, err: ran.stderr };
  };
  const latest = await count([]);
  expect(latest.out).toMatch(/\|\s*3\s*\|\s*3\s*\|/);
  expect(latest.err).toContain("read-only");
  const atGeneration = await count(["--generation", String(checkpointed)]);
  expect(atGeneration.out).toMatch(/\|\s*1\s*\|\s*1\s*\|/);
  expect(atGeneration.err).toContain(`at generation ${checkpointed}`);
  const atTime = await count(["--time", between]);
  expect(atTime.out).toMatch(/\|\s*2\s*\|\s*2\s*\|/);
  const write = await runHaduck(dir, [...base, "-c", "INSERT INTO t VALUES (9)"]);
  expect(write.code).not.toBe(0);
  expect(write.stderr).toContain("read-only view of the store");
  const withPath = await runHaduck(dir, [...base, "w.duckdb", "-c", "SELECT 1"]);
  expect(withPath.code).toBe(2);
  expect(withPath.stderr).toContain("--from-store opens the copy in the store");
  const both = await runHaduck(dir, [...base, "--generation", "1", "--time", between, "-c", "SELECT 1"]);
  expect(both.code).toBe(2);
  const withoutFlag = await runHaduck(dir, ["attach", "w.duckdb", "--generation", "1", "-c", "SELECT 1"]);
  expect(withoutFlag.code).toBe(2);
  expect(withoutFlag.stderr).toContain("--from-store");
}, 120_000);
