/**
 * SQL over HTTP under abuse (issue 31), two figures against baselines measured in the same run:
 *
 * 1. The lease and `/status` never wait for queries: two `serve` nodes (filesystem store, TTL 2 s);
 *    for `seconds` idle, for `seconds` busy (four CPU-bound statements at a time with tiny answers:
 *    the floor of a two-core machine whose cores DuckDB uses), then for `seconds` while clients
 *    send huge answers, endless queries, crowds of 200 and clients that leave: the leader's renew
 *    interval (read off its lease object, every change of the file) and the `/status` round trip.
 *    Goal: abused / idle <= 1.5 (p99) for the renew interval; for /status against the busy floor.
 * 2. The sandbox and the judge cost nothing measurable on reads: the same reads in one process on
 *    two DuckDB instances holding the same table, the old path (prepare, run in a READ ONLY
 *    transaction, read all, convert) against the new one (`executeStatement`: judged, gated,
 *    streamed, on a sandboxed instance), for the admin token and the read token, alternating
 *    batches. Goal: new / old >= 0.97 reads per second.
 *
 * Run: `bun bench/sql_abuse.ts [seconds]` (default 10). Writes bench/results/sql_abuse.json.
 */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DuckDBInstance, type DuckDBConnection } from "@duckdb/node-api";
import { sandbox } from "@haduck/duckdb-fs-bridge";
import { executeStatement, sqlLimits } from "@haduck/cluster";
import { type ClusterNodeProcess, startNode, TOKEN, waitForLeader } from "../tests/harness/cluster.ts";
import { percentile, writeResult } from "./_report.ts";

const seconds = Number(process.argv[2] ?? 10);
const dir = mkdtempSync(join(tmpdir(), "haduck-bench-sql-abuse-"));

/** Times between changes of the lease object (a renew rewrites it), watched every 5 ms for `ms`. */
async function renewIntervals(path: string, ms: number): Promise<number[]> {
  const intervals: number[] = [];
  let last = statSync(path, { throwIfNoEntry: false });
  let lastAt = performance.now();
  const end = performance.now() + ms;
  while (performance.now() < end) {
    await Bun.sleep(5);
    const now = statSync(path, { throwIfNoEntry: false });
    if (now && (!last || now.ino !== last.ino || now.mtimeMs !== last.mtimeMs)) {
      const at = performance.now();
      if (last) intervals.push(at - lastAt);
      lastAt = at;
      last = now;
    }
  }
  return intervals;
}

async function statusRoundTrips(url: string, ms: number): Promise<number[]> {
  const samples: number[] = [];
  const end = performance.now() + ms;
  while (performance.now() < end) {
    const started = performance.now();
    await fetch(`${url}status`, { headers: { authorization: `Bearer ${TOKEN}` } }).then((r) => r.arrayBuffer());
    samples.push(performance.now() - started);
    await Bun.sleep(50);
  }
  return samples;
}

const post = (url: string, sql: string, signal?: AbortSignal) => fetch(`${url}sql`, { method: "POST",
  signal, headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
  body: JSON.stringify({ sql }) }).then((r) => r.arrayBuffer()).catch(() => undefined);

/** Clients that abuse `url` until `until`: huge answers, endless queries, crowds, clients that leave. */
async function abuse(url: string, until: number): Promise<number> {
  let sent = 0;
  const loop = async (fn: () => Promise<unknown>) => {
    while (performance.now() < until) {
      await fn();
      sent++;
    }
  };
  await Promise.all([
    loop(() => post(url, "SELECT * FROM range(1000000000)")),
    loop(() => post(url, "SELECT sum(a.range * 2) FROM range(1000000000000) a")),
    loop(() => post(url, "SELECT sum(a.range * 2) FROM range(1000000000000) a", AbortSignal.timeout(300))),
    loop(() => Promise.all(Array.from({ length: 200 }, () => post(url, "SELECT sum(range) FROM range(1000000)")))),
  ]);
  return sent;
}

async function leaseFigures() {
  const nodes: ClusterNodeProcess[] = [];
  try {
    for (const name of ["a", "b"]) {
      nodes.push(await startNode({ dir, name, storeArgs: ["--store", `file://${dir}/store`], dbKey: "abuse.duckdb",
        ttlMs: 2000, extraArgs: ["--statement-timeout", "2s", "--max-result-bytes", "16MiB"] }));
    }
    const { leader } = await waitForLeader(nodes, 30_000);
    await post(leader.url, "CREATE TABLE t AS SELECT range AS i FROM range(100000)");
    const lease = join(dir, "store", "abuse.duckdb", "lease.json");
    const ms = seconds * 1000;
    const phase = async (load?: (until: number) => Promise<number>) => {
      const until = performance.now() + ms;
      const [renew, roundTrips, requests] = await Promise.all([renewIntervals(lease, ms),
        statusRoundTrips(leader.url, ms), load ? load(until) : Promise.resolve(0)]);
      return { renew, roundTrips, requests };
    };
    const idle = await phase();
    // The floor: as many statements as the gate runs, each busy on the CPU, with tiny answers. What
    // the machine's two cores being busy costs /status, whatever the queries' answers.
    const busy = await phase(async (until) => {
      let sent = 0;
      await Promise.all(Array.from({ length: 4 }, async () => {
        while (performance.now() < until) {
          await post(leader.url, "SELECT sum(a.range * 2) FROM range(1000000000000) a");
          sent++;
        }
      }));
      return sent;
    });
    const abused = await phase((until) => abuse(leader.url, until));
    const stillLeads = await fetch(`${leader.url}status`, { headers: { authorization: `Bearer ${TOKEN}` } })
      .then((r) => r.json()) as { role: string; epoch: number };
    const figure = (key: "renew" | "roundTrips") => ({
      idleP50Ms: percentile(idle[key], 0.5), idleP99Ms: percentile(idle[key], 0.99),
      busyP50Ms: percentile(busy[key], 0.5), busyP99Ms: percentile(busy[key], 0.99),
      abusedP50Ms: percentile(abused[key], 0.5), abusedP99Ms: percentile(abused[key], 0.99),
      abusedMaxMs: Math.max(...abused[key]),
      p99RatioToIdle: percentile(abused[key], 0.99) / percentile(idle[key], 0.99),
      p99RatioToBusy: percentile(abused[key], 0.99) / percentile(busy[key], 0.99),
    });
    return { renewInterval: figure("renew"), statusRoundTrip: figure("roundTrips"),
      abusiveRequests: abused.requests, leaderAfter: stillLeads.role, epochAfter: stillLeads.epoch };
  } finally {
    for (const node of nodes) node.process.kill("SIGTERM");
    await Promise.all(nodes.map((node) => node.process.exited));
  }
}

/** The path reads took before issue 31: prepare, READ ONLY, read everything, convert. */
async function oldRead(connection: DuckDBConnection, sql: string): Promise<number> {
  const prepared = await connection.prepare(sql);
  await connection.run("BEGIN TRANSACTION READ ONLY");
  const reader = await prepared.runAndReadAll();
  await connection.run("COMMIT");
  return JSON.stringify(reader.getRowsJson()).length;
}

async function throughputFigures() {
  const make = async (sandboxed: boolean) => {
    const instance = await DuckDBInstance.create(":memory:");
    const connection = await instance.connect();
    await connection.run("CREATE TABLE t AS SELECT range AS id, md5(range::VARCHAR) AS v FROM range(1000000)");
    if (sandboxed) await sandbox(connection, { tempDirectory: join(dir, "tmp") });
    return { instance, connection };
  };
  const before = await make(false);
  const after = await make(true);
  const limits = sqlLimits();
  const statements = ["SELECT v FROM t WHERE id = 4242", "SELECT id, v FROM t WHERE id < 1000",
    "SELECT count(*), max(v) FROM t WHERE id % 7 = 0"];
  const rates = { old: [] as number[], admin: [] as number[], reader: [] as number[] };
  const batch = async (run: (sql: string) => Promise<unknown>) => {
    const started = performance.now();
    let count = 0;
    while (performance.now() - started < 250) {
      await run(statements[count % statements.length]);
      count++;
    }
    return count / ((performance.now() - started) / 1000);
  };
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    rates.old.push(await batch((sql) => oldRead(before.connection, sql)));
    rates.admin.push(await batch((sql) => executeStatement(after.connection, { sql, params: [], durable: true }, false,
      limits)));
    rates.reader.push(await batch((sql) => executeStatement(after.connection, { sql, params: [], durable: true,
      readOnly: true }, false, limits)));
  }
  for (const { connection, instance } of [before, after]) {
    connection.closeSync();
    instance.closeSync();
  }
  const old = percentile(rates.old, 0.5);
  return { oldReadsPerSecond: old, adminReadsPerSecond: percentile(rates.admin, 0.5),
    readerReadsPerSecond: percentile(rates.reader, 0.5), adminRatio: percentile(rates.admin, 0.5) / old,
    readerRatio: percentile(rates.reader, 0.5) / old, batches: rates.old.length };
}

try {
  const lease = await leaseFigures();
  const reads = await throughputFigures();
  const result = { seconds, lease, reads, goals: {
    renewP99Ratio: "<= 1.5", statusP99Ratio: "<= 1.5", readRatio: ">= 0.97",
  } };
  console.log(JSON.stringify(result, null, 2));
  writeResult("sql_abuse", result);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
