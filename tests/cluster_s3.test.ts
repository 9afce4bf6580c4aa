/**
 * The cluster on radosgw, each node through a fault proxy of its own: the leader is cut off from
 * the store (its proxy blackholes every request) for three TTLs and healed. Another node leads
 * within TTL + 2 s, the cut-off node stops acknowledging and rejoins as a follower, every
 * acknowledged write is on every node, and `verify` finds one history. Fails loudly without radosgw.
 */
import { expect, test } from "bun:test";
import { BIN, type ClusterNodeProcess, sql, startNode, status, waitForLeader, WriteLoad } from "./harness/cluster.ts";
import { type FaultProxy, startFaultProxy } from "./harness/fault_proxy.ts";
import { freshBucket } from "./harness/s3.ts";
import { clusterScratch } from "./harness/scratch.ts";

const TTL_MS = 2000;
const { dir, running, proxies } = clusterScratch("cluster-s3");

test("radosgw: the leader cut off from the store for three TTLs steps down, another leads, nothing acknowledged is lost", async () => {
  const { bucket, s3 } = await freshBucket("cluster");
  const env = { HADUCK_S3_ACCESS_KEY: s3.accessKey, HADUCK_S3_SECRET_KEY: s3.secretKey, HADUCK_S3_REGION: s3.region };
  const dbKey = "cut.duckdb";
  const nodes: ClusterNodeProcess[] = [];
  const proxyOf = new Map<string, FaultProxy>();
  for (const name of ["a", "b", "c"]) {
    const proxy = await startFaultProxy(s3.endpoint);
    proxies.push(proxy);
    proxyOf.set(name, proxy);
    const node = await startNode({ dir, name, dbKey, ttlMs: TTL_MS, env,
      storeArgs: ["--store", `s3://${bucket}/haduck`, "--endpoint", proxy.endpoint] });
    running.push(node);
    nodes.push(node);
  }
  const { leader } = await waitForLeader(nodes, 15_000);
  expect((await sql(leader.url, { sql: "CREATE TABLE acks(client INTEGER, n INTEGER)" })).status).toBe(200);
  const load = new WriteLoad(3, () => nodes.map((node) => node.url));
  load.start();
  await Bun.sleep(1500);

  const cut = proxyOf.get(leader.name)!;
  cut.setRule(() => ({ kind: "blackhole" }));
  const others = nodes.filter((node) => node !== leader);
  const started = performance.now();
  const next = await waitForLeader(others, TTL_MS + 10_000);
  const failoverMs = performance.now() - started;
  // While cut off, the old leader acknowledges nothing: a write sent to it straight is not a 200.
  const direct = await sql(leader.url, { sql: "INSERT INTO acks VALUES (99, 1)" }, 8000);
  expect(direct.status).not.toBe(200);
  await Bun.sleep(TTL_MS * 3 - Math.min(failoverMs, TTL_MS * 3));
  cut.setRule(() => ({ kind: "pass" }));
  await Bun.sleep(2000);
  await load.stop();

  expect((await status(leader.url))?.role).not.toBe("leader");
  expect((await status(next.leader.url))?.role).toBe("leader");
  const deadline = performance.now() + 60_000;
  let problems: string[] = [];
  while (performance.now() < deadline) {
    problems = [];
    for (const node of nodes) {
      const read = await sql(node.url, { sql: "SELECT client, n FROM acks" });
      if (read.status !== 200) problems.push(`${node.name}: ${read.status} ${read.body.error}`);
      else {
        problems.push(...load.check(read.body.rows as [number, number][], node.name));
        if ((await status(node.url))?.role !== (node === next.leader ? "leader" : "follower")) {
          problems.push(`${node.name} is not a follower yet`);
        }
      }
    }
    if (problems.length === 0) break;
    await Bun.sleep(500);
  }
  expect(problems).toEqual([]);
  expect([...load.acknowledged.values()].reduce((sum, set) => sum + set.size, 0)).toBeGreaterThan(10);
  for (const node of nodes) node.process.kill("SIGTERM");
  await Promise.all(nodes.map((node) => node.process.exited));
  const child = Bun.spawn([process.execPath, BIN, "verify", "--store", `s3://${bucket}/haduck`, "--endpoint", s3.endpoint,
    "--db-key", dbKey], { env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe" });
  const out = await new Response(child.stdout).text() + await new Response(child.stderr).text();
  expect(out).toContain(": 0 problems");
  expect(await child.exited).toBe(0);
}, 240_000);
