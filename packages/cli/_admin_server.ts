/**
 * @module
 * Serves the admin app for an attached database (`Bun.serve`, or `Deno.serve`): parses `--admin` (`HOST:PORT`
 * or a port; 127.0.0.1 unless a host is given), takes the token from `HADUCK_ADMIN_TOKEN` or makes
 * one and prints it once.
 */
import {
  type AdminDatabase,
  createAdminApp,
  generateToken,
  NotDurableError,
  ReadOnlyError,
  type SqlAnswer,
  SqlError,
  type SqlRequest,
} from "@haduck/admin";
import { type AttachedDatabase, checkpointWhenQuiet, summarizeGenerations } from "@haduck/duckdb-fs-bridge";
import { type BlockStore, S3BlockStore } from "@haduck/s3-block-store";
import { type DuckDBConnection, type DuckDBResultReader, type DuckDBValue, StatementType } from "@duckdb/node-api";
import { readFileSync } from "node:fs";

export interface AdminServer {
  url: string;
  stop(): Promise<void>;
}

/** `HOST:PORT`, `:PORT` or `PORT` to a hostname and port; TypeError names the expected form. */
export function parseListen(value: string): { hostname: string; port: number } {
  const match = /^(?:(.*):)?(\d{1,5})$/.exec(value.trim());
  const port = match ? Number(match[2]) : NaN;
  if (!match || port > 65535) {
    throw new TypeError(`Invalid --listen ${JSON.stringify(value)}: expected HOST:PORT or PORT, e.g. 127.0.0.1:8080 ` +
      "(port 0 picks a free one)");
  }
  return { hostname: match[1] || "127.0.0.1", port };
}

/** Adapts an attached database for the admin app; checkpoints go through a connection of their own. */
export function adminDatabase(db: AttachedDatabase, store: BlockStore | undefined): AdminDatabase {
  let connection: Promise<DuckDBConnection> | undefined;
  return {
    dbKey: db.dbKey,
    storeUrl: store?.url ?? null,
    role: "leader" as const,
    status: () => db.replicator.status,
    storeStats: store instanceof S3BlockStore ? () => ({ ...store.stats }) : undefined,
    generations: () => store ? summarizeGenerations(store, db.dbKey) : Promise.resolve([]),
    async checkpoint() {
      connection ??= db.instance.connect();
      await checkpointWhenQuiet(await connection, db.alias);
      await db.replicator.flush();
    },
    sql: (request) => runSql(db, store, request),
  };
}

/** Statement types a request may not run: they outlive it, or change the whole instance under replication. */
const REFUSED: Partial<Record<StatementType, string>> = {
  [StatementType.TRANSACTION]: "each request is its own transaction: send one statement that does the whole change",
  [StatementType.ATTACH]: "the served database is attached already; other databases are not replicated",
  [StatementType.DETACH]: "the served database stays attached while it is served",
  [StatementType.LOAD]: "extensions are not loaded over HTTP",
  [StatementType.EXTENSION]: "extensions are not installed over HTTP",
  [StatementType.VARIABLE_SET]: "settings would change every connection of the serving process",
  [StatementType.SET]: "settings would change every connection of the serving process",
};

/** DuckDB errors that say the server, not the statement, is at fault: 500 or 503, never 400. */
const SERVER_SIDE = /^(FATAL|INTERNAL|Out of Memory|IO) Error/i;
const CONFLICT = /^TransactionContext Error/i;

/** A DuckDB failure as the status it deserves: the statement's fault 400, a conflict 409, the server's 500. */
export function statementError(error: unknown): Error {
  const message = (error as Error).message;
  if (SERVER_SIDE.test(message)) return Object.assign(new Error(message), { code: "INTERNAL" });
  if (CONFLICT.test(message)) return Object.assign(new Error(`${message}; retry`), { code: "BUSY" });
  return new SqlError(message);
}

/** What DuckDB could not prepare (`error`), or a statement that writes and may not here (`write`). */
export type NotRun = { notRun: "write" } | { notRun: "unprepared"; error: Error };

/**
 * Runs one statement of `POST /sql` on `connection`. A read (DuckDB says SELECT or EXPLAIN) runs in
 * a READ ONLY transaction, so DuckDB itself refuses what writes under a reader's type (`SELECT
 * nextval(...)`, `EXPLAIN ANALYZE INSERT ...`): that one runs again as a write, where `writable`
 * (a follower's replica is not: it answers `notRun` and the caller forwards the statement).
 */
export async function executeStatement(connection: DuckDBConnection, request: SqlRequest, writable: boolean):
  Promise<Omit<SqlAnswer, "position"> | NotRun> {
  let prepared;
  try {
    prepared = await connection.prepare(request.sql);
    if (request.params.length > 0) prepared.bind(request.params as DuckDBValue[]);
  } catch (error) {
    return { notRun: "unprepared", error: statementError(error) };
  }
  const refused = REFUSED[prepared.statementType];
  if (refused) throw new SqlError(`This statement is not served over HTTP: ${refused}`);
  let write = prepared.statementType !== StatementType.SELECT && prepared.statementType !== StatementType.EXPLAIN;
  let reader;
  if (!write) {
    await connection.run("BEGIN TRANSACTION READ ONLY");
    try {
      reader = await prepared.runAndReadAll();
      await connection.run("COMMIT");
    } catch (error) {
      await connection.run("ROLLBACK").catch(() => {});
      if (!/read-only/i.test((error as Error).message)) throw statementError(error);
      write = true; // it writes after all: run it as what it is
    }
  }
  if (write) {
    if (!writable) return { notRun: "write" };
    try {
      reader = await prepared.runAndReadAll();
    } catch (error) {
      throw statementError(error);
    }
  }
  // Converted before any durability wait: nothing may fail between the answer and a commit the client could repeat.
  return { columns: reader!.columnNames(), rows: jsonRows(reader!), write };
}

/**
 * One statement on the attached database, on a connection of its own. A write answers once its
 * commit is durable (and, in a cluster, while this node's lease still holds: `stillLeads`); a
 * failure after the commit never invites a blind retry.
 */
export async function runSql(db: AttachedDatabase, store: BlockStore | undefined, request: SqlRequest,
  stillLeads: () => string | undefined = () => undefined): Promise<SqlAnswer> {
  const own = await db.instance.connect();
  try {
    await own.run(`USE ${db.alias}`);
    const ran = await executeStatement(own, request, !request.readOnly);
    if ("notRun" in ran) throw ran.notRun === "unprepared" ? ran.error : new ReadOnlyError();
    if (ran.write && request.durable) {
      let durable = false;
      let why = store ? db.replicator.status.lastError ?? "frames and the checkpoint failed" : "local-only: no store";
      try {
        durable = await db.flush();
        if (!durable) why = store ? db.replicator.status.lastError ?? why : why;
      } catch (error) {
        why = (error as Error).message;
      }
      // Durable in the store, but from a node that may no longer lead: its commit may be on a history
      // another leader fenced, so it is not acknowledged (the new leader has it if it landed first).
      const deposed = durable ? stillLeads() : undefined;
      if (deposed) {
        throw new NotDurableError(`The statement committed here, but this node stopped leading (${deposed}): ` +
          "whether the new leader has it is unknown; read it back there before you run it again");
      }
      if (!durable) {
        throw new NotDurableError(`The statement committed, but its commit is not durable in the store (${why}): ` +
          "do not run it again; it reaches the store once the store answers (GET /status), or send \"durable\": false");
      }
    }
    return { ...ran, position: db.replicator.position };
  } finally {
    own.closeSync();
  }
}

/** Integer types whose values getRowsJson() gives as strings; within 2^53 they answer as numbers. */
const INTEGER_TYPES = new Set(["BIGINT", "UBIGINT", "HUGEINT", "UHUGEINT", "INTEGER", "UINTEGER", "SMALLINT",
  "USMALLINT", "TINYINT", "UTINYINT", "VARINT"]);

/**
 * Rows as JSON: DuckDB's own JSON rendering (full precision: DECIMAL, timestamps to the microsecond,
 * infinity, TIME, BIT as text), with top-level integers within 2^53 as numbers and beyond as strings.
 */
export function jsonRows(reader: DuckDBResultReader): unknown[][] {
  const integer = reader.columnTypes().map((type) => INTEGER_TYPES.has(type.toString()));
  return reader.getRowsJson().map((row) => row.map((value, index) => {
    if (!integer[index] || typeof value !== "string") return value;
    const number = Number(value);
    return Number.isSafeInteger(number) ? number : value;
  }));
}

/** What `--admin` and `HADUCK_ADMIN_TOKEN` ask for, checked before anything opens a database or a store. */
export interface AdminSettings {
  hostname: string;
  port: number;
  token: string;
  configured: boolean;
  /** `HADUCK_READ_TOKEN`: may run reads on POST /sql and nothing else. */
  readToken?: string;
  /** `--tls-cert` and `--tls-key` (PEM): serve HTTPS. */
  tls?: { cert: string; key: string };
}

/** Hosts that only this machine reaches: serving them without TLS needs no warning. */
const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

/** Reads `--tls-cert` and `--tls-key` (both or neither); TypeError names a missing or unreadable file. */
export function tlsSettings(cert: string | undefined, key: string | undefined): { cert: string; key: string } | undefined {
  if (cert === undefined && key === undefined) return undefined;
  if (cert === undefined || key === undefined) {
    throw new TypeError("--tls-cert and --tls-key go together: give both PEM files (the certificate and its key)");
  }
  const read = (flag: string, path: string) => {
    try {
      return readFileSync(path, "utf8");
    } catch (error) {
      throw new TypeError(`${flag} ${path}: ${(error as Error).message}; give a readable PEM file`);
    }
  };
  const pem = { cert: read("--tls-cert", cert), key: read("--tls-key", key) };
  if (!pem.cert.includes("-----BEGIN")) throw new TypeError(`--tls-cert ${cert} is not a PEM certificate`);
  if (!pem.key.includes("-----BEGIN")) throw new TypeError(`--tls-key ${key} is not a PEM key`);
  return pem;
}

/** Checks `--admin` and the token; TypeError names the bad setting and the fix. */
export function adminSettings(listen: string, env = process.env): AdminSettings {
  const { hostname, port } = parseListen(listen);
  const configured = env.HADUCK_ADMIN_TOKEN;
  if (configured !== undefined && configured.length < 16) {
    throw new TypeError(`HADUCK_ADMIN_TOKEN is ${configured.length} characters; the admin token must be at least 16 ` +
      "(e.g. `openssl rand -hex 16`), or unset it and haduck makes one");
  }
  const readToken = env.HADUCK_READ_TOKEN;
  if (readToken !== undefined && (readToken.length < 16 || readToken === configured)) {
    throw new TypeError(readToken.length < 16
      ? `HADUCK_READ_TOKEN is ${readToken.length} characters; a token must be at least 16 (e.g. \`openssl rand -hex 16\`)`
      : "HADUCK_READ_TOKEN equals HADUCK_ADMIN_TOKEN: a read token must differ from the admin token");
  }
  return { hostname, port, token: configured || generateToken(), configured: configured !== undefined,
    readToken: readToken || undefined };
}

/**
 * Listens and serves the admin app. `announce: false` leaves the "admin on URL" line to `announce()`
 * (a cluster node says it once it knows its role, so that whoever waits for the line can use it).
 */
export function serveAdmin(settings: AdminSettings, databases: AdminDatabase[], options: { announce?: boolean } = {}):
  AdminServer & { announce(): void } {
  const { hostname, port, token } = settings;
  const app = createAdminApp({ token, readToken: settings.readToken, databases });
  const server = listen({ hostname, port, fetch: app.fetch, tls: settings.tls });
  const url = `${settings.tls ? "https" : "http"}://${hostname.includes(":") ? `[${hostname}]` : hostname}:${server.port}/`;
  if (!settings.tls && !LOOPBACK.test(hostname)) {
    console.error(`haduck: warning: serving ${hostname} without TLS: tokens and data cross the network in the clear; ` +
      "give --tls-cert and --tls-key");
  }
  const announce = () => console.error(`haduck: admin on ${url}` + (settings.configured
    ? " (token from HADUCK_ADMIN_TOKEN)"
    : ` (token ${token}; dashboard ${url}#token=${token})`));
  if (options.announce !== false) announce();
  return { url, stop: server.stop, announce };
}

type Fetch = (request: Request) => Response | Promise<Response>;
type Listener = { port: number; stop(): Promise<void> };

/** The runtime's HTTP server: Bun.serve under Bun, Deno.serve under Deno. */
function listen(options: { hostname: string; port: number; fetch: Fetch; tls?: { cert: string; key: string } }):
  Listener {
  const runtime = globalThis as unknown as {
    Bun?: { serve(o: unknown): { port: number; stop(force: boolean): Promise<void> | void } };
    Deno?: { serve(o: unknown, handler: Fetch): { addr: { port: number }; shutdown(): Promise<void> } };
  };
  if (runtime.Bun) {
    // No idle cutoff: a durable write may wait for the store longer than Bun's default 10 s.
    const { tls, ...rest } = options;
    const server = runtime.Bun.serve({ ...rest, ...(tls ? { tls } : {}), idleTimeout: 0 });
    return { port: server.port, stop: async () => await server.stop(true) };
  }
  const server = runtime.Deno!.serve({ hostname: options.hostname, port: options.port, onListen() {}, ...options.tls },
    options.fetch);
  return { port: server.addr.port, stop: () => server.shutdown() };
}
