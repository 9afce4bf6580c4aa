/**
 * @module
 * A rolling restart as every deploy does it (issue 32): three `haduck serve` nodes, clients writing
 * one row at a time through every node that answers `/healthz` (a stopping node last), SIGTERM to
 * the leader, wait until another leads, start the old node again at its address, and move on to
 * the next leader. Records every step's write pause (the longest gap between acknowledgements
 * around it) and every client error.
 */
import { type ClusterNodeProcess, type NodeOptions, sql, startNode, waitForLeader } from "./cluster.ts";

export interface RollingStep {
  stopped: string;
  newLeader: string;
  handoffMs: number;
  pauseMs: number;
}

export interface RollingResult {
  steps: RollingStep[];
  errors: string[];
  acknowledged: Map<number, Set<number>>;
  attempted: Map<number, number>;
  nodes: ClusterNodeProcess[];
}

/** Runs `rounds` x 3 restarts of the leader under `clients` writers; the caller stops the nodes. */
export async function rollingRestart(options: { base: Omit<NodeOptions, "name">; rounds: number; clients: number;
  restartDelayMs?: number; nextDelayMs?: number }): Promise<RollingResult> {
  const nodes = new Map<string, ClusterNodeProcess>();
  for (const name of ["a", "b", "c"]) nodes.set(name, await startNode({ ...options.base, name }));
  let { leader } = await waitForLeader([...nodes.values()], 30_000);
  const created = await sql(leader.url, { sql: "CREATE TABLE IF NOT EXISTS acks (client INTEGER, n INTEGER)" });
  if (created.status !== 200) throw new Error(`CREATE TABLE: ${created.status} ${created.body.error}`);
  // The nodes that answer /healthz (a stopping node says 503 and drops out), looked at every 50 ms.
  const healthy = new Set<string>();
  const acknowledged = new Map<number, Set<number>>();
  const attempted = new Map<number, number>();
  const ackTimes: number[] = [];
  const errors: string[] = [];
  let running = true;
  const client = async (id: number) => {
    acknowledged.set(id, new Set());
    let n = 0;
    while (running) {
      n++;
      attempted.set(id, n);
      // Every node that answers /healthz, in turn.
      const urls = [...nodes.values()].filter((node) => healthy.has(node.name)).map((node) => node.url);
      const url = urls[(id + n) % Math.max(1, urls.length)] ?? leader.url;
      const result = await sql(url, { sql: "INSERT INTO acks VALUES ($1, $2)", params: [id, n] }, 30_000);
      if (result.status === 200) {
        acknowledged.get(id)!.add(n);
        ackTimes.push(performance.now());
      } else {
        errors.push(`${url} ${result.status} ${result.body.error}`);
        await Bun.sleep(50);
      }
    }
  };
  const health = (async () => {
    while (running) {
      await Promise.all([...nodes.values()].map(async (node) => {
        const ok = await fetch(`${node.url}healthz`, { signal: AbortSignal.timeout(500) })
          .then((response) => response.status === 200, () => false);
        if (ok) healthy.add(node.name);
        else healthy.delete(node.name);
      }));
      await Bun.sleep(50);
    }
  })();
  const clients = Array.from({ length: options.clients }, (_, id) => client(id));
  await Bun.sleep(1000);
  const steps: RollingStep[] = [];
  for (let step = 0; step < options.rounds * 3; step++) {
    const name = leader.name;
    const started = performance.now();
    leader.process.kill("SIGTERM");
    const others = [...nodes.values()].filter((node) => node.name !== name);
    const next = await waitForLeader(others, 30_000);
    const handoffMs = performance.now() - started;
    await leader.process.exited;
    await Bun.sleep(options.restartDelayMs ?? 1500);
    nodes.set(name, await startNode({ ...options.base, name, port: leader.port }));
    await Bun.sleep(options.nextDelayMs ?? 2500);
    const windowEnd = performance.now();
    const around = ackTimes.filter((at) => at >= started - 1000 && at <= windowEnd).sort((a, b) => a - b);
    let pauseMs = 0;
    for (let i = 1; i < around.length; i++) pauseMs = Math.max(pauseMs, around[i] - around[i - 1]);
    if (around.length === 0) pauseMs = windowEnd - started;
    steps.push({ stopped: name, newLeader: next.leader.name, handoffMs: Math.round(handoffMs), pauseMs: Math.round(pauseMs) });
    leader = next.leader;
  }
  running = false;
  await Promise.all(clients);
  await health;
  return { steps, errors, acknowledged, attempted, nodes: [...nodes.values()] };
}
