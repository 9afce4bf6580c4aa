/**
 * SQL over HTTP attacked as a hostile client would (issue 31), against real `haduck serve` nodes (a
 * leader and a follower, filesystem store) with both tokens: statements wrapped to change their
 * type, DuckDB's file, network and extension functions, settings, checkpoint and logging functions,
 * EXPORT, ATTACH, prepared statements. Each answer's status is asserted, and afterwards the host is
 * unchanged: no file or directory where the attacks pointed, no setting changed, no secret (the
 * tokens, a file's content) in any answer. With `--allow-files DIR` the admin token reaches DIR and
 * nothing else, and the read token still reaches no file.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ClusterNodeProcess, startNode, TOKEN, waitForLeader } from "./harness/cluster.ts";
import { runHaduck } from "./harness/cli.ts";

const READ_TOKEN = "attack-read-token-0123456789abcdef";
const dir = mkdtempSync(join(tmpdir(), "haduck-sql-attack-"));
const canary = join(dir, "canary"); // where attacks try to write: must stay empty
const allowed = join(dir, "allowed"); // --allow-files of the second cluster
const SECRET = `secret-${crypto.randomUUID()}`;
const secretFile = join(dir, "secret.txt");
let nodes: ClusterNodeProcess[] = [];
let leader: ClusterNodeProcess;
let follower: ClusterNodeProcess;
/** The leader's database file (its haduck:// path is DuckDB's own: the sandbox lets DuckDB reach it). */
let dbFile = "";

/** Every answer body seen: none may hold a secret. */
const answers: string[] = [];

async function post(url: string, bearer: string, body: Record<string, unknown>) {
  const response = await fetch(`${url}sql`, { method: "POST", signal: AbortSignal.timeout(30_000),
    headers: { authorization: `Bearer ${bearer}`, "content-type": "application/json" }, body: JSON.stringify(body) });
  const text = await response.text();
  answers.push(text);
  return { status: response.status, body: JSON.parse(text) as { rows?: unknown[][]; error?: string } };
}

async function startCluster(name: string, extraArgs: string[] = []) {
  const started: ClusterNodeProcess[] = [];
  for (const node of ["a", "b"]) {
    started.push(await startNode({ dir: join(dir, name), name: node, storeArgs: ["--store", `file://${dir}/${name}-store`],
      dbKey: "attack.duckdb", ttlMs: 2000, env: { HADUCK_READ_TOKEN: READ_TOKEN }, extraArgs }));
  }
  const elected = (await waitForLeader(started, 30_000)).leader;
  return { started, elected, other: started.find((node) => node !== elected)! };
}

beforeAll(async () => {
  mkdirSync(canary);
  mkdirSync(allowed);
  writeFileSync(secretFile, SECRET);
  const cluster = await startCluster("c1");
  nodes = cluster.started;
  leader = cluster.elected;
  follower = cluster.other;
  dbFile = join(dir, "c1", leader.name, "db.duckdb");
  expect((await post(leader.url, TOKEN, { sql: "CREATE TABLE t AS SELECT 1 AS x" })).status).toBe(200);
  // The follower shows the table before the attacks (reads of it run there).
  const deadline = Date.now() + 20_000;
  while ((await post(follower.url, TOKEN, { sql: "SELECT count(*) FROM t" })).status !== 200) {
    if (Date.now() > deadline) throw new Error("the follower never showed t");
    await Bun.sleep(100);
  }
}, 120_000);

afterAll(async () => {
  for (const node of nodes) node.process.kill("SIGTERM");
  await Promise.all(nodes.map((node) => node.process.exited));
  rmSync(dir, { recursive: true, force: true });
});

const q = (text: string) => text.replaceAll("'", "''");

/** Statements no token may run: 403 (or 400 where DuckDB has no such thing), and nothing happens. */
function forbiddenToAll(): string[] {
  return [
    `EXPLAIN ANALYZE COPY (SELECT 'pwned') TO '${canary}/explained.csv'`,
    `/* hidden */ explain /* really */ analyse COPY (SELECT 'pwned') TO '${canary}/commented.csv'`,
    `EXPLAIN (ANALYZE, FORMAT JSON) COPY (SELECT 'pwned') TO '${canary}/options.csv'`,
    `COPY (SELECT 'pwned') TO '${canary}/plain.csv'`,
    `COPY t TO '${canary}/table.parquet' (FORMAT parquet)`,
    `EXPORT DATABASE '${canary}/exported'`,
    `EXPLAIN ANALYZE EXPORT DATABASE '${canary}/exported2'`,
    `IMPORT DATABASE '${canary}'`,
    `SELECT content FROM read_text('${secretFile}')`,
    "SELECT content FROM read_text('/etc/shadow')",
    "SELECT * FROM glob('/root/**')",
    `SELECT * FROM read_blob('${secretFile}')`,
    `SELECT * FROM read_csv('${secretFile}')`,
    `FROM '${secretFile}'`,
    `WITH x AS (SELECT * FROM read_text('${secretFile}')) SELECT content FROM x`,
    `SELECT 1 WHERE EXISTS (SELECT * FROM glob('${dir}/*'))`,
    "SELECT * FROM read_text('http://127.0.0.1:9/x')",
    `SELECT * FROM query('COPY (SELECT 1) TO ''${q(canary)}/query.csv''')`,
    "SET threads = 1",
    "RESET threads",
    "EXPLAIN ANALYZE SET threads = 1",
    "EXPLAIN ANALYZE SET memory_limit = '1GB'",
    `SET extension_directory = '${canary}'`,
    `EXPLAIN ANALYZE SET extension_directory = '${canary}'`,
    "PRAGMA threads = 1",
    "SET enable_external_access = true",
    "SET lock_configuration = false",
    "INSTALL 'http://127.0.0.1:9/evil.duckdb_extension'",
    "EXPLAIN ANALYZE INSTALL 'http://127.0.0.1:9/evil.duckdb_extension'",
    "FORCE INSTALL httpfs",
    "LOAD httpfs",
    `EXPLAIN ANALYZE LOAD '${canary}/evil.duckdb_extension'`,
    `ATTACH '${canary}/other.duckdb' AS other`,
    `EXPLAIN ANALYZE ATTACH '${canary}/other2.duckdb' AS other`,
    "ATTACH ':memory:' AS scratch",
    "DETACH db",
    "SELECT * FROM enable_logging()",
    "CALL enable_logging()",
    "CALL disable_logging()",
    "SET VARIABLE x = 1",
    // From a review's attack (helper report, 2026-12-06): SQL built from strings, the extension's
    // controls, the node's own files through its haduck:// paths, PRAGMA switches.
    "SELECT * FROM query('SELECT * FROM enable_' || 'logging()')",
    "SELECT * FROM \"query\"('SELECT 1')",
    "SELECT * FROM query_table('t')",
    "SELECT haduck_consumer_detach()",
    "SELECT \"haduck_consumer_attach\"(0)",
    "SELECT * FROM haduck_drain_events()",
    `COPY (SELECT 'garbage') TO 'haduck://${dbFile}' (FORMAT csv, USE_TMP_FILE false)`,
    `COPY (SELECT 'garbage') TO 'haduck://${dbFile}.wal' (FORMAT csv, USE_TMP_FILE false)`,
    `COPY (SELECT 'x') TO '${dbFile}.haduck-tmp/admin.csv'`,
    `SELECT * FROM read_blob('haduck://${dbFile}')`,
    "PRAGMA disable_optimizer",
    "PRAGMA force_checkpoint",
    "PRAGMA enable_profile",
    "SELECT * FROM U&\"\\0071uery\"('SELECT 1')",
    // From a second attack (2026-12-06): another executor of SQL built from strings, a path split
    // into adjacent string constants (DuckDB joins them across a newline), IMPORT.
    "SELECT * FROM json_execute_serialized_sql(json_serialize_sql('SELECT 1'))",
    "PRAGMA json_execute_serialized_sql('x')",
    `SELECT size FROM read_blob('hadu'\n'ck://${dbFile}')`,
    `SELECT * FROM glob('${dbFile.slice(0, 5)}'\n-- a comment between\n'${dbFile.slice(5)}.haduck-tmp/*')`,
    // Paths built from pieces, or passed as parameters, reach what DuckDB's sandbox lets through.
    `SELECT filename, size FROM read_blob('hadu' || 'ck://${dbFile}')`,
    `SELECT size FROM read_blob(concat('hadu', 'ck://', '${dbFile}', '.wal'))`,
    // The follower's snapshots and base through the extension's snapshot scheme (issue 34).
    `SELECT size FROM read_blob('haduck-snapshot://${dbFile}.haduck-follower/base.duckdb')`,
    `ATTACH 'haduck-snapshot://${dbFile}.haduck-follower/base.duckdb' AS base`,
    `SELECT size FROM read_blob('haduck-' || 'snapshot://${dbFile}.haduck-follower/base.duckdb')`,
    `COPY (SELECT 'x') TO 'haduck-' || 'snapshot://${dbFile}.haduck-follower/base.duckdb'`,
    // A fourth attack (2026-12-07): a comment between a function's name and its parenthesis hid it
    // from the text checks; query() then ran SQL built from strings (and one crashed the process).
    "FROM query/**/('FROM enable_' || 'logging()')",
    "FROM query--x\n('SELECT 1')",
    "FROM query /* a /* nested */ comment */ ('SELECT hadu' || 'ck_version() AS v')",
    "FROM query_table/**/('t')",
    `SELECT size FROM read_blob/**/('hadu' || 'ck://${dbFile}')`,
    `SELECT * FROM glob/**/('${dbFile}' || '.haduck-tmp/*')`,
    // A fifth attack (2026-12-07): a persistent secret is a file wherever its name points.
    "CREATE PERSISTENT SECRET pwn (TYPE http, BEARER_TOKEN 'attacker')",
    `CREATE PERSISTENT SECRET "../../../../../../..${canary}/evil" (TYPE http, HTTP_PROXY 'http://127.0.0.1:9')`,
    "/* c */ create or replace persistent secret p3 (TYPE http)",
    "CREATE SECRET s (TYPE http, BEARER_TOKEN 'x')",
    "EXPLAIN ANALYZE CREATE PERSISTENT SECRET p2 (TYPE http)",
    "DROP PERSISTENT SECRET pwn",
  ];
}

/** Reads only a reader may not run (they change state or are not plain reads): 403 for it, fine for the admin. */
const forbiddenToReader = [
  "SELECT * FROM force_checkpoint()",
  "CALL force_checkpoint()",
  "CHECKPOINT",
  "EXPLAIN ANALYZE INSERT INTO t VALUES (99)",
  "EXPLAIN ANALYZE DELETE FROM t WHERE x = 99",
  "SELECT * FROM duckdb_settings()",
  "PRAGMA version",
  "SELECT * FROM pg_catalog.pg_settings",
  "SELECT * FROM pragma_database_list",
  "SELECT current_setting('temp_directory')",
  // The judge reads a statement's prefix as DuckDB does: nested comments, a line comment ended by \r.
  "/* /* */ EXPLAIN SELECT $$ */ SELECT * FROM duckdb_settings() LIMIT 2 --$$",
  "-- c\rSELECT name, value FROM duckdb_settings() /*\nEXPLAIN SELECT 1 --*/",
  "/* /* */ EXPLAIN ANALYZE SELECT $$ */ EXPLAIN ANALYZE SELECT * FROM duckdb_settings() --$$",
  "SELECT path FROM duckdb_databases()",
  // Values DuckDB builds outside its memory limit, or folds while it binds (no interrupt there).
  "SELECT list_reduce(range(10000000), (a, b) -> a + b)",
  "SELECT len(range(x)) FROM range(600000000, 600000001) r(x)",
  "SELECT repeat('x', 300000000)",
  "SELECT lpad('x', 100000000, 'y')",
  // A third attack (2026-12-06): sizes that multiply (a lambda runs its body once per element; a
  // size function inside another) and sizes that add up.
  "SELECT len(flatten(list_transform(range(100), x -> range(1000000))))",
  "SELECT length(repeat(repeat('x', 1000000), 500))",
  "SELECT len(range(600000)) + len(range(600000))",
  // The fourth attack: a width in a format runs once per row (2048 rows a vector: 5.8 GB past a
  // 2 GB memory_limit), a size that is per-row, a long constant joined to every row.
  "SELECT max(length(printf('%1000000d', range))) AS n FROM range(2048)",
  "SELECT length(format('{:>100000000}', 'x'))",
  "SELECT format('{:>{}}', 'x', 100000000)",
  "SELECT printf('%*d', 100000000, 1)",
  "SELECT printf(range::VARCHAR, 1) FROM range(2)",
  "SELECT max(length(lpad(range::VARCHAR, 1000000, 'x'))) FROM range(2048)",
  `SELECT max(length(concat(range::VARCHAR, '${"x".repeat(70_000)}'))) FROM range(2048)`,
  // The fifth: a JSON text 65,536 levels deep overflowed a thread's stack (the process died), a
  // fold that doubles its accumulator, a long string repeated, a replacement that multiplies, one of
  // DuckDB's own macros over pragma_database_size().
  `SELECT json_structure('${"[".repeat(65_536)}' || '${"]".repeat(65_536)}') IS NULL AS n`,
  "SELECT json_structure(repeat('[', 20000) || repeat(']', 20000)) IS NULL AS n",
  "SELECT length(list_reduce(['x', 'x', 'x'], (a, b) -> a || a)) AS n",
  "SELECT length(reduce(['x', 'x'], lambda acc, b: concat(b, acc, acc))) AS n",
  `SELECT length(repeat('${"y".repeat(1000)}', 1000)) AS n`,
  "SELECT length(replace(repeat('x', 100), 'x', repeat('y', 100))) AS n",
  `SELECT length(regexp_replace('xx', '(x)', '${"\\1".repeat(40)}', 'g')) AS n`,
  "SELECT get_block_size('db')",
  // The sixth (2026-12-07): JSON built deep by an aggregate, a structure deep in few characters, a
  // serialized statement rebuilt recursively, an aggregate repeated.
  "SELECT json_contains(s, s) FROM (SELECT string_agg('[', '') || string_agg(']', '') s FROM range(50000))",
  "SELECT length(json_merge_patch(s, s)) FROM (SELECT string_agg('{\"a\":', '') || '1' || string_agg('}', '') s FROM range(50000))",
  "SELECT length(json_structure(s)::VARCHAR) FROM (SELECT string_agg('[', '') || string_agg(']', '') s FROM range(60000))",
  "SELECT json_transform('{}', repeat('{\"a\":', 3000) || '\"INTEGER\"' || repeat('}', 3000))",
  "SELECT from_json('[]', repeat('[', 4000) || '\"INTEGER\"' || repeat(']', 4000))",
  "SELECT json_deserialize_sql(json_serialize_sql('SELECT 1'))",
  "SELECT length(repeat(s, 15)) FROM (SELECT string_agg(range::VARCHAR, ',') s FROM range(1000))",
];

async function settings(url: string) {
  return (await post(url, TOKEN, { sql: "SELECT current_setting('threads') AS threads, " +
    "current_setting('memory_limit') AS memory, current_setting('enable_external_access') AS external, " +
    "current_setting('lock_configuration') AS locked, current_setting('autoload_known_extensions') AS autoload" })).body.rows;
}

test("every attack of either token on leader and follower is refused, and leaves the host as it was", async () => {
  const before = { leader: await settings(leader.url), follower: await settings(follower.url) };
  expect(before.leader![0]).toEqual([expect.anything(), expect.anything(), false, true, false]);
  expect(before.follower![0]).toEqual([expect.anything(), expect.anything(), false, true, false]);
  const failures: string[] = [];
  for (const node of [leader, follower]) {
    for (const [bearer, who] of [[TOKEN, "admin"], [READ_TOKEN, "reader"]] as const) {
      for (const sql of forbiddenToAll()) {
        const { status, body } = await post(node.url, bearer, { sql });
        // 403 for what reaches beyond the database; 400 only where DuckDB refuses the statement itself.
        if (status !== 403 && status !== 400) failures.push(`${who} on ${node.name}: ${status} for ${sql}: ${body.error}`);
        if (who === "reader" && sql.includes("FROM '") && status !== 403) failures.push(`a file as a table is ${status}`);
      }
      const parameterized = await post(node.url, bearer, { sql: "SELECT * FROM read_text($1)", params: [secretFile] });
      if (parameterized.status !== 403) failures.push(`${who}: read_text($1) is ${parameterized.status}`);
      const ownFile = await post(node.url, bearer, { sql: "SELECT size FROM read_blob($1)", params: [`haduck://${dbFile}`] });
      if (ownFile.status !== 403) failures.push(`${who}: read_blob($1) of the live file is ${ownFile.status}`);
    }
    for (const sql of forbiddenToReader) {
      const { status, body } = await post(node.url, READ_TOKEN, { sql });
      if (status !== 403) failures.push(`reader on ${node.name}: ${status} for ${sql}: ${body.error}`);
    }
  }
  expect(failures).toEqual([]);
  // The file errors name the flag that opens them.
  const copied = await post(leader.url, TOKEN, { sql: `COPY (SELECT 1) TO '${canary}/x.csv'` });
  expect(copied.body.error).toContain("--allow-files");
  // Nothing on the host changed: no file, no directory, no setting; the reader's write never landed.
  expect(readdirSync(canary)).toEqual([]);
  expect(await settings(leader.url)).toEqual(before.leader);
  expect(await settings(follower.url)).toEqual(before.follower);
  expect((await post(leader.url, TOKEN, { sql: "SELECT count(*) FROM t" })).body.rows).toEqual([[1]]);
  // What the admin may do still works: a checkpoint, reads, writes.
  expect((await post(leader.url, TOKEN, { sql: "CHECKPOINT" })).status).toBe(200);
  expect((await post(leader.url, READ_TOKEN, { sql: "SELECT x, (SELECT count(*) FROM range(3)) FROM t" })).status)
    .toBe(200);
  expect((await post(follower.url, READ_TOKEN, { sql: "EXPLAIN ANALYZE SELECT * FROM t" })).status).toBe(200);
  expect((await post(follower.url, READ_TOKEN, { sql: "SELECT table_name FROM duckdb_tables()" })).body.rows)
    .toEqual([["t"]]);
  // Small sizes stay a reader's: a short list, padding, a repeated string, formats with small widths.
  expect((await post(leader.url, READ_TOKEN, { sql: "SELECT range(3), lpad('7', 3, '0'), repeat('ab', 2)" })).body.rows)
    .toEqual([[["0", "1", "2"], "007", "abab"]]);
  expect((await post(leader.url, READ_TOKEN, { sql: "SELECT printf('%3d|%-2s|', 7, 'a'), format('{}-{:>3}', 1, 'x')" }))
    .body.rows).toEqual([["  7|a |", "1-  x"]]);
  expect((await post(leader.url, READ_TOKEN, { sql: "SELECT list_reduce([1, 2, 3], (a, b) -> a + b), " +
    "replace('abc', 'b', 'xy'), regexp_replace('ab', '(a)', '\\1\\1')" })).body.rows).toEqual([[6, "axyc", "aab"]]);
  // Parameters count towards what a reader may build.
  expect((await post(leader.url, READ_TOKEN, { sql: "SELECT length($1) AS n", params: ["x".repeat(40_000)] })).status)
    .toBe(403);
  expect((await post(leader.url, READ_TOKEN, { sql: "SELECT length($1) AS n", params: ["x".repeat(4_000)] })).body.rows)
    .toEqual([[4000]]);
  // JSON functions over columns and shallow structures stay a reader's.
  expect((await post(leader.url, READ_TOKEN, { sql: "SELECT json_transform('{\"a\": [1, 2]}', '{\"a\": [\"INTEGER\"]}')" +
    "::VARCHAR, json_extract(j, '$.a') FROM (SELECT '{\"a\": 3}' AS j)" })).body.rows).toEqual([["{'a': [1, 2]}", "3"]]);
  // The deepest JSON a reader can build is within what a thread's stack holds, on leader and follower.
  for (const node of [leader, follower]) {
    const deep = await post(node.url, READ_TOKEN,
      { sql: "SELECT json_structure(repeat('[', 16000) || repeat(']', 16000)) IS NULL AS n" });
    expect(deep.body.rows).toEqual([[false]]);
  }
  // No answer carried a secret: the tokens, or the content of a file the attacks named.
  for (const answer of answers) {
    expect(answer).not.toContain(SECRET);
    expect(answer).not.toContain(TOKEN);
    expect(answer).not.toContain(READ_TOKEN);
  }
}, 300_000);

test("a reader's statement behind a long run of comments is judged in time, and the leader keeps its lease", async () => {
  // A regular expression over the leading comments backtracked: 40 KB of them held the event loop
  // for 94 s and the leader lost its lease (attack of 2026-12-07). 400 KB now takes milliseconds.
  const epoch = async () => {
    const status = await fetch(`${leader.url}status`, { headers: { authorization: `Bearer ${TOKEN}` } });
    const { role, epoch } = await status.json() as { role: string; epoch: number };
    return { role, epoch };
  };
  const before = await epoch();
  expect(before.role).toBe("leader");
  const started = performance.now();
  const commented = await post(leader.url, READ_TOKEN, { sql: `${`/*${"x".repeat(1000)}*/`.repeat(400)}SELECT 1 AS one` });
  expect(commented.body.rows).toEqual([[1]]);
  const explained = await post(leader.url, READ_TOKEN, { sql: `${`/*${"x".repeat(1000)}*/ `.repeat(400)}EXPLAIN SELECT 1` });
  expect(explained.status).toBe(200);
  expect(performance.now() - started).toBeLessThan(5_000);
  expect(await epoch()).toEqual(before);
}, 120_000);

test("--allow-files may not name a directory that holds the served database", async () => {
  const home = join(dir, "own-dir");
  mkdirSync(home, { recursive: true });
  for (const allowedDir of [home, dir]) {
    const refused = await runHaduck(dir, ["serve", join(home, "x.duckdb"), "--listen", "127.0.0.1:0",
      "--allow-files", allowedDir], { HADUCK_ADMIN_TOKEN: TOKEN, HADUCK_STORE: "" });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("holds the served database");
    expect(refused.stderr).toContain("--allow-files");
  }
  expect(existsSync(join(home, "x.duckdb"))).toBe(false);
}, 120_000);

test("every statement type DuckDB 1.4.4 has is classified", async () => {
  const { StatementType } = await import("@duckdb/node-api");
  const { CLASS_OF_TYPE } = await import("@haduck/cluster");
  const types = Object.values(StatementType).filter((value) => typeof value === "number") as number[];
  expect(types.length).toBeGreaterThanOrEqual(28);
  for (const type of types) expect(CLASS_OF_TYPE[type as keyof typeof CLASS_OF_TYPE]).toBeDefined();
  expect(Object.keys(CLASS_OF_TYPE).length).toBe(types.length);
});

test("--allow-files DIR lets the admin token use DIR and nothing else; the read token still reaches no file", async () => {
  const cluster = await startCluster("c2", ["--allow-files", allowed]);
  nodes.push(...cluster.started);
  const admin = cluster.elected;
  expect((await post(admin.url, TOKEN, { sql: `COPY (SELECT 42 AS answer) TO '${allowed}/out.csv'` })).status).toBe(200);
  expect(existsSync(join(allowed, "out.csv"))).toBe(true);
  const read = await post(admin.url, TOKEN, { sql: `SELECT answer FROM read_csv('${allowed}/out.csv')` });
  expect(read.body.rows).toEqual([[42]]);
  for (const sql of [`COPY (SELECT 1) TO '${canary}/outside.csv'`, `COPY (SELECT 1) TO '${allowed}/../escaped.csv'`,
    `SELECT * FROM read_text('${secretFile}')`]) {
    expect((await post(admin.url, TOKEN, { sql })).status).toBe(403);
  }
  for (const sql of [`SELECT * FROM read_csv('${allowed}/out.csv')`, `FROM '${allowed}/out.csv'`,
    `COPY (SELECT 1) TO '${allowed}/reader.csv'`]) {
    expect((await post(admin.url, READ_TOKEN, { sql })).status).toBe(403);
  }
  // The database's own files, by paths built so that no text check sees them whole: DuckDB lets
  // statements reach the attached files; the extension's file systems refuse any statement's open.
  const piece = (text: string) => `'${text.slice(0, 4)}' || '${text.slice(4)}'`;
  for (const node of cluster.started) {
    const own = join(dir, "c2", node.name, "db.duckdb");
    for (const sql of [`SELECT size FROM read_blob('hadu' || 'ck://' || ${piece(own)})`,
      `SELECT size FROM read_blob('hadu' || 'ck://' || ${piece(own)} || '.wal')`,
      `SELECT * FROM glob('hadu' || 'ck://' || ${piece(join(dir, "c2", node.name))} || '/*')`,
      `SELECT size FROM read_blob('haduck-' || 'snapshot://' || ${piece(`${own}.haduck-follower/base.duckdb`)})`]) {
      const { status, body } = await post(node.url, TOKEN, { sql });
      expect({ sql, status, error: body.error?.slice(0, 60) }).toEqual({ sql, status: 403, error: expect.any(String) });
    }
  }
  // DuckDB's own opens (a write, its WAL, a checkpoint) go on.
  expect((await post(admin.url, TOKEN, { sql: "CREATE TABLE w AS SELECT 7 AS x" })).status).toBe(200);
  expect((await post(admin.url, TOKEN, { sql: "CHECKPOINT" })).status).toBe(200);
  expect(existsSync(join(dir, "escaped.csv"))).toBe(false);
  expect(existsSync(join(allowed, "reader.csv"))).toBe(false);
  expect(readdirSync(canary)).toEqual([]);
}, 300_000);
