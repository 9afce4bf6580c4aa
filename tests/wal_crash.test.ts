/**
 * Continuous replication under kill -9: a writer makes a small commit about every 10 ms with no
 * checkpoint (the WAL only), and is killed at a random moment. The latest restore (the generation
 * plus its WAL frames, replayed by DuckDB) must hold every commit acknowledged 1 s or more before the
 * kill (every acknowledged commit with `flush()` after each, `--sync`'s way), be a prefix of the
 * commit order (nothing after a missing commit), and open in stock DuckDB with exactly the rows the
 * writer wrote. On radosgw and on the filesystem store.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { restore, verify } from "@haduck/duckdb-fs-bridge";
import { type BlockStore, openStore } from "@haduck/s3-block-store";
import { queryFile } from "./harness/duckdb.ts";
import { reconcileLeftFile, startReadyChild } from "./harness/crashed_writer.ts";
import { freshBucket, testS3 } from "./harness/s3.ts";
import { seededRandom } from "./harness/workload.ts";

const WRITER = resolve(import.meta.dir, "fixtures/wal_writer.ts");
const dir = mkdtempSync(join(tmpdir(), "haduck-wal-crash-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** RPO the test holds the default configuration to: commits acknowledged this long before the kill survive. */
const RPO_MS = 1000;

async function trial(options: { store: BlockStore; where: string; env: Record<string, string>; label: string;
  sync: boolean; runMs: number }) {
  const dbKey = `${options.label}.duckdb`;
  const dbPath = join(dir, dbKey);
  const child = await startReadyChild([WRITER, dbPath, options.where, options.sync ? "sync" : "async"], options.env);
  await Bun.sleep(options.runMs);
  const killedAt = Date.now();
  const output = await child.kill();
  const acks = [...output.matchAll(/ack (\d+) (\d+)/g)].map((m) => ({ i: Number(m[1]), at: Number(m[2]) }));
  const mustHave = acks.filter((ack) => options.sync || ack.at <= killedAt - RPO_MS).map((ack) => ack.i);
  const to = join(dir, `${options.label}-restored.duckdb`);
  const result = await restore({ store: options.store, dbKey, to });
  const rows = (await queryFile(to, "SELECT i::INT AS i, v FROM t ORDER BY i")) as { i: number; v: string }[];
  // A prefix of the commit order, each row exactly as written.
  expect(rows.map((row) => row.i)).toEqual(rows.map((_, index) => index));
  for (const row of rows) expect(row.v).toBe(`row ${row.i}`);
  // Everything that had to survive did; nothing the writer never committed appears.
  expect(rows.length).toBeGreaterThanOrEqual(mustHave.length === 0 ? 0 : Math.max(...mustHave) + 1);
  expect(rows.length).toBeLessThanOrEqual(acks.length + 1); // at most the commit in flight at the kill
  expect(result.warning).toBeNull();
  return { acks: acks.length, restored: rows.length, mustHave: mustHave.length, frames: result.frames, dbPath, dbKey,
    acked: acks.map((ack) => ack.i) };
}

async function trials(store: BlockStore, where: string, env: Record<string, string>, label: string, count: number) {
  const random = seededRandom(label.length * 7 + count);
  const figures = [];
  for (let n = 0; n < count; n++) {
    const sync = n % 2 === 1;
    const { dbPath: _, dbKey: __, acked: ___, ...figure } = await trial({ store, where, env, label: `${label}-${n}`,
      sync, runMs: 1000 + random(1000) });
    figures.push({ sync, ...figure });
  }
  for (const figure of figures.filter((f) => !f.sync)) expect(figure.acks).toBeGreaterThan(30); // a real stream
  const report = await verify(store, `${label}-0.duckdb`);
  expect(report.problems).toEqual([]);
  expect(report.frames).toBeGreaterThan(0);
  console.log(`wal crash figures (${label}): ${JSON.stringify(figures)}`);
}

test("kill -9 during a stream of small commits, filesystem store (12 trials)", async () => {
  const root = join(dir, "fs-store");
  await trials(openStore(`file://${root}`), `file://${root}`, {}, "fs", 12);
}, 300_000);

test("kill -9 during a stream of small commits, radosgw (10 trials)", async () => {
  const s3 = await testS3();
  const { store, bucket } = await freshBucket("wal-crash");
  await trials(store, bucket, { HADUCK_TEST_S3_ENDPOINT: s3.endpoint, HADUCK_TEST_S3_ACCESS_KEY: s3.accessKey,
    HADUCK_TEST_S3_SECRET_KEY: s3.secretKey }, "s3", 10);
}, 300_000);

test("after kill -9, reconcile ships the commits the WAL still holds: the restore has every acknowledged one", async () => {
  const root = join(dir, "leftover-store");
  const store = openStore(`file://${root}`);
  const { dbPath, dbKey, acked } = await trial({ store, where: `file://${root}`, env: {}, label: "leftover", sync: false,
    runMs: 1500 });
  // What a restart does before DuckDB opens the file (and replays the WAL): reconcile.
  expect(await reconcileLeftFile(dbPath, store, dbKey)).toBeNull();
  const to = join(dir, "leftover-after-reconcile.duckdb");
  await restore({ store, dbKey, to });
  const rows = (await queryFile(to, "SELECT i::INT AS i FROM t ORDER BY i")).map((row) => row.i as number);
  expect(rows.slice(0, acked.length)).toEqual(acked); // every acknowledged commit, the 1 s window included
  expect(rows.length).toBeLessThanOrEqual(acked.length + 1);
  expect((await verify(store, dbKey)).problems).toEqual([]);
}, 120_000);
