/**
 * @module
 * The child of `checkOpensInDuckDB`: attaches argv's file read-only to stock DuckDB (no extension),
 * reads every column of every table, prints `{ tables, rows }` as the last line, exits 0; any
 * refusal exits 1. With `--replay` it first attaches the file for writing, which replays
 * `<file>.wal`, and checkpoints.
 *
 * Memory is bounded: DuckDB's default limit is 80% of RAM, and a check that reads every row cached
 * the whole file in it (issue 23: 1084 MiB for a 987 MiB file). Columns are read one at a time, so
 * what a scan pins does not grow with a table's width. A step that runs out of resources all the
 * same (a WAL replay of hundreds of commits, a large index, a very wide struct) is tried again with
 * four times the memory limit, up to the ceiling argv gives (`--memory-max-mb`). A resource failure
 * is never a refusal: when the ceiling is reached, or the disk is full, the child prints
 * `{"unavailable": why}` and exits `CHECK_EXIT_UNAVAILABLE`, and the parent says the check could not run.
 */
import { DuckDBInstance } from "@duckdb/node-api";
import { readFileSync, rmSync } from "node:fs";
import { CHECK_EXIT_UNAVAILABLE, isResourceFailure } from "./_resource_failure.ts";

const args = (globalThis as { Deno?: { args: string[] } }).Deno?.args ?? process.argv.slice(2);
const path = args[0];
const replay = args.includes("--replay");
const memoryMaxMb = Number(args[args.indexOf("--memory-max-mb") + 1]) || 1024;
/** The memory limits a step is tried with, in order, while DuckDB says it ran out: 16 MiB, x4, ..., the ceiling. */
const MEMORY_LIMITS_MB: number[] = [];
for (let mb = 16; mb < memoryMaxMb; mb *= 4) MEMORY_LIMITS_MB.push(mb);
MEMORY_LIMITS_MB.push(memoryMaxMb);
const TEMP_DIRECTORY = `${path}.haduck-tmp`;
const literal = (text: string) => `'${text.replaceAll("'", "''")}'`;
const quote = (name: string) => `"${name.replaceAll('"', '""')}"`;

class Unavailable extends Error {}

let limit = 0;
/** An instance of its own per memory limit: DuckDB may take running out of memory for a fatal error. */
const open = async () => await DuckDBInstance.create(":memory:", { memory_limit: `${MEMORY_LIMITS_MB[limit]}MB`,
  threads: "1", temp_directory: TEMP_DIRECTORY });
let instance = await open();
let connection = await instance.connect();
/** What a new instance runs first (the read-only ATTACH, once the replay is done). */
let setup: string | undefined;

/**
 * Runs `step`; when DuckDB runs out of memory or temp space, undoes what it attached
 * (`cleanUp`), opens a new instance with the next limit and runs it again. At the ceiling, or on a
 * full disk: Unavailable.
 */
async function withLimits<T>(step: () => Promise<T>, cleanUp = async () => {}): Promise<T> {
  for (;;) {
    try {
      return await step();
    } catch (error) {
      const resource = isResourceFailure((error as Error).message);
      if (!resource) throw error;
      await cleanUp().catch(() => {});
      if (resource === "disk" || limit === MEMORY_LIMITS_MB.length - 1) {
        throw new Unavailable(`${firstLine(error)} (memory limit ${MEMORY_LIMITS_MB[limit]} MiB` +
          `${resource === "disk" ? "; the disk is full" : ", the ceiling"})`);
      }
      // A new instance with the next limit: a replay that ran out of memory can leave DuckDB's instance
      // invalidated ("database has been invalidated because of a previous fatal error"), and every
      // statement on it then fails with that, which read as a refusal of a healthy store (exit 5).
      limit++;
      try {
        connection.closeSync();
        instance.closeSync();
      } catch {
        // an invalidated instance may refuse to close cleanly: it is dropped all the same
      }
      instance = await open();
      connection = await instance.connect();
      if (setup) await connection.run(setup);
    }
  }
}

/**
 * This process's peak resident memory, MiB: Linux's VmHWM, which starts again at exec (getrusage's
 * maxRSS keeps the forking parent's peak across exec, so it would report the restoring process's).
 */
function peakRssMb(): number {
  try {
    const kib = /VmHWM:\s*(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
    if (kib) return Math.round(Number(kib[1]) / 1024);
  } catch {
    // not Linux: the portable figure below
  }
  return Math.round(process.resourceUsage().maxRSS / 1024);
}

const rows = async (sql: string) => (await connection.runAndReadAll(sql)).getRowsJS();
const run = (sql: string) => withLimits(() => rows(sql));
const firstLine = (error: unknown) => (error as Error).message.split("\n")[0];

try {
  // ATTACHed from an in-memory database, never opened as the main one: DuckDB 1.4.4 replays some WAL
  // entries (ALTER ... TYPE USING, ADD COLUMN with a DEFAULT, struct field changes) only through
  // ATTACH; as the main database it fails with "GetDefaultDatabase with no default database set".
  if (replay) {
    // Attaching for writing replays `<path>.wal`; the checkpoint folds it into the file and removes
    // it. A replay that ran out of memory committed nothing: detach and replay again with more.
    await withLimits(async () => {
      await rows(`ATTACH ${literal(path)} AS restored`);
      await rows("CHECKPOINT restored");
      await rows("DETACH restored");
    }, async () => void await rows("DETACH DATABASE IF EXISTS restored"));
  }
  setup = `ATTACH ${literal(path)} AS restored (READ_ONLY)`;
  await run(setup);
  const tables = await run("SELECT schema_name, table_name FROM duckdb_tables() " +
    "WHERE database_name = 'restored' AND NOT internal AND NOT temporary") as [string, string][];
  let rowCount = 0;
  for (const [schema, table] of tables) {
    const name = `restored.${quote(schema)}.${quote(table)}`;
    const columns = (await run(`SELECT column_name FROM duckdb_columns() WHERE database_name = 'restored' ` +
      `AND schema_name = ${literal(schema)} AND table_name = ${literal(table)}`)).map((row) => String(row[0]));
    const [[count]] = await run(`SELECT count(*)::BIGINT FROM ${name}`);
    for (const column of columns) await run(`SELECT sum(hash(${quote(column)})) FROM ${name}`);
    rowCount += Number(count);
  }
  console.log(JSON.stringify({ tables: tables.length, rows: rowCount, memoryLimitMb: MEMORY_LIMITS_MB[limit],
    peakRssMb: peakRssMb() }));
} catch (error) {
  if (error instanceof Unavailable) {
    console.log(JSON.stringify({ unavailable: error.message }));
    process.exitCode = CHECK_EXIT_UNAVAILABLE;
  } else {
    console.log(firstLine(error));
    process.exitCode = 1;
  }
} finally {
  connection.closeSync();
  instance.closeSync();
  rmSync(TEMP_DIRECTORY, { recursive: true, force: true }); // where DuckDB spilled, if it did
}
