/**
 * @module
 * Cluster nodes for tests and benchmarks: each one a real `haduck serve` process on 127.0.0.1 with
 * a directory of its own, the same store and key, a token, and a short lease TTL. Helpers speak
 * the HTTP contract (`POST /sql`, `GET /status`) and wait for roles; a checker of acknowledged
 * writes runs clients that each write (client, n) with n rising.
 */
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";

export const BIN = resolve(import.meta.dir, "../../packages/cli/bin/haduck.ts");
export const TOKEN = "cluster-test-token-0123456789";

export interface NodeOptions {
  dir: string;
  name: string;
  storeArgs: string[];
  dbKey: string;
  ttlMs: number;
  /** Environment for the store (S3 credentials). */
  env?: Record<string, string>;
  /** A fixed port: a node started again comes back at the same address. Default: a free one. */
  port?: number;
  /** More flags for `haduck serve` (TLS). */
  extraArgs?: string[];
  /** Several databases (`--db PATH=KEY` each) instead of db.duckdb with `dbKey`. */
  databases?: string[];
  /** The node's limit of open files (`ulimit -n` in a shell that then becomes the node). */
  openFilesLimit?: number;
}

export interface ClusterNodeProcess {
  name: string;
  url: string;
  port: number;
  process: Subprocess<"ignore", "ignore", "pipe">;
  log(): string;
  options: NodeOptions;
}

/** Starts `haduck serve` and waits until it says where it listens (it knows its role by then). */
export async function startNode(options: NodeOptions): Promise<ClusterNodeProcess> {
  const home = join(options.dir, options.name);
  mkdirSync(home, { recursive: true });
  const served = options.databases ? options.databases.flatMap((entry) => ["--db", entry])
    : ["db.duckdb", "--db-key", options.dbKey];
  const limited = options.openFilesLimit === undefined ? []
    : ["sh", "-c", `ulimit -n ${options.openFilesLimit} && exec "$0" "$@"`];
  const child = Bun.spawn([...limited, process.execPath, BIN, "serve", ...served, ...options.storeArgs,
    "--listen", `127.0.0.1:${options.port ?? 0}`, "--lease-ttl", `${options.ttlMs}ms`, ...options.extraArgs ?? []], {
    cwd: home, env: { ...process.env, ...options.env, HADUCK_ADMIN_TOKEN: TOKEN }, stdin: "ignore", stdout: "ignore",
    stderr: "pipe",
  });
  let log = "";
  void (async () => {
    for await (const chunk of child.stderr) log += new TextDecoder().decode(chunk);
  })();
  const deadline = Date.now() + 90_000;
  while (!/admin on (\S+)/.test(log)) {
    if (child.exitCode !== null) throw new Error(`node ${options.name} exited ${child.exitCode}: ${log}`);
    if (Date.now() > deadline) throw new Error(`node ${options.name} did not start: ${log}`);
    await Bun.sleep(25);
  }
  const url = /admin on (\S+)/.exec(log)![1];
  return { name: options.name, url, port: Number(new URL(url).port), process: child, log: () => log, options };
}

export interface SqlResult {
  status: number;
  body: { columns?: string[]; rows?: unknown[][]; role?: string; position?: string; error?: string };
}

/** `POST /sql` on a node; a connection failure or a timeout is status 0 (the outcome is unknown). */
export async function sql(url: string, body: Record<string, unknown>, timeoutMs = 20_000): Promise<SqlResult> {
  try {
    const response = await fetch(`${url}sql`, { method: "POST", signal: AbortSignal.timeout(timeoutMs),
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" }, body: JSON.stringify(body) });
    return { status: response.status, body: await response.json() };
  } catch (error) {
    return { status: 0, body: { error: (error as Error).message } };
  }
}

export interface NodeStatus {
  role: "leader" | "follower" | "candidate";
  leader: string | null;
  epoch: number;
  lagMs: number;
  databases: { db: string; role: string; epoch: number; lagMs: number; leader: string | null }[];
}

export async function status(url: string): Promise<NodeStatus | undefined> {
  try {
    const response = await fetch(`${url}status`, { headers: { authorization: `Bearer ${TOKEN}` },
      signal: AbortSignal.timeout(2000) });
    return response.ok ? await response.json() as NodeStatus : undefined;
  } catch {
    return undefined;
  }
}

/** Waits until exactly one of `nodes` says it leads, and returns it with the time it took. */
export async function waitForLeader(nodes: ClusterNodeProcess[], timeoutMs: number):
  Promise<{ leader: ClusterNodeProcess; ms: number }> {
  const started = performance.now();
  while (performance.now() - started < timeoutMs) {
    const roles = await Promise.all(nodes.map(async (node) => ({ node, status: await status(node.url) })));
    const leaders = roles.filter((entry) => entry.status?.role === "leader");
    if (leaders.length === 1) return { leader: leaders[0].node, ms: performance.now() - started };
    await Bun.sleep(50);
  }
  // What each node said last: the reason a takeover did not complete (a failed promotion, a lease conflict).
  const logs = nodes.map((node) => `--- ${node.name}:\n${node.log().split("\n").slice(-12).join("\n")}`).join("\n");
  throw new Error(`no single leader among ${nodes.map((node) => node.name).join(", ")} within ${timeoutMs} ms\n${logs}`);
}

/**
 * Clients that each insert (client, n) with n = 1, 2, 3 ... through the nodes in turn, remembering
 * which n were acknowledged (200) and which have an unknown outcome (anything else).
 */
export class WriteLoad {
  readonly acknowledged = new Map<number, Set<number>>();
  /** When each acknowledged write was answered (performance.now()) and by which node: for a timeline. */
  readonly answeredAt = new Map<string, { at: number; url: string; role?: string; position?: string }>();
  readonly attempted = new Map<number, number>();
  errors = 0;
  /** The first few errors: status and message. */
  readonly errorSamples: string[] = [];
  #stopped = false;
  #running: Promise<void>[] = [];

  constructor(readonly clients: number, readonly urls: () => string[]) {}

  start(): void {
    for (let client = 0; client < this.clients; client++) {
      this.acknowledged.set(client, new Set());
      this.#running.push(this.#client(client));
    }
  }

  async #client(client: number): Promise<void> {
    let n = 0;
    while (!this.#stopped) {
      n++;
      this.attempted.set(client, n);
      const urls = this.urls();
      const url = urls[(client + n) % urls.length];
      const result = await sql(url, { sql: "INSERT INTO acks VALUES ($1, $2)", params: [client, n] }, 20_000);
      if (result.status === 200) {
        this.acknowledged.get(client)!.add(n);
        this.answeredAt.set(`${client},${n}`, { at: performance.now(), url, role: result.body.role,
          position: result.body.position });
      }
      else {
        this.errors++;
        if (this.errorSamples.length < 10) this.errorSamples.push(`${url} ${result.status} ${result.body.error}`);
        await Bun.sleep(100);
      }
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all(this.#running);
  }

  /** Problems with `rows` (client, n) read from some node: an acknowledged write missing, or one never sent. */
  check(rows: [number, number][], what: string): string[] {
    const problems: string[] = [];
    const seen = new Map<number, Set<number>>();
    for (const [client, n] of rows) {
      if (!seen.has(client)) seen.set(client, new Set());
      seen.get(client)!.add(n);
      if (n > (this.attempted.get(client) ?? 0)) problems.push(`${what}: (${client}, ${n}) was never sent`);
    }
    for (const [client, acked] of this.acknowledged) {
      for (const n of acked) if (!seen.get(client)?.has(n)) problems.push(`${what}: acknowledged (${client}, ${n}) is missing`);
    }
    return problems;
  }

  /** For reads taken during the load: every acknowledged n below the highest n a read shows must be in it. */
  checkPrefix(rows: [number, number][], acknowledgedBefore: Map<number, Set<number>>, what: string): string[] {
    const problems: string[] = [];
    const seen = new Map<number, Set<number>>();
    for (const [client, n] of rows) {
      if (!seen.has(client)) seen.set(client, new Set());
      seen.get(client)!.add(n);
    }
    for (const [client, acked] of acknowledgedBefore) {
      const shown = seen.get(client);
      const highest = shown ? Math.max(...shown) : 0;
      for (const n of acked) {
        if (n < highest && !shown!.has(n)) problems.push(`${what}: shows (${client}, ${highest}) but not acknowledged ${n}`);
      }
    }
    return problems;
  }
}
