/**
 * @module
 * `haduck serve`: the databases a node serves, its cluster node (or, without a store, a local
 * leader), the admin app with SQL over HTTP, and the bounds and sandbox of that SQL from the flags
 * (docs/SECURITY.md). Until SIGTERM or Ctrl-C; then it drains, hands off and stops.
 */
import { basename, dirname, resolve } from "node:path";
import { existsSync, readFileSync, statSync } from "node:fs";
import { hostname } from "node:os";
import type { BlockStore } from "@haduck/s3-block-store";
import {
  type AttachedDatabase,
  defaultDbKey,
  latestManifest,
  ReplicationError,
  sandbox,
  type SandboxOptions,
} from "@haduck/duckdb-fs-bridge";
import {
  addressProof,
  ClusterNode,
  GroupChanges,
  MemberReporter,
  RESULT_BYTES_MAX_DEFAULT,
  SharedLease,
  STATEMENT_TIMEOUT_MS_DEFAULT,
  StatementGate,
  sqlLimits,
} from "@haduck/cluster";
import { assertValidDbKey, decodeFrame, leaseKey, listFrames } from "@haduck/duckblock";
import { decodeLeaseRecord, Lease } from "@haduck/lease";
import { adminDatabase, adminSettings, serveAdmin, tlsSettings } from "./_admin_server.ts";
import { attachFromFlags, EXIT, parse, UsageError } from "./_command.ts";
import { HELP } from "./_help.ts";
import { REPLICA_STORE_OPTIONS, REPLICA_STORES_ENV, replicaStoresFromFlags, storeFromFlags } from "./_store_flags.ts";
import { ensureThreadPool } from "./_thread_pool.ts";

export async function commandServe(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { admin: { type: "string" }, listen: { type: "string" },
    alias: { type: "string" }, "lease-ttl": { type: "string" }, "tls-cert": { type: "string" },
    "tls-key": { type: "string" }, "tls-ca": { type: "string" }, db: { type: "string", multiple: true },
    group: { type: "string" }, "allow-files": { type: "string", multiple: true },
    "statement-timeout": { type: "string" }, "max-result-bytes": { type: "string" },
    "max-statements": { type: "string" }, "max-queued-statements": { type: "string" },
    "memory-limit": { type: "string" }, "max-temp-size": { type: "string" }, ...REPLICA_STORE_OPTIONS });
  if (values.help) return (console.log(HELP.serve), EXIT.ok);
  const { limits, sandboxOptions } = sqlSettings(values);
  // Statements may not hold every thread the lease, shipping and followers need (see _thread_pool.ts).
  await ensureThreadPool(Math.max(16, 2 * limits.gate.runningMax + 4));
  const databases = servedDatabases(positionals, values.db ?? [], values["db-key"]);
  // A node keeps its file in a directory it does not create: a missing one is a typo or a step left
  // out (`mkdir -p node1`), said at once rather than met by every lease term's restore in turn.
  for (const { dbPath } of databases) {
    const folder = dirname(resolve(dbPath));
    if (!existsSync(folder)) {
      throw new UsageError(`the directory ${folder} does not exist: create it (mkdir -p ${folder}) or give ` +
        `another path for ${basename(dbPath)}`);
    }
  }
  // An allowed directory that holds a served database would let the admin token read its raw bytes
  // (deleted rows too) and its WAL through a path built from pieces, which no text check sees.
  for (const dir of sandboxOptions.allowedDirectories ?? []) {
    const prefix = dir.endsWith("/") ? dir : `${dir}/`;
    const within = databases.find(({ dbPath }) => `${dirname(resolve(dbPath))}/`.startsWith(prefix));
    if (within) {
      throw new UsageError(`--allow-files ${dir} holds the served database ${resolve(within.dbPath)}: ` +
        "statements could read its raw bytes and WAL; allow a directory of its own (e.g. --allow-files ./exchange)");
    }
  }
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
  if (replicaStoresFromFlags(values, process.env).length > 0 && !store) {
    throw new UsageError(`--replica-store (or ${REPLICA_STORES_ENV}) copies the primary store: give --store too`);
  }
  const signalled = new Promise<void>((resolve) => process.once("SIGINT", resolve).once("SIGTERM", resolve));
  if (!store) {
    // A node without a store: it leads itself, local-only.
    const attachedLocal = [];
    for (const { dbPath, dbKey } of databases) {
      const { db } = await attachFromFlags(dbPath, { ...values, "db-key": dbKey }, undefined, databases.length > 1);
      await sandbox(db.connection, { ...sandboxOptions, tempDirectory: `${resolve(dbPath)}.haduck-tmp` });
      attachedLocal.push(db);
    }
    const admin = serveAdmin(settings, attachedLocal.map((db) => adminDatabase(db, undefined, limits)));
    await signalled;
    console.error("haduck: stopping: running statements finish (reads are interrupted), then the database closes");
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
    : groupOf(values.group, store, ttlMs, holder, databases.map((database) => database.dbKey), settings.token);
  const nodes: ClusterNode[] = databases.map(({ dbPath, dbKey }) => new ClusterNode({
    dbPath, store, dbKey, ttlMs, token: settings.token, ca, holder,
    ...(group ? { lease: group.lease, followerPollMs: GROUP_REPLICA_POLL_MS } : {}),
    sqlLimits: limits,
    sandbox: sandboxOptions,
    attach: async (fence) => {
      const db = (await attachFromFlags(dbPath, { ...values, "db-key": dbKey }, { fence, store,
        onShipped: group && (() => group.changes.changed(dbKey)) }, databases.length > 1)).db;
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
  // Followers tell their leaders of themselves, so that /status and the dashboard list every node.
  const reporter = new MemberReporter(nodes, { address: admin.url, token: settings.token, ca,
    intervalMs: Math.max(500, Math.min(2000, Math.floor(ttlMs / 2))) });
  reporter.start();
  // Followers of a group are told which databases changed instead of polling each one.
  group?.changes.watch(Math.max(50, Math.min(250, Math.floor(ttlMs / 20))), (changed) => {
    for (const node of nodes) if (changed === "all" || changed.includes(node.dbKey)) node.refreshReplica();
  }, () => nodes.some((node) => node.role !== "leader"));
  for (const node of nodes) {
    console.error(`haduck: ${node.dbKey}: ${node.role} (lease TTL ${ttlMs} ms${group ? `, group ${values.group}` : ""})`);
  }
  await signalled;
  // Said at once: what the stop waits for (a lone leader waits for no successor: _handoff.ts).
  console.error("haduck: stopping: running statements finish (reads are interrupted), everything ships to the " +
    "store, then each lease is released" + (nodes.some((node) => node.role === "leader")
      ? " (to a follower that claims it; nobody is waited for when no statement waits)" : ""));
  await reporter.stop();
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
function groupOf(name: string, store: BlockStore, ttlMs: number, holder: string, dbKeys: string[], token: string) {
  try {
    assertValidDbKey(name);
  } catch (error) {
    throw new UsageError(`--group ${JSON.stringify(name)}: ${(error as Error).message}`);
  }
  let shared: SharedLease | undefined;
  return {
    changes: new GroupChanges(store, name),
    lease: ({ address, marginMs }: { address: string; marginMs: number }) => {
      shared ??= new SharedLease(new Lease(store, leaseKey(name), { holder, address, ttlMs, marginMs,
        proof: addressProof(token, address) }),
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
    const record = decodeLeaseRecord(await store.get(leaseKey(dbKey)));
    if (record) highest = record.epoch;
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
