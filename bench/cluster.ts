/**
 * The cluster (issue 24) on radosgw, three `haduck serve` nodes, each through a proxy of its own
 * that counts its store requests. Every figure beside its baseline from the same run:
 *  - failover: kill -9 of the leader to the first acknowledged write on the new leader, p50/p99
 *    over TRIALS (goal: p99 <= TTL + 1.5 s), and acknowledged writes lost over every fault (goal 0);
 *  - follower lag at 100 commits/s: from a write's acknowledgement to a follower showing it,
 *    p50/p99 (goal p99 < 1 s);
 *  - reads per second on a follower's replica (in-process `follow()`) against plain DuckDB on a
 *    local file, the same query (goal >= 0.9x); over HTTP, a follower against the leader;
 *  - a forwarded durable write (sent to a follower) against a direct one, p50;
 *  - requests while idle, per node and second: the leader's PUTs against one per TTL/3, the
 *    followers' GETs against one per poll, LISTs (goal 0).
 *  - acknowledged writes lost over every fault: kill -9 trials, then FAULTS more of the others in turn
 *    (SIGSTOP of the leader for 3 TTLs, the leader's store blackholed for 3 TTLs, a follower killed).
 * Writes bench/results/cluster.json (cluster_faults.json with faults). Run: `bun bench/cluster.ts [trials] [ttl ms] [faults]` (default 20, 5000, 0).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import { follow, restore } from "@haduck/duckdb-fs-bridge";
import { S3BlockStore } from "@haduck/s3-block-store";
import { type ClusterNodeProcess, sql, startNode, status, waitForLeader, WriteLoad } from "../tests/harness/cluster.ts";
import { type FaultProxy, startFaultProxy } from "../tests/harness/fault_proxy.ts";
import { startRadosgw } from "../tests/harness/radosgw.ts";
import { createBucket, percentile as quantile, writeResult } from "./_report.ts";

const TRIALS = Number(process.argv[2] ?? 20);
const TTL_MS = Number(process.argv[3] ?? 5000);
/** Faults after the kill -9 trials, in turn: SIGSTOP of the leader, its store cut off, a follower killed. */
const FAULTS = Number(process.argv[4] ?? 0);
const dir = mkdtempSync(join(tmpdir(), "haduck-bench-cluster-"));
const s3 = await startRadosgw();
const percentile = (values: number[], p: number) => Math.round(quantile(values, p));

const bucket = await createBucket(s3, "cluster-bench");
const env = { HADUCK_S3_ACCESS_KEY: s3.accessKey, HADUCK_S3_SECRET_KEY: s3.secretKey };
const dbKey = "bench.duckdb";
const proxies = new Map<string, FaultProxy>();
const nodes = new Map<string, ClusterNodeProcess>();

async function launch(name: string): Promise<ClusterNodeProcess> {
  let proxy = proxies.get(name);
  if (!proxy) {
    proxy = await startFaultProxy(s3.endpoint);
    proxies.set(name, proxy);
  }
  const node = await startNode({ dir, name, dbKey, ttlMs: TTL_MS, env, port: nodes.get(name)?.port,
    storeArgs: ["--store", `s3://${bucket}/haduck`, "--endpoint", proxy.endpoint] });
  nodes.set(name, node);
  return node;
}

try {
  for (const name of ["a", "b", "c"]) await launch(name);
  const all = () => [...nodes.values()];
  let { leader } = await waitForLeader(all(), 20_000);
  if ((await sql(leader.url, { sql: "CREATE TABLE acks(client INTEGER, n INTEGER)" })).status !== 200) {
    throw new Error("CREATE TABLE failed");
  }
  await sql(leader.url, { sql: "CREATE TABLE r AS SELECT range AS i, range % 97 AS g FROM range(100000)" });

  // Idle: 10 s without a request, counted at each node's proxy.
  await Bun.sleep(3000);
  const idleSeconds = 10;
  const before = new Map([...proxies].map(([name, proxy]) => [name, proxy.forwarded.length]));
  await Bun.sleep(idleSeconds * 1000);
  const idle: Record<string, Record<string, number>> = {};
  for (const [name, proxy] of proxies) {
    const requests = proxy.forwarded.slice(before.get(name));
    const byMethod: Record<string, number> = {};
    for (const request of requests) {
      const method = request.method === "GET" && /[?&]list-type=2|[?&]prefix=/.test(request.url) ? "LIST" : request.method;
      byMethod[method] = (byMethod[method] ?? 0) + 1;
    }
    idle[`${name} (${name === leader.name ? "leader" : "follower"})`] = Object.fromEntries(
      Object.entries(byMethod).map(([method, count]) => [method, Number((count / idleSeconds).toFixed(2))]));
  }

  // Forwarded against direct durable writes, sequential.
  const follower = all().find((node) => node !== leader)!;
  const timed = async (url: string, n: number) => {
    const times: number[] = [];
    for (let i = 0; i < n; i++) {
      const started = performance.now();
      const result = await sql(url, { sql: "INSERT INTO acks VALUES (-1, $1)", params: [i] });
      if (result.status !== 200) throw new Error(`write failed: ${result.status} ${result.body.error}`);
      times.push(performance.now() - started);
    }
    return times;
  };
  const direct = await timed(leader.url, 40);
  const forwarded = await timed(follower.url, 40);

  // Follower lag at 100 commits/s (not durable-waited: the rate is the leader's; lag is the follower's).
  const lags: number[] = [];
  {
    const acked = new Map<number, number>();
    let n = 0;
    let writing = true;
    const writer = (async () => {
      while (writing) {
        const next = ++n;
        const started = performance.now();
        void sql(leader.url, { sql: "INSERT INTO acks VALUES (-2, $1)", params: [next] }).then((result) => {
          if (result.status === 200) acked.set(next, performance.now());
        });
        await Bun.sleep(Math.max(0, 10 - (performance.now() - started)));
      }
    })();
    const deadline = performance.now() + 10_000;
    while (performance.now() < deadline) {
      const read = await sql(follower.url, { sql: "SELECT coalesce(max(n), 0) FROM acks WHERE client = -2" });
      const shown = Number(read.body.rows?.[0]?.[0] ?? 0);
      const now = performance.now();
      for (const [k, at] of acked) {
        if (k <= shown) {
          lags.push(now - at);
          acked.delete(k);
        }
      }
      await Bun.sleep(20);
    }
    writing = false;
    await writer;
  }

  // Reads per second: a follower's replica in-process against plain DuckDB on a local file.
  const query = "SELECT g, count(*), sum(i) FROM r GROUP BY g ORDER BY g LIMIT 5";
  const store = new S3BlockStore({ endpoint: s3.endpoint, accessKey: s3.accessKey, secretKey: s3.secretKey, bucket,
    prefix: "haduck" });
  const replica = await follow({ store, dbKey, dir: join(dir, "replica") });
  const plainPath = join(dir, "plain.duckdb");
  const plain = await DuckDBInstance.create(plainPath);
  const plainConnection = await plain.connect();
  await plainConnection.run("CREATE TABLE r AS SELECT range AS i, range % 97 AS g FROM range(100000)");
  const rate = async (run: () => Promise<unknown>) => {
    const started = performance.now();
    let count = 0;
    while (performance.now() - started < 3000) {
      await run();
      count++;
    }
    return count / ((performance.now() - started) / 1000);
  };
  const replicaReads = await rate(() => replica.query(query));
  const plainReads = await rate(() => plainConnection.runAndReadAll(query));
  const followerHttpReads = await rate(() => sql(follower.url, { sql: query }));
  const leaderHttpReads = await rate(() => sql(leader.url, { sql: query }));
  plainConnection.closeSync();
  plain.closeSync();
  await replica.close();

  // Failover trials under a write load through every node.
  let alive = all();
  const load = new WriteLoad(4, () => alive.map((node) => node.url));
  load.start();
  const failovers: number[] = [];
  const promotions: number[] = [];
  for (let trial = 0; trial < TRIALS; trial++) {
    await Bun.sleep(1000 + Math.random() * TTL_MS / 3); // a random moment in the renew cycle
    const victim = leader;
    const acknowledgedBefore = [...load.acknowledged.values()].reduce((sum, set) => sum + set.size, 0);
    const killed = performance.now();
    victim.process.kill(9);
    await victim.process.exited;
    alive = alive.filter((node) => node !== victim);
    const next = await waitForLeader(alive, TTL_MS * 4);
    promotions.push(performance.now() - killed);
    // The first write acknowledged after the kill, on the new leader.
    for (;;) {
      const count = [...load.acknowledged.values()].reduce((sum, set) => sum + set.size, 0);
      if (count > acknowledgedBefore) break;
      await Bun.sleep(10);
    }
    failovers.push(performance.now() - killed);
    leader = next.leader;
    alive.push(await launch(victim.name));
    console.error(`bench: trial ${trial + 1}/${TRIALS}: failover ${Math.round(failovers.at(-1)!)} ms`);
  }
  // Mixed faults: a paused leader that wakes up, a leader cut off from the store, a follower killed.
  const faultCounts: Record<string, number> = { "kill -9 leader": TRIALS };
  const timeline: string[] = [];
  const t0 = performance.now();
  for (let fault = 0; fault < FAULTS; fault++) {
    await Bun.sleep(500 + Math.random() * TTL_MS / 3);
    const kind = ["SIGSTOP leader", "store cut from leader", "kill -9 follower"][fault % 3];
    faultCounts[kind] = (faultCounts[kind] ?? 0) + 1;
    const victim = kind === "kill -9 follower" ? alive.find((node) => node !== leader)! : leader;
    timeline.push(`${Math.round(performance.now() - t0)} ms: ${kind} ${victim.name} (${victim.url})`);
    if (kind === "kill -9 follower") {
      victim.process.kill(9);
      await victim.process.exited;
      alive = alive.filter((node) => node !== victim);
      await Bun.sleep(500);
      alive.push(await launch(victim.name));
      continue;
    }
    if (kind === "SIGSTOP leader") victim.process.kill("SIGSTOP");
    else proxies.get(victim.name)!.setRule(() => ({ kind: "blackhole" }));
    const others = alive.filter((node) => node !== victim);
    const next = await waitForLeader(others, TTL_MS * 4);
    await Bun.sleep(Math.max(0, TTL_MS * 3 - next.ms));
    if (kind === "SIGSTOP leader") victim.process.kill("SIGCONT");
    else proxies.get(victim.name)!.setRule(() => ({ kind: "pass" }));
    leader = next.leader;
    timeline.push(`${Math.round(performance.now() - t0)} ms: healed; ${next.leader.name} leads`);
    console.error(`bench: fault ${fault + 1}/${FAULTS} (${kind}): another node led after ${Math.round(next.ms)} ms`);
  }
  await load.stop();
  // Every node converges to every acknowledged write.
  let lost: string[] = [];
  const deadline = performance.now() + 60_000;
  while (performance.now() < deadline) {
    lost = [];
    for (const node of alive) {
      const read = await sql(node.url, { sql: "SELECT client, n FROM acks WHERE client >= 0" });
      lost.push(...(read.status === 200 ? load.check(read.body.rows as [number, number][], node.name)
        : [`${node.name}: ${read.status}`]));
    }
    if (lost.length === 0) break;
    await Bun.sleep(500);
  }
  const roles = await Promise.all(alive.map(async (node) => (await status(node.url))?.role));
  // What each node says, and what the store itself holds (a restore of the latest commit).
  const nodesAfter = await Promise.all(alive.map(async (node) => {
    const seen = await status(node.url);
    const read = await sql(node.url, { sql: "SELECT count(*) FROM acks WHERE client >= 0" });
    return { name: node.name, role: seen?.role, epoch: seen?.epoch, rows: read.body.rows?.[0]?.[0] ?? read.body.error,
      lastError: (seen?.databases[0] as { lastError?: string } | undefined)?.lastError ?? null,
      problems: lost.filter((problem) => problem.startsWith(`${node.name}:`)).length };
  }));
  const restoredPath = join(dir, "restored-check.duckdb");
  await restore({ store, dbKey, to: restoredPath, force: true });
  const restoredDb = await DuckDBInstance.create(restoredPath, { access_mode: "READ_ONLY" });
  const restoredConnection = await restoredDb.connect();
  const restoredRows = (await restoredConnection.runAndReadAll("SELECT client, n FROM acks WHERE client >= 0"))
    .getRowsJS().map(([client, n]) => [Number(client), Number(n)] as [number, number]);
  restoredConnection.closeSync();
  restoredDb.closeSync();
  const lostInStore = load.check(restoredRows, "store");
  const firstLost = lostInStore.slice(0, 3).map((problem) => {
    const match = /\((\d+), (\d+)\)/.exec(problem)!;
    const answered = load.answeredAt.get(`${match[1]},${match[2]}`)!;
    return `${problem}: answered at ${Math.round(answered.at - t0)} ms by ${answered.url} as ${answered.role} (${answered.position})`;
  });
  if (lost.length > 0) {
    for (const node of alive) console.error(`== ${node.name}\n${node.log().split("\n").filter((line) => !/generation \d+: /.test(line)).slice(-40).join("\n")}`);
  }

  writeResult(FAULTS > 0 ? "cluster_faults" : "cluster", {
    ttlMs: TTL_MS,
    trials: TRIALS,
    failover: { p50Ms: percentile(failovers, 0.5), p99Ms: percentile(failovers, 0.99), goalP99Ms: TTL_MS + 1500,
      leaderElectedP50Ms: percentile(promotions, 0.5), leaderElectedP99Ms: percentile(promotions, 0.99) },
    faults: faultCounts,
    faultsTotal: TRIALS + FAULTS,
    acknowledgedWrites: [...load.acknowledged.values()].reduce((sum, set) => sum + set.size, 0),
    clientErrors: load.errors,
    acknowledgedLost: lostInStore.length,
    lostInStoreSample: firstLost,
    timeline: lostInStore.length > 0 ? timeline : undefined,
    nodesNotConverged: lost.length,
    nodesAfter,
    lostSample: lost.slice(0, 5),
    rolesAfter: roles,
    followerLagAt100PerSecond: { samples: lags.length, p50Ms: percentile(lags, 0.5), p99Ms: percentile(lags, 0.99),
      goalP99Ms: 1000 },
    readsPerSecond: { followerReplica: Math.round(replicaReads), plainDuckDB: Math.round(plainReads),
      ratio: Number((replicaReads / plainReads).toFixed(2)), goal: 0.9,
      followerHttp: Math.round(followerHttpReads), leaderHttp: Math.round(leaderHttpReads) },
    durableWriteMs: { directP50: percentile(direct, 0.5), forwardedP50: percentile(forwarded, 0.5),
      ratio: Number((percentile(forwarded, 0.5) / percentile(direct, 0.5)).toFixed(2)) },
    idleRequestsPerSecond: idle,
    idleBaseline: { leaderPutsPerSecond: Number((3000 / TTL_MS).toFixed(2)), followerGetsPerSecond: "1 per poll" },
  });
} finally {
  for (const node of nodes.values()) node.process.kill(9);
  for (const proxy of proxies.values()) await proxy.close();
  await s3.stop();
  rmSync(dir, { recursive: true, force: true });
}
