/**
 * @module
 * The admin HTTP app (Hono), runtime-neutral: mount its `fetch` on any server.
 *
 * | route | auth | what |
 * |---|---|---|
 * | `GET /healthz` | none | `ok` while the process serves; 503 `stopping` once it stops (it still answers the rest) |
 * | `GET /` | none | the dashboard: a static page without data; it reads everything below with the token |
 * | `GET /status` | bearer | JSON per database: role, last generation and its time, pending, carried, lag, rate, last error |
 * | `GET /metrics` | bearer | Prometheus text |
 * | `GET /generations?db=KEY` | bearer | the generations in the store |
 * | `POST /checkpoint` | bearer | checkpoints (`{"db": KEY}` optional with one database) and waits until it is shipped |
 * | `POST /handoff` | bearer | a leader hands the lease to `{"to": ADDRESS}` (or the first follower to look) and follows |
 * | `POST /sql` | bearer | one statement `{"sql", "params"?, "durable"?, "db"?}`: `{"columns", "rows", "role", "position"}`; a write answers once durable |
 * | `POST /members` | bearer | a cluster node reports itself `{"address", "databases": [{"db", "role", "epoch", "lagMs"}]}`; answers each database's `nodes` and `lastFailover` |
 *
 * Every error goes through one `onError` that maps error codes to statuses; bodies are bounded.
 */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import { COMMIT_POSITION_PATTERN } from "@haduck/duckblock";
import { DASHBOARD_HTML } from "./_dashboard.ts";
import { accessOf, requireToken } from "./_auth.ts";
import { renderMetrics } from "./_metrics.ts";
import type { AdminDatabase, ClusterRole, MemberReport, SqlAnswer, SqlRequest } from "./_types.ts";

export interface AdminAppOptions {
  /** The bearer token every route but `/healthz` and `/` needs (at least 16 characters). */
  token: string;
  /** A second token that may run reads on `POST /sql` and nothing else (a write or another route: 403). */
  readToken?: string;
  databases: AdminDatabase[];
  /** Request bodies larger than this are refused with 413. Default 16 KiB. */
  bodyBytesMax?: number;
  /** The same for `POST /sql`. Default 1 MiB. */
  sqlBodyBytesMax?: number;
  /** True while the node stops: `/healthz` answers 503, so clients and balancers move away. */
  draining?: () => boolean;
}


/** The body of `POST /sql`, checked; a bad one is a 400 naming the expected shape. */
/** Whether `value` nests arrays or objects deeper than `levels` (without recursing past it). */
function nestedDeeperThan(value: unknown, levels: number): boolean {
  if (value === null || typeof value !== "object") return false;
  if (levels === 0) return true;
  return Object.values(value).some((child) => nestedDeeperThan(child, levels - 1));
}

function parseSqlRequest(text: string, positionHeader: string | undefined): SqlRequest & { db?: string } {
  let body: { sql?: unknown; params?: unknown; durable?: unknown; db?: unknown; after?: unknown; waitMs?: unknown;
    maxLagMs?: unknown; consistency?: unknown };
  try {
    body = JSON.parse(text);
  } catch {
    throw new HTTPException(400, { message: 'the body must be JSON: {"sql": "SELECT 42", "params": []}' });
  }
  if (typeof body?.sql !== "string" || body.sql.trim() === "") {
    throw new HTTPException(400, { message: 'the body needs "sql", a statement: {"sql": "SELECT 42"}' });
  }
  if (body.params !== undefined && (!Array.isArray(body.params) || nestedDeeperThan(body.params, 32))) {
    throw new HTTPException(400, { message: '"params" must be an array of values for $1, $2, ... (lists and ' +
      "structs nested at most 32 deep)" });
  }
  if (body.durable !== undefined && typeof body.durable !== "boolean") {
    throw new HTTPException(400, { message: '"durable" must be true or false' });
  }
  if (body.db !== undefined && typeof body.db !== "string") throw new HTTPException(400, { message: '"db" must be a key' });
  const after = body.after ?? positionHeader;
  if (after !== undefined && (typeof after !== "string" || !COMMIT_POSITION_PATTERN.test(after))) {
    throw new HTTPException(400, { message: '"after" (or X-Haduck-Position) must be a position from an answer, ' +
      'such as "2:14:4096"' });
  }
  for (const [name, value] of [["waitMs", body.waitMs], ["maxLagMs", body.maxLagMs]] as const) {
    if (value !== undefined && (typeof value !== "number" || !Number.isFinite(value) || value < 0 || value > 600_000)) {
      throw new HTTPException(400, { message: `"${name}" must be a number of milliseconds from 0 to 600000` });
    }
  }
  if (body.consistency !== undefined && body.consistency !== "leader") {
    throw new HTTPException(400, { message: '"consistency" is "leader" (a linearizable read on the leader) or absent' });
  }
  return { sql: body.sql, params: body.params ?? [], durable: body.durable ?? true, db: body.db,
    after: after as string | undefined, waitMs: body.waitMs as number | undefined,
    maxLagMs: body.maxLagMs as number | undefined, consistency: body.consistency as "leader" | undefined };
}

/** `POST /members` carries one entry per database a node serves (a group of 100: about 10 KiB). */
const MEMBERS_BODY_BYTES_MAX = 256 * 1024;
const ROLES = new Set(["leader", "follower", "candidate"]);

/** The body of `POST /members`, checked: a 400 names the expected shape. */
function parseMemberReports(text: string): (MemberReport & { db: string })[] {
  const shape = '{"address": "http://10.0.0.2:8080/", "databases": [{"db": "a.duckdb", "role": "follower", ' +
    '"epoch": 3, "lagMs": 120}]}';
  let body: { address?: unknown; databases?: unknown };
  try {
    body = JSON.parse(text);
  } catch {
    throw new HTTPException(400, { message: `the body must be JSON: ${shape}` });
  }
  const address = body?.address;
  if (typeof address !== "string" || !/^https?:\/\/\S+$/.test(address) || address.length > 300) {
    throw new HTTPException(400, { message: `"address" must be the reporting node's http(s) URL: ${shape}` });
  }
  if (!Array.isArray(body.databases)) throw new HTTPException(400, { message: `"databases" must be an array: ${shape}` });
  return body.databases.map((entry: { db?: unknown; role?: unknown; epoch?: unknown; lagMs?: unknown }) => {
    if (typeof entry?.db !== "string" || !ROLES.has(entry.role as string) || !Number.isSafeInteger(entry.epoch) ||
      (entry.epoch as number) < 0 || typeof entry.lagMs !== "number" || !Number.isFinite(entry.lagMs) || entry.lagMs < 0) {
      throw new HTTPException(400, { message: `each of "databases" needs "db", "role" (leader, follower or ` +
        `candidate), "epoch" (an integer) and "lagMs" (milliseconds): ${shape}` });
    }
    return { db: entry.db, address, role: entry.role as ClusterRole, epoch: entry.epoch as number,
      lagMs: Math.round(entry.lagMs) };
  });
}

/** Error codes of the store and of replication, as HTTP statuses. Anything else is a 500. */
const STATUS_OF_CODE: Record<string, number> = {
  SQL_ERROR: 400,
  FORBIDDEN: 403,
  RESULT_TOO_LARGE: 413,
  STATEMENT_TIMEOUT: 504,
  OVERLOADED: 503,
  CLIENT_GONE: 400,
  NOT_DURABLE: 503,
  NO_LEADER: 503,
  READ_ONLY: 403,
  NOT_FOUND: 404,
  GENERATION_NOT_FOUND: 404,
  NO_GENERATIONS: 404,
  PRECONDITION_FAILED: 409,
  BUSY: 409,
  DIVERGED: 409,
  FOREIGN_DATABASE: 409,
  TARGET_EXISTS: 409,
  ACCESS_DENIED: 502,
  NO_SUCH_BUCKET: 502,
  INVALID_RESPONSE: 502,
  UNAVAILABLE: 503,
  TIMEOUT: 504,
  UNKNOWN_OUTCOME: 503,
  INTEGRITY: 500,
  CHECKSUM_MISMATCH: 500,
  INVALID_CONFIG: 500,
  UNSAFE_STORE: 500,
};

/**
 * Builds the admin app.
 *
 * @example
 * ```ts
 * import { createAdminApp } from "@haduck/admin";
 * const app = createAdminApp({ token: "0123456789abcdef0123", databases: [] });
 * const response = await app.request("/healthz");
 * console.log(response.status); // 200
 * ```
 */
export function createAdminApp(options: AdminAppOptions): Hono {
  const { databases } = options;
  const app = new Hono();
  const auth = requireToken(options.token, options.readToken);
  const find = (dbKey: string | undefined) => {
    if (dbKey === undefined && databases.length === 1) return databases[0];
    const found = databases.find((database) => database.dbKey === dbKey);
    if (!found) {
      const known = databases.map((database) => database.dbKey).join(", ") || "none";
      throw new HTTPException(404, { message: dbKey === undefined
        ? `this node serves several databases: name one with "db" (one of ${known})`
        : `no database ${JSON.stringify(dbKey)} is served here; known: ${known}` });
    }
    return found;
  };

  app.get("/healthz", (c) => options.draining?.() ? c.text("stopping", 503) : c.text("ok"));
  app.get("/", (c) => c.html(DASHBOARD_HTML));
  app.use("/status", auth);
  app.use("/metrics", auth);
  app.use("/generations", auth);
  app.use("/checkpoint", auth);
  app.use("/handoff", auth);
  app.use("/members", auth);

  // The node's role is its first database's (a single node leads itself: no leader address, epoch 0).
  app.get("/status", (c) => {
    const described = databases.map(describe);
    const first = described[0];
    return c.json({ role: first?.role ?? "leader", leader: first?.leader ?? null, epoch: first?.epoch ?? 0,
      lagMs: first?.clusterLagMs ?? 0, databases: described.map(({ clusterLagMs: _, ...entry }) => entry) });
  });
  app.post("/sql", bodyLimit({ maxSize: options.sqlBodyBytesMax ?? 1024 * 1024, onError: () => {
    throw new HTTPException(413, { message: "request body too large" });
  } }), async (c) => {
    const access = await accessOf(c.req.header("authorization"), options.token, options.readToken);
    const request = { ...parseSqlRequest(await c.req.text(), c.req.header("x-haduck-position")),
      forwarded: c.req.header("x-haduck-forwarded") === "1",
      readOnly: access === "read", authorization: c.req.header("authorization"), signal: c.req.raw.signal };
    const database = find(request.db);
    if (!database.sql) throw new HTTPException(501, { message: `${database.dbKey} does not serve SQL here` });
    const answer = await database.sql(request);
    if (answer instanceof Response) return answer;
    return new Response(answerBody(answer, database.role), { status: 200, headers: {
      "content-type": "application/json", "x-haduck-position": answer.position } });
  });
  app.post("/members", bodyLimit({ maxSize: MEMBERS_BODY_BYTES_MAX, onError: () => {
    throw new HTTPException(413, { message: "request body too large" });
  } }), async (c) => {
    const reports = parseMemberReports(await c.req.text());
    const answered = [];
    for (const { db, ...report } of reports) {
      const database = databases.find((candidate) => candidate.dbKey === db);
      if (!database) continue; // a database this node does not serve (any more): nothing to say of it
      database.memberReport?.(report);
      const cluster = database.cluster?.();
      answered.push({ db, leader: cluster?.leader ?? null, epoch: cluster?.epoch ?? 0, nodes: cluster?.nodes ?? [],
        lastFailover: cluster?.lastFailover ?? null });
    }
    return c.json({ databases: answered });
  });
  app.get("/metrics", (c) => c.body(renderMetrics(databases), 200,
    { "content-type": "text/plain; version=0.0.4; charset=utf-8" }));
  app.get("/generations", async (c) => c.json({ generations: await find(c.req.query("db")).generations() }));
  app.post("/checkpoint", bodyLimit({ maxSize: options.bodyBytesMax ?? 16 * 1024, onError: () => {
    throw new HTTPException(413, { message: "request body too large" });
  } }), async (c) => {
    const text = await c.req.text();
    let body: { db?: unknown } = {};
    if (text.trim() !== "") {
      try {
        body = JSON.parse(text);
      } catch {
        throw new HTTPException(400, { message: 'the body must be JSON, e.g. {"db": "main.duckdb"}, or empty' });
      }
    }
    const database = find(typeof body.db === "string" ? body.db : undefined);
    await database.checkpoint();
    const status = database.status();
    return c.json({ db: database.dbKey, lastGeneration: status.lastGeneration, lastError: status.lastError });
  });
  app.post("/handoff", bodyLimit({ maxSize: options.bodyBytesMax ?? 16 * 1024, onError: () => {
    throw new HTTPException(413, { message: "request body too large" });
  } }), async (c) => {
    const text = await c.req.text();
    let body: { db?: unknown; to?: unknown } = {};
    if (text.trim() !== "") {
      try {
        body = JSON.parse(text);
      } catch {
        throw new HTTPException(400, { message: 'the body must be JSON, e.g. {"to": "http://10.0.0.2:8080/"}, or empty' });
      }
    }
    if (body.to !== undefined && typeof body.to !== "string") {
      throw new HTTPException(400, { message: '"to" must be the address of a node, e.g. "http://10.0.0.2:8080/"' });
    }
    const database = find(typeof body.db === "string" ? body.db : undefined);
    if (!database.handoff) {
      throw new HTTPException(409, { message: `${database.dbKey} is not served by a cluster node here` });
    }
    const to = body.to === undefined ? undefined : body.to.endsWith("/") ? body.to : `${body.to}/`;
    return c.json({ db: database.dbKey, ...await database.handoff(to) });
  });
  app.notFound((c) => c.json({ error: "NOT_FOUND", message: `no route ${c.req.method} ${c.req.path}` }, 404));
  app.onError((error, c) => {
    // POST /sql answers errors as {"error": message} (the SQL contract); the other routes with a code.
    const sqlRoute = c.req.path === "/sql";
    if (error instanceof HTTPException) {
      const headers: Record<string, string> = error.status === 401 ? { "www-authenticate": 'Bearer realm="haduck"' } : {};
      return c.json(sqlRoute ? { error: error.message } : { error: `HTTP_${error.status}`, message: error.message },
        error.status, headers);
    }
    const raw = (error as unknown as { code?: unknown }).code;
    const code = typeof raw === "string" ? raw : "INTERNAL";
    const status = (STATUS_OF_CODE[code] ?? 500) as 500;
    // A node at its bound of statements says when to come back.
    const headers: Record<string, string> = code === "OVERLOADED" ? { "retry-after": "1" } : {};
    return c.json(sqlRoute ? { error: error.message, code } : { error: code, message: error.message }, status, headers);
  });
  return app;
}

/**
 * The body of a `POST /sql` answer, `{"columns", "rows", "role", "position"}`, as a stream: its
 * rows were serialized in pieces as they came from DuckDB, and go out a piece per pull, so a large
 * answer is never one more copy, nor one long turn of the event loop.
 */
function answerBody(answer: SqlAnswer, role: string): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  let next = -1;
  return new ReadableStream({
    pull(controller) {
      if (next === -1) controller.enqueue(encoder.encode(`{"columns":${JSON.stringify(answer.columns)},"rows":[`));
      else controller.enqueue(encoder.encode((next > 0 ? "," : "") + answer.rowsJson[next]));
      next++;
      if (next >= answer.rowsJson.length) {
        controller.enqueue(encoder.encode(`],"role":${JSON.stringify(role)},"position":${JSON.stringify(answer.position)}}`));
        controller.close();
      }
    },
  });
}

function describe(database: AdminDatabase) {
  const status = database.status();
  const last = status.recent[status.recent.length - 1];
  const cluster = database.cluster?.() ?? { role: database.role, leader: null, epoch: 0, lagMs: 0 };
  return {
    db: database.dbKey,
    role: cluster.role,
    leader: cluster.leader,
    epoch: cluster.epoch,
    clusterLagMs: Math.round(cluster.lagMs),
    lastTakeover: cluster.lastTakeover ?? null,
    forwarded: cluster.forwarded ?? 0,
    hydration: cluster.hydration ?? null,
    // Absent outside a cluster (a single node leads itself): null, and the dashboard says so.
    address: cluster.address ?? null,
    nodes: cluster.nodes ?? null,
    lastFailover: cluster.lastFailover ?? null,
    store: database.storeUrl,
    mode: status.mode,
    lastGeneration: status.lastGeneration,
    lastGenerationTime: status.lastGenerationTime,
    generationsCommitted: status.generationsCommitted,
    generationsPending: status.generationsPending,
    generationsAbandoned: status.generationsAbandoned,
    blocksCarried: status.blocksCarried,
    blocksShipped: status.blocksShipped,
    bytesShipped: status.bytesShipped,
    // In a cluster: how far this node's reads are behind the leader's durable commits (the contract's lagMs).
    lagMs: Math.round(database.cluster ? cluster.lagMs : status.lagMs),
    checkpointLagMs: Math.round(status.lagMs),
    walLagMs: Math.round(status.walLagMs ?? 0),
    lastDurableCommit: status.lastDurableCommit ?? null,
    framesShipped: status.framesShipped ?? 0,
    framesStopped: status.framesStopped ?? null,
    uploadBytesPerSecond: last && last.durationMs > 0 ? Math.round(last.bytesShipped / (last.durationMs / 1000)) : 0,
    errors: status.errors,
    lastError: status.lastError,
    lastErrorTime: status.lastErrorTime,
    recent: status.recent,
    storeRequests: database.storeStats?.() ?? null,
    // Each replica store's lag and last error ([] without --replica-store).
    replicaStores: status.replicaStores ?? [],
  };
}
