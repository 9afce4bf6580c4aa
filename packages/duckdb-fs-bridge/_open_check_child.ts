/**
 * @module
 * The child of `checkOpensInDuckDB`: opens argv's file read-only with stock DuckDB (no extension),
 * reads every table, prints `{ tables, rows }` as the last line, exits 0; any refusal exits 1. With
 * `--replay` it first opens the file for writing, which replays `<file>.wal`, and checkpoints.
 */
import { DuckDBInstance } from "@duckdb/node-api";

const args = (globalThis as { Deno?: { args: string[] } }).Deno?.args ?? process.argv.slice(2);
const path = args[0];
try {
  if (args[1] === "--replay") {
    // Opening for writing replays `<path>.wal`; the checkpoint folds it into the file and removes it.
    const writer = await DuckDBInstance.create(path);
    const connection = await writer.connect();
    await connection.run("CHECKPOINT");
    connection.closeSync();
    writer.closeSync();
  }
  const instance = await DuckDBInstance.create(path, { access_mode: "READ_ONLY" });
  const connection = await instance.connect();
  const tables = (await connection.runAndReadAll(
    "SELECT database_name, schema_name, table_name FROM duckdb_tables() WHERE NOT internal AND NOT temporary",
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
  process.exit(1);
}
