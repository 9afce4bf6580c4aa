/**
 * The cluster in daily operation (issue 26) on radosgw, three `haduck serve` nodes:
 *  - handoff: HANDOFFS SIGTERMs of the leader (each node started again after) under writes through
 *    the other nodes: the write pause (the longest gap between acknowledgements around each
 *    handoff), p50/p99 (goal p99 < 1 s), client errors and lost writes (goal 0);
 *  - read-your-writes: a write through the leader, then a read through a follower with the write's
 *    position, READS times: the read always shows the write, and the wait it adds (p50/p99) against
 *    the follower's lag (the time until a follower shows a write without asking, p99), same run.
 *  - rolling restarts (issue 32): a fresh cluster of three, clients writing through every node that
 *    answers /healthz, each leader in turn stopped (SIGTERM) and started again, `rounds` times round
 *    (default 2): the write pause per step (goal: every one under 1 s), client errors, lost writes.
 * Writes bench/results/cluster_ops.json. Run: `bun bench/cluster_ops.ts [handoffs] [reads] [ttl ms]
 * [rounds]` (default 20, 1000, 5000, 2).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ClusterNodeProcess, sql, startNode, waitForLeader, WriteLoad } from "../tests/harness/cluster.ts";
import { startRadosgw } from "../tests/harness/radosgw.ts";
import { createBucket, percentile as quantile, writeResult } from "./_report.ts";
import { rollingRestart } from "../tests/harness/rolling.ts";

const HANDOFFS = Number(process.argv[2] ?? 20);
const READS = Number(process.argv[3] ?? 1000);
const TTL_MS = Number(process.argv[4] ?? 5000);
const ROLLING_ROUNDS = Number(process.argv[5] ?? 2);
const dir = mkdtempSync(join(tmpdir(), "haduck-bench-cluster-ops-"));
const s3 = await startRadosgw();
const percentile = (values: number[], p: number) => Math.round(quantile(values, p));
const bucket = await createBucket(s3, "cluster-ops");
const env = { HADUCK_S3_ACCESS_KEY: s3.accessKey, HADUCK_S3_SECRET_KEY: s3.secretKey };
const running = new Map<string, ClusterNodeProcess>();
const launch = async (name: string) => {
  const node = await startNode({ dir, name, dbKey: "ops.duckdb", ttlMs: TTL_MS, env,
    storeArgs: ["--store", `s3://${bucket}/haduck`, "--endpoint", s3.endpoint] });
  running.set(name, node);
  return node;
};

try {
  for (const name of ["a", "b", "c"]) await launch(name);
  let { leader } = await waitForLeader([...running.values()], 20_000);
  if ((await sql(leader.url, { sql: "CREATE TABLE acks(client INTEGER, n INTEGER)" })).status !== 200) {
    throw new Error("CREATE TABLE failed");
  }

  // Read-your-writes first, while no node restarts.
  const follower = [...running.values()].find((node) => node !== leader)!;
  const waits: number[] = [];
  const lags: number[] = [];
  let stale = 0;
  let forwarded = 0;
  for (let n = 1; n <= READS; n++) {
    const written = await sql(leader.url, { sql: "INSERT INTO acks VALUES (-1, $1)", params: [n] });
    if (written.status !== 200) throw new Error(`write ${n}: ${written.status} ${written.body.error}`);
    const at = performance.now();
    if (n % 10 === 0) {
      // The lag without asking: how long until the follower shows it on its own.
      for (;;) {
        const read = await sql(follower.url, { sql: "SELECT coalesce(max(n), 0) FROM acks WHERE client = -1" });
        if (Number(read.body.rows?.[0]?.[0]) >= n) break;
        await Bun.sleep(5);
      }
      lags.push(performance.now() - at);
      continue;
    }
    const read = await sql(follower.url, { sql: "SELECT coalesce(max(n), 0) FROM acks WHERE client = -1",
      after: written.body.position });
    waits.push(performance.now() - at);
    if (read.body.role === "leader") forwarded++;
    if (Number(read.body.rows?.[0]?.[0]) < n) stale++;
  }

  // Handoffs under writes through the nodes that stay.
  let targets = [...running.values()].filter((node) => node !== leader);
  const load = new WriteLoad(3, () => targets.map((node) => node.url));
  const ackTimes: number[] = [];
  const acknowledged = () => [...load.acknowledged.values()].reduce((sum, set) => sum + set.size, 0);
  load.start();
  let seen = 0;
  const sampler = setInterval(() => {
    const count = acknowledged();
    if (count > seen) {
      ackTimes.push(performance.now());
      seen = count;
    }
  }, 5);
  const pauses: number[] = [];
  for (let round = 0; round < HANDOFFS; round++) {
    await Bun.sleep(1000);
    const stoppedAt = performance.now();
    leader.process.kill("SIGTERM");
    await leader.process.exited;
    const others = [...running.values()].filter((node) => node !== leader);
    const next = await waitForLeader(others, TTL_MS * 3);
    await Bun.sleep(500);
    // The longest gap between two acknowledgements from a little before the stop to now.
    const around = ackTimes.filter((at) => at >= stoppedAt - 200);
    let gap = 0;
    for (let i = 1; i < around.length; i++) gap = Math.max(gap, around[i] - around[i - 1]);
    pauses.push(gap);
    running.delete(leader.name);
    await launch(leader.name);
    leader = next.leader;
    targets = [...running.values()].filter((node) => node !== leader);
    console.error(`bench: handoff ${round + 1}/${HANDOFFS}: longest write pause ${Math.round(gap)} ms`);
  }
  await load.stop();
  clearInterval(sampler);
  let lost: string[] = [];
  const deadline = performance.now() + 60_000;
  while (performance.now() < deadline) {
    lost = [];
    for (const node of running.values()) {
      const read = await sql(node.url, { sql: "SELECT client, n FROM acks WHERE client >= 0" });
      lost.push(...(read.status === 200 ? load.check(read.body.rows as [number, number][], node.name)
        : [`${node.name}: ${read.status}`]));
    }
    if (lost.length === 0) break;
    await Bun.sleep(500);
  }
  // Rolling restarts (issue 32): a fresh cluster of three, writes through every node answering /healthz.
  for (const node of running.values()) node.process.kill("SIGTERM");
  await Promise.all([...running.values()].map((node) => node.process.exited));
  running.clear();
  const rolling = await rollingRestart({ rounds: ROLLING_ROUNDS, clients: 3, base: { dir: join(dir, "rolling"),
    dbKey: "rolling.duckdb", ttlMs: TTL_MS, env, storeArgs: ["--store", `s3://${bucket}/haduck`, "--endpoint", s3.endpoint] } });
  for (const node of rolling.nodes) running.set(`rolling-${node.name}`, node);
  const { leader: rollingLeader } = await waitForLeader(rolling.nodes, 30_000);
  const rollingRows = (await sql(rollingLeader.url, { sql: "SELECT client, n FROM acks" })).body.rows as [number, number][];
  const rollingSeen = new Set(rollingRows.map(([client, n]) => `${client},${n}`));
  let rollingLost = 0;
  let rollingAcknowledged = 0;
  for (const [client, ns] of rolling.acknowledged) {
    for (const n of ns) {
      rollingAcknowledged++;
      if (!rollingSeen.has(`${client},${n}`)) rollingLost++;
    }
  }
  const rollingPauses = rolling.steps.map((step) => step.pauseMs);
  writeResult("cluster_ops", {
    rollingRestart: { rounds: ROLLING_ROUNDS, steps: rolling.steps, pauseMaxMs: Math.max(...rollingPauses),
      pauseP50Ms: percentile(rollingPauses, 0.5), goalEveryPauseMs: 1000, clientErrors: rolling.errors.length,
      errorSample: rolling.errors.slice(0, 3), acknowledgedWrites: rollingAcknowledged, lost: rollingLost },
    ttlMs: TTL_MS,
    handoff: { handoffs: HANDOFFS, pauseP50Ms: percentile(pauses, 0.5), pauseP99Ms: percentile(pauses, 0.99),
      goalP99Ms: 1000, clientErrors: load.errors, errorSample: load.errorSamples.slice(0, 3),
      acknowledgedWrites: acknowledged(), lost: lost.length },
    readYourWrites: { reads: waits.length, stale, forwardedToLeader: forwarded,
      addedWaitP50Ms: percentile(waits, 0.5), addedWaitP99Ms: percentile(waits, 0.99),
      followerLagP50Ms: percentile(lags, 0.5), followerLagP99Ms: percentile(lags, 0.99),
      goal: "added wait p99 at most the follower lag p99" },
  });
} finally {
  for (const node of running.values()) node.process.kill(9);
  await s3.stop();
  rmSync(dir, { recursive: true, force: true });
}
