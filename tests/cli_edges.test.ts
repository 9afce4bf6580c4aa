/**
 * The edge cases a new user hits first, through the CLI as a user runs it: SQL piped on stdin, an
 * existing plain DuckDB file attached to a new key, restore pointed at a device, a directory, a
 * FIFO or a symlink, a database key that escapes its prefix, and serve with a bad token.
 */
import { afterAll, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import { queryFile } from "./harness/duckdb.ts";

const BIN = resolve(import.meta.dir, "../packages/cli/bin/haduck.ts");
const dir = mkdtempSync(join(tmpdir(), "haduck-edges-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const store = `file://${dir}/store`;

async function haduck(args: string[], options: { env?: Record<string, string>; stdin?: string } = {}) {
  const child = Bun.spawn([process.execPath, BIN, ...args], { cwd: dir, env: { ...process.env, ...options.env },
    stdin: options.stdin === undefined ? "ignore" : new Blob([options.stdin]), stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(),
    new Response(child.stderr).text(), child.exited]);
  return { stdout, stderr, code };
}

test("SQL piped on stdin runs to the end, prints each result, and exits 1 only when a statement failed", async () => {
  const script = "CREATE TABLE k(i INT);\nINSERT INTO k VALUES (1);\nINSERT INTO k\n  VALUES (2);\nSELECT sum(i) AS total FROM k;\n";
  const ok = await haduck(["attach", "piped.duckdb", "--store", store], { stdin: script });
  expect(ok.stderr).not.toContain("readline");
  expect(ok.code).toBe(0);
  expect(ok.stdout).toContain("total");
  expect(ok.stdout).toMatch(/\|\s+3\s+\|/);
  expect(ok.stdout).not.toContain("haduck>");
  const failing = await haduck(["attach", "piped.duckdb", "--store", store],
    { stdin: "SELECT * FROM missing_table;\nINSERT INTO k VALUES (10);\nSELECT sum(i) AS total FROM k" });
  expect(failing.code).toBe(1);
  expect(failing.stderr).toContain("missing_table");
  expect(failing.stdout).toMatch(/\|\s+13\s+\|/); // the statements after the failure ran, the last without `;`
  const generations = JSON.parse((await haduck(["generations", "--store", store, "--db-key", "piped.duckdb", "--json"]))
    .stdout);
  const to = join(dir, "piped-restored.duckdb");
  expect((await haduck(["restore", "--store", store, "--db-key", "piped.duckdb", "--to", to])).code).toBe(0);
  expect(generations.length).toBeGreaterThan(0);
  expect((await queryFile(to, "SELECT sum(i)::INT AS s FROM k"))[0].s).toBe(13);
});

test("an existing plain DuckDB file attached to a new key ships a full generation at once", async () => {
  const path = join(dir, "plain.duckdb");
  const instance = await DuckDBInstance.create(path);
  const connection = await instance.connect();
  await connection.run("CREATE TABLE t AS SELECT i, md5(i::VARCHAR) AS s FROM range(200000) r(i)");
  connection.closeSync();
  instance.closeSync();
  const attached = await haduck(["attach", "plain.duckdb", "--store", store, "-c", "SELECT count(*) AS n FROM t"]);
  expect(attached.code).toBe(0);
  const to = join(dir, "plain-restored.duckdb");
  const restored = await haduck(["restore", "--store", store, "--db-key", "plain.duckdb", "--to", to]);
  expect(restored.code).toBe(0);
  const sql = "SELECT count(*)::INT AS n, sum(hash(i, s))::VARCHAR AS h FROM t";
  expect(await queryFile(to, sql)).toEqual(await queryFile(path, sql));
});

test("restore refuses devices, directories and FIFOs, follows a symlink, and never touches what it refuses", async () => {
  await haduck(["attach", "target.duckdb", "--store", store, "-c", "CREATE TABLE t AS SELECT 1 AS x"]);
  const restoreTo = (to: string, force = true) =>
    haduck(["restore", "--store", store, "--db-key", "target.duckdb", "--to", to, ...(force ? ["--force"] : [])]);
  const device = await restoreTo("/dev/null");
  expect(device.code).toBe(2);
  expect(device.stderr).toContain("is a device");
  expect(statSync("/dev/null").isCharacterDevice()).toBe(true);
  expect(readdirSync("/dev").some((name) => name.startsWith("null.haduck"))).toBe(false);
  mkdirSync(join(dir, "a-directory"));
  expect((await restoreTo(join(dir, "a-directory"))).stderr).toContain("is a directory");
  execFileSync("mkfifo", [join(dir, "a-fifo")]);
  const fifo = await restoreTo(join(dir, "a-fifo"));
  expect(fifo.code).toBe(2);
  expect(lstatSync(join(dir, "a-fifo")).isFIFO()).toBe(true);
  const missingDir = await restoreTo(join(dir, "no", "such", "dir.duckdb"));
  expect(missingDir.code).toBe(2);
  writeFileSync(join(dir, "real.duckdb"), "old");
  symlinkSync(join(dir, "real.duckdb"), join(dir, "link.duckdb"));
  expect((await restoreTo(join(dir, "link.duckdb"))).code).toBe(0);
  expect(lstatSync(join(dir, "link.duckdb")).isSymbolicLink()).toBe(true);
  expect((await queryFile(join(dir, "real.duckdb"), "SELECT x FROM t"))[0].x).toBe(1);
});

test("a database key that escapes its prefix is a usage error (exit 2)", async () => {
  for (const key of ["../../etc", "a/b", ".hidden", ""]) {
    const listed = await haduck(["generations", "--store", store, "--db-key", key]);
    expect({ key, code: listed.code }).toEqual({ key, code: 2 });
    expect(listed.stderr).toMatch(key ? /Invalid database key/ : /--db-key is required/);
  }
  const attached = await haduck(["attach", "k.duckdb", "--store", store, "--db-key", "../x", "-c", "SELECT 1"]);
  expect(attached.code).toBe(2);
});

test("serve with a too-short token refuses before it opens the database or touches the store", async () => {
  const served = await haduck(["serve", "served.duckdb", "--store", store, "--admin", "127.0.0.1:0"],
    { env: { HADUCK_ADMIN_TOKEN: "short" } });
  expect(served.code).toBe(2);
  expect(served.stderr).toContain("at least 16");
  expect(readdirSync(dir).some((name) => name.startsWith("served.duckdb"))).toBe(false);
  const listed = await haduck(["generations", "--store", store, "--db-key", "served.duckdb", "--json"]);
  expect(listed.code).toBe(1);
  expect(listed.stderr).toContain("No generations of served.duckdb");
});

test("restore --if-missing: keeps an existing file, restores a missing one, and fails by name on an empty key", async () => {
  expect((await haduck(["attach", "kept.duckdb", "--store", store, "-c", "CREATE TABLE t AS SELECT 7 AS x"])).code)
    .toBe(0);
  const target = join(dir, "container.duckdb");
  const first = await haduck(["restore", "--store", store, "--db-key", "kept.duckdb", "--to", target, "--if-missing"]);
  expect(first.code).toBe(0);
  expect(first.stdout).toContain("restored generation");
  expect((await queryFile(target, "SELECT x FROM t")).map((row) => Number(row.x))).toEqual([7]);
  const before = statSync(target).mtimeMs;
  const second = await haduck(["restore", "--store", store, "--db-key", "kept.duckdb", "--to", target, "--if-missing"]);
  expect(second.code).toBe(0);
  expect(second.stdout).toContain("kept as it is");
  expect(statSync(target).mtimeMs).toBe(before);
  const empty = await haduck(["restore", "--store", store, "--db-key", "nothing-here.duckdb", "--to",
    join(dir, "none.duckdb"), "--if-missing"]);
  expect(empty.code).toBe(1);
  expect(empty.stderr).toContain("No generations of nothing-here.duckdb");
  const both = await haduck(["restore", "--store", store, "--db-key", "kept.duckdb", "--to", target, "--if-missing",
    "--force"]);
  expect(both.code).toBe(2);
}, 120_000);

test("serve into a directory that does not exist fails at once by name (exit 2), taking no lease", async () => {
  const ran = await haduck(["serve", "node9/demo.duckdb", "--store", store, "--db-key", "missing-dir.duckdb",
    "--listen", "127.0.0.1:0"]);
  expect(ran.code).toBe(2);
  expect(ran.stderr).toContain(`the directory ${dir}/node9 does not exist: create it (mkdir -p ${dir}/node9)`);
  expect(existsSync(join(dir, "store/missing-dir.duckdb"))).toBe(false);
});
