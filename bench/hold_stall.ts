/**
 * The checkpoint stall the hold adds (docs/ARCHITECTURE.md, "The hold"). The same workload (insert,
 * update, CHECKPOINT, in rounds) under plain DuckDB and under haduck shipping to:
 *  - a filesystem store: uploads keep up, the hold should cost nothing;
 *  - radosgw behind 250 ms of latency per request: uploads lag, the next header waits;
 *  - a blackhole: uploads never finish, each checkpoint waits at most the hold (holdMs).
 * Per case: median and maximum CHECKPOINT time, the ratio to plain, and the extension's own hold
 * figures (waits, longest wait, timeouts). Writes bench/results/hold_stall.json.
 * Run: `bun bench/hold_stall.ts [rounds]`.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AwsClient } from "aws4fetch";
import { attach, Native, openDuckDB } from "@haduck/duckdb-fs-bridge";
import { type BlockStore, FsBlockStore, S3BlockStore } from "@haduck/s3-block-store";
import { type Fault, startFaultProxy } from "../tests/harness/fault_proxy.ts";
import { startRadosgw } from "../tests/harness/radosgw.ts";
import { median, writeResult } from "./_report.ts";

const ROUNDS = Number(process.argv[2] ?? 12);
const HOLD_MS = 1000;
const dir = mkdtempSync(join(tmpdir(), "haduck-bench-hold-"));
const cluster = await startRadosgw();
const proxy = await startFaultProxy(cluster.endpoint);

async function workload(run: (sql: string) => Promise<void>, checkpoint: () => Promise<void>): Promise<number[]> {
  await run("CREATE TABLE t AS SELECT i, md5(i::VARCHAR) AS s FROM range(500000) r(i)");
  await checkpoint();
  const times: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    await run(`INSERT INTO t SELECT i, md5(i::VARCHAR) FROM range(50000) r(i)`);
    await run(`UPDATE t SET s = 'round ${round}' WHERE i % 13 = ${round % 13}`);
    const started = performance.now();
    await checkpoint();
    times.push(performance.now() - started);
  }
  return times;
}

const summary = (times: number[]) => ({ medianMs: median(times), maxMs: Math.max(...times) });

try {
  const client = new AwsClient({ accessKeyId: cluster.accessKey, secretAccessKey: cluster.secretKey, service: "s3",
    region: cluster.region, retries: 0 });
  await client.fetch(`${cluster.endpoint}/hold`, { method: "PUT" });
  const plainInstance = await openDuckDB(join(dir, "plain.duckdb"));
  const plainConnection = await plainInstance.connect();
  const plain = summary(await workload(async (sql) => void await plainConnection.run(sql),
    async () => void await plainConnection.run("CHECKPOINT")));
  plainConnection.closeSync();
  plainInstance.closeSync();
  console.log("plain", JSON.stringify(plain));

  const native = new Native();
  const cases: Record<string, unknown> = {};
  const throughProxy = (fault: Fault): BlockStore => {
    proxy.setRule(() => fault);
    return new S3BlockStore({ ...cluster, endpoint: proxy.endpoint, bucket: "hold", prefix: crypto.randomUUID(),
      retry: { attemptsMax: 2, attemptTimeoutMs: 2000, delayBaseMs: 10, delayCapMs: 50 } });
  };
  const stores: [string, () => BlockStore][] = [
    ["filesystem", () => new FsBlockStore(join(dir, "store"))],
    ["latency-250ms", () => throughProxy({ kind: "pass", latencyMs: 250 })],
    ["blackhole", () => throughProxy({ kind: "pass" })],
  ];
  for (const [name, makeStore] of stores) {
    const store = makeStore();
    const db = await attach({ dbPath: join(dir, `${name}.duckdb`), store, holdMs: HOLD_MS, catchUpDelayMs: 0 });
    if (name === "blackhole") proxy.setRule(() => ({ kind: "blackhole" })); // after attach's first generation
    const before = native.holdStats();
    const times = await workload(async (sql) => void await db.connection.run(sql),
      async () => void await db.connection.run(`CHECKPOINT ${db.alias}`));
    const after = native.holdStats();
    proxy.setRule(() => ({ kind: "pass" }));
    await db.close().catch(() => {});
    const figures = { ...summary(times), ratioToPlain: median(times) / plain.medianMs,
      holdWaits: after.waits - before.waits, holdWaitMsMax: after.waitMsMax, holdTimeouts: after.timeouts - before.timeouts,
      generationsCommitted: db.replicator.status.generationsCommitted };
    cases[name] = figures;
    console.log(name, JSON.stringify(figures));
  }
  writeResult("hold_stall", { rounds: ROUNDS, holdMs: HOLD_MS, plain, cases });
} finally {
  await proxy.close();
  await cluster.stop();
  rmSync(dir, { recursive: true, force: true });
}
