/**
 * Replicas that cost the change (issue 34): the same cluster of two `haduck serve` nodes (file
 * store, lease TTL 3 s) with a tiny database and a big one, in one run, and the ratios big/tiny:
 *  - follower lag: a writer through the leader at RATE durable commits a second for SECONDS, a
 *    poller on the follower; lag = first seen on the follower - acknowledged by the leader (p50/p99);
 *  - the follower's `GET /status` latency while it applies (p50/p99);
 *  - failover: kill -9 of the leader to the first acknowledged write on the follower;
 *  - cold start: a third node on an empty disk until it answers a read from its own replica, and
 *    until every block is local, against `haduck restore` of the same database in the same run;
 *  - fork: `haduck fork` of the database afterwards (time, bytes written).
 * Writes bench/results/replica_size.json. Run: `bun bench/replica_size.ts [big MiB] [rate] [seconds]`
 * (default 600, 20, 15).
 */
import { mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { DuckDBInstance } from "@duckdb/node-api";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BIN, type ClusterNodeProcess, sql, startNode, status, TOKEN, waitForLeader } from "../tests/harness/cluster.ts";
import { percentile, writeResult } from "./_report.ts";

const BIG_MIB = Number(process.argv[2] ?? 600);
const RATE = Number(process.argv[3] ?? 20);
const SECONDS = Number(process.argv[4] ?? 15);
/** Rows of four 8-byte columns: about 20 bytes a row on disk (random doubles barely compress). */
const ROWS_PER_MIB = 50_000;

interface Figures {
  databaseMiB: number;
  lagMs: { p50: number; p99: number; samples: number };
  statusMs: { p50: number; p99: number };
  failoverMs: number;
  coldStart: { firstReadMs: number; hydratedMs: number; restoreMs: number; hydrationVsRestore: number };
  /** Plain DuckDB: ATTACH of the same file and the follower's read (median of 7): the floor per snapshot. */
  plainAttachMs: number;
  fork: { ms: number; bytes: number };
}

async function measure(label: string, mib: number): Promise<Figures> {
  const dir = mkdtempSync(join(tmpdir(), `haduck-bench-replica-${label}-`));
  const storeArgs = ["--store", `file://${join(dir, "store")}`];
  const nodes: ClusterNodeProcess[] = [];
  try {
    // The big table is built and shipped before the cluster starts: a CREATE of hundreds of MiB
    // through a leader stages its checkpoint on the node's event loop for longer than a 3 s lease.
    const rows = Math.max(1000, Math.round(mib * ROWS_PER_MIB));
    mkdirSync(join(dir, "a"), { recursive: true });
    const instance = await DuckDBInstance.create(join(dir, "a", "db.duckdb"));
    const connection = await instance.connect();
    await connection.run(`CREATE TABLE big AS SELECT i, random() AS a, random() AS b, random() AS c FROM range(${rows}) r(i)`);
    await connection.run("CREATE TABLE acks(n INTEGER)");
    connection.closeSync();
    instance.closeSync();
    const shipped = Bun.spawnSync([process.execPath, BIN, "attach", "db.duckdb", ...storeArgs, "--db-key", "big.duckdb",
      "-c", "CHECKPOINT"], { cwd: join(dir, "a"), stdout: "pipe", stderr: "pipe" });
    if (shipped.exitCode !== 0) throw new Error(`the first upload failed: ${shipped.stderr.toString()}`);
    const a = await startNode({ dir, name: "a", dbKey: "big.duckdb", ttlMs: 3000, storeArgs });
    nodes.push(a);
    await waitForLeader([a], 60_000);
    const databaseMiB = statSync(join(dir, "a", "db.duckdb")).size / 1024 / 1024;
    const b = await startNode({ dir, name: "b", dbKey: "big.duckdb", ttlMs: 3000, storeArgs });
    nodes.push(b);
    for (const deadline = Date.now() + 600_000; ;) {
      const read = await sql(b.url, { sql: "SELECT count(*) AS n FROM acks" });
      if (read.status === 200 && read.body.role !== "leader") break;
      if (Date.now() > deadline) throw new Error(`the follower never answered: ${b.log()}`);
      await Bun.sleep(100);
    }

    // The follower's replica opened lazily: the lag is measured once it is whole (cold start below).
    for (const deadline = Date.now() + 600_000; Date.now() < deadline;) {
      const shown = await fetch(`${b.url}status`, { headers: { authorization: `Bearer ${TOKEN}` } })
        .then((response) => response.json() as Promise<{ databases: { hydration?: unknown }[] }>).catch(() => undefined);
      if (shown?.databases?.[0]?.hydration === null) break;
      await Bun.sleep(50);
    }

    // Lag and /status under RATE commits a second.
    const acked = new Map<number, number>();
    const seen = new Map<number, number>();
    const statusMs: number[] = [];
    let writing = true;
    const writer = (async () => {
      for (let n = 1; n <= RATE * SECONDS; n++) {
        const due = performance.now() + 1000 / RATE;
        const done = await sql(a.url, { sql: "INSERT INTO acks VALUES ($1)", params: [n] });
        if (done.status === 200) acked.set(n, performance.now());
        await Bun.sleep(Math.max(0, due - performance.now()));
      }
      writing = false;
    })();
    const poller = (async () => {
      let shown = 0;
      while (writing || shown < Math.max(0, ...acked.keys())) {
        const read = await sql(b.url, { sql: "SELECT coalesce(max(n), 0) AS n FROM acks" });
        const now = performance.now();
        const max = read.status === 200 ? Number((read.body.rows?.[0] as unknown[])?.[0] ?? 0) : 0;
        for (let n = shown + 1; n <= max; n++) seen.set(n, now);
        shown = Math.max(shown, max);
        await Bun.sleep(5);
        if (!writing && performance.now() > 30_000 + (acked.get(RATE * SECONDS) ?? 0)) break;
      }
    })();
    const prober = (async () => {
      while (writing) {
        const started = performance.now();
        await fetch(`${b.url}status`, { headers: { authorization: `Bearer ${TOKEN}` } });
        statusMs.push(performance.now() - started);
        await Bun.sleep(100);
      }
    })();
    await Promise.all([writer, poller, prober]);
    const lags = [...acked].filter(([n]) => seen.has(n)).map(([n, at]) => Math.max(0, seen.get(n)! - at));

    // Cold start: a node on an empty disk, until it answers from its own replica and until it is whole.
    const coldStarted = performance.now();
    const c = await startNode({ dir, name: "c", dbKey: "big.duckdb", ttlMs: 3000, storeArgs });
    nodes.push(c);
    let firstReadMs = NaN;
    for (const deadline = Date.now() + 600_000; Date.now() < deadline;) {
      const read = await sql(c.url, { sql: "SELECT count(*) AS n FROM acks" });
      if (read.status === 200 && read.body.role === "follower") {
        firstReadMs = performance.now() - coldStarted;
        break;
      }
      await Bun.sleep(20);
    }
    let hydratedMs = NaN;
    for (const deadline = Date.now() + 600_000; Date.now() < deadline;) {
      const shown = await fetch(`${c.url}status`, { headers: { authorization: `Bearer ${TOKEN}` } })
        .then((response) => response.json() as Promise<{ databases: { hydration?: unknown }[] }>).catch(() => undefined);
      // null once every block of the replica is local (an object while it hydrates).
      if (shown?.databases?.[0]?.hydration === null) {
        hydratedMs = performance.now() - coldStarted;
        break;
      }
      await Bun.sleep(50);
    }
    c.process.kill(9);
    const restoreStarted = performance.now();
    const restored = Bun.spawnSync([process.execPath, BIN, "restore", ...storeArgs, "--db-key", "big.duckdb", "--to",
      join(dir, "restored.duckdb")], { cwd: dir, stdout: "pipe", stderr: "pipe" });
    if (restored.exitCode !== 0) throw new Error(`restore failed: ${restored.stderr.toString()}`);
    const restoreMs = performance.now() - restoreStarted;
    // The floor under a snapshot: plain DuckDB attaching the same file and answering the follower's
    // read (DuckDB loads the catalog and the tables' row group pointers, which grow with the data).
    const attachRuns: number[] = [];
    for (let run = 0; run < 7; run++) {
      const started = performance.now();
      const plain = await DuckDBInstance.create(":memory:");
      const connection = await plain.connect();
      await connection.run(`ATTACH '${join(dir, "restored.duckdb")}' AS r (READ_ONLY)`);
      await connection.runAndReadAll("SELECT coalesce(max(n), 0) FROM r.acks");
      connection.closeSync();
      plain.closeSync();
      attachRuns.push(performance.now() - started);
    }

    // Failover: kill -9 of the leader, then writes through the follower until one is acknowledged.
    const killedAt = performance.now();
    a.process.kill(9);
    let failoverMs = NaN;
    for (const deadline = killedAt + 120_000; performance.now() < deadline;) {
      const done = await sql(b.url, { sql: "INSERT INTO acks VALUES (-1)" }, 5000);
      if (done.status === 200) {
        failoverMs = performance.now() - killedAt;
        break;
      }
      await Bun.sleep(20);
    }
    const st = await status(b.url);
    if (st?.role !== "leader") throw new Error(`the follower did not take over: ${b.log()}`);

    // Fork of what the store holds now.
    const forkStarted = performance.now();
    const forked = Bun.spawnSync([process.execPath, BIN, "fork", ...storeArgs, "--db-key", "big.duckdb", "--to-key",
      "forked.duckdb", "--json"], { cwd: dir, stdout: "pipe", stderr: "pipe" });
    const forkMs = performance.now() - forkStarted;
    if (forked.exitCode !== 0) throw new Error(`fork failed: ${forked.stderr.toString()}`);
    const forkReport = JSON.parse(forked.stdout.toString());
    const figures: Figures = {
      databaseMiB: Math.round(databaseMiB),
      lagMs: { p50: Math.round(percentile(lags, 0.5)), p99: Math.round(percentile(lags, 0.99)), samples: lags.length },
      statusMs: { p50: Math.round(percentile(statusMs, 0.5)), p99: Math.round(percentile(statusMs, 0.99)) },
      failoverMs: Math.round(failoverMs),
      coldStart: { firstReadMs: Math.round(firstReadMs), hydratedMs: Math.round(hydratedMs), restoreMs: Math.round(restoreMs),
        hydrationVsRestore: Math.round((restoreMs / hydratedMs) * 100) / 100 },
      plainAttachMs: Math.round(percentile(attachRuns, 0.5)),
      fork: { ms: Math.round(forkMs), bytes: forkReport.bytesWritten },
    };
    console.log(label, JSON.stringify(figures));
    return figures;
  } finally {
    for (const node of nodes) node.process.kill(9);
    rmSync(dir, { recursive: true, force: true });
  }
}

const tiny = await measure("tiny", 1);
const big = await measure("big", BIG_MIB);
const ratio = (x: number, y: number) => Math.round((x / Math.max(1, y)) * 100) / 100;
const result = {
  rate: RATE,
  seconds: SECONDS,
  tiny,
  big,
  ratios: {
    lagP50: ratio(big.lagMs.p50, tiny.lagMs.p50),
    lagP99: ratio(big.lagMs.p99, tiny.lagMs.p99),
    statusP99: ratio(big.statusMs.p99, tiny.statusMs.p99),
    failover: ratio(big.failoverMs, tiny.failoverMs),
    coldStartFirstRead: ratio(big.coldStart.firstReadMs, tiny.coldStart.firstReadMs),
    plainAttach: ratio(big.plainAttachMs, tiny.plainAttachMs),
  },
  /** What the lag's p50 grew by, against what plain DuckDB's attach grew by (ms): the part haduck adds. */
  lagP50GrowthMs: big.lagMs.p50 - tiny.lagMs.p50,
  plainAttachGrowthMs: big.plainAttachMs - tiny.plainAttachMs,
  goals: { lagRatio: 1.2, lagP99Ms: 1000, failoverRatio: 1.2, forkMs: 1000, forkBytes: 1024 * 1024, firstReadMs: 2000,
    hydrationVsRestore: 0.9 },
};
console.log(JSON.stringify(result.ratios));
writeResult("replica_size", result);
