/**
 * @module
 * The child of `checkOpensInDuckDB`: attaches argv's file read-only to stock DuckDB (no extension),
 * reads every table, prints `{ tables, rows }` as the last line, exits 0; any refusal exits 1. With
 * `--replay` it first attaches the file for writing, which replays `<file>.wal`, and checkpoints.
 * Memory and threads are bounded (`BOUNDED`).
 */
import { DuckDBInstance } from "@duckdb/node-api";
import { rmSync } from "node:fs";

const args = (globalThis as { Deno?: { args: string[] } }).Deno?.args ?? process.argv.slice(2);
const path = args[0];
/**
 * Bounded like every child of haduck's commands: DuckDB's default memory limit is 80% of RAM, and a
 * check that reads every row would cache the whole file in it (issue 23: 1084 MiB for a 987 MiB file).
 */
const BOUNDED = { memory_limit: "16MB", threads: "1", temp_directory: `${path}.haduck-tmp` };
/** Replaying a WAL may build what it logged (a large insert into a keyed table): more room, and spill. */
const REPLAY_MEMORY_LIMIT = "64MB";
const literal = (text: string) => `'${text.replaceAll("'", "''")}'`;
try {
  // The file is ATTACHed from an in-memory database, never opened as the main one: DuckDB 1.4.4
  // replays some WAL entries (ALTER ... TYPE USING, ADD COLUMN with a DEFAULT, struct field changes)
  // only through ATTACH; as the main database it fails with "GetDefaultDatabase with no default database set".
  const instance = await DuckDBInstance.create(":memory:", BOUNDED);
  const connection = await instance.connect();
  if (args[1] === "--replay") {
    // Attaching for writing replays `<path>.wal`; the checkpoint folds it into the file and removes it.
    await connection.run(`SET memory_limit = '${REPLAY_MEMORY_LIMIT}'`);
    await connection.run(`ATTACH ${literal(path)} AS restored`);
    await connection.run("CHECKPOINT restored");
    await connection.run("DETACH restored");
    await connection.run(`SET memory_limit = '${BOUNDED.memory_limit}'`);
  }
  await connection.run(`ATTACH ${literal(path)} AS restored (READ_ONLY)`);
  const tables = (await connection.runAndReadAll(
    "SELECT database_name, schema_name, table_name FROM duckdb_tables() " +
      "WHERE database_name = 'restored' AND NOT internal AND NOT temporary",
  )).getRowObjectsJS() as { database_name: string; schema_name: string; table_name: string }[];
  let rows = 0;
  const quote = (name: string) => `"${name.replaceAll('"', '""')}"`;
  for (const table of tables) {
    const name = `${quote(table.database_name)}.${quote(table.schema_name)}.${quote(table.table_name)}`;
    const [row] = (await connection.runAndReadAll(
      `SELECT count(*)::BIGINT AS n, sum(hash(COLUMNS(*))) FROM ${name} t`,
    )).getRowsJS();
    rows += Number(row[0]);
  }
  connection.closeSync();
  instance.closeSync();
  console.log(JSON.stringify({ tables: tables.length, rows }));
} catch (error) {
  console.log((error as Error).message.split("\n")[0]);
  process.exitCode = 1;
} finally {
  rmSync(BOUNDED.temp_directory, { recursive: true, force: true }); // where DuckDB spilled, if it did
}
