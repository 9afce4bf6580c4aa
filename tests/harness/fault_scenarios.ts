/**
 * @module
 * One fault scenario for replication, shared by the fault suite (tests/faults.test.ts, short) and
 * the soak (bench/soak.ts, long): a database replicating through the fault proxy keeps inserting
 * and checkpointing while a fault is on; then the fault ends, the replicator must catch up with no
 * further checkpoint, and the store, read directly, must verify and restore to exactly the local rows.
 */
import { join } from "node:path";
import { attach, Native, restore, verify } from "@haduck/duckdb-fs-bridge";
import { type BlockStore, S3BlockStore } from "@haduck/s3-block-store";
import { readFileInfo } from "../../packages/duckdb-fs-bridge/local/_block_source.ts";
import { queryFile, rowCount } from "./duckdb.ts";
import { digest } from "./workload.ts";
import type { FaultProxy, FaultRule } from "./fault_proxy.ts";
import type { TestS3 } from "./s3.ts";

export interface ScenarioOptions {
  name: string;
  rule: FaultRule;
  /** INSERT + CHECKPOINT rounds while the fault is on. */
  rounds: number;
  /** Keep the fault on at least this long (an outage of minutes in the soak). Default 0. */
  faultMs?: number;
  /** How long DuckDB's next header may wait for our reads. */
  holdMs: number;
  dir: string;
  proxy: FaultProxy;
  s3: TestS3;
  bucket: string;
  /** The store read directly, without the proxy, to check what was committed. */
  direct: BlockStore;
  /** Called while the fault is on (for example, to kill the S3 server). */
  during?: () => Promise<void>;
  /** Called after the fault ends, before waiting for the catch-up. */
  after?: () => Promise<void>;
  /** Keep the fault on until status shows it (`lastError`): how a user would notice. Default false. */
  untilVisible?: boolean;
}

export interface ScenarioFigures {
  scenario: string;
  rounds: number;
  generationsCommitted: number;
  generationsAbandoned: number;
  retries: number;
  requests: number;
  maxLagMs: number;
  catchUpMs: number;
  bytesSent: number;
  bytesShipped: number;
  holdWaitMsMax: number;
  holdTimeouts: number;
  faultVisibleInStatus: boolean;
  /** Both must be 0. */
  corruptGenerations: number;
  lostCommits: number;
  contentEqual: boolean;
}

/** Polls `condition` until it holds or `timeoutMs` passes (a condition, never a fixed sleep). */
export async function waitUntil(what: string, timeoutMs: number, condition: () => boolean | Promise<boolean>) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await Bun.sleep(25);
  }
}

export async function runScenario(options: ScenarioOptions): Promise<ScenarioFigures> {
  const { proxy, s3, name } = options;
  proxy.setRule(() => ({ kind: "pass" }));
  const store = new S3BlockStore({ endpoint: proxy.endpoint, bucket: options.bucket, accessKey: s3.accessKey,
    secretKey: s3.secretKey, prefix: "haduck",
    retry: { attemptsMax: 3, delayBaseMs: 20, delayCapMs: 200, attemptTimeoutMs: 1500 } });
  const db = await attach({ dbPath: join(options.dir, `${name}.duckdb`), store, dbKey: name, holdMs: options.holdMs,
    catchUpDelayMs: 100, catchUpDelayMaxMs: 500 });
  const native = new Native();
  const holdBefore = native.holdStats();
  await db.connection.run("CREATE TABLE t (i INT, s VARCHAR)");
  await db.checkpoint();
  proxy.setRule(options.rule);
  const faultStarted = Date.now();
  let maxLagMs = 0;
  let faultVisibleInStatus = false;
  const observe = () => {
    const status = db.replicator.status;
    maxLagMs = Math.max(maxLagMs, status.lagMs);
    faultVisibleInStatus ||= status.lastError !== null;
  };
  for (let round = 0; round < options.rounds || Date.now() - faultStarted < (options.faultMs ?? 0); round++) {
    // DuckDB's own statements must never fail, whatever the store does.
    await db.connection.run(`INSERT INTO t SELECT i, md5((i + ${round})::VARCHAR) FROM range(2000) r(i)`);
    await db.connection.run(`UPDATE t SET s = 'r${round}' WHERE i % 7 = ${round % 7}`);
    await db.connection.run(`CHECKPOINT ${db.alias}`);
    observe();
    if (round === 0) await options.during?.();
  }
  observe();
  // DuckDB did not wait for the store, so the workload may end before an upload attempt has failed;
  // the fault must still show in status while it lasts.
  if (options.untilVisible) {
    await waitUntil(`${name}: the fault to show in status`, 60_000, () => (observe(), faultVisibleInStatus));
  }
  const localRows = Number((await db.connection.runAndReadAll("SELECT count(*)::INT AS n FROM t")).getRowObjects()[0].n);
  const localContent = await digest(async (sql) => (await db.connection.runAndReadAll(sql)).getRowObjectsJS() as
    Record<string, unknown>[]);
  proxy.setRule(() => ({ kind: "pass" }));
  await options.after?.();
  // No further checkpoint: the catch-up alone must bring the store to the local file's generation.
  const recovered = Date.now();
  const dbPath = join(options.dir, `${name}.duckdb`);
  await waitUntil(`${name}: the store to catch up`, 120_000, async () => {
    observe();
    const status = db.replicator.status;
    return status.generationsPending === 0 && status.blocksCarried === 0 &&
      status.lastGeneration === readFileInfo(dbPath)?.generation;
  });
  const catchUpMs = Date.now() - recovered;
  const status = db.replicator.status;
  const hold = native.holdStats();
  await db.replicator.stop();
  db.connection.closeSync();
  db.instance.closeSync();

  const report = await verify(options.direct, name);
  const restored = join(options.dir, `${name}-restored.duckdb`);
  await restore({ store: options.direct, dbKey: name, to: restored, force: true });
  const restoredRows = await rowCount(restored);
  const restoredContent = await digest((sql) => queryFile(restored, sql) as Promise<Record<string, unknown>[]>);
  return {
    scenario: name,
    rounds: options.rounds,
    generationsCommitted: status.generationsCommitted,
    generationsAbandoned: status.generationsAbandoned,
    retries: store.stats.retries,
    requests: store.stats.requests,
    maxLagMs: Math.round(maxLagMs),
    catchUpMs,
    bytesSent: store.stats.bytesSent,
    bytesShipped: status.bytesShipped,
    holdWaitMsMax: Math.round(hold.waitMsMax),
    holdTimeouts: hold.timeouts - holdBefore.timeouts,
    faultVisibleInStatus,
    corruptGenerations: report.problems.length,
    lostCommits: localRows - restoredRows,
    /** Whole-row content of the restore equals the local file's (a lost UPDATE keeps the count). */
    contentEqual: restoredContent === localContent,
  };
}
