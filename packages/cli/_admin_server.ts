/**
 * @module
 * Serves the admin app for an attached database (`Bun.serve`, or `Deno.serve`): parses `--admin` (`HOST:PORT`
 * or a port; 127.0.0.1 unless a host is given), takes the token from `HADUCK_ADMIN_TOKEN` or makes
 * one and prints it once.
 */
import { type AdminDatabase, createAdminApp, generateToken } from "@haduck/admin";
import { type AttachedDatabase, checkpointWhenQuiet, summarizeGenerations } from "@haduck/duckdb-fs-bridge";
import { type BlockStore, S3BlockStore } from "@haduck/s3-block-store";
import type { DuckDBConnection } from "@duckdb/node-api";

export interface AdminServer {
  url: string;
  stop(): Promise<void>;
}

/** `HOST:PORT`, `:PORT` or `PORT` to a hostname and port; TypeError names the expected form. */
export function parseListen(value: string): { hostname: string; port: number } {
  const match = /^(?:(.*):)?(\d{1,5})$/.exec(value.trim());
  const port = match ? Number(match[2]) : NaN;
  if (!match || port > 65535) {
    throw new TypeError(`Invalid --admin ${JSON.stringify(value)}: expected HOST:PORT or PORT, e.g. 127.0.0.1:8080 ` +
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
    role: "writer",
    status: () => db.replicator.status,
    storeStats: store instanceof S3BlockStore ? () => ({ ...store.stats }) : undefined,
    generations: () => store ? summarizeGenerations(store, db.dbKey) : Promise.resolve([]),
    async checkpoint() {
      connection ??= db.instance.connect();
      await checkpointWhenQuiet(await connection, db.alias);
      await db.replicator.flush();
    },
  };
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
