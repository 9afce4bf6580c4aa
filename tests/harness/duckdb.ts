/** Reading a database file the way a user would: stock DuckDB, read-only, no extension. */
import { DuckDBInstance } from "@duckdb/node-api";

/** Rows of `sql` against the file at `path`, as plain objects. */
export async function queryFile(path: string, sql: string): Promise<Record<string, unknown>[]> {
  const instance = await DuckDBInstance.create(path, { access_mode: "READ_ONLY" });
  const connection = await instance.connect();
  try {
    return (await connection.runAndReadAll(sql)).getRowObjects();
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

/** `count(*)` of table `t` in the file at `path`. */
export async function rowCount(path: string): Promise<number> {
  return (await queryFile(path, "SELECT count(*)::INT AS n FROM t"))[0].n as number;
}
