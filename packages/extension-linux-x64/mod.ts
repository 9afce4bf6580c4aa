/**
 * @module
 * `@haduck/extension-linux-x64`: the haduck DuckDB extension for linux x64 (glibc), built for
 * DuckDB v1.4.4. `@haduck/duckdb-fs-bridge` finds it through module resolution; set
 * `HADUCK_EXTENSION_PATH` to use another build.
 *
 * @example
 * ```ts
 * import { DUCKDB_VERSION, EXTENSION_FILE } from "@haduck/extension-linux-x64";
 * console.log(`LOAD '${EXTENSION_FILE}'; -- for DuckDB ${DUCKDB_VERSION}, with allow_unsigned_extensions`);
 * ```
 */
export { DUCKDB_VERSION, EXTENSION_FILE, PLATFORM } from "./_extension.ts";
