/**
 * @module
 * The `haduck` command line: attach, restore, generations, verify, status.
 * Errors are one line (what failed, what to do) with documented exit codes; `--debug` adds stacks.
 */
import { parseArgs } from "node:util";
import { basename, resolve } from "node:path";
import { existsSync, readFileSync, statSync } from "node:fs";
import { hostname } from "node:os";
import { type BlockStore, StoreError } from "@haduck/s3-block-store";
import {
  assertValidDbKey,
  attach,
  type AttachedDatabase,
  type WriterFence,
  checkMemoryMaxMb,
  sandbox,
  type SandboxOptions,
  defaultDbKey,
  gc,
  extensionPath,
  latestManifest,
  listGenerations,
  ReplicationError,
  restore,
  summarizeGenerations,
  verify,
} from "@haduck/duckdb-fs-bridge";
import { NO_STORE_HINT, STORE_OPTIONS, storeFromFlags } from "./_store_flags.ts";
import { printRows, runShell } from "./_shell.ts";
import { HELP } from "./_help.ts";
import { runSidecar } from "./_sidecar.ts";
import { type Progress, progress } from "./_progress.ts";

/** Generations of at least this many blocks (16 MiB at DuckDB's default block size) get a progress bar. */
const PROGRESS_BLOCKS_MIN = 64;
import { adminDatabase, adminSettings, serveAdmin, tlsSettings } from "./_admin_server.ts";
import {
  ClusterNode,
  GroupChanges,
  RESULT_BYTES_MAX_DEFAULT,
  SharedLease,
  STATEMENT_TIMEOUT_MS_DEFAULT,
  StatementGate,
  sqlLimits,
} from "@haduck/cluster";
import { ensureThreadPool } from "./_thread_pool.ts";
import { decodeFrame, leaseKey, listFrames } from "@haduck/duckblock";
import { Lease } from "@haduck/lease";

/** Exit codes, documented in `haduck --help`. */
export const EXIT = { ok: 0, failure: 1, usage: 2, config: 3, store: 4, integrity: 5, conflict: 6, unchecked: 7 } as const;

class UsageError extends Error {}


type OptionSpec = { type: "string" | "boolean"; multiple?: boolean; short?: string };

function parse<const T extends Record<string, OptionSpec>>(args: string[], options: T) {
  try {
    const all = { ...STORE_OPTIONS, ...options, help: { type: "boolean", short: "h" }, debug: { type: "boolean" } } as
      const;
    return parseArgs({ args, options: all, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(`${(error as Error).message}; see --help`);
  }
}

/** The open check's memory ceiling (`HADUCK_CHECK_MEMORY_MB`), checked before anything is downloaded. */
function checkMemory(): number {
  try {
    return checkMemoryMaxMb(process.env);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

function needStore(values: Record<string, unknown>) {
  const store = storeFromFlags(values as { store?: string; endpoint?: string }, process.env);
  if (!store) throw new UsageError(NO_STORE_HINT);
  const dbKey = values["db-key"] as string | undefined;
  if (!dbKey) throw new UsageError("--db-key is required (the database's file name, as `haduck generations` shows)");
  assertValidDbKey(dbKey);
  return { store, dbKey };
}

const mib = (bytes: number) => `${(bytes / 1048576).toFixed(2)} MiB`;

async function commandAttach(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { command: { type: "string", short: "c", multiple: true },
    file: { type: "string", short: "f" }, alias: { type: "string" }, admin: { type: "string" },
    sync: { type: "boolean" } });
  if (values.help) return (console.log(HELP.attach), EXIT.ok);
  if (positionals.length !== 1) throw new UsageError("attach needs exactly one <db-path>; see --help");
  if (values.sync && !storeFromFlags(values, process.env)) {
    throw new UsageError("--sync waits until each commit is in the store: give --store (or HADUCK_STORE)");
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

/** Opens a database for `attach` and `serve`: the store from the flags (or local-only, said once). */
async function attachFromFlags(dbPath: string, values: { store?: string; endpoint?: string; "db-key"?: string;
  alias?: string }, cluster?: { fence: WriterFence; store: BlockStore; onShipped?: () => void }) {
  const store = cluster?.store ?? storeFromFlags(values, process.env);
  const fence = cluster?.fence;
  if (!store) console.error("haduck: local-only mode (no store configured): tracking changes, uploading nothing");
  // A bar for generations large enough to take a while (the first upload of a big database).
  let bar: { generation: number; progress: Progress } | undefined;
  const db = await attach({
    onUploadProgress: (event) => {
      if (event.blocksTotal < PROGRESS_BLOCKS_MIN) return;
      if (bar?.generation !== event.generation) bar = { generation: event.generation, progress: progress("upload") };
      bar.progress.update(event.blocksDone, event.blocksTotal, event.bytesSent);
    },
    dbPath,
    store,
    dbKey: values["db-key"],
    alias: values.alias,
    fence,
    onFrame: cluster?.onShipped && (() => cluster.onShipped!()),
    onGeneration: (event) => {
      cluster?.onShipped?.();
      if (bar?.generation === event.generation) bar.progress.finish();
      console.error(`haduck: generation ${event.generation}: ${event.blocks} blocks, ` +
        `${event.blocksShipped} shipped (${mib(event.bytesShipped)}) in ${event.durationMs.toFixed(0)} ms`);
    },
  });
  return { db, store };
}

async function commandServe(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { admin: { type: "string" }, listen: { type: "string" },
    alias: { type: "string" }, "lease-ttl": { type: "string" }, "tls-cert": { type: "string" },
    "tls-key": { type: "string" }, "tls-ca": { type: "string" }, db: { type: "string", multiple: true },
    group: { type: "string" }, "allow-files": { type: "string", multiple: true },
    "statement-timeout": { type: "string" }, "max-result-bytes": { type: "string" },
    "max-statements": { type: "string" }, "max-queued-statements": { type: "string" },
    "memory-limit": { type: "string" }, "max-temp-size": { type: "string" } });
  if (values.help) return (console.log(HELP.serve), EXIT.ok);
  const { limits, sandboxOptions } = sqlSettings(values);
  // Statements may not hold every thread the lease, shipping and followers need (see _thread_pool.ts).
  await ensureThreadPool(Math.max(16, 2 * limits.gate.runningMax + 4));
  const databases = servedDatabases(positionals, values.db ?? [], values["db-key"]);
  // The node's own files: DuckDB's sandbox lets DuckDB reach them, so statements may not name them.
  limits.ownPaths = databases.flatMap(({ dbPath }) => [resolve(dbPath), `${basename(dbPath)}.wal`,
    `${basename(dbPath)}.haduck-tmp`, `${basename(dbPath)}.haduck-follower`]);
  if (values.admin !== undefined && values.listen !== undefined) {
    throw new UsageError("serve takes --listen or --admin (the same server), not both");
  }
  const listen = values.listen ?? values.admin;
  if (listen === undefined) throw new UsageError("serve needs --listen HOST:PORT (e.g. 127.0.0.1:8080)");
  // Bad settings fail before the database opens.
  const settings = { ...adminSettings(listen), tls: tlsSettings(values["tls-cert"], values["tls-key"]) };
  let ca: string | undefined;
  if (values["tls-ca"] !== undefined) {
    try {
      ca = readFileSync(values["tls-ca"], "utf8");
    } catch (error) {
      throw new UsageError(`--tls-ca ${values["tls-ca"]}: ${(error as Error).message}; give the PEM file of the CA ` +
        "that signed the other nodes' certificates");
    }
  }
  const ttlMs = values["lease-ttl"] === undefined ? 5000 : parseLeaseTtl(values["lease-ttl"]);
  // A node cut off from the store must notice within its lease, not after the default 30 s per request.
  const store = storeFromFlags(values, process.env, { retry: { attemptTimeoutMs: Math.max(2 * ttlMs, 5000) } });
  const signalled = new Promise<void>((resolve) => process.once("SIGINT", resolve).once("SIGTERM", resolve));
  if (!store) {
    // A node without a store: it leads itself, local-only.
    const attachedLocal = [];
    for (const { dbPath, dbKey } of databases) {
      const { db } = await attachFromFlags(dbPath, { ...values, "db-key": dbKey });
      await sandbox(db.connection, { ...sandboxOptions, tempDirectory: `${resolve(dbPath)}.haduck-tmp` });
      attachedLocal.push(db);
    }
    const admin = serveAdmin(settings, attachedLocal.map((db) => adminDatabase(db, undefined, limits)));
    await signalled;
    limits.gate.interruptReads("the node is stopping");
    await admin.stop();
    for (const db of attachedLocal) await db.close();
    return EXIT.ok;
  }
  // With a store every node is a cluster node: the lease in the store decides who writes, one
  // lease per database (each its own role, replica and leader), or one for a --group of them.
  const attached = new Map<string, AttachedDatabase>();
  const holder = `${hostname()}:${process.pid}:${crypto.randomUUID().slice(0, 8)}`;
  const group = values.group === undefined ? undefined
    : groupOf(values.group, store, ttlMs, holder, databases.map((database) => database.dbKey));
  const nodes: ClusterNode[] = databases.map(({ dbPath, dbKey }) => new ClusterNode({
    dbPath, store, dbKey, ttlMs, token: settings.token, ca, holder,
    ...(group ? { lease: group.lease, followerPollMs: GROUP_REPLICA_POLL_MS } : {}),
    sqlLimits: limits,
    sandbox: sandboxOptions,
    attach: async (fence) => {
      const db = (await attachFromFlags(dbPath, { ...values, "db-key": dbKey }, { fence, store,
        onShipped: group && (() => group.changes.changed(dbKey)) })).db;
      attached.set(dbKey, db);
      // Followers replay a generation's WAL from its start at every commit they show: a short WAL
      // (a checkpoint every CLUSTER_CHECKPOINT_WAL) keeps that replay, and their lag, small.
      await db.connection.run(`SET checkpoint_threshold = '${CLUSTER_CHECKPOINT_WAL}'`);
      // Last: the instance serves SQL to others (see docs/SECURITY.md); no setting changes after this.
      await sandbox(db.connection, { ...sandboxOptions, tempDirectory: `${resolve(dbPath)}.haduck-tmp` });
      return db;
    },
    log: (message) => console.error(`haduck: ${message}`),
  }));
  const admin = serveAdmin(settings, nodes.map((node) => node.database()), { announce: false });
  try {
    await Promise.race([Promise.all(nodes.map((node) => node.start(admin.url))), signalled]);
  } catch (error) {
    await admin.stop();
    throw error;
  }
  admin.announce();
  // Followers of a group are told which databases changed instead of polling each one.
  group?.changes.watch(Math.max(50, Math.min(250, Math.floor(ttlMs / 20))), (changed) => {
    for (const node of nodes) if (changed === "all" || changed.includes(node.dbKey)) node.refreshReplica();
  }, () => nodes.some((node) => node.role !== "leader"));
  for (const node of nodes) {
    console.error(`haduck: ${node.dbKey}: ${node.role} (lease TTL ${ttlMs} ms${group ? `, group ${values.group}` : ""})`);
  }
  await signalled;
  // Clients and balancers move away first (/healthz 503, connections closed after their answer).
  admin.drain();
  // Long reads do not hold the stop up: they are interrupted (writes finish within --statement-timeout).
  limits.gate.interruptReads("the node is stopping");
  // A leader hands off first: statements meanwhile wait and go to the next leader.
  await Promise.all(nodes.map((node) => node.stop()));
  await Promise.all(nodes.map((node) => node.quiet()));
  await group?.changes.close();
  await admin.stop();
  const errors = [...attached.values()].map((db) => db.replicator.status.lastError).filter(Boolean);
  for (const error of errors) console.error(`haduck: ${error}`);
  return errors.length > 0 ? EXIT.store : EXIT.ok;
}

/** `64MiB`, `1GB`, `512KB`, `1048576` to bytes (binary and decimal units, as DuckDB reads them). */
function parseBytes(flag: string, value: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?$/i.exec(value.trim());
  const units: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20,
    gib: 2 ** 30, tib: 2 ** 40 };
  const bytes = match ? Math.floor(Number(match[1]) * units[(match[2] ?? "b").toLowerCase()]) : NaN;
  if (!Number.isSafeInteger(bytes) || bytes < 1) {
    throw new UsageError(`Invalid ${flag} ${JSON.stringify(value)}: expected a size such as 64MiB, 2GB or 1048576`);
  }
  return bytes;
}

/** A count flag: a whole number from `min` up. */
function parseCount(flag: string, value: string | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  const count = Number(value);
  if (!Number.isSafeInteger(count) || count < min) {
    throw new UsageError(`Invalid ${flag} ${JSON.stringify(value)}: expected a whole number of at least ${min}`);
  }
  return count;
}

/** The bounds and the sandbox of SQL over HTTP from serve's flags (see docs/SECURITY.md). */
function sqlSettings(values: { "allow-files"?: string[]; "statement-timeout"?: string; "max-result-bytes"?: string;
  "max-statements"?: string; "max-queued-statements"?: string; "memory-limit"?: string; "max-temp-size"?: string }) {
  let statementTimeoutMs = STATEMENT_TIMEOUT_MS_DEFAULT;
  if (values["statement-timeout"] !== undefined) {
    const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(values["statement-timeout"].trim());
    statementTimeoutMs = match ? Number(match[1]) * { ms: 1, s: 1000, m: 60_000 }[match[2] as "s" ?? "s"] : NaN;
    if (!Number.isFinite(statementTimeoutMs) || statementTimeoutMs < 10 || statementTimeoutMs > 86_400_000) {
      throw new UsageError(`Invalid --statement-timeout ${JSON.stringify(values["statement-timeout"])}: expected ` +
        "10ms to 24h as 30s, 500ms or 5m");
    }
  }
  const allowed = values["allow-files"] ?? [];
  for (const dir of allowed) {
    if (!existsSync(dir) || !statSync(dir).isDirectory()) {
      throw new UsageError(`--allow-files ${dir}: not a directory; create it, or name the directory statements may use`);
    }
  }
  for (const flag of ["memory-limit", "max-temp-size"] as const) {
    if (values[flag] !== undefined) parseBytes(`--${flag}`, values[flag]!);
  }
  const limits = sqlLimits({
    statementTimeoutMs: Math.round(statementTimeoutMs),
    resultBytesMax: values["max-result-bytes"] === undefined ? RESULT_BYTES_MAX_DEFAULT
      : parseBytes("--max-result-bytes", values["max-result-bytes"]),
    filesAllowed: allowed.length > 0,
    gate: new StatementGate(parseCount("--max-statements", values["max-statements"], 4, 1),
      parseCount("--max-queued-statements", values["max-queued-statements"], 64, 0)),
  });
  const sandboxOptions: SandboxOptions = { allowedDirectories: allowed.map((dir) => resolve(dir)),
    memoryLimit: values["memory-limit"], maxTempDirectorySize: values["max-temp-size"] };
  return { limits, sandboxOptions };
}

/** A group's replicas poll the store on their own this seldom: the change object tells them sooner. */
const GROUP_REPLICA_POLL_MS = 30_000;

/** `--group NAME`: one lease (`NAME/lease.json`) and one change object for every database served. */
function groupOf(name: string, store: BlockStore, ttlMs: number, holder: string, dbKeys: string[]) {
  try {
    assertValidDbKey(name);
  } catch (error) {
    throw new UsageError(`--group ${JSON.stringify(name)}: ${(error as Error).message}`);
  }
  let shared: SharedLease | undefined;
  return {
    changes: new GroupChanges(store, name),
    lease: ({ address, marginMs }: { address: string; marginMs: number }) => {
      shared ??= new SharedLease(new Lease(store, leaseKey(name), { holder, address, ttlMs, marginMs }),
        { freshMs: Math.max(25, Math.min(125, Math.floor(ttlMs / 40))), ttlMs,
          minEpoch: async () => 1 + Math.max(0, ...await Promise.all(dbKeys.map((dbKey) => highestEpoch(store, dbKey)))) });
      return shared.share();
    },
  };
}

/**
 * The highest lease epoch `dbKey`'s history carries (its own lease record, its newest manifest, and
 * the last frame of that generation): a group's claim goes on above it, so that its fence and
 * frames are never taken for a deposed writer's.
 */
async function highestEpoch(store: BlockStore, dbKey: string): Promise<number> {
  let highest = 0;
  try {
    const record = JSON.parse(new TextDecoder().decode(await store.get(leaseKey(dbKey))));
    if (typeof record?.epoch === "number") highest = record.epoch;
  } catch {
    // no lease of its own
  }
  const latest = await latestManifest(store, dbKey);
  if (!latest) return highest;
  highest = Math.max(highest, latest.manifest.writerEpoch ?? 0);
  const frames = await listFrames(store, dbKey, latest.manifest.generation);
  const last = frames.at(-1);
  if (last) {
    try {
      highest = Math.max(highest, decodeFrame(await store.get(last.key), last.key).epoch ?? 0);
    } catch (error) {
      if (!(error instanceof ReplicationError)) throw error; // a damaged frame is no writer's epoch
    }
  }
  return highest;
}

/**
 * The databases `serve` runs: one `<db-path>` (with `--db-key`), or `--db PATH=KEY` repeated (the
 * key defaults to the file's name), never both. Paths and keys must be distinct.
 */
function servedDatabases(positionals: string[], entries: string[], dbKeyFlag: string | undefined):
  { dbPath: string; dbKey: string }[] {
  if (positionals.length > 1) throw new UsageError("serve takes one <db-path>, or --db PATH=KEY repeated; see --help");
  if (positionals.length === 1 && entries.length > 0) {
    throw new UsageError("serve takes a <db-path> or --db PATH=KEY, not both: give every database as --db");
  }
  if (positionals.length === 0 && entries.length === 0) {
    throw new UsageError("serve needs a <db-path>, or --db PATH=KEY for each database; see --help");
  }
  if (entries.length > 0 && dbKeyFlag !== undefined) {
    throw new UsageError("--db-key names the key of a single <db-path>; with --db give each key as PATH=KEY");
  }
  const databases = positionals.length === 1
    ? [{ dbPath: resolve(positionals[0]), dbKey: dbKeyFlag ?? defaultDbKey(resolve(positionals[0])) }]
    : entries.map((entry) => {
      const at = entry.lastIndexOf("=");
      const path = at < 0 ? entry : entry.slice(0, at);
      if (path === "") throw new UsageError(`--db ${JSON.stringify(entry)}: expected PATH=KEY, e.g. --db data/a.duckdb=a.duckdb`);
      const dbPath = resolve(path);
      return { dbPath, dbKey: at < 0 || entry.slice(at + 1) === "" ? defaultDbKey(dbPath) : entry.slice(at + 1) };
    });
  for (const { dbKey } of databases) assertValidDbKey(dbKey);
  for (const field of ["dbPath", "dbKey"] as const) {
    const seen = new Set<string>();
    for (const database of databases) {
      if (seen.has(database[field])) {
        throw new UsageError(`serve was given ${database[field]} twice: every --db needs its own ` +
          (field === "dbPath" ? "file" : "key"));
      }
      seen.add(database[field]);
    }
  }
  return databases;
}

/** How much WAL a cluster's leader lets grow before DuckDB checkpoints (its default is 16 MB). */
const CLUSTER_CHECKPOINT_WAL = "32KB";

/** `--lease-ttl`: `5s`, `2500ms`, or a number of seconds; at least 500 ms. */
function parseLeaseTtl(value: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s)?$/.exec(value.trim());
  const ms = match ? Number(match[1]) * (match[2] === "ms" ? 1 : 1000) : NaN;
  if (!Number.isFinite(ms) || ms < 500 || ms > 600_000) {
    throw new UsageError(`Invalid --lease-ttl ${JSON.stringify(value)}: expected 500ms to 600s, e.g. 5s or 2500ms`);
  }
  return Math.round(ms);
}

/** `90m`, `36h`, `7d`, `45s` to milliseconds. */
function parseDuration(value: string): number {
  const match = /^(\d+)(s|m|h|d)$/.exec(value.trim());
  if (!match) throw new UsageError(`Invalid duration ${JSON.stringify(value)}: expected a number and s, m, h or d, e.g. 36h`);
  return Number(match[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as "s"];
}

async function commandGc(args: string[]): Promise<number> {
  const { values } = parse(args, { "keep-last": { type: "string" }, "keep-within": { type: "string" },
    apply: { type: "boolean" }, json: { type: "boolean" } });
  if (values.help) return (console.log(HELP.gc), EXIT.ok);
  const keepLast = values["keep-last"] === undefined ? 10 : Number(values["keep-last"]);
  if (!Number.isSafeInteger(keepLast) || keepLast < 1) {
    throw new UsageError(`--keep-last must be a whole number of at least 1, not ${values["keep-last"]}`);
  }
  const keepWithinMs = values["keep-within"] === undefined ? 0 : parseDuration(values["keep-within"]);
  const { store, dbKey } = needStore(values);
  const report = await gc({ store, dbKey, keepLast, keepWithinMs, apply: values.apply });
  if (values.json) console.log(JSON.stringify(report, null, 2));
  else {
    const verb = report.applied ? "deleted" : "would delete (dry run; pass --apply to delete)";
    console.log(`kept ${report.kept.length} generations (${report.kept.join(", ") || "none"})`);
    console.log(`${verb}: ${report.deletedGenerations.length} generations, ${report.deletedSegments.length} ` +
      `segments, ${report.deletedPages.length} block map pages, ${report.deletedFrames.length} WAL frames, ` +
      mib(report.bytesFreed));
  }
  return EXIT.ok;
}

async function commandRestore(args: string[]): Promise<number> {
  const { values } = parse(args, { to: { type: "string" }, generation: { type: "string" }, force: { type: "boolean" },
    time: { type: "string" }, "if-missing": { type: "boolean" } });
  if (values.help) return (console.log(HELP.restore), EXIT.ok);
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
  const result = await restore({ store, dbKey, to: resolve(values.to), generation, time: values.time,
    force: values.force, onProgress: bar.update, checkMemoryMaxMb });
  bar.finish();
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

async function commandGenerations(args: string[]): Promise<number> {
  const { values } = parse(args, { json: { type: "boolean" } });
  if (values.help) return (console.log(HELP.generations), EXIT.ok);
  const { store, dbKey } = needStore(values);
  const generations = await summarizeGenerations(store, dbKey);
  if (values.json) console.log(JSON.stringify(generations, null, 2));
  else {
    console.log("generation  time                      blocks  bytes        shipped                 frames  last commit");
    for (const g of generations) {
      console.log(`${String(g.generation).padEnd(10)}  ${g.time.padEnd(24)}  ${String(g.blocks).padEnd(6)}  ` +
        `${mib(g.bytes).padEnd(11)}  ${`${g.blocksShipped} blocks, ${mib(g.bytesShipped)}`.padEnd(22)}  ` +
        `${String(g.frames).padEnd(6)}  ${g.lastCommit ?? "-"}`);
    }
  }
  return EXIT.ok;
}

async function commandVerify(args: string[]): Promise<number> {
  const { values } = parse(args, { drill: { type: "boolean" }, "no-drill": { type: "boolean" } });
  if (values.help) return (console.log(HELP.verify), EXIT.ok);
  if (values.drill && values["no-drill"]) throw new UsageError("--drill and --no-drill contradict each other: give one");
  const { store, dbKey } = needStore(values);
  const report = await verify(store, dbKey, { drill: values.drill ? "all" : values["no-drill"] ? "none" : "latest",
    checkMemoryMaxMb: checkMemory() });
  const { drilled } = report;
  const parts = [
    drilled.generations > 0 ? `${drilled.generations} generations` : "",
    drilled.latestCommit ? `the latest commit (${drilled.latestFrames} WAL frames replayed)` : "",
  ].filter(Boolean);
  const said = parts.length > 0 ? `; drill: ${parts.join(" and ")} restored and opened in DuckDB`
    : values["no-drill"] ? "; no drill (--no-drill)" : "";
  for (const problem of report.problems) console.error(`haduck: ${problem}`);
  for (const skipped of report.skipped) console.error(`haduck: skipped (not a problem): ${skipped}`);
  const epochs = report.epochs.length > 1 ? `; one history over lease epochs ${report.epochs.join(", ")}` : "";
  console.log(`verified ${report.generations} generations, ${report.segments} segments, ${report.blocks} blocks, ` +
    `${report.frames} WAL frames: ${report.problems.length} problems` +
    `${report.skipped.length > 0 ? `, ${report.skipped.length} skipped` : ""}${said}${epochs}`);
  return report.problems.length > 0 ? EXIT.integrity : EXIT.ok;
}

async function commandStatus(args: string[]): Promise<number> {
  const { values } = parse(args, { json: { type: "boolean" } });
  if (values.help) return (console.log(HELP.status), EXIT.ok);
  const { store, dbKey } = needStore(values);
  const latest = await latestManifest(store, dbKey);
  const frames = latest ? (await summarizeGenerations(store, dbKey)).at(-1) : undefined;
  const lastDurableCommit = frames?.lastCommit ?? null;
  const status = {
    store: store.url,
    dbKey,
    extension: extensionPath(),
    lastGeneration: latest?.manifest.generation ?? null,
    lastGenerationTime: latest?.manifest.createdAt ?? null,
    fileSizeBytes: latest?.manifest.fileSizeBytes ?? null,
    walFrames: frames?.frames ?? 0,
    lastDurableCommit,
    // The store alone cannot tell what the writer has not shipped: its lag is in the writer's status
    // (the admin endpoint's walLagMs, haduck_status()). What the store tells: how old its newest commit is.
    newestCommitAgeMs: latest ? Date.now() - Date.parse(lastDurableCommit ?? latest.manifest.createdAt) : null,
  };
  if (values.json) console.log(JSON.stringify(status, null, 2));
  else for (const [key, value] of Object.entries(status)) console.log(`${key}: ${value}`);
  return EXIT.ok;
}

/** `haduck handoff --node URL [--to URL]`: the leader hands its lease over without stopping. */
async function commandHandoff(args: string[]): Promise<number> {
  const { values } = parse(args, { node: { type: "string" }, to: { type: "string" }, db: { type: "string" },
    "tls-ca": { type: "string" } });
  if (values.help) return (console.log(HELP.handoff), EXIT.ok);
  if (!values.node) throw new UsageError("handoff needs --node URL (any node of the cluster, e.g. http://127.0.0.1:8080)");
  const token = process.env.HADUCK_ADMIN_TOKEN;
  if (!token) throw new UsageError("handoff needs the cluster's token in HADUCK_ADMIN_TOKEN");
  const tls = values["tls-ca"] ? { tls: { ca: readFileSync(values["tls-ca"], "utf8") } } : {};
  const base = (url: string) => url.endsWith("/") ? url : `${url}/`;
  const call = async (url: string, path: string, body?: unknown) => {
    const response = await fetch(`${base(url)}${path}`, { method: body === undefined ? "GET" : "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body), ...tls } as RequestInit);
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(`${base(url)}${path} answered ${response.status}: ${answer.message ?? answer.error ?? ""}`);
    return answer;
  };
  // Any node will do: the handoff goes to the leader it names.
  const status = await call(values.node, "status");
  const entry = values.db ? status.databases.find((d: { db: string }) => d.db === values.db) : status;
  if (!entry) throw new UsageError(`${values.node} serves no database ${values.db}`);
  const leader = entry.role === "leader" ? base(values.node) : entry.leader;
  if (!leader) throw new Error(`no node leads ${values.db ?? "the database"} now: nothing to hand off`);
  const result = await call(leader, "handoff", { db: values.db, to: values.to });
  console.log(`${result.db}: ${leader} handed off to ${result.leader ?? "nobody yet"} in ${result.tookMs} ms`);
  return result.leader ? EXIT.ok : EXIT.failure;
}

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  handoff: commandHandoff,
  attach: commandAttach,
  restore: commandRestore,
  generations: commandGenerations,
  verify: commandVerify,
  status: commandStatus,
  gc: commandGc,
  serve: commandServe,
  sidecar: (args) => runSidecar(args, exitCodeOf),
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
    if (error.code === "CHECK_UNAVAILABLE") return EXIT.unchecked;
    if (["TARGET_EXISTS", "DIVERGED", "FOREIGN_DATABASE", "NO_LOCAL_FILE"].includes(error.code)) return EXIT.conflict;
    if (error.code === "UNSAFE_STORE") return EXIT.config;
    if (error.code === "BAD_TARGET" || error.code === "BAD_ARGUMENT") return EXIT.usage;
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
