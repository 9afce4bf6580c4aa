/**
 * @module
 * The child of `checkOpensInDuckDB`: opens argv's file read-only with stock DuckDB (no extension),
 * reads every table, prints `{ tables, rows }` as the last line, exits 0; any refusal exits 1.
 */
import { DuckDBInstance } from "@duckdb/node-api";

const path = (globalThis as { Deno?: { args: string[] } }).Deno?.args[0] ?? process.argv[2];
try {
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
