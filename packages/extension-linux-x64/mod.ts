/**
 * @module
 * `@haduck/extension-linux-x64`: the haduck DuckDB extension for linux x64 (glibc), one build per
 * DuckDB release it supports (v1.4.4 and v1.4.5). `@haduck/duckdb-fs-bridge` finds it through module
 * resolution and loads the build that matches the DuckDB it runs; set `HADUCK_EXTENSION_PATH` to
 * use another build.
 *
 * @example
 * ```ts
 * import { DUCKDB_VERSIONS, EXTENSION_FILES } from "@haduck/extension-linux-x64";
 * for (const version of DUCKDB_VERSIONS) {
 *   console.log(`LOAD '${EXTENSION_FILES[version]}'; -- for DuckDB ${version}, with allow_unsigned_extensions`);
 * }
 * ```
 */
export { DUCKDB_VERSION, DUCKDB_VERSIONS, EXTENSION_FILE, EXTENSION_FILES, PLATFORM } from "./_extension.ts";
