/**
 * Crash safety with real kill -9: a writer replicating to radosgw is killed at random moments
 * during inserts, checkpoints and uploads. After each kill: no partial generation is visible,
 * verify finds nothing wrong, the last committed generation restores and holds at least what the
 * writer saw shipped; after a restart, reconcile ships what was missing and the store matches the
 * local file again.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { queryFile, rowCount } from "./harness/duckdb.ts";
import { startReadyChild } from "./harness/crashed_writer.ts";
import { digest } from "./harness/workload.ts";
import { attach, listGenerations, loadManifest, restore, verify } from "@haduck/duckdb-fs-bridge";
import { freshBucket, testS3 } from "./harness/s3.ts";

const TRIALS = Number(process.env.HADUCK_CRASH_TRIALS ?? 20);
const WRITER = resolve(import.meta.dir, "fixtures/crash_writer.ts");
const dir = mkdtempSync(join(tmpdir(), "haduck-crash-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));


test(`kill -9 at random moments (${TRIALS} trials): the last committed generation restores, nothing torn`, async () => {
  const s3 = await testS3();
  const { store, bucket } = await freshBucket("crash");
  const dbPath = join(dir, "crash.duckdb");
  let seed = 12345;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const figures = { trials: 0, generations: 0 };
  for (let trial = 0; trial < TRIALS; trial++) {
    const child = await startReadyChild([WRITER, dbPath, bucket], { HADUCK_TEST_S3_ENDPOINT: s3.endpoint,
      HADUCK_TEST_S3_ACCESS_KEY: s3.accessKey, HADUCK_TEST_S3_SECRET_KEY: s3.secretKey });
    await Bun.sleep(100 + random() * 1500);
    const output = await child.kill();
    const shipped = [...output.matchAll(/shipped (\d+) (\d+)/g)].map((m) => ({ rows: Number(m[1]), gen: Number(m[2]) }));
    const generations = await listGenerations(store, "crash.duckdb");
    for (const generation of generations) await loadManifest(store, "crash.duckdb", generation); // none partial
    const to = join(dir, `restored-${trial}.duckdb`);
    await restore({ store, dbKey: "crash.duckdb", to });
    const restoredRows = await rowCount(to);
    if (shipped.length > 0 && restoredRows < shipped[shipped.length - 1].rows) console.log(output.slice(-2000));
    if (shipped.length > 0) expect(restoredRows).toBeGreaterThanOrEqual(shipped[shipped.length - 1].rows);
    expect(restoredRows % 2000).toBe(0);
    // Restart: reconcile ships what the crash left unshipped; then store and local file agree.
    const db = await attach({ dbPath, store });
    const localRows = (await db.connection.runAndReadAll("SELECT count(*)::INT AS n FROM t")).getRowObjects()[0].n;
    await db.close();
    expect(db.replicator.status.lastError).toBeNull();
    const after = join(dir, `after-${trial}.duckdb`);
    await restore({ store, dbKey: "crash.duckdb", to: after });
    // Whole rows, not counts: the writer's UPDATEs keep the count and change the content.
    const content = (path: string) => digest((sql) => queryFile(path, sql) as Promise<Record<string, unknown>[]>);
    expect(await content(after)).toBe(await content(dbPath));
    rmSync(to);
    rmSync(after);
    figures.trials++;
    if (process.env.HADUCK_CRASH_VERBOSE) console.log(`trial ${trial}: ${restoredRows} rows restored, ${localRows} local`);
    figures.generations = generations.length;
  }
  const report = await verify(store, "crash.duckdb");
  expect(report.problems).toEqual([]);
  console.log(`crash figures: ${JSON.stringify({ ...figures, verifiedGenerations: report.generations })}`);
}, Math.max(600_000, TRIALS * 30_000)); // a trial takes longer as the database grows: the soak's many need more
