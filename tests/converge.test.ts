/**
 * A first upload far larger than what can be read within the hold, started while the application
 * checkpoints without pause (a sidecar started again, `--live`): it converges. Each pass that
 * cannot publish (the catch-up's reads torn by a checkpoint, staging cut short by the hold) keeps
 * what it uploaded, and only blocks DuckDB writes again are read again. Against radosgw; the bound
 * on the time to the first generation is generous (a slow machine must not fail it): without
 * reuse, the first generation never comes at all.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import { Native, openDuckDB, Replicator, restore, verify } from "@haduck/duckdb-fs-bridge";
import { queryFile } from "./harness/duckdb.ts";
import { freshBucket } from "./harness/s3.ts";

const dir = mkdtempSync(join(tmpdir(), "haduck-converge-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The first generation must come within this; it never comes when passes throw their uploads away. */
const FIRST_GENERATION_BOUND_MS = 180_000;
const CONTENT = "SELECT (SELECT count(*) FROM t)::INT AS t, (SELECT sum(hash(i, a, b))::VARCHAR FROM t) AS h, " +
  "(SELECT count(*) FROM w)::INT AS w, (SELECT max(i) FROM w)::INT AS last";

test("a first upload of a large database converges while checkpoints never pause", async () => {
  const dbPath = join(dir, "big.duckdb");
  const dbKey = "big.duckdb";
  // An existing database of about 250 MiB, made without haduck.
  const plain = await DuckDBInstance.create(dbPath);
  const setup = await plain.connect();
  await setup.run("CREATE TABLE t AS SELECT i, random() AS a, random() AS b FROM range(18000000) r(i)");
  await setup.run("CREATE TABLE w (i INTEGER, stamp TIMESTAMP)");
  setup.closeSync();
  plain.closeSync();
  expect(statSync(dbPath).size).toBeGreaterThan(150 * 1048576);

  const instance = await openDuckDB();
  const connection = await instance.connect();
  await connection.run(`ATTACH 'haduck://${dbPath}' AS db`);
  // The application: a commit and a checkpoint, again and again, never pausing.
  let writing = true;
  let checkpoints = 0;
  let written = 0;
  const writer = (async () => {
    while (writing) {
      await connection.run(`INSERT INTO db.w VALUES (${++written}, now())`);
      await connection.run("CHECKPOINT db");
      checkpoints++;
      await Bun.sleep(20);
    }
  })();

  const { store } = await freshBucket("converge");
  // A hold of 400 ms: staging may read for 200 ms, far less than the file.
  const replicator = new Replicator({ native: new Native(), dbPath, store, dbKey, holdMs: 400, catchUpDelayMs: 200,
    catchUpDelayMaxMs: 1000 });
  await replicator.start();
  const started = performance.now();
  const checkpointsBefore = checkpoints;
  try {
    await replicator.reconcile({ live: true });
    while (replicator.status.lastGeneration === null) {
      if (performance.now() - started > FIRST_GENERATION_BOUND_MS) {
        throw new Error(`no generation within ${FIRST_GENERATION_BOUND_MS} ms: ${JSON.stringify(replicator.status)}`);
      }
      await Bun.sleep(50);
    }
    const firstMs = performance.now() - started;
    console.log(`first generation after ${Math.round(firstMs)} ms, ${checkpoints - checkpointsBefore} checkpoints ` +
      `meanwhile, ${replicator.status.generationsDeferred} generations deferred`);
    // The application really did checkpoint all along, and passes were cut short.
    expect(checkpoints - checkpointsBefore).toBeGreaterThan(3);
  } finally {
    writing = false;
    await writer;
  }
  // Quiet now: the store catches up with the local file, whose content the restore must give back.
  await connection.run("CHECKPOINT db");
  await replicator.flush();
  // A transient store error on the way is the store's business; what the store holds is checked below.
  if (replicator.status.lastError) console.log(`last error on the way: ${replicator.status.lastError}`);
  const local = (await connection.runAndReadAll(CONTENT.replaceAll(" FROM t", " FROM db.t")
    .replaceAll(" FROM w", " FROM db.w"))).getRowObjects();
  await connection.run("DETACH db");
  await replicator.stop();
  connection.closeSync();
  const to = join(dir, "restored.duckdb");
  await restore({ store, dbKey, to });
  expect(await queryFile(to, CONTENT)).toEqual(local);
  expect(local[0].w).toBe(written);
  expect((await verify(store, dbKey)).problems).toEqual([]);
}, 300_000);
