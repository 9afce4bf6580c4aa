/**
 * @module
 * Serves the admin app for an attached database (`Bun.serve`, or `Deno.serve`): parses `--admin` (`HOST:PORT`
 * or a port; 127.0.0.1 unless a host is given), takes the token from `HADUCK_ADMIN_TOKEN` or makes
 * one and prints it once.
 */
import { type AdminDatabase, createAdminApp, generateToken, NotDurableError, SqlError } from "@haduck/admin";
import { type AttachedDatabase, checkpointWhenQuiet, summarizeGenerations } from "@haduck/duckdb-fs-bridge";
import { type BlockStore, S3BlockStore } from "@haduck/s3-block-store";
import { type DuckDBConnection, type DuckDBValue, StatementType } from "@duckdb/node-api";

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
    role: "leader",
    status: () => db.replicator.status,
    storeStats: store instanceof S3BlockStore ? () => ({ ...store.stats }) : undefined,
    generations: () => store ? summarizeGenerations(store, db.dbKey) : Promise.resolve([]),
    async checkpoint() {
      connection ??= db.instance.connect();
      await checkpointWhenQuiet(await connection, db.alias);
      await db.replicator.flush();
    },
    async sql(request) {
      // A connection per request: DuckDB runs them side by side, each sees the attached database.
      const own = await db.instance.connect();
      try {
        await own.run(`USE ${db.alias}`);
        let reader;
        let write: boolean;
        try {
          const prepared = await own.prepare(request.sql);
          // DuckDB's own statement type tells a write from a read, never the text.
          write = prepared.statementType !== StatementType.SELECT && prepared.statementType !== StatementType.EXPLAIN;
          if (request.params.length > 0) prepared.bind(request.params as DuckDBValue[]);
          reader = await prepared.runAndReadAll();
        } catch (error) {
          throw new SqlError((error as Error).message);
        }
        // A write answers once its commit is in the store (a frame, group-committed, or a generation).
        if (write && request.durable && !await db.flush()) {
          throw new NotDurableError(`The statement ran, but its commit is not durable in the store` +
            (store ? `: ${db.replicator.status.lastError ?? "frames and the checkpoint failed"}` : " (local-only: no store)") +
            '; retry, or send "durable": false');
        }
        return { columns: reader.columnNames(), rows: reader.getRowsJS().map((row) => row.map(jsonValue)), write,
          position: db.replicator.position };
      } finally {
        own.closeSync();
      }
    },
  };
}

/** A DuckDB value as JSON: integers beyond 2^53 as strings, times as ISO 8601, bytes as hex. */
export function jsonValue(value: unknown): unknown {
  if (typeof value === "bigint") return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
  if (typeof value === "number" && !Number.isFinite(value)) return String(value);
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? String(value) : value.toISOString();
  if (value instanceof Uint8Array) return Buffer.from(value).toString("hex");
  if (Array.isArray(value)) return value.map(jsonValue);
  if (value instanceof Map) return Object.fromEntries([...value].map(([k, v]) => [String(k), jsonValue(v)]));
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, jsonValue(v)]));
  }
  return value;
}

/** What `--admin` and `HADUCK_ADMIN_TOKEN` ask for, checked before anything opens a database or a store. */
export interface AdminSettings {
  hostname: string;
  port: number;
  token: string;
  configured: boolean;
}

/** Checks `--admin` and the token; TypeError names the bad setting and the fix. */
export function adminSettings(listen: string, env = process.env): AdminSettings {
  const { hostname, port } = parseListen(listen);
  const configured = env.HADUCK_ADMIN_TOKEN;
  if (configured !== undefined && configured.length < 16) {
    throw new TypeError(`HADUCK_ADMIN_TOKEN is ${configured.length} characters; the admin token must be at least 16 ` +
      "(e.g. `openssl rand -hex 16`), or unset it and haduck makes one");
  }
  return { hostname, port, token: configured || generateToken(), configured: configured !== undefined };
}

export function serveAdmin(settings: AdminSettings, databases: AdminDatabase[]): AdminServer {
  const { hostname, port, token } = settings;
  const app = createAdminApp({ token, databases });
  const server = listen({ hostname, port, fetch: app.fetch });
  const url = `http://${hostname.includes(":") ? `[${hostname}]` : hostname}:${server.port}/`;
  console.error(`haduck: admin on ${url}` + (settings.configured
    ? " (token from HADUCK_ADMIN_TOKEN)"
    : ` (token ${token}; dashboard ${url}#token=${token})`));
  return { url, stop: server.stop };
}

type Fetch = (request: Request) => Response | Promise<Response>;
type Listener = { port: number; stop(): Promise<void> };

/** The runtime's HTTP server: Bun.serve under Bun, Deno.serve under Deno. */
function listen(options: { hostname: string; port: number; fetch: Fetch }): Listener {
  const runtime = globalThis as unknown as {
    Bun?: { serve(o: unknown): { port: number; stop(force: boolean): Promise<void> | void } };
    Deno?: { serve(o: unknown, handler: Fetch): { addr: { port: number }; shutdown(): Promise<void> } };
  };
  if (runtime.Bun) {
    const server = runtime.Bun.serve(options);
    return { port: server.port, stop: async () => await server.stop(true) };
  }
  const server = runtime.Deno!.serve({ hostname: options.hostname, port: options.port, onListen() {} }, options.fetch);
  return { port: server.addr.port, stop: () => server.shutdown() };
}
