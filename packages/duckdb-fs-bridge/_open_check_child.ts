/**
 * @module
 * The child of `checkOpensInDuckDB`: attaches argv's file read-only to stock DuckDB (no extension),
 * reads every column of every table, prints `{ tables, rows }` as the last line, exits 0; any
 * refusal exits 1. With `--replay` it first attaches the file for writing, which replays
 * `<file>.wal`, and checkpoints.
 *
 * Memory is bounded: DuckDB's default limit is 80% of RAM, and a check that reads every row cached
 * the whole file in it (issue 23: 1084 MiB for a 987 MiB file). Columns are read one at a time, so
 * what a scan pins does not grow with a table's width; a step that runs out of memory all the same
 * (a WAL replay that builds a large index, a very wide struct) is tried again with four times the
 * limit, up to `MEMORY_LIMITS_MB`'s last, before it counts as a refusal.
 */
import { DuckDBInstance } from "@duckdb/node-api";
import { rmSync } from "node:fs";

const args = (globalThis as { Deno?: { args: string[] } }).Deno?.args ?? process.argv.slice(2);
const path = args[0];
/** The memory limits a step is tried with, in order, while DuckDB says it is out of memory. */
const MEMORY_LIMITS_MB = [16, 64, 256, 1024];
const TEMP_DIRECTORY = `${path}.haduck-tmp`;
const literal = (text: string) => `'${text.replaceAll("'", "''")}'`;
const quote = (name: string) => `"${name.replaceAll('"', '""')}"`;

const instance = await DuckDBInstance.create(":memory:", { memory_limit: `${MEMORY_LIMITS_MB[0]}MB`, threads: "1",
  temp_directory: TEMP_DIRECTORY });
const connection = await instance.connect();
let limit = 0;

/** Runs `sql`; on DuckDB's out-of-memory error raises the limit (up to the last) and runs it again. */
async function run(sql: string): Promise<unknown[][]> {
  for (;;) {
    try {
      return (await connection.runAndReadAll(sql)).getRowsJS();
    } catch (error) {
      if (limit === MEMORY_LIMITS_MB.length - 1 || !/Out of Memory/i.test((error as Error).message)) throw error;
      await connection.run(`SET memory_limit = '${MEMORY_LIMITS_MB[++limit]}MB'`);
    }
  }
}

try {
  // ATTACHed from an in-memory database, never opened as the main one: DuckDB 1.4.4 replays some WAL
  // entries (ALTER ... TYPE USING, ADD COLUMN with a DEFAULT, struct field changes) only through
  // ATTACH; as the main database it fails with "GetDefaultDatabase with no default database set".
  if (args[1] === "--replay") {
    // Attaching for writing replays `<path>.wal`; the checkpoint folds it into the file and removes it.
    await run(`ATTACH ${literal(path)} AS restored`);
    await run("CHECKPOINT restored");
    await run("DETACH restored");
  }
  await run(`ATTACH ${literal(path)} AS restored (READ_ONLY)`);
  const tables = await run("SELECT schema_name, table_name FROM duckdb_tables() " +
    "WHERE database_name = 'restored' AND NOT internal AND NOT temporary") as [string, string][];
  let rows = 0;
  for (const [schema, table] of tables) {
    const name = `restored.${quote(schema)}.${quote(table)}`;
    const columns = (await run(`SELECT column_name FROM duckdb_columns() WHERE database_name = 'restored' ` +
      `AND schema_name = ${literal(schema)} AND table_name = ${literal(table)}`)).map((row) => String(row[0]));
    const [[count]] = await run(`SELECT count(*)::BIGINT FROM ${name}`);
    for (const column of columns) await run(`SELECT sum(hash(${quote(column)})) FROM ${name}`);
    rows += Number(count);
  }
  console.log(JSON.stringify({ tables: tables.length, rows }));
} catch (error) {
  console.log((error as Error).message.split("\n")[0]);
  process.exitCode = 1;
} finally {
  connection.closeSync();
  instance.closeSync();
  rmSync(TEMP_DIRECTORY, { recursive: true, force: true }); // where DuckDB spilled, if it did
}
