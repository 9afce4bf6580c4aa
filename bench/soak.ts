/**
 * The long fault soak: every scenario of the fault suite (tests/faults.test.ts) with the fault held
 * for longer (an outage of minutes, storms, a blackhole, radosgw killed and restarted), each while
 * a workload keeps writing and checkpointing. Figures per scenario: generations committed,
 * retries, maximum lag, bytes sent against bytes committed (the difference was re-sent), the
 * longest hold, and the two that must stay 0: corrupt generations and commits lost after restore.
 * Writes bench/results/soak.json. Run: `bun bench/soak.ts [faultSeconds] [outageSeconds]`
 * (defaults 20 and 120).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AwsClient } from "aws4fetch";
import { S3BlockStore } from "@haduck/s3-block-store";
import { type Fault, type FaultRule, startFaultProxy } from "../tests/harness/fault_proxy.ts";
import { runScenario, type ScenarioFigures } from "../tests/harness/fault_scenarios.ts";
import { startRadosgw } from "../tests/harness/radosgw.ts";
import { writeResult } from "./_report.ts";

const FAULT_MS = Number(process.argv[2] ?? 20) * 1000;
const OUTAGE_MS = Number(process.argv[3] ?? 120) * 1000;
const HOLD_MS = 1000;
const dir = mkdtempSync(join(tmpdir(), "haduck-soak-"));
const cluster = await startRadosgw();
const proxy = await startFaultProxy(cluster.endpoint);
const results: ScenarioFigures[] = [];
try {
  const client = new AwsClient({ accessKeyId: cluster.accessKey, secretAccessKey: cluster.secretKey, service: "s3",
    region: cluster.region, retries: 0 });
  const bucket = "soak";
  await client.fetch(`${cluster.endpoint}/${bucket}`, { method: "PUT" });
  const direct = new S3BlockStore({ ...cluster, bucket, prefix: "haduck" });
  const all = (fault: Fault): FaultRule => () => fault;
  let seed = 3;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  const scenarios: { name: string; rule: FaultRule; faultMs: number; kill?: boolean }[] = [
    { name: "latency-300ms", rule: all({ kind: "pass", latencyMs: 300 }), faultMs: FAULT_MS },
    { name: "storm-503", rule: all({ kind: "status", status: 503 }), faultMs: FAULT_MS },
    { name: "storm-429", rule: all({ kind: "status", status: 429 }), faultMs: FAULT_MS },
    { name: "resets-40pct", rule: () => random() < 0.2 ? { kind: "reset-before-request" }
      : random() < 0.25 ? { kind: "reset-before-response" } : { kind: "pass" }, faultMs: FAULT_MS },
    { name: "blackhole", rule: all({ kind: "blackhole" }), faultMs: FAULT_MS },
    { name: "outage", rule: all({ kind: "reset-before-request" }), faultMs: OUTAGE_MS },
    { name: "radosgw-killed", rule: all({ kind: "pass" }), faultMs: FAULT_MS, kill: true },
  ];
  for (const scenario of scenarios) {
    const started = performance.now();
    const figures = await runScenario({ name: scenario.name, rule: scenario.rule, rounds: 4, faultMs: scenario.faultMs,
      holdMs: HOLD_MS, dir, proxy, s3: cluster, bucket, direct,
      during: scenario.kill ? () => cluster.killGateway() : undefined,
      after: scenario.kill ? () => cluster.startGateway() : undefined, untilVisible: !["latency-300ms", "resets-40pct"].includes(scenario.name) });
    results.push(figures);
    console.log(JSON.stringify({ ...figures, seconds: Math.round((performance.now() - started) / 1000) }));
  }
  const bad = results.filter((r) => r.corruptGenerations !== 0 || r.lostCommits !== 0 || !r.contentEqual);
  writeResult("soak", { faultMs: FAULT_MS, outageMs: OUTAGE_MS, holdMs: HOLD_MS, scenarios: results,
    corruptGenerations: results.reduce((sum, r) => sum + r.corruptGenerations, 0),
    lostCommits: results.reduce((sum, r) => sum + r.lostCommits, 0) });
  if (bad.length > 0) throw new Error(`soak found corrupt or lost data in ${bad.map((r) => r.scenario).join(", ")}`);
} finally {
  await proxy.close();
  await cluster.stop();
  rmSync(dir, { recursive: true, force: true });
}
