/**
 * @module
 * Serves the admin app for an attached database (`Bun.serve`, or `Deno.serve`): parses `--admin` (`HOST:PORT`
 * or a port; 127.0.0.1 unless a host is given), takes the token from `HADUCK_ADMIN_TOKEN` or makes
 * one and prints it once.
 */
import { type AdminDatabase, createAdminApp, generateToken, tokensEqual } from "@haduck/admin";
import { type AttachedDatabase, checkpointWhenQuiet, summarizeGenerations } from "@haduck/duckdb-fs-bridge";
import { type BlockStore, S3BlockStore, SealedStore } from "@haduck/s3-block-store";
import type { DuckDBConnection } from "@duckdb/node-api";
import { runSql, type SqlLimits } from "@haduck/cluster";
import { readFileSync } from "node:fs";
import { guardOpenFiles } from "./_open_files.ts";

export interface AdminServer {
  url: string;
  /**
   * Stops gracefully: `/healthz` says 503 (clients and balancers move away), no new connection is
   * taken, every answer closes its connection, and the requests in flight are answered (at most
   * `drainMs`, default 20 s) before the last connections close. No connection is reset with a
   * request on it that is being answered.
   */
  stop(options?: { drainMs?: number }): Promise<void>;
  /** Says `/healthz` 503 from now on, and closes each connection after its answer; serves on. */
  drain(): void;
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
export function adminDatabase(db: AttachedDatabase, store: BlockStore | undefined, limits: SqlLimits | undefined):
  AdminDatabase {
  let connection: Promise<DuckDBConnection> | undefined;
  const raw = store instanceof SealedStore ? store.inner : store; // the request counters are the S3 store's
  return {
    dbKey: db.dbKey,
    storeUrl: store?.url ?? null,
    role: "leader" as const,
    status: () => db.replicator.status,
    storeStats: raw instanceof S3BlockStore ? () => ({ ...raw.stats }) : undefined,
    generations: () => store ? summarizeGenerations(store, db.dbKey) : Promise.resolve([]),
    async checkpoint() {
      connection ??= db.instance.connect();
      await checkpointWhenQuiet(await connection, db.alias);
      await db.replicator.flush();
    },
    sql: limits && ((request) => runSql(db, store, request, limits)),
  };
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
  let draining = false;
  const app = createAdminApp({ token, readToken: settings.readToken, databases, draining: () => draining });
  // A request that needs a token and has none of ours is refused before its body is read.
  const authorized = async (request: Request) => {
    const path = new URL(request.url).pathname;
    if (path === "/healthz" || path === "/") return true;
    const bearer = /^Bearer\s+(\S+)$/i.exec(request.headers.get("authorization") ?? "")?.[1];
    if (bearer === undefined) return false;
    return await tokensEqual(bearer, token) || (settings.readToken !== undefined && await tokensEqual(bearer, settings.readToken));
  };
  const server = listen({ hostname, port, fetch: app.fetch, tls: settings.tls, draining: () => draining, authorized });
  const url = `${settings.tls ? "https" : "http"}://${hostname.includes(":") ? `[${hostname}]` : hostname}:${server.port}/`;
  if (!settings.tls && !LOOPBACK.test(hostname)) {
    console.error(`haduck: warning: serving ${hostname} without TLS: tokens and data cross the network in the clear; ` +
      "give --tls-cert and --tls-key");
  }
  const announce = () => console.error(`haduck: admin on ${url}` + (settings.configured
    // The token stays out of the output (it came from the environment), but the dashboard's address does not.
    ? ` (token from HADUCK_ADMIN_TOKEN; dashboard ${url}#token=$HADUCK_ADMIN_TOKEN, with the variable's value)`
    : ` (token ${token}; dashboard ${url}#token=${token})`));
  if (options.announce !== false) announce();
  return {
    url,
    announce,
    drain: () => draining = true,
    stop: async (options = {}) => {
      draining = true;
      await server.stop(options.drainMs ?? 20_000);
    },
  };
}

type Fetch = (request: Request) => Response | Promise<Response>;

/** Seconds a connection may sit idle between requests. */
const IDLE_SECONDS = 30;
/** After a flood of connections is closed, the port stays closed this long (see `guardOpenFiles`). */
const FLOOD_PAUSE_MS = 1_000;
/** A request body must arrive in full within this; a slow or stalled one is answered 408 and closed. */
export const BODY_DEADLINE_MS = 5_000;
/** No route takes a body larger than this (POST /sql's own bound is 1 MiB). */
const BODY_BYTES_MAX = 2 * 1024 * 1024;

/**
 * Reads the request's body within `BODY_DEADLINE_MS` (a client that sends headers and part of a
 * body, then nothing, or trickles it, is answered 408 and its connection closed), then lifts the
 * connection's idle cutoff (`setTimeout(0)`) and passes the request on with its body whole.
 */
async function bodyInTime(request: Request, fetch: Fetch, setTimeout: (seconds: number) => void): Promise<Response> {
  const refuse = (status: number, message: string) =>
    new Response(JSON.stringify({ error: message }), { status, headers: { "content-type": "application/json",
      connection: "close" } });
  let body: Uint8Array<ArrayBuffer> | undefined;
  if (request.body) {
    if (Number(request.headers.get("content-length") ?? 0) > BODY_BYTES_MAX) return refuse(413, "request body too large");
    const reader = request.body.getReader();
    const parts: Uint8Array[] = [];
    let bytes = 0;
    let timer: ReturnType<typeof globalThis.setTimeout> | undefined;
    const late = new Promise<"late">((resolve) => timer = globalThis.setTimeout(() => resolve("late"), BODY_DEADLINE_MS));
    try {
      for (;;) {
        const next = await Promise.race([reader.read(), late]);
        if (next === "late") {
          reader.cancel().catch(() => {});
          return refuse(408, `the request body did not arrive within ${BODY_DEADLINE_MS} ms`);
        }
        if (next.done) break;
        bytes += next.value.byteLength;
        if (bytes > BODY_BYTES_MAX) {
          reader.cancel().catch(() => {});
          return refuse(413, "request body too large");
        }
        parts.push(next.value);
      }
    } catch {
      return refuse(400, "the request body could not be read");
    } finally {
      clearTimeout(timer);
    }
    body = new Uint8Array(bytes);
    let at = 0;
    for (const part of parts) {
      body.set(part, at);
      at += part.byteLength;
    }
  }
  setTimeout(0);
  return await fetch(new Request(request.url, { method: request.method, headers: request.headers, body,
    signal: request.signal }));
}
type Listener = { port: number; stop(drainMs: number): Promise<void> };

/** The runtime's HTTP server: Bun.serve under Bun, Deno.serve under Deno. */
function listen(options: { hostname: string; port: number; fetch: Fetch; tls?: { cert: string; key: string };
  draining: () => boolean; authorized: (request: Request) => Promise<boolean> }): Listener {
  const runtime = globalThis as unknown as {
    Bun?: { serve(o: unknown): { port: number; stop(force: boolean): Promise<void> | void } };
    Deno?: { serve(o: unknown, handler: Fetch): { addr: { port: number }; shutdown(): Promise<void> } };
  };
  if (runtime.Bun) {
    const { tls, fetch, draining, hostname, port, authorized } = options;
    let inFlight = 0;
    // An idle connection (between requests) closes after IDLE_SECONDS; a request whose body has
    // arrived has no cutoff (a durable write may wait for the store longer), see `bodyInTime`.
    const serveOptions = { hostname, port, ...(tls ? { tls } : {}), idleTimeout: IDLE_SECONDS,
      fetch: async (request: Request, bun: { timeout(request: Request, seconds: number): void }) => {
        inFlight++;
        try {
          if (!await authorized(request)) {
            return new Response(JSON.stringify({ error: "a bearer token is required: send Authorization: Bearer " +
              "<HADUCK_ADMIN_TOKEN>" }), { status: 401, headers: { "content-type": "application/json", connection: "close",
              "www-authenticate": 'Bearer realm="haduck"' } });
          }
          const response = await bodyInTime(request, fetch, (seconds) => bun.timeout(request, seconds));
          // A draining server closes each connection after its answer: the next request goes elsewhere.
          if (!draining()) return response;
          const headers = new Headers(response.headers);
          headers.set("connection", "close");
          return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
        } finally {
          inFlight--;
        }
      } };
    let server = runtime.Bun.serve(serveOptions);
    const boundPort = server.port;
    // A flood of connections must not take the descriptors the lease and the store need: past three
    // quarters of the limit every connection is closed, and the same port is served again a moment later.
    let stopped = false;
    let paused = false;
    let saidAt = -Infinity;
    const serveAgain = () => {
      if (stopped) return;
      try {
        server = runtime.Bun!.serve({ ...serveOptions, port: boundPort });
      } catch (error) {
        console.error(`haduck: serving port ${boundPort} again failed (${(error as Error).message}); retrying`);
        setTimeout(serveAgain, 100);
      }
    };
    const unguard = guardOpenFiles((open, limit) => {
      if (stopped) return;
      if (performance.now() - saidAt > 10_000) {
        saidAt = performance.now();
        console.error(`haduck: ${open} open files of a limit of ${limit}: closing every HTTP connection so the ` +
          "lease, the store and the database keep theirs (a flood of connections? serve behind a proxy that " +
          "limits them)");
      }
      void server.stop(true);
      // Not listening for a moment: the flood cannot take back the descriptors the lease needs now.
      if (!paused) {
        paused = true;
        setTimeout(() => (paused = false, serveAgain()), FLOOD_PAUSE_MS);
      }
    });
    return {
      port: boundPort,
      stop: async (drainMs) => {
        stopped = true;
        unguard();
        // No new connections; the requests in flight are answered, then the rest close.
        void server.stop(false);
        const deadline = performance.now() + drainMs;
        while (inFlight > 0 && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
        await server.stop(true);
      },
    };
  }
  const server = runtime.Deno!.serve({ hostname: options.hostname, port: options.port, onListen() {}, ...options.tls },
    options.fetch);
  return { port: server.addr.port, stop: () => server.shutdown() }; // Deno's shutdown answers what is in flight
}
