/**
 * A newcomer's first hour with the CLI (issue 35), driven as a user runs it against a filesystem
 * store: `--version`, the store from HADUCK_STORE, `databases` to find the keys, errors that name
 * the next command when a key is missing or unknown, the SQL shell's dot-commands on a piped script,
 * and `handoff` pointed at a bad or dead node.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { DUCKDB_VERSION } from "@haduck/extension-linux-x64";
import { runHaduck } from "./harness/cli.ts";
import { queryFile } from "./harness/duckdb.ts";

const ROOT = resolve(import.meta.dir, "..");
const dir = mkdtempSync(join(tmpdir(), "haduck-first-hour-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const haduck = (args: string[], env: Record<string, string> = {}, stdin?: string) =>
  runHaduck(dir, args, { HADUCK_STORE: "", ...env }, { stdin });

test("haduck --version and haduck version print haduck's and DuckDB's versions without loading the extension", async () => {
  const { version } = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
  for (const args of [["--version"], ["version"]]) {
    const ran = await haduck(args, { HADUCK_EXTENSION_PATH: join(dir, "no-such-extension") });
    expect({ args, code: ran.code, stdout: ran.stdout, stderr: ran.stderr }).toEqual({ args, code: 0,
      stdout: `haduck ${version} (DuckDB ${DUCKDB_VERSION.replace(/^v/, "")})\n`, stderr: "" });
  }
});

test("HADUCK_STORE is the store of every command without --store, and --store wins over it", async () => {
  const storeUrl = `file://${dir}/env-store`;
  const env = { HADUCK_STORE: storeUrl };
  const attached = await haduck(["attach", "env.duckdb", "-c", "CREATE TABLE t AS SELECT 7 AS x", "-c", "CHECKPOINT"],
    env);
  expect(attached.code).toBe(0);
  expect(attached.stderr).not.toContain("local-only");
  const listed = await haduck(["generations", "--db-key", "env.duckdb", "--json"], env);
  expect(listed.code).toBe(0);
  expect(JSON.parse(listed.stdout).length).toBeGreaterThan(0);
  const restored = await haduck(["restore", "--db-key", "env.duckdb", "--to", "env-restored.duckdb"], env);
  expect(restored.code).toBe(0);
  expect(restored.stdout).toContain("restored generation");
  expect((await queryFile(join(dir, "env-restored.duckdb"), "SELECT x FROM t")).map((row) => Number(row.x)))
    .toEqual([7]);
  // --store wins: the variable points at an empty store, the flag at the one that holds the database.
  const flagWins = await haduck(["generations", "--store", storeUrl, "--db-key", "env.duckdb", "--json"],
    { HADUCK_STORE: `file://${dir}/empty-store` });
  expect(flagWins.code).toBe(0);
  expect(JSON.parse(flagWins.stdout)).toEqual(JSON.parse(listed.stdout));
  // Without HADUCK_STORE the S3 variables are still read: a half-configured S3 store is named.
  const s3 = await haduck(["generations", "--db-key", "env.duckdb"], { HADUCK_S3_BUCKET: "some-bucket",
    HADUCK_S3_ENDPOINT: "", HADUCK_S3_ACCESS_KEY: "", HADUCK_S3_SECRET_KEY: "" });
  expect(s3.code).toBe(3);
  expect(s3.stderr).toContain("HADUCK_S3_ENDPOINT is not set");
}, 60_000);
