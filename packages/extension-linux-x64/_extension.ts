/**
 * @module
 * Where this platform package keeps the built extension, and which DuckDB it was built for.
 */
import { fileURLToPath } from "node:url";

/** The DuckDB version the extension's footer names; DuckDB refuses to load it into any other. */
export const DUCKDB_VERSION = "v1.4.4";
/** DuckDB's platform name for this package. */
export const PLATFORM = "linux_amd64";
/** Absolute path of `haduck.duckdb_extension` in this package. */
// Beside this file in the sources, one folder up from its JavaScript build (dist/mod.js).
export const EXTENSION_FILE: string = fileURLToPath(new URL(import.meta.url.endsWith(".js")
  ? "../haduck.duckdb_extension" : "./haduck.duckdb_extension", import.meta.url));
