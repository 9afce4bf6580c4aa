/**
 * SQL over HTTP on one node: `haduck serve <db> --listen` answers `POST /sql` with DuckDB's columns
 * and rows, tells a write from a read by DuckDB's statement type, answers a write only once its
 * commit is durable in the store (the restore has it, with no checkpoint), and maps errors: a SQL
 * error is 400 naming DuckDB's message, no token 401, a bad body 400.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import { restore } from "@haduck/duckdb-fs-bridge";
import { openStore } from "@haduck/s3-block-store";
import { readStderr } from "./harness/cli.ts";

const BIN = resolve(import.meta.dir, "../packages/cli/bin/haduck.ts");
const dir = mkdtempSync(join(tmpdir(), "haduck-sql-http-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** `haduck serve <db> --store ... --listen 127.0.0.1:0` with `env`; resolves with its URL once it says it. */
async function serve(db: string, storeUrl: string, env: Record<string, string>) {
  const child = Bun.spawn([process.execPath, BIN, "serve", db, "--store", storeUrl, "--listen", "127.0.0.1:0"],
    { cwd: dir, env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe" });
  const stderr = readStderr(child);
  const url = await stderr.adminUrl();
  const stop = async () => {
    child.kill("SIGTERM");
    await child.exited;
    await stderr.done;
  };
  if (!url) {
    await stop();
    throw new Error(`serve did not start: ${stderr.text()}`);
  }
  return { url, stop };
}

test("POST /sql: reads and durable writes, JSON values, and errors by name", async () => {
  const token = "sql-http-test-token-0123456789";
  const storeUrl = `file://${join(dir, "store")}`;
  const { url, stop } = await serve("node.duckdb", storeUrl, { HADUCK_ADMIN_TOKEN: token });
  try {
    const sql = (body: unknown, headers: Record<string, string> = { authorization: `Bearer ${token}` }) =>
      fetch(`${url}sql`, { method: "POST", headers: { ...headers, "content-type": "application/json" },
        body: typeof body === "string" ? body : JSON.stringify(body) });

    expect((await sql({ sql: "SELECT 1" }, {})).status).toBe(401);
    const created = await sql({ sql: "CREATE TABLE t(i BIGINT, s VARCHAR, d DATE)" });
    expect(created.status).toBe(200);
    const written = await (await sql({ sql: "INSERT INTO t VALUES ($1, $2, DATE '2026-12-01'), (9007199254740993, 'big', NULL)",
      params: [42, "forty-two"] })).json();
    expect(written.role).toBe("leader");
    expect(written.position).toMatch(/^\d+:\d+:\d+$/);
    // Durable when answered: the store's latest commit has the rows, though nothing checkpointed.
    const to = join(dir, "restored.duckdb");
    const restored = await restore({ store: openStore(storeUrl), dbKey: "node.duckdb", to });
    expect(restored.commits).toBeGreaterThan(0);
    const instance = await DuckDBInstance.create(to, { access_mode: "READ_ONLY" });
    const connection = await instance.connect();
    expect(Number((await connection.runAndReadAll("SELECT count(*) FROM t")).getRowsJS()[0][0])).toBe(2);
    connection.closeSync();
    instance.closeSync();

    const read = await (await sql({ sql: "SELECT i, s, d FROM t ORDER BY i" })).json();
    expect(read.columns).toEqual(["i", "s", "d"]);
    expect(read.rows).toEqual([[42, "forty-two", expect.stringContaining("2026-12-01")], ["9007199254740993", "big", null]]);

    const bad = await sql({ sql: "SELECT * FROM no_such_table" });
    expect(bad.status).toBe(400);
    expect((await bad.json()).error).toContain("no_such_table");
    const notJson = await sql("{ not json");
    expect(notJson.status).toBe(400);
    expect((await notJson.json()).error).toContain("must be JSON");
    const twoStatements = await sql({ sql: "SELECT 1; SELECT 2" });
    expect(twoStatements.status).toBe(400);

    // What writes under a reader's type is a write all the same: DuckDB refuses it read-only, and it is made durable.
    expect((await sql({ sql: "CREATE SEQUENCE seq" })).status).toBe(200);
    const next = await (await sql({ sql: "SELECT nextval('seq') AS n" })).json();
    expect(next.rows).toEqual([[1]]);
    const explained = await sql({ sql: "EXPLAIN ANALYZE INSERT INTO t VALUES (7, 'explained', NULL)" });
    expect(explained.status).toBe(200);
    expect((await (await sql({ sql: "SELECT count(*) FROM t" })).json()).rows).toEqual([[3]]);
    // Full precision, whatever the type.
    const typed = await (await sql({ sql: "SELECT 12345678901234567.89::DECIMAL(38,2) AS d, " +
      "TIMESTAMP '2026-12-01 08:00:00.123456' AS ts, 'infinity'::DATE AS inf, 2::HUGEINT AS h" })).json();
    expect(typed.rows[0][0]).toContain("12345678901234567.89");
    expect(typed.rows[0][1]).toContain("08:00:00.123456");
    expect(typeof typed.rows[0][2]).toBe("string"); // never a 500 for a date beyond JavaScript's
    expect(typed.rows[0][3]).toBe(2);
    // A transaction cannot span requests (each runs on a connection of its own): refused by name.
    const begin = await sql({ sql: "BEGIN TRANSACTION" });
    expect(begin.status).toBe(400);
    expect((await begin.json()).error).toContain("its own transaction");

    const status = await (await fetch(`${url}status`, { headers: { authorization: `Bearer ${token}` } })).json();
    expect(status).toMatchObject({ role: "leader", epoch: 1, lagMs: 0, leader: url }); // a store makes it a cluster of one
    expect(status.databases[0].role).toBe("leader");
  } finally {
    await stop();
  }
}, 120_000);

test("HADUCK_READ_TOKEN runs reads on POST /sql and nothing else: a write, or any other route, is 403", async () => {
  const token = "sql-http-admin-token-0123456789";
  const readToken = "sql-http-read-token-0123456789";
  const storeUrl = `file://${join(dir, "store-read")}`;
  const { url, stop } = await serve("read.duckdb", storeUrl, { HADUCK_ADMIN_TOKEN: token, HADUCK_READ_TOKEN: readToken });
  try {
    const as = (bearer: string, body: unknown) => fetch(`${url}sql`, { method: "POST",
      headers: { authorization: `Bearer ${bearer}`, "content-type": "application/json" }, body: JSON.stringify(body) });
    expect((await as(token, { sql: "CREATE TABLE t AS SELECT 1 AS x" })).status).toBe(200);
    const read = await as(readToken, { sql: "SELECT x FROM t" });
    expect(read.status).toBe(200);
    expect((await read.json()).rows).toEqual([[1]]);
    const write = await as(readToken, { sql: "INSERT INTO t VALUES (2)" });
    expect(write.status).toBe(403);
    expect((await write.json()).error).toContain("HADUCK_READ_TOKEN");
    // What writes under a reader's type is refused too, and nothing changed.
    expect((await as(token, { sql: "CREATE SEQUENCE s" })).status).toBe(200);
    expect((await as(readToken, { sql: "SELECT nextval('s')" })).status).toBe(403);
    expect((await (await as(token, { sql: "SELECT count(*) FROM t" })).json()).rows).toEqual([[1]]);
    for (const route of ["status", "metrics", "generations"]) {
      expect((await fetch(`${url}${route}`, { headers: { authorization: `Bearer ${readToken}` } })).status).toBe(403);
    }
    expect((await fetch(`${url}checkpoint`, { method: "POST", headers: { authorization: `Bearer ${readToken}` } }))
      .status).toBe(403);
    expect((await as("not-a-token-of-this-node", { sql: "SELECT 1" })).status).toBe(401);
  } finally {
    await stop();
  }
}, 120_000);
