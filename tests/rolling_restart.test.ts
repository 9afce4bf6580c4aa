/**
 * Rolling restarts (issue 32): three `haduck serve` nodes, clients writing one row at a time through
 * every node that answers `/healthz`; each leader in turn gets SIGTERM, another leads, and the old
 * node starts again at its address. Every handoff passes the lease on without waiting for its TTL
 * (the write pause stays under the TTL: `bun bench/cluster_ops.ts` reports it against 1 s), no
 * client sees an error (a stopping node says 503 on /healthz, answers what it accepted, and closes
 * each connection after its answer; no forwarder's statement is reset), and no acknowledged write
 * is lost. A lone leader's stop says what it does and does not wait for a successor.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ClusterNodeProcess, sql, startNode, waitForLeader } from "./harness/cluster.ts";
import { rollingRestart } from "./harness/rolling.ts";

const dir = mkdtempSync(join(tmpdir(), "haduck-rolling-"));
const nodes: ClusterNodeProcess[] = [];
afterAll(async () => {
  for (const node of nodes) node.process.kill("SIGKILL");
  await Promise.all(nodes.map((node) => node.process.exited));
  rmSync(dir, { recursive: true, force: true });
});

const TTL_MS = 5000;

test("a rolling restart of every node under writes through every node: no client error, nothing lost, no TTL wait",
  async () => {
    const result = await rollingRestart({ base: { dir, storeArgs: ["--store", `file://${dir}/store`],
      dbKey: "rolling.duckdb", ttlMs: TTL_MS }, rounds: 1, clients: 3 });
    nodes.push(...result.nodes);
    console.log(`rolling restart: ${JSON.stringify(result.steps)}`);
    expect(result.errors).toEqual([]);
    expect(result.steps.length).toBe(3);
    for (const step of result.steps) expect(step.pauseMs).toBeLessThan(TTL_MS);
    const { leader } = await waitForLeader(result.nodes, 30_000);
    const rows = (await sql(leader.url, { sql: "SELECT client, n FROM acks" })).body.rows as [number, number][];
    const seen = new Set(rows.map(([client, n]) => `${client},${n}`));
    let acknowledged = 0;
    for (const [client, ns] of result.acknowledged) {
      for (const n of ns) {
        acknowledged++;
        expect(seen.has(`${client},${n}`)).toBe(true);
      }
    }
    expect(acknowledged).toBeGreaterThan(30);
  }, 300_000);

test("a lone leader's SIGTERM releases the lease, says so, and exits without waiting for a successor", async () => {
  const node = await startNode({ dir, name: "lone", storeArgs: ["--store", `file://${dir}/store-lone`],
    dbKey: "lone.duckdb", ttlMs: TTL_MS });
  nodes.push(node);
  await waitForLeader([node], 30_000);
  expect((await sql(node.url, { sql: "CREATE TABLE t AS SELECT 1 AS x" })).status).toBe(200);
  const started = performance.now();
  node.process.kill("SIGTERM");
  expect(await node.process.exited).toBe(0);
  expect(performance.now() - started).toBeLessThan(TTL_MS);
  expect(node.log()).toContain("released the lease");
}, 120_000);
