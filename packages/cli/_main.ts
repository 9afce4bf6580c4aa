/**
 * @module
 * The `haduck` command line: attach, restore, gc, fork and the dispatch of every command (databases,
 * generations, status and verify are in `_inspect.ts`, handoff in `_handoff.ts`, serve in `_serve.ts`,
 * what they share in `_command.ts`).
 * Errors are one line (what failed, what to do) with documented exit codes; `--debug` adds stacks.
 */
import { join, resolve } from "node:path";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import type { DuckDBConnection } from "@duckdb/node-api";
import { StoreError } from "@haduck/s3-block-store";
import { suggestCommand } from "@haduck/duckblock";
import {
  assertValidDbKey,
  defaultDbKey,
  DUCKDB_VERSION,
  DuckDBVersionError,
  follow,
  fork,
  gc,
  ReplicationError,
  restore,
} from "@haduck/duckdb-fs-bridge";
import {
  DEFAULT_STORE_DIR,
  defaultAttachStore,
  REPLICA_STORE_OPTIONS,
  REPLICA_STORES_ENV,
  replicaStoresFromFlags,
  storeFromFlags,
} from "./_store_flags.ts";
import { errorMessage, printRows, runShell } from "./_shell.ts";
import { HELP } from "./_help.ts";
import { runSidecar } from "./_sidecar.ts";
import { progress, reportProgressOffTerminal, steppedProgress } from "./_progress.ts";
import { adminDatabase, adminSettings, serveAdmin } from "./_admin_server.ts";
import {
  attachFromFlags,
  checkMemory,
  EXIT,
  currentStore,
  listKeysCommand,
  mib,
  needStore,
  NodeUnreachableError,
  NodeUntrustedError,
  parse,
  UsageError,
} from "./_command.ts";
import { commandServe } from "./_serve.ts";
import { commandDatabases, commandGenerations, commandStatus, commandVerify } from "./_inspect.ts";
import { commandHandoff } from "./_handoff.ts";
import { commandRekey } from "./_rekey.ts";
import { commandAside } from "./_aside.ts";

export { EXIT } from "./_command.ts";

async function commandAttach(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { command: { type: "string", short: "c", multiple: true },
    file: { type: "string", short: "f" }, alias: { type: "string" }, admin: { type: "string" },
    sync: { type: "boolean" }, "from-store": { type: "boolean" }, generation: { type: "string" },
    time: { type: "string" }, ...REPLICA_STORE_OPTIONS });
  if (values.help) return (console.log(HELP.attach), EXIT.ok);
  if (values["from-store"]) return await attachFromStore(values, positionals);
  if (values.generation !== undefined || values.time !== undefined) {
    throw new UsageError("--generation and --time open the store's copy: add --from-store (and give no <db-path>)");
  }
  if (positionals.length !== 1) throw new UsageError("attach needs exactly one <db-path>; see --help");
  const defaultStore = defaultAttachStore(values, process.env, process.cwd());
  if (defaultStore) {
    values.store = defaultStore;
    console.error(`haduck: no store configured: using ${defaultStore} (./${DEFAULT_STORE_DIR}; --store or ` +
      `HADUCK_STORE choose another, HADUCK_STORE= with nothing after it runs local-only)`);
  }
  if (values.sync && !storeFromFlags(values, process.env)) {
    throw new UsageError("--sync waits until each commit is in the store: give --store (or HADUCK_STORE)");
  }
  if (replicaStoresFromFlags(values, process.env).length > 0 && !storeFromFlags(values, process.env)) {
    throw new UsageError(`--replica-store (or ${REPLICA_STORES_ENV}) copies the primary store: give --store too`);
  }
  // Every setting is checked before the database or the store is touched.
  const settings = values.admin === undefined ? undefined : adminSettings(values.admin);
  const { db, store } = await attachFromFlags(positionals[0], values);
  // No SQL over HTTP here: this instance is the local user's shell, with the user's own reach.
  const admin = settings && serveAdmin(settings, [adminDatabase(db, store, undefined)]);
  let statementFailed = false;
  try {
    const statements = [...(values.command ?? [])];
    if (values.file) statements.push(readFileSync(values.file, "utf8"));
    // --sync: a statement's result is printed only once its commit is durable in the store.
    const durable = values.sync ? async () => {
      if (!await db.flush()) {
        const status = db.replicator.status;
        throw new Error(`the commit is not in the store yet: ${status.lastError ?? status.framesStopped ?? "the " +
          "checkpoint that should carry it was not published"}; it is durable locally and ships when the store answers`);
      }
    } : undefined;
    if (statements.length === 0) {
      if (!await runShell(db.connection, durable)) statementFailed = true;
    } else {
      for (const sql of statements) {
        const reader = await db.connection.runAndReadAll(sql);
        await durable?.();
        if (reader.columnCount > 0 && reader.currentRowCount > 0) printRows(reader);
      }
    }
  } finally {
    await admin?.stop();
    await db.close();
  }
  const error = db.replicator.status.lastError;
  if (error) {
    console.error(`haduck: ${error}`);
    return EXIT.store;
  }
  return statementFailed ? EXIT.failure : EXIT.ok;
}

/** `90m`, `36h`, `7d`, `45s` to milliseconds. */
function parseDuration(value: string): number {
  const match = /^(\d+)(s|m|h|d)$/.exec(value.trim());
  if (!match) throw new UsageError(`Invalid duration ${JSON.stringify(value)}: expected a number and s, m, h or d, e.g. 36h`);
  return Number(match[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as "s"];
}

/** `attach --from-store`: a read-only view of the store's copy, opened lazily, at once (time travel). */
async function attachFromStore(values: Record<string, unknown> & { command?: string[]; file?: string;
  generation?: string; time?: string; "replica-store"?: string[] }, positionals: string[]): Promise<number> {
  if (positionals.length > 0) {
    throw new UsageError(`--from-store opens the copy in the store: give --db-key, not a <db-path> (${positionals[0]})`);
  }
  if (values.sync || values.admin !== undefined || values.alias !== undefined || values["replica-store"] !== undefined) {
    throw new UsageError("--from-store is a read-only view: --sync, --admin, --alias and --replica-store do not apply");
  }
  const { generation, untilMs } = pointInHistory(values);
  const { store, dbKey } = needStore(values);
  const dir = mkdtempSync(join(tmpdir(), "haduck-from-store-"));
  const started = performance.now();
  const replica = await follow({ store, dbKey, dir, generation, untilMs });
  let statementFailed = false;
  try {
    const shown = replica.position!;
    const hydration = replica.hydration;
    console.error(`haduck: ${dbKey} from ${store.url} at generation ${shown.generation}` +
      (shown.frames > 0 ? ` + ${shown.frames} WAL frames (last commit ${shown.lastCommit})` : "") +
      `, opened in ${(performance.now() - started).toFixed(0)} ms` +
      (hydration ? ` with ${hydration.blocksLocal} of ${hydration.blocksTotal} blocks local (the rest is fetched ` +
        "as it is read)" : "") + ": read-only" + (generation === undefined && untilMs === undefined
        ? ", following new commits" : ""));
    const statements = [...(values.command ?? [])];
    if (values.file) statements.push(readFileSync(values.file, "utf8"));
    await replica.withConnection(async (connection) => {
      const readOnly = readOnlyConnection(connection,
        suggestCommand("restore", { store, dbKey, args: ["--to", defaultDbKey(dbKey)] }));
      if (statements.length === 0) {
        if (!await runShell(readOnly)) statementFailed = true;
        return;
      }
      for (const sql of statements) {
        const reader = await readOnly.runAndReadAll(sql);
        if (reader.columnCount > 0 && reader.currentRowCount > 0) printRows(reader);
      }
    });
  } finally {
    await replica.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return statementFailed ? EXIT.failure : EXIT.ok;
}

/** `--generation N` or `--time ISO-8601` (not both), checked. */
function pointInHistory(values: { generation?: string; time?: string }): { generation?: number; untilMs?: number } {
  if (values.time !== undefined && values.generation !== undefined) {
    throw new UsageError("give --generation (a checkpoint) or --time (the last commit at or before it), not both");
  }
  const untilMs = values.time === undefined ? undefined : Date.parse(values.time);
  if (untilMs !== undefined && Number.isNaN(untilMs)) {
    throw new UsageError(`--time must be an ISO 8601 time such as 2026-11-28T09:30:00Z, not ${values.time}`);
  }
  const generation = values.generation === undefined ? undefined : Number(values.generation);
  if (generation !== undefined && !Number.isSafeInteger(generation)) {
    throw new UsageError(`--generation must be a whole number, not ${values.generation}`);
  }
  return { generation, untilMs };
}

/**
 * The connection with every statement in a READ ONLY transaction: DuckDB itself refuses what would
 * write (the view is the store's, and what DuckDB wrote into it would be lost).
 */
function readOnlyConnection(connection: DuckDBConnection, restoreCommand: string): DuckDBConnection {
  const runAndReadAll = async (sql: string) => {
    await connection.run("BEGIN TRANSACTION READ ONLY");
    try {
      const reader = await connection.runAndReadAll(sql);
      await connection.run("COMMIT");
      return reader;
    } catch (error) {
      await connection.run("ROLLBACK").catch(() => {});
      const message = (error as Error).message;
      if (/read-only (transaction|mode)/i.test(message)) {
        throw new Error(`${message} (attach --from-store is a read-only view of the store; restore it with ` +
          `${restoreCommand} to write)`);
      }
      throw error;
    }
  };
  return new Proxy(connection, {
    get: (target, name, receiver) => name === "runAndReadAll" ? runAndReadAll : Reflect.get(target, name, receiver),
  });
}

async function commandGc(args: string[]): Promise<number> {
  const { values } = parse(args, { "keep-last": { type: "string" }, "keep-within": { type: "string" },
    apply: { type: "boolean" }, json: { type: "boolean" }, ...REPLICA_STORE_OPTIONS });
  if (values.help) return (console.log(HELP.gc), EXIT.ok);
  const keepLast = values["keep-last"] === undefined ? 10 : Number(values["keep-last"]);
  if (!Number.isSafeInteger(keepLast) || keepLast < 1) {
    throw new UsageError(`--keep-last must be a whole number of at least 1, not ${values["keep-last"]}`);
  }
  const keepWithinMs = values["keep-within"] === undefined ? 0 : parseDuration(values["keep-within"]);
  const { store, dbKey } = needStore(values);
  const replicas = replicaStoresFromFlags(values, process.env);
  // The policy applies to each store on its own: a replica that lags keeps what its own newest generations need.
  const collect = async (each: typeof store, label: string) => {
    const bars = steppedProgress();
    try {
      return await gc({ store: each, dbKey, keepLast, keepWithinMs, apply: values.apply, onProgress: (step, done, total) =>
        bars.update(`${label}${step === "read" ? "read manifests" : "delete"}`, step === "read" ? "generations" : "objects",
          done, total) });
    } finally {
      bars.finish();
    }
  };
  const report = await collect(store, "gc: ");
  const replicaReports = [];
  for (const replica of replicas) replicaReports.push({ store: replica.url, ...await collect(replica, `gc ${replica.url}: `) });
  if (values.json) {
    console.log(JSON.stringify(replicas.length > 0 ? { ...report, replicaStores: replicaReports } : report, null, 2));
    return EXIT.ok;
  }
  // Why these: --keep-within adds to the --keep-last floor (default 10), it does not replace it.
  const why = `the newest ${keepLast}${values["keep-last"] === undefined ? " (--keep-last default)" : ""}` +
    (values["keep-within"] === undefined ? "" : ` and every one younger than ${values["keep-within"]}`);
  for (const [index, each] of [report, ...replicaReports].entries()) {
    const name = replicas.length > 0 ? `${index === 0 ? store.url : replicas[index - 1].url}: ` : "";
    const verb = each.applied ? "deleted" : "would delete (dry run; pass --apply to delete)";
    console.log(`${name}kept ${each.kept.length} generations (${each.kept.join(", ") || "none"}): ${why}`);
    console.log(`${name}${verb}: ${each.deletedGenerations.length} generations, ${each.deletedSegments.length} ` +
      `segments, ${each.deletedPages.length} block map pages, ${each.deletedFrames.length} WAL frames, ` +
      mib(each.bytesFreed));
    for (const [forkKey, held] of Object.entries(each.heldByForks)) {
      console.log(`${name}kept ${held} segments and pages that the fork ${forkKey} references`);
    }
  }
  return EXIT.ok;
}

async function commandFork(args: string[]): Promise<number> {
  const { values } = parse(args, { "to-key": { type: "string" }, generation: { type: "string" },
    time: { type: "string" }, json: { type: "boolean" } });
  if (values.help) return (console.log(HELP.fork), EXIT.ok);
  if (!values["to-key"]) throw new UsageError("fork needs --to-key KEY, the new database's key; see --help");
  const { generation, untilMs } = pointInHistory(values);
  try {
    assertValidDbKey(values["to-key"]);
  } catch (error) {
    throw new UsageError(`--to-key: ${(error as Error).message}`);
  }
  const { store, dbKey } = needStore(values);
  const started = performance.now();
  const report = await fork({ store, dbKey, toKey: values["to-key"], generation, untilMs });
  const tookMs = Math.round(performance.now() - started);
  if (values.json) console.log(JSON.stringify({ ...report, tookMs }, null, 2));
  else {
    const commits = report.commits > 0 ? ` + ${report.commits} commits from ${report.frames} WAL frames (last commit ` +
      `${report.lastCommit})` : "";
    console.log(`forked ${dbKey} at generation ${report.generation}${commits} into ${report.toKey}: no block copied, ` +
      `${report.objectsWritten} objects (${report.bytesWritten} bytes) written in ${tookMs} ms`);
  }
  return EXIT.ok;
}

async function commandRestore(args: string[]): Promise<number> {
  const { values } = parse(args, { to: { type: "string" }, generation: { type: "string" }, force: { type: "boolean" },
    time: { type: "string" }, "if-missing": { type: "boolean" }, lazy: { type: "boolean" } });
  if (values.help) return (console.log(HELP.restore), EXIT.ok);
  if (values.lazy) {
    const { store, dbKey } = needStore(values);
    const at = values.generation !== undefined ? ["--generation", values.generation]
      : values.time !== undefined ? ["--time", values.time] : [];
    throw new UsageError("restore writes a whole file; to query the store's copy at once, without a restore, run " +
      suggestCommand("attach --from-store", { store, dbKey, args: at }));
  }
  if (!values.to) throw new UsageError("restore needs --to <path>; see --help");
  if (values["if-missing"] && values.force) {
    throw new UsageError("--if-missing keeps an existing file and --force replaces it: give one");
  }
  if (values.time !== undefined && values.generation !== undefined) {
    throw new UsageError("give --generation (a checkpoint) or --time (the last commit at or before it), not both");
  }
  if (values.time !== undefined && Number.isNaN(Date.parse(values.time))) {
    throw new UsageError(`--time must be an ISO 8601 time such as 2026-11-28T09:30:00Z, not ${values.time}`);
  }
  const generation = values.generation === undefined ? undefined : Number(values.generation);
  if (generation !== undefined && !Number.isSafeInteger(generation)) {
    throw new UsageError(`--generation must be a whole number, not ${values.generation}`);
  }
  const { store, dbKey } = needStore(values);
  // A container's start: the file from an earlier run stays (it may hold commits the store lacks).
  if (values["if-missing"] && existsSync(resolve(values.to))) {
    console.log(`${values.to} exists: kept as it is (--if-missing)`);
    return EXIT.ok;
  }
  const started = performance.now();
  const bar = progress("restore");
  const checkMemoryMaxMb = checkMemory();
  let result;
  try {
    result = await restore({ store, dbKey, to: resolve(values.to), generation, time: values.time,
      force: values.force, onProgress: bar.update, checkMemoryMaxMb });
  } finally {
    bar.finish(); // an error starts on a line of its own
  }
  const seconds = (performance.now() - started) / 1000;
  const frames = result.commits > 0
    ? ` + ${result.commits} commits from ${result.frames} WAL frames (last commit ${result.lastCommit})`
    : "";
  console.log(`restored generation ${result.generation}${frames} of ${dbKey} to ${result.path}: ${result.blocks} ` +
    `blocks, ${mib(result.bytes)} in ${seconds.toFixed(2)} s` + (result.openCheck
      ? ` (opened in DuckDB: memory limit ${result.openCheck.memoryLimitMb} MiB, peak ${result.openCheck.peakRssMb} MiB)`
      : ""));
  if (result.warning) console.error(`haduck: warning: ${result.warning}`);
  return EXIT.ok;
}

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  aside: commandAside,
  handoff: commandHandoff,
  attach: commandAttach,
  restore: commandRestore,
  databases: commandDatabases,
  ls: commandDatabases,
  generations: commandGenerations,
  verify: commandVerify,
  status: commandStatus,
  gc: commandGc,
  fork: commandFork,
  rekey: commandRekey,
  serve: commandServe,
  sidecar: (args) => runSidecar(args, exitCodeOf),
};

export function exitCodeOf(error: unknown): number {
  if (error instanceof NodeUnreachableError) return EXIT.store;
  // A missing or wrong encryption key is configuration (exit 3), however deep a command wrapped it.
  for (let cause = error, depth = 0; cause instanceof Error && depth < 8; cause = cause.cause, depth++) {
    const code = (cause as { code?: string }).code;
    if (cause instanceof StoreError && (code === "ENCRYPTION_KEY" || code === "NOT_SEALED")) return EXIT.config;
  }
  if (error instanceof NodeUntrustedError) return EXIT.config;
  if (error instanceof UsageError || error instanceof TypeError) return EXIT.usage;
  if (error instanceof DuckDBVersionError) return EXIT.config;
  if (error instanceof StoreError) {
    if (error.code === "INVALID_CONFIG") return EXIT.config;
    if (error.code === "CHECKSUM_MISMATCH") return EXIT.integrity;
    if (error.code === "PRECONDITION_FAILED") return EXIT.conflict;
    return EXIT.store;
  }
  if (error instanceof ReplicationError) {
    if (error.code === "INTEGRITY") return EXIT.integrity;
    if (error.code === "CHECK_UNAVAILABLE") return EXIT.unchecked;
    if (["TARGET_EXISTS", "DIVERGED", "FOREIGN_DATABASE", "NO_LOCAL_FILE"].includes(error.code)) return EXIT.conflict;
    if (error.code === "UNSAFE_STORE") return EXIT.config;
    if (error.code === "BAD_TARGET" || error.code === "BAD_ARGUMENT") return EXIT.usage;
    return EXIT.failure;
  }
  return EXIT.failure;
}

/**
 * The CLI runs on Bun (it serves with Bun.serve and reads the extension's ring over bun:ffi); `npx
 * haduck` starts the Bun the package pins, so only a program that imports `main()` meets this.
 */
export const CLI_NEEDS_BUN_MESSAGE = "haduck's main() runs on Bun: run the command as `npx haduck` (it starts " +
  "the Bun the haduck package brings) or `bunx haduck`, or run this program with Bun";

/** `haduck --version`: this command's version and the DuckDB it runs, without opening DuckDB. */
function versionLine(): string {
  const { version } = JSON.parse(readFileSync(new URL("./package.json", import.meta.url), "utf8"));
  return `haduck ${version} (DuckDB ${DUCKDB_VERSION})`;
}

export async function main(argv: string[]): Promise<number> {
  if (!("Bun" in globalThis)) throw new Error(CLI_NEEDS_BUN_MESSAGE);
  const [command, ...rest] = argv;
  if (!command || command === "--help" || command === "-h" || command === "help") {
    console.log(HELP.main);
    return command ? EXIT.ok : EXIT.usage;
  }
  if (command === "--version" || command === "-V" || command === "version") {
    console.log(versionLine());
    return EXIT.ok;
  }
  const run = COMMANDS[command];
  if (!run) {
    console.error(`haduck: unknown command ${JSON.stringify(command)}; run \`haduck --help\` for the commands`);
    return EXIT.usage;
  }
  reportProgressOffTerminal(rest.includes("--progress"));
  try {
    return await run(rest);
  } catch (error) {
    // A key the store holds nothing for: say where the keys are (the message names the key and the store).
    const store = currentStore();
    const hint = error instanceof ReplicationError && error.code === "NO_GENERATIONS" && store
      ? `; run ${listKeysCommand(store)} to list the keys in the store`
      : "";
    console.error(`haduck ${command}: ${errorMessage(error)}${hint}`);
    if (rest.includes("--debug")) console.error((error as Error).stack);
    return exitCodeOf(error);
  }
}

export { defaultDbKey };
