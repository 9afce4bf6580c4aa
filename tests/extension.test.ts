/**
 * The extension as DuckDB sees it: it loads under Bun, reports its versions, refuses clearly when
 * missing or built for another DuckDB, and attaches haduck:// databases that stock DuckDB reopens.
 * It tests the build for the DuckDB it runs on: DuckDB 1.4.5's with
 * `bun test --preload ./tests/harness/duckdb_1_4_5_preload.ts tests/extension.test.ts`.
 */
import { afterAll, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DuckDBInstance, version } from "@duckdb/node-api";
import { extensionBuildPath, extensionFooter } from "../tools/build_extension.ts";

const DUCKDB = version();
const EXTENSION_PATH = extensionBuildPath(DUCKDB);

const dir = mkdtempSync(join(tmpdir(), "haduck-ext-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function connect(extension = EXTENSION_PATH) {
  const instance = await DuckDBInstance.create(":memory:", { allow_unsigned_extensions: "true" });
  const connection = await instance.connect();
  await connection.run(`LOAD '${extension}'`);
  return connection;
}

test("the extension loads into DuckDB under Bun and haduck_version() answers this DuckDB's version", async () => {
  const connection = await connect();
  const rows = (await connection.runAndReadAll("SELECT haduck_version().duckdb AS duckdb, " +
    "haduck_version().extension AS extension")).getRowObjects();
  expect(rows).toEqual([{ duckdb: DUCKDB, extension: "0.1.0" }]);
  expect(["v1.4.4", "v1.4.5"]).toContain(DUCKDB);
});

test("loading a missing build fails with a clear error, not a crash", async () => {
  const error = await connect(join(dir, "missing.duckdb_extension")).catch((e) => e);
  expect(String(error.message)).toContain("missing.duckdb_extension");
  expect(String(error.message)).toMatch(/not found/i);
});

test("loading a build for another DuckDB version fails with a clear error", async () => {
  const binary = readFileSync(EXTENSION_PATH);
  const footer = extensionFooter("0.1.0", DUCKDB);
  const foreign = Buffer.concat([binary.subarray(0, binary.length - footer.length), extensionFooter("0.1.0", "v1.3.2")]);
  const path = join(dir, "haduck.duckdb_extension");
  writeFileSync(path, foreign);
  const error = await connect(path).catch((e) => e);
  expect(String(error.message)).toContain("v1.3.2");
  expect(String(error.message)).toContain(DUCKDB);
});

test("ATTACH 'haduck:///...' works and stock DuckDB reopens the file with identical contents", async () => {
  const connection = await connect();
  const path = join(dir, "attach.duckdb");
  await connection.run(`ATTACH 'haduck://${path}' AS mydb`);
  await connection.run("CREATE TABLE mydb.t AS SELECT i, i * 2 AS j FROM range(100000) r(i)");
  await connection.run("UPDATE mydb.t SET j = -1 WHERE i % 1000 = 0");
  await connection.run("CHECKPOINT mydb");
  const expected = (await connection.runAndReadAll("SELECT count(*)::INT c, sum(j)::BIGINT s FROM mydb.t"))
    .getRowObjects();
  await connection.run("DETACH mydb");
  const stock = await (await DuckDBInstance.create(path)).connect();
  const actual = (await stock.runAndReadAll("SELECT count(*)::INT c, sum(j)::BIGINT s FROM t")).getRowObjects();
  expect(actual).toEqual(expected);
  expect(actual[0].c).toBe(100000);
});

test("haduck:// serves COPY TO, globbing read_csv, and the WAL through the extension", async () => {
  const connection = await connect();
  await connection.run(`COPY (SELECT 1 AS a UNION ALL SELECT 2) TO 'haduck://${dir}/one.csv' (HEADER)`);
  await connection.run(`COPY (SELECT 3 AS a) TO 'haduck://${dir}/two.csv' (HEADER)`);
  const rows = (await connection.runAndReadAll(`SELECT sum(a)::INT s FROM read_csv('haduck://${dir}/*.csv')`))
    .getRowObjects();
  expect(rows).toEqual([{ s: 6 }]);
  const db = join(dir, "wal.duckdb");
  await connection.run(`ATTACH 'haduck://${db}' AS w`);
  await connection.run("CREATE TABLE w.t (i INT)");
  await connection.run("INSERT INTO w.t VALUES (1)");
  const kinds = (await connection.runAndReadAll("SELECT path, kind, writes FROM haduck_stats() WHERE path LIKE $p",
    { p: `${db}%` })).getRowObjects();
  expect(kinds.find((row) => row.path === `${db}.wal`)?.kind).toBe("wal");
  expect(Number(kinds.find((row) => row.path === `${db}.wal`)?.writes)).toBeGreaterThan(0);
  expect(kinds.find((row) => row.path === db)?.kind).toBe("database");
});

test("malformed haduck paths get an IOException naming the path and the expected form", async () => {
  const connection = await connect();
  for (const bad of ["haduck://", `haduck://${dir}/../escape.duckdb`]) {
    const error = await connection.run(`ATTACH '${bad}' AS bad`).catch((e) => e);
    expect(String(error.message)).toContain("Invalid haduck path");
    expect(String(error.message)).toContain("haduck:///absolute/path/to/db.duckdb");
  }
  const error = await connection.run(`ATTACH 'haduck://${dir}' AS d`).catch((e) => e);
  expect(String(error.message)).toContain("is a directory");
  for (const device of ["/dev/null", "/dev/zero"]) {
    const refused = await connection.run(`ATTACH 'haduck://${device}' AS dev`).catch((e) => e);
    expect(String(refused.message)).toContain("not a regular file");
  }
  // The connection still works after every refusal.
  expect((await connection.runAndReadAll("SELECT 42 AS x")).getRowObjects()).toEqual([{ x: 42 }]);
});

test("a reopened haduck database copies and opens in stock DuckDB", async () => {
  const path = join(dir, "attach.duckdb");
  copyFileSync(path, join(dir, "copy.duckdb"));
  const stock = await (await DuckDBInstance.create(join(dir, "copy.duckdb"))).connect();
  expect((await stock.runAndReadAll("SELECT count(*)::INT c FROM t")).getRowObjects()).toEqual([{ c: 100000 }]);
});
