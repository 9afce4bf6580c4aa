/**
 * @module
 * The `haduck` command line: attach, restore, generations, verify, status.
 * Errors are one line (what failed, what to do) with documented exit codes; `--debug` adds stacks.
 */
import { parseArgs } from "node:util";
import { resolve } from "node:path";
import { readFileSync } from "node:fs";
import { StoreError } from "@haduck/s3-block-store";
import {
  attach,
  defaultDbKey,
  extensionPath,
  latestManifest,
  Native,
  openDuckDB,
  ReplicationError,
  restore,
  summarizeGenerations,
  verify,
} from "@haduck/duckdb-fs-bridge";
import { NO_STORE_HINT, STORE_OPTIONS, storeFromFlags } from "./_store_flags.ts";
import { printRows, runShell } from "./_shell.ts";

/** Exit codes, documented in `haduck --help`. */
export const EXIT = { ok: 0, failure: 1, usage: 2, config: 3, store: 4, integrity: 5, conflict: 6 } as const;

class UsageError extends Error {}

const HELP: Record<string, string> = {
  main: `haduck: highly available embedded DuckDB (block-level replication to object storage)

Usage: haduck <command> [options]

Commands:
  attach <db-path>    open a database with replication running (SQL shell, or -c/-f)
  restore --to <path> restore a generation into a new file
  generations         list the generations in the store (--json)
  verify              check every object and checksum in the store (--drill: also restore and open)
  status              the latest generation and the store's state (--json)

Store (every command): --store file:///abs/dir | --store s3://bucket/prefix [--endpoint URL]
  or HADUCK_S3_BUCKET, HADUCK_S3_ENDPOINT, HADUCK_S3_ACCESS_KEY, HADUCK_S3_SECRET_KEY (HADUCK_S3_PREFIX).
  --db-key KEY names the database in the store (default: the file name). Flags win over variables.

Exit codes: 0 ok, 1 failure, 2 usage, 3 configuration, 4 store unreachable or access denied,
  5 integrity failure, 6 conflict (target exists, diverged).

Examples:
  haduck attach demo.duckdb --store file://$PWD/haduck-store -c "CREATE TABLE t AS SELECT 42 AS x"
  haduck generations --store file://$PWD/haduck-store --db-key demo.duckdb
  haduck restore --store file://$PWD/haduck-store --db-key demo.duckdb --to restored.duckdb`,
  attach: `Usage: haduck attach <db-path> [--store URL] [-c SQL]... [-f file.sql]
Opens <db-path> through haduck://, ships a generation at every checkpoint, and prints one line per
generation. Without -c or -f it starts an interactive SQL shell (.exit to leave).
Example: haduck attach demo.duckdb --store file://$PWD/haduck-store -c "CREATE TABLE t AS SELECT 1 AS x"`,
  restore: `Usage: haduck restore --to <path> [--generation N] [--force] --store URL --db-key KEY
Restores a generation (default: the latest) into a new file; refuses to overwrite unless --force.
Example: haduck restore --store file://$PWD/haduck-store --db-key demo.duckdb --to restored.duckdb`,
  generations: `Usage: haduck generations --store URL --db-key KEY [--json]
Example: haduck generations --store file://$PWD/haduck-store --db-key demo.duckdb --json`,
  verify: `Usage: haduck verify --store URL --db-key KEY [--drill]
Checks the manifest chain and every segment's and block's checksum; --drill also restores the
latest generation into a temp dir and opens it. Exit 5 when anything is corrupt.`,
  status: `Usage: haduck status --store URL --db-key KEY [--json]`,
};

function parse(args: string[], options: Record<string, { type: "string" | "boolean"; multiple?: boolean; short?: string }>) {
  try {
    return parseArgs({ args, options: { ...STORE_OPTIONS, ...options, help: { type: "boolean", short: "h" },
      debug: { type: "boolean" } }, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(`${(error as Error).message}; see --help`);
  }
}

function needStore(values: Record<string, unknown>) {
  const store = storeFromFlags(values as { store?: string; endpoint?: string }, process.env);
  if (!store) throw new UsageError(NO_STORE_HINT);
  const dbKey = values["db-key"] as string | undefined;
  if (!dbKey) throw new UsageError("--db-key is required (the database's file name, as `haduck generations` shows)");
  return { store, dbKey };
}

const mib = (bytes: number) => `${(bytes / 1048576).toFixed(2)} MiB`;

async function commandAttach(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { command: { type: "string", short: "c", multiple: true },
    file: { type: "string", short: "f" }, alias: { type: "string" } });
  if (values.help) return (console.log(HELP.attach), EXIT.ok);
  if (positionals.length !== 1) throw new UsageError("attach needs exactly one <db-path>; see --help");
  const store = storeFromFlags(values, process.env);
  if (!store) console.error("haduck: local-only mode (no store configured): tracking changes, uploading nothing");
  const db = await attach({
    dbPath: positionals[0],
    store,
    dbKey: values["db-key"],
    alias: values.alias,
    onGeneration: (event) => console.error(`haduck: generation ${event.generation}: ${event.blocks} blocks, ` +
      `${event.blocksShipped} shipped (${mib(event.bytesShipped)}) in ${event.durationMs.toFixed(0)} ms`),
  });
  try {
    const statements = [...(values.command ?? [])];
    if (values.file) statements.push(readFileSync(values.file, "utf8"));
    if (statements.length === 0) {
      await runShell(db.connection);
    } else {
      for (const sql of statements) {
        const reader = await db.connection.runAndReadAll(sql);
        if (reader.columnCount > 0 && reader.currentRowCount > 0) printRows(reader);
      }
    }
  } finally {
    await db.close();
  }
  const error = db.replicator.status.lastError;
  if (error) {
    console.error(`haduck: ${error}`);
    return EXIT.store;
  }
  return EXIT.ok;
}

async function commandRestore(args: string[]): Promise<number> {
  const { values } = parse(args, { to: { type: "string" }, generation: { type: "string" }, force: { type: "boolean" } });
  if (values.help) return (console.log(HELP.restore), EXIT.ok);
  if (!values.to) throw new UsageError("restore needs --to <path>; see --help");
  const generation = values.generation === undefined ? undefined : Number(values.generation);
  if (generation !== undefined && !Number.isSafeInteger(generation)) {
    throw new UsageError(`--generation must be a whole number, not ${values.generation}`);
  }
  const { store, dbKey } = needStore(values);
  await openDuckDB(); // loads libduckdb so the extension's block checksum is available
  const native = new Native();
  const started = performance.now();
  const result = await restore({ store, dbKey, to: resolve(values.to), generation, force: values.force,
    blockChecksumOk: (block) => native.blockChecksumOk(block) });
  const seconds = (performance.now() - started) / 1000;
  console.log(`restored generation ${result.generation} of ${dbKey} to ${result.path}: ${result.blocks} blocks, ` +
    `${mib(result.bytes)} in ${seconds.toFixed(2)} s`);
  return EXIT.ok;
}

async function commandGenerations(args: string[]): Promise<number> {
  const { values } = parse(args, { json: { type: "boolean" } });
  if (values.help) return (console.log(HELP.generations), EXIT.ok);
  const { store, dbKey } = needStore(values);
  const generations = await summarizeGenerations(store, dbKey);
  if (values.json) console.log(JSON.stringify(generations, null, 2));
  else {
    console.log("generation  time                      blocks  bytes        shipped");
    for (const g of generations) {
      console.log(`${String(g.generation).padEnd(10)}  ${g.time.padEnd(24)}  ${String(g.blocks).padEnd(6)}  ` +
        `${mib(g.bytes).padEnd(11)}  ${g.blocksShipped} blocks, ${mib(g.bytesShipped)}`);
    }
  }
  return EXIT.ok;
}

async function commandVerify(args: string[]): Promise<number> {
  const { values } = parse(args, { drill: { type: "boolean" } });
  if (values.help) return (console.log(HELP.verify), EXIT.ok);
  const { store, dbKey } = needStore(values);
  const report = await verify(store, dbKey);
  for (const problem of report.problems) console.error(`haduck: ${problem}`);
  console.log(`verified ${report.generations} generations, ${report.segments} segments, ${report.blocks} blocks: ` +
    `${report.problems.length} problems`);
  if (report.problems.length > 0) return EXIT.integrity;
  if (values.drill) {
    const { mkdtempSync, rmSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const dir = mkdtempSync(resolve(tmpdir(), "haduck-drill-"));
    try {
      await openDuckDB();
      const native = new Native();
      const to = resolve(dir, "drill.duckdb");
      const result = await restore({ store, dbKey, to, blockChecksumOk: (block) => native.blockChecksumOk(block) });
      const { DuckDBInstance } = await import("@duckdb/node-api");
      const instance = await DuckDBInstance.create(to, { access_mode: "READ_ONLY" });
      const connection = await instance.connect();
      const tables = (await connection.runAndReadAll("SELECT count(*)::INT AS n FROM duckdb_tables()")).getRowObjects();
      connection.closeSync();
      instance.closeSync();
      console.log(`drill: generation ${result.generation} restored and opened (${tables[0].n} tables)`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return EXIT.ok;
}

async function commandStatus(args: string[]): Promise<number> {
  const { values } = parse(args, { json: { type: "boolean" } });
  if (values.help) return (console.log(HELP.status), EXIT.ok);
  const { store, dbKey } = needStore(values);
  const latest = await latestManifest(store, dbKey);
  const status = {
    store: store.url,
    dbKey,
    extension: extensionPath(),
    lastGeneration: latest?.manifest.generation ?? null,
    lastGenerationTime: latest?.manifest.createdAt ?? null,
    fileSizeBytes: latest?.manifest.fileSizeBytes ?? null,
  };
  if (values.json) console.log(JSON.stringify(status, null, 2));
  else for (const [key, value] of Object.entries(status)) console.log(`${key}: ${value}`);
  return EXIT.ok;
}

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  attach: commandAttach,
  restore: commandRestore,
  generations: commandGenerations,
  verify: commandVerify,
  status: commandStatus,
};

export function exitCodeOf(error: unknown): number {
  if (error instanceof UsageError || error instanceof TypeError) return EXIT.usage;
  if (error instanceof StoreError) {
    if (error.code === "INVALID_CONFIG") return EXIT.config;
    if (error.code === "CHECKSUM_MISMATCH") return EXIT.integrity;
    if (error.code === "PRECONDITION_FAILED") return EXIT.conflict;
    return EXIT.store;
  }
  if (error instanceof ReplicationError) {
    if (error.code === "INTEGRITY") return EXIT.integrity;
    if (error.code === "TARGET_EXISTS" || error.code === "DIVERGED") return EXIT.conflict;
    return EXIT.failure;
  }
  return EXIT.failure;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === "--help" || command === "-h" || command === "help") {
    console.log(HELP.main);
    return command ? EXIT.ok : EXIT.usage;
  }
  const run = COMMANDS[command];
  if (!run) {
    console.error(`haduck: unknown command ${JSON.stringify(command)}; run \`haduck --help\` for the commands`);
    return EXIT.usage;
  }
  try {
    return await run(rest);
  } catch (error) {
    console.error(`haduck ${command}: ${(error as Error).message}`);
    if (rest.includes("--debug")) console.error((error as Error).stack);
    return exitCodeOf(error);
  }
}

export { defaultDbKey };
