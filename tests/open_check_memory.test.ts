/**
 * Issue 30: the open check of a restore replays the generation's WAL in a child DuckDB whose memory
 * starts at 16 MiB. A replay of a few hundred commits needs more, and DuckDB says so in words the
 * old check took for a refusal ("TransactionContext Error: Failure while replaying WAL file ...:
 * Failed to commit: failed to pin block ..."), so a healthy latest commit was called broken. Here:
 * such a store restores and drills; with the check's ceiling held at 16 MiB, restore and verify say
 * the check could not run (exit 7, distinct from 5), name the way to give it more, and write nothing.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type AttachedDatabase, attach } from "@haduck/duckdb-fs-bridge";
import { openStore } from "@haduck/s3-block-store";
import { isResourceFailure } from "../packages/duckdb-fs-bridge/reader/_resource_failure.ts";
import { runHaduck } from "./harness/cli.ts";
import { queryFile } from "./harness/duckdb.ts";

const dir = mkdtempSync(join(tmpdir(), "haduck-open-check-"));
const storeUrl = `file://${dir}/store`;
const COMMITS = 250;
let db: AttachedDatabase;
let expected: unknown;

const haduck = (args: string[], env: Record<string, string> = {}) => runHaduck(dir, args, env);

const CONTENT = "SELECT count(*)::BIGINT AS n, sum(hash(id, g, v))::VARCHAR AS h FROM t";

beforeAll(async () => {
  // A writer that never checkpoints: every commit stays in WAL frames, as a host that crashed would leave them.
  db = await attach({ dbPath: join(dir, "c.duckdb"), store: openStore(storeUrl) });
  await db.connection.run("SET checkpoint_threshold = '10GB'");
  await db.connection.run("CREATE TABLE t (id BIGINT, g INTEGER, v VARCHAR)");
  for (let i = 0; i < COMMITS; i++) {
    await db.connection.run(`INSERT INTO t SELECT i + ${i * 20000}, i % 97, md5(i::VARCHAR) FROM range(20000) r(i)`);
    if (i % 10 === 0) await db.connection.run(`UPDATE t SET v = 'u' WHERE g = ${i % 97}`);
  }
  expect(await db.flush()).toBe(true);
  expected = (await db.connection.runAndReadAll(CONTENT)).getRowObjects();
}, 300_000);

afterAll(async () => {
  await db?.close();
  rmSync(dir, { recursive: true, force: true });
});

test("a latest commit whose WAL replay needs more than 16 MiB restores and drills", async () => {
  const restored = await haduck(["restore", "--store", storeUrl, "--db-key", "c.duckdb", "--to", "r.duckdb"]);
  expect(restored.stderr).toBe("");
  expect(restored.code).toBe(0);
  expect(Number(/\+ (\d+) commits/.exec(restored.stdout)?.[1])).toBeGreaterThan(COMMITS);
  // The replay needed more than the check's first 16 MiB (what the old check called a refusal).
  expect(Number(/memory limit (\d+) MiB/.exec(restored.stdout)?.[1])).toBeGreaterThan(16);
  expect(await queryFile(join(dir, "r.duckdb"), CONTENT)).toEqual(expected as never);
  const verified = await haduck(["verify", "--drill", "--store", storeUrl, "--db-key", "c.duckdb"]);
  expect(verified.stderr).toBe("");
  expect(verified.code).toBe(0);
  expect(verified.stdout).toContain("0 problems");
}, 300_000);

test("a check that cannot get the memory it needs says so (exit 7), blames nothing and writes nothing", async () => {
  const env = { HADUCK_CHECK_MEMORY_MB: "16" };
  const restored = await haduck(["restore", "--store", storeUrl, "--db-key", "c.duckdb", "--to", "small.duckdb"], env);
  expect(restored.code).toBe(7);
  expect(restored.stderr).toContain("could not be checked in DuckDB here");
  expect(restored.stderr).toContain("HADUCK_CHECK_MEMORY_MB");
  expect(restored.stderr).toContain("says nothing about the store");
  expect(restored.stderr).not.toContain("older generation");
  expect(existsSync(join(dir, "small.duckdb"))).toBe(false);
  const verified = await haduck(["verify", "--store", storeUrl, "--db-key", "c.duckdb"], env);
  expect(verified.code).toBe(7);
  expect(verified.stderr).toContain("HADUCK_CHECK_MEMORY_MB");
  expect(verified.stdout + verified.stderr).not.toContain("problems");
  const bad = await haduck(["restore", "--store", storeUrl, "--db-key", "c.duckdb", "--to", "x.duckdb"],
    { HADUCK_CHECK_MEMORY_MB: "lots" });
  expect(bad.code).toBe(2);
  expect(bad.stderr).toContain("HADUCK_CHECK_MEMORY_MB=lots");
}, 300_000);

test("every way DuckDB 1.4.4 says it ran out of memory or disk is a resource failure, and refusals are not", () => {
  const link = "\n\nPossible solutions:\n* Increasing the memory limit (SET memory_limit='...GB')\n\nSee also " +
    "https://duckdb.org/docs/stable/guides/performance/how_to_tune_workloads";
  for (const message of [
    'TransactionContext Error: Failure while replaying WAL file "/x.wal": Failed to commit: failed to pin block of ' +
    "size 256.0 KiB (15.0 MiB/15.2 MiB used)",
    `Out of Memory Error: could not allocate block of size 256.0 KiB (16.0 MiB/16.0 MiB used)${link}`,
    `Invalid Input Error: something wrapped${link}`,
    "Out of Memory Error: failed to offload data block of size 256.0 KiB (1.0 GiB/1.0 GiB used).",
    "Out of Memory Error: Failed to allocate block of 1048576 bytes (bad allocation)",
    "Out of Memory Error: Allocation failure",
  ]) expect(isResourceFailure(message)).toBe("memory");
  expect(isResourceFailure('IO Error: Could not write file "/x.tmp": No space left on device')).toBe("disk");
  for (const message of [
    "Serialization Error: Failed to deserialize: field id mismatch",
    "IO Error: The file is not a valid DuckDB database file!",
    "Corruption Error: block checksum mismatch",
    'TransactionContext Error: Failure while replaying WAL file "/x.wal": Catalog Error: Table with name t does not exist!',
  ]) expect(isResourceFailure(message)).toBeUndefined();
});
