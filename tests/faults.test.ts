/**
 * The fault suite: replication through a fault-injecting proxy in front of radosgw, while a
 * workload keeps writing and checkpointing. Under every fault DuckDB's statements succeed, no
 * checkpoint waits longer than the hold, the fault shows in status while it lasts, and once it ends
 * the replicator catches up with no further checkpoint: every generation verifies, and the latest
 * restores to exactly the local rows. Figures go to the log (and, from bench/soak.ts, to JSON).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { restore } from "@haduck/duckdb-fs-bridge";
import { S3BlockStore } from "@haduck/s3-block-store";
import { type Fault, type FaultProxy, type FaultRule, startFaultProxy } from "./harness/fault_proxy.ts";
import { runScenario, type ScenarioFigures } from "./harness/fault_scenarios.ts";
import { rowCount } from "./harness/duckdb.ts";
import { freshBucket, type TestS3 } from "./harness/s3.ts";
import { startRadosgw } from "./harness/radosgw.ts";

const HOLD_MS = 1000;
const dir = mkdtempSync(join(tmpdir(), "haduck-faults-"));
let proxy: FaultProxy;
let s3: TestS3;
let bucket: string;
let direct: S3BlockStore;
const figures: ScenarioFigures[] = [];

beforeAll(async () => {
  ({ s3, bucket, store: direct } = await freshBucket("faults-e2e"));
  proxy = await startFaultProxy(s3.endpoint);
});

afterAll(async () => {
  console.log(`fault figures: ${JSON.stringify(figures)}`);
  await proxy?.close();
  rmSync(dir, { recursive: true, force: true });
});

function seeded(seed: number) {
  return () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
}

const everything = (fault: Fault): FaultRule => () => fault;
const puts = (fault: Fault): FaultRule => (request) => request.method === "PUT" ? fault : { kind: "pass" };

function expectSound(result: ScenarioFigures, options: { faultVisible: boolean }) {
  figures.push(result);
  expect(result.corruptGenerations).toBe(0);
  expect(result.lostCommits).toBe(0);
  expect(result.contentEqual).toBe(true);
  expect(result.holdWaitMsMax).toBeLessThanOrEqual(HOLD_MS + 50); // the hold's bound, measured in the extension
  if (options.faultVisible) expect(result.faultVisibleInStatus).toBe(true);
}

const scenarios: { name: string; rule: () => FaultRule; faultVisible: boolean }[] = [
  { name: "latency", rule: () => everything({ kind: "pass", latencyMs: 150 }), faultVisible: false },
  { name: "storm-503", rule: () => puts({ kind: "status", status: 503 }), faultVisible: true },
  { name: "storm-429", rule: () => puts({ kind: "status", status: 429 }), faultVisible: true },
  { name: "keys-revoked-403", rule: () => puts({ kind: "status", status: 403, code: "AccessDenied" }), faultVisible: true },
  {
    name: "resets",
    rule: () => {
      const random = seeded(7);
      return () => {
        const roll = random();
        if (roll < 0.2) return { kind: "reset-before-request" };
        if (roll < 0.4) return { kind: "reset-before-response" };
        return { kind: "pass" };
      };
    },
    faultVisible: false,
  },
  { name: "blackhole", rule: () => everything({ kind: "blackhole" }), faultVisible: true },
  { name: "outage", rule: () => everything({ kind: "reset-before-request" }), faultVisible: true },
];

for (const scenario of scenarios) {
  test(`under ${scenario.name}: commits never fail, nothing is torn, and the store catches up after`, async () => {
    const result = await runScenario({ name: scenario.name, rule: scenario.rule(), rounds: 4, holdMs: HOLD_MS, dir,
      proxy, s3, bucket, direct, untilVisible: scenario.faultVisible });
    expectSound(result, { faultVisible: scenario.faultVisible });
    expect(result.generationsCommitted).toBeGreaterThan(0);
  });
}

test("restore through truncated and reset GET bodies returns exactly the stored database", async () => {
  const random = seeded(11);
  const flaky: FaultRule = (request) => {
    if (request.method !== "GET" || random() < 0.6) return { kind: "pass" };
    return random() < 0.5 ? { kind: "truncate", bodyBytes: 100 } : { kind: "reset-before-response" };
  };
  const result = await runScenario({ name: "truncated-source", rule: () => ({ kind: "pass" }), rounds: 2,
    holdMs: HOLD_MS, dir, proxy, s3, bucket, direct });
  proxy.setRule(flaky);
  const through = new S3BlockStore({ endpoint: proxy.endpoint, bucket, accessKey: s3.accessKey,
    secretKey: s3.secretKey, prefix: "haduck", retry: { attemptsMax: 8, delayBaseMs: 5, delayCapMs: 50 } });
  const to = join(dir, "through-proxy.duckdb");
  await restore({ store: through, dbKey: "truncated-source", to });
  proxy.setRule(() => ({ kind: "pass" }));
  expect(await rowCount(to)).toBe(await rowCount(join(dir, "truncated-source-restored.duckdb")));
  expect(proxy.counts.truncate).toBeGreaterThan(0);
  expect(result.lostCommits).toBe(0);
  expect(result.contentEqual).toBe(true);
});

test("radosgw killed with kill -9 mid-upload and restarted: nothing torn, the store catches up", async () => {
  // A cluster of its own: the shared one must stay up for the other tests.
  const cluster = await startRadosgw();
  const own = await startFaultProxy(cluster.endpoint);
  try {
    const { AwsClient } = await import("aws4fetch");
    const client = new AwsClient({ accessKeyId: cluster.accessKey, secretAccessKey: cluster.secretKey, service: "s3",
      region: cluster.region, retries: 0 });
    const ownBucket = "killed";
    expect((await client.fetch(`${cluster.endpoint}/${ownBucket}`, { method: "PUT" })).status).toBe(200);
    const ownDirect = new S3BlockStore({ ...cluster, bucket: ownBucket, prefix: "haduck" });
    const result = await runScenario({ name: "radosgw-killed", rule: () => ({ kind: "pass" }), rounds: 4,
      holdMs: HOLD_MS, dir, proxy: own, s3: cluster, bucket: ownBucket, direct: ownDirect,
      during: () => cluster.killGateway(), after: () => cluster.startGateway(), untilVisible: true });
    expectSound(result, { faultVisible: true });
  } finally {
    await own.close();
    await cluster.stop();
  }
}, 180_000);
