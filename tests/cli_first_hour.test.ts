/**
 * A newcomer's first hour with the CLI (issue 35), driven as a user runs it against a filesystem
 * store: `--version`, the store from HADUCK_STORE, `databases` to find the keys, errors that name
 * the next command when a key is missing or unknown, the SQL shell's dot-commands on a piped script,
 * and `handoff` pointed at a bad or dead node.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
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

test("haduck databases (and ls) lists every key in the store, with its last generation, its time and size", async () => {
  const root = `file://${dir}/db-store`;
  const empty = await haduck(["databases", "--store", root]);
  expect({ code: empty.code, stdout: empty.stdout }).toEqual({ code: 0, stdout: expect.stringMatching(/^no databases in /) });
  expect(empty.stdout.trimEnd().split("\n")).toHaveLength(1);
  const emptyJson = await haduck(["databases", "--store", root, "--json"]);
  expect({ code: emptyJson.code, listed: JSON.parse(emptyJson.stdout) }).toEqual({ code: 0, listed: [] });
  const started = Date.now();
  // A key with '/': a database written under the deeper prefix `team` of the same store.
  for (const [store, db] of [[root, "b.duckdb"], [`${root}/team`, "a.duckdb"]]) {
    const attached = await haduck(["attach", db, "--store", store, "-c", "CREATE TABLE t AS SELECT * FROM range(5000) r(i)",
      "-c", "CHECKPOINT", "-c", "INSERT INTO t VALUES (1)", "-c", "CHECKPOINT"]);
    expect(attached.code).toBe(0);
  }
  // Objects that make no database: a lease and a latest hint alone, a fork's marker.
  mkdirSync(join(dir, "db-store/ghost.duckdb"), { recursive: true });
  writeFileSync(join(dir, "db-store/ghost.duckdb/lease.json"), "{}");
  writeFileSync(join(dir, "db-store/ghost.duckdb/latest.json"), "{}");
  mkdirSync(join(dir, "db-store/b.duckdb/forks"), { recursive: true });
  writeFileSync(join(dir, "db-store/b.duckdb/forks/c.duckdb.json"), "{}");
  const json = await haduck(["databases", "--store", root, "--json"]);
  expect(json.code).toBe(0);
  const listed = JSON.parse(json.stdout);
  expect(listed.map((db: { dbKey: string }) => db.dbKey)).toEqual(["b.duckdb", "team/a.duckdb"]);
  for (const [db, store, key] of [[listed[0], root, "b.duckdb"], [listed[1], `${root}/team`, "a.duckdb"]]) {
    const generations = JSON.parse((await haduck(["generations", "--store", store, "--db-key", key, "--json"])).stdout);
    const last = generations.at(-1);
    expect(generations.length).toBeGreaterThan(1);
    expect(db).toEqual({ dbKey: db.dbKey, lastGeneration: last.generation, lastGenerationTime: expect.any(String),
      sizeBytes: last.fileSizeBytes });
    expect(Date.parse(db.lastGenerationTime)).toBeGreaterThanOrEqual(Date.parse(last.time) - 60_000);
    expect(Date.parse(db.lastGenerationTime)).toBeGreaterThanOrEqual(started - 1000);
    expect(Date.parse(db.lastGenerationTime)).toBeLessThanOrEqual(Date.now());
  }
  for (const command of ["databases", "ls"]) {
    const text = await haduck([command, "--store", root]);
    expect(text.code).toBe(0);
    const lines = text.stdout.trimEnd().split("\n");
    expect(lines).toHaveLength(2);
    lines.forEach((line, i) => {
      const db = listed[i];
      expect(line).toStartWith(db.dbKey);
      expect(line).toContain(`generation ${db.lastGeneration}`);
      expect(line).toContain(db.lastGenerationTime);
      expect(line).toContain(`${db.sizeBytes} bytes`);
    });
    // The nested key is named with the --store and --db-key that open it.
    expect(text.stderr).toContain(`--store ${root}/team --db-key a.duckdb`);
  }
}, 60_000);

test("a missing --db-key points to haduck databases; an unknown key fails by name for every command that reads one", async () => {
  const store = `file://${dir}/key-store`;
  expect((await haduck(["attach", "real.duckdb", "--store", store, "-c", "CREATE TABLE t AS SELECT 1 AS x"])).code)
    .toBe(0);
  const commands = [["generations"], ["generations", "--json"], ["status"], ["status", "--json"], ["verify"],
    ["restore", "--to", join(dir, "never.duckdb")]];
  for (const command of commands) {
    const missing = await haduck([...command, "--store", store]);
    expect({ command, code: missing.code, stdout: missing.stdout, stderr: missing.stderr }).toEqual({ command, code: 2,
      stdout: "", stderr: expect.stringContaining(`--db-key is required: run \`haduck databases --store ${store}\` to ` +
        "list the keys in the store") });
    const unknown = await haduck([...command, "--store", store, "--db-key", "nope.duckdb"]);
    expect({ command, code: unknown.code, stdout: unknown.stdout }).toEqual({ command, code: 1, stdout: "" });
    expect(unknown.stderr).toContain(`No generations of nope.duckdb in ${store}`);
    expect(unknown.stderr).toContain(`run \`haduck databases --store ${store}\` to list the keys`);
    expect(unknown.stderr.trimEnd().split("\n")).toHaveLength(1);
  }
  const known = await haduck(["status", "--store", store, "--db-key", "real.duckdb", "--json"]);
  expect(known.code).toBe(0);
  expect(JSON.parse(known.stdout).lastGeneration).toBeGreaterThan(0);
}, 60_000);

test("handoff refuses a node URL without http:// (exit 2) and names a node that does not answer (exit 4)", async () => {
  for (const node of ["127.0.0.1:8080", "localhost:8080"]) {
    const bare = await haduck(["handoff", "--node", node], { HADUCK_ADMIN_TOKEN: "" });
    expect({ node, code: bare.code }).toEqual({ node, code: 2 });
    expect(bare.stderr).toContain("http:// or https://");
    expect(bare.stderr).toContain(`http://${node}`);
  }
  // A port that nothing listens on: a server's ephemeral port, closed again.
  const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("") });
  const url = `http://127.0.0.1:${server.port}`;
  server.stop(true);
  const down = await haduck(["handoff", "--node", url], { HADUCK_ADMIN_TOKEN: "t".repeat(32) });
  expect(down.code).toBe(4);
  expect(down.stderr).toContain(`cannot reach the node at ${url}: is it running?`);
  expect(down.stderr.trimEnd().split("\n")).toHaveLength(1);
});

test("the shell takes DuckDB's dot-commands on a piped script: .tables, .schema, .mode, .timer, .help, .quit", async () => {
  const script = [
    "CREATE TABLE t(i INTEGER, s VARCHAR);",
    "CREATE VIEW v AS SELECT i FROM t;",
    "CREATE TABLE other(x INTEGER);",
    "INSERT INTO t VALUES (1, 'a'), (2, 'b,c');",
    ".tables",
    ".schema t",
    ".mode csv",
    "SELECT i, s FROM t ORDER BY i;",
    ".mode json",
    "SELECT i, s FROM t ORDER BY i;",
    ".mode line",
    "SELECT i, s FROM t WHERE i = 1;",
    ".mode table",
    ".timer on",
    "SELECT 42 AS answer;",
    ".timer off",
    "SELECT 43 AS other;",
    "SELECT",
    ".5 AS half;", // a line that starts with '.' inside a statement is SQL
    ".help",
    ".quit",
    "SELECT 'not reached' AS never;",
  ].join("\n");
  const ran = await haduck(["attach", "shell.duckdb"], {}, script);
  expect({ code: ran.code, errors: ran.stderr.split("\n").filter((line) => line.startsWith("Error")) })
    .toEqual({ code: 0, errors: [] });
  const out = ran.stdout;
  expect(out).not.toContain("Count"); // DDL and writes print nothing, as in DuckDB's CLI
  expect(out).toStartWith("other\nt\nv\nCREATE TABLE t(i INTEGER, s VARCHAR);\n");
  expect(out).toContain("CREATE TABLE t(i INTEGER, s VARCHAR);\n");
  expect(out).not.toContain("CREATE VIEW");
  expect(out).not.toContain("CREATE TABLE other");
  expect(out).toContain('i,s\n1,a\n2,"b,c"\n');
  expect(out).toContain('[{"i":1,"s":"a"},\n{"i":2,"s":"b,c"}]\n');
  expect(out).toContain("i = 1\ns = a\n");
  expect(out).toMatch(/\| 42 +\|\nRun Time: \d+\.\d{3} s\n/);
  expect(out.match(/^Run Time:/gm)).toHaveLength(1);
  expect(out).toMatch(/\| 43 +\|/);
  expect(out).toMatch(/\| 0\.5 +\|/);
  for (const command of [".tables", ".schema", ".mode", ".timer", ".help", ".quit"]) expect(out).toContain(command);
  expect(out).not.toContain("not reached");
}, 30_000);

test("the shell names .help for an unknown dot-command and prints a parser error once, then goes on", async () => {
  const ran = await haduck(["attach", "shell-errors.duckdb"], {},
    ".frobnicate\nSELEC 1;\n.schema nothing_here\n.mode box\nSELECT 1 AS still_running;\n");
  expect(ran.code).toBe(1);
  expect(ran.stderr).toContain('unknown command ".frobnicate": run .help');
  expect(ran.stderr.match(/syntax error/g)).toHaveLength(1);
  expect(ran.stderr.match(/LINE 1:/g)).toHaveLength(1);
  expect(ran.stderr).toContain("no table or view named nothing_here");
  expect(ran.stderr).toContain(".mode takes one of table, csv, json, line");
  expect(ran.stdout).toContain("still_running");
  // The same through -c: the error line of the command, its context once.
  const command = await haduck(["attach", "shell-errors.duckdb", "-c", "SELEC 1"]);
  expect(command.code).toBe(1);
  expect(command.stderr.match(/LINE 1:/g)).toHaveLength(1);
}, 30_000);
