/**
 * @module
 * The sandbox of a DuckDB instance that serves SQL to others (a leader's, a follower snapshot's):
 * its statements reach the database and nothing else. DuckDB has the controls; haduck sets them
 * once it has loaded the extension and attached the database, then locks the configuration:
 *
 * - no file or network access outside the database's own files (`enable_external_access = false`,
 *   which DuckDB 1.4.4 checks on every path a statement names: COPY, EXPORT, ATTACH, read_*, glob,
 *   a file used as a table, INSTALL's download), except the directories the node's owner allows
 *   (`allowed_directories`, from `--allow-files`);
 * - no extension installed or loaded after the start (no auto-install, no auto-load, no community
 *   extensions; LOAD of a file is a file access, refused above);
 * - no persistent secret (`CREATE PERSISTENT SECRET` writes a file named by the statement);
 * - bounded memory and spill (`memory_limit`, a `temp_directory` of its own, `max_temp_directory_size`);
 * - `lock_configuration = true` last: afterwards no statement of any token changes a setting (SET,
 *   RESET, PRAGMA, and their EXPLAIN ANALYZE wrappers fail inside DuckDB).
 *
 * The files DuckDB opens for the attached database (the file, its WAL, haduck:// paths, the temp
 * directory) are DuckDB's own and stay reachable (tested: INSERT, CHECKPOINT and shipping go on).
 */
import type { DuckDBConnection } from "@duckdb/node-api";
import { mkdirSync } from "node:fs";
import { resolve } from "node:path";

export interface SandboxOptions {
  /** Directories statements may read and write files in (`--allow-files`). Default none. */
  allowedDirectories?: string[];
  /** DuckDB's `memory_limit` for the instance, e.g. "2GB". Default "2GB". */
  memoryLimit?: string;
  /** Where DuckDB spills (created). Default: DuckDB's own (`<db>.tmp`). */
  tempDirectory?: string;
  /** DuckDB's `max_temp_directory_size`. Default "16GB". */
  maxTempDirectorySize?: string;
}

const literal = (text: string) => `'${text.replaceAll("'", "''")}'`;

/** The statements that sandbox an instance, in order (the lock last). */
export function sandboxStatements(options: SandboxOptions = {}): string[] {
  const allowed = (options.allowedDirectories ?? []).map((dir) => {
    const absolute = resolve(dir);
    return absolute.endsWith("/") ? absolute : `${absolute}/`;
  });
  return [
    "SET autoinstall_known_extensions = false",
    "SET autoload_known_extensions = false",
    "SET allow_community_extensions = false",
    // A persistent secret is a file named by the statement, in a directory no sandbox setting covers.
    "SET allow_persistent_secrets = false",
    `SET memory_limit = ${literal(options.memoryLimit ?? "2GB")}`,
    ...(options.tempDirectory ? [`SET temp_directory = ${literal(resolve(options.tempDirectory))}`] : []),
    `SET max_temp_directory_size = ${literal(options.maxTempDirectorySize ?? "16GB")}`,
    ...(allowed.length > 0 ? [`SET allowed_directories = [${allowed.map(literal).join(", ")}]`] : []),
    "SET enable_external_access = false",
    "SET lock_configuration = true",
  ];
}

/**
 * Sandboxes the instance `connection` belongs to (see the module). Run it after the last LOAD and
 * ATTACH haduck itself needs: afterwards neither succeeds.
 *
 * @example
 * ```ts
 * import { DuckDBInstance } from "@duckdb/node-api";
 * import { sandbox } from "@haduck/duckdb-fs-bridge";
 * const instance = await DuckDBInstance.create(":memory:");
 * const connection = await instance.connect();
 * await sandbox(connection, { memoryLimit: "256MB" });
 * await connection.run("SELECT 42"); // COPY ... TO, read_text(...), SET ... now fail
 * ```
 */
export async function sandbox(connection: DuckDBConnection, options: SandboxOptions = {}): Promise<void> {
  if (options.tempDirectory) mkdirSync(options.tempDirectory, { recursive: true });
  for (const statement of sandboxStatements(options)) await connection.run(statement);
}
