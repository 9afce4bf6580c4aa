/**
 * Many databases per node (issue 26): two `haduck serve` nodes on radosgw, each through a proxy of
 * its own that counts its requests, serving 1, 10 and 100 databases (`--db PATH=KEY` each), each
 * database with a lease of its own ("own") and all sharing one (`--group`, "group"). For every
 * count: the requests per second each node makes while idle (32 s, by method) and per database,
 * each node's memory (Pss of its process tree), and after kill -9 of the leader the time until the
 * other node leads every database, against the same configuration with one database in the
 * same run (goal: idle requests flat in the count). Writes bench/results/cluster_many.json.
 * Run: `bun bench/cluster_many.ts [counts] [modes]` (default 1,10,100 and own,group).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ClusterNodeProcess, startNode, status } from "../tests/harness/cluster.ts";
import { type FaultProxy, startFaultProxy } from "../tests/harness/fault_proxy.ts";
import { startRadosgw } from "../tests/harness/radosgw.ts";
import { treeMemoryMiB } from "../tests/harness/tree_memory.ts";
import { createBucket, writeResult } from "./_report.ts";

const COUNTS = (process.argv[2] ?? "1,10,100").split(",").map(Number);
const MODES = (process.argv[3] ?? "own,group").split(",") as ("own" | "group")[];
const TTL_MS = 5000;
/** Longer than a group's replica poll (30 s), so that its slow polls are counted too. */
const IDLE_SECONDS = 32;
const dir = mkdtempSync(join(tmpdir(), "haduck-bench-many-"));
const s3 = await startRadosgw();
const env = { HADUCK_S3_ACCESS_KEY: s3.accessKey, HADUCK_S3_SECRET_KEY: s3.secretKey };

/** Waits until `node` says `role` for `count` databases; returns how long that took. */
async function allAre(node: ClusterNodeProcess, role: string, count: number, timeoutMs: number): Promise<number> {
  const started = performance.now();
  while (performance.now() - started < timeoutMs) {
    const said = await status(node.url);
    if (said?.databases.length === count && said.databases.every((entry) => entry.role === role)) {
      return performance.now() - started;
    }
    await Bun.sleep(100);
  }
  throw new Error(`${node.name} is not ${role} of ${count} databases after ${timeoutMs} ms`);
}

async function measure(count: number, mode: "own" | "group") {
  const name = await createBucket(s3, "many");
  const databases = Array.from({ length: count }, (_, i) => `d${i}.db=d${i}.duckdb`);
  const proxies: FaultProxy[] = [];
  const nodes: ClusterNodeProcess[] = [];
  try {
    for (const role of ["leader", "follower"]) {
      const proxy = await startFaultProxy(s3.endpoint);
      proxies.push(proxy);
      const node = await startNode({ dir: join(dir, `${mode}-${count}`), name: role, dbKey: "unused.duckdb", ttlMs: TTL_MS,
        env, databases, storeArgs: ["--store", `s3://${name}/haduck`, "--endpoint", proxy.endpoint],
        extraArgs: mode === "group" ? ["--group", "bench-group"] : [] });
      nodes.push(node);
      await allAre(node, role, count, 60_000 + count * 2_000);
    }
    await Bun.sleep(3_000); // start-up traffic settles
    const before = proxies.map((proxy) => proxy.forwarded.length);
    await Bun.sleep(IDLE_SECONDS * 1000);
    const idle = proxies.map((proxy, index) => {
      const byMethod: Record<string, number> = {};
      for (const request of proxy.forwarded.slice(before[index])) byMethod[request.method] = (byMethod[request.method] ?? 0) + 1;
      const total = Object.values(byMethod).reduce((sum, n) => sum + n, 0) / IDLE_SECONDS;
      return { perSecond: Number(total.toFixed(2)), perDatabasePerSecond: Number((total / count).toFixed(3)),
        byMethod: Object.fromEntries(Object.entries(byMethod).map(([m, n]) => [m, Number((n / IDLE_SECONDS).toFixed(2))])) };
    });
    const memory = nodes.map((node) => treeMemoryMiB(node.process.pid));
    // kill -9 of the leader: the time until the other node leads every database.
    nodes[0].process.kill(9);
    const failoverMs = Math.round(await allAre(nodes[1], "leader", count, 120_000));
    return { mode, databases: count, failoverMs, leader: { idle: idle[0], pssMiB: Math.round(memory[0].pss) },
      follower: { idle: idle[1], pssMiB: Math.round(memory[1].pss) } };
  } finally {
    for (const node of nodes) node.process.kill(9);
    await Promise.all(nodes.map((node) => node.process.exited));
    for (const proxy of proxies) await proxy.close();
  }
}

try {
  const rows = [];
  for (const mode of MODES) {
    for (const count of COUNTS) {
      rows.push(await measure(count, mode));
      console.log(JSON.stringify(rows.at(-1)));
    }
  }
  const ratios = rows.map((row) => {
    const one = rows.find((other) => other.mode === row.mode && other.databases === Math.min(...COUNTS))!;
    return { mode: row.mode, databases: row.databases,
      leaderRequestsVsFewest: Number((row.leader.idle.perSecond / Math.max(0.01, one.leader.idle.perSecond)).toFixed(1)),
      followerRequestsVsFewest: Number((row.follower.idle.perSecond / Math.max(0.01, one.follower.idle.perSecond)).toFixed(1)),
      followerPssMiBPerDatabase: Number(((row.follower.pssMiB - one.follower.pssMiB) /
        Math.max(1, row.databases - one.databases)).toFixed(1)) };
  });
  console.log(JSON.stringify(ratios));
  writeResult("cluster_many", { ttlMs: TTL_MS, idleSeconds: IDLE_SECONDS, rows, ratios,
    goal: "idle requests per second flat in the number of databases (a group)" });
} finally {
  await s3.stop();
  rmSync(dir, { recursive: true, force: true });
}
