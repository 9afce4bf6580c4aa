/**
 * @module
 * Where this platform package keeps the built extension, one build per DuckDB release it supports,
 * and which releases those are.
 */
import { fileURLToPath } from "node:url";

/** The DuckDB release of the default build (`EXTENSION_FILE`): what `@duckdb/node-api` 1.4.4-r.4 runs. */
export const DUCKDB_VERSION = "v1.4.4";
/** DuckDB's platform name for this package. */
export const PLATFORM = "linux_amd64";
// Beside this file in the sources, one folder up from its JavaScript build (dist/mod.js).
const HERE = import.meta.url.endsWith(".js") ? "../" : "./";

/** Absolute path of the default build, `haduck.duckdb_extension`, in this package. */
export const EXTENSION_FILE: string = fileURLToPath(new URL(`${HERE}haduck.duckdb_extension`, import.meta.url));

/**
 * The build for each DuckDB release, by DuckDB's version string (`SELECT version()`): DuckDB loads
 * an extension only into the exact release it was built for, and each release's C++ ABI differs.
 */
export const EXTENSION_FILES: Readonly<Record<string, string>> = Object.freeze({
  "v1.4.4": EXTENSION_FILE,
  "v1.4.5": fileURLToPath(new URL(`${HERE}v1.4.5/haduck.duckdb_extension`, import.meta.url)),
});

/** The DuckDB releases this package has a build for, oldest first. */
export const DUCKDB_VERSIONS: readonly string[] = Object.freeze(Object.keys(EXTENSION_FILES));
