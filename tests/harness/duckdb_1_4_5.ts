/**
 * @module
 * Running code on DuckDB 1.4.5: `DUCKDB_1_4_5_ENV` added to a Bun child's environment makes it (and
 * its own children: the CLI's sidecars, the open check) load `@duckdb/node-api-1.4.5` wherever
 * `@duckdb/node-api` is imported (tests/harness/duckdb_1_4_5_preload.ts). A test file runs that way
 * with `bun test --preload ./tests/harness/duckdb_1_4_5_preload.ts tests/replication.test.ts` (not
 * through `BUN_OPTIONS`, which Bun puts before `test` and so reads as `bun run test`).
 */
import { resolve } from "node:path";

export const DUCKDB_1_4_5_PRELOAD = resolve(import.meta.dir, "duckdb_1_4_5_preload.ts");

/** The environment for a Bun process that is to run DuckDB 1.4.5. */
export const DUCKDB_1_4_5_ENV: Record<string, string> = {
  BUN_OPTIONS: `${process.env.BUN_OPTIONS ?? ""} --preload ${DUCKDB_1_4_5_PRELOAD}`.trim(),
};
