/**
 * `haduck fork` (issue 34): a new database in the store at a commit of another, without copying a
 * block. Forked while the source takes writes; both are written afterwards; each restores to its
 * own history; verify passes on the fork; the source's gc keeps what the fork references and says
 * so, and frees it once the fork is gone.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { attach, fork, gc, restore, verify } from "@haduck/duckdb-fs-bridge";
import { DuckDBInstance } from "@duckdb/node-api";
import { openStore } from "@haduck/s3-block-store";
import { runHaduck } from "./harness/cli.ts";

const dir = mkdtempSync(join(tmpdir(), "haduck-fork-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function rows(path: string, sql: string): Promise<Record<string, unknown>[]> {
  const instance = await DuckDBInstance.create(path, { access_mode: "READ_ONLY" });
  try {
    const connection = await instance.connect();
    return (await connection.runAndReadAll(sql)).getRowObjectsJS();
  } finally {
    instance.closeSync();
  }
}

async function keys(store: ReturnType<typeof openStore>, prefix: string): Promise<string[]> {
  const found: string[] = [];
  for await (const object of store.list(prefix)) found.push(object.key);
  return found;
}

test("fork under writes: no block copied, both written after, each restores its own history, gc keeps the fork's", async () => {
  const storeUrl = `file://${join(dir, "store")}`;
  const store = openStore(storeUrl);
  const writer = await attach({ dbPath: join(dir, "src.duckdb"), store, dbKey: "src.duckdb" });
  await writer.connection.run("CREATE TABLE db.big AS SELECT i, random() AS a FROM range(2000000) r(i)");
  await writer.connection.run("CREATE TABLE db.pairs(i INTEGER)");
  await writer.checkpoint();
  // Commits in WAL frames after the checkpoint, some of them while the fork is made.
  for (let i = 0; i < 10; i++) await writer.connection.run(`INSERT INTO db.pairs VALUES (${2 * i}), (${2 * i + 1})`);
  expect(await writer.flush()).toBe(true);
  let writing = true;
  let written = 10;
  const load = (async () => {
    while (writing) {
      await writer.connection.run(`INSERT INTO db.pairs VALUES (${2 * written}), (${2 * written + 1})`);
      written++;
      await Bun.sleep(5);
    }
  })();
  const report = await fork({ store, dbKey: "src.duckdb", toKey: "fork.duckdb" });
  writing = false;
  await load;
  expect(await writer.flush()).toBe(true);
  // No block copied: the fork wrote a manifest, its frames, a hint and a marker; no segment, no page.
  expect(await keys(store, "fork.duckdb/segments/")).toEqual([]);
  expect(await keys(store, "fork.duckdb/blockmaps/")).toEqual([]);
  expect(report.commits).toBeGreaterThanOrEqual(10);
  expect(report.bytesWritten).toBeLessThan(1024 * 1024);
  expect(await keys(store, "src.duckdb/forks/")).toEqual(["src.duckdb/forks/fork.duckdb.json"]);

  // The fork restores to a committed state of the source at the fork: whole pairs, all ten first.
  const forkPath = join(dir, "fork.duckdb");
  const restored = await restore({ store, dbKey: "fork.duckdb", to: forkPath });
  expect(restored.commits).toBe(report.commits);
  const [forked] = await rows(forkPath, "SELECT count(*) AS n, (SELECT count(*) FROM big) AS big FROM pairs");
  expect(Number(forked.big)).toBe(2_000_000);
  expect(Number(forked.n) % 2).toBe(0);
  expect(Number(forked.n)).toBeGreaterThanOrEqual(20);
  expect(Number(forked.n)).toBeLessThanOrEqual(2 * written);

  // Both written afterwards, each with its own checkpoints.
  const forkWriter = await attach({ dbPath: forkPath, store, dbKey: "fork.duckdb" });
  await forkWriter.connection.run("INSERT INTO db.pairs VALUES (-1), (-2)");
  await forkWriter.connection.run("UPDATE db.big SET a = -1 WHERE i < 1000");
  await forkWriter.checkpoint();
  await forkWriter.close();
  await writer.connection.run("DELETE FROM db.big WHERE i >= 1000000");
  await writer.checkpoint();
  await writer.close();
  const forkAgain = join(dir, "fork-again.duckdb");
  await restore({ store, dbKey: "fork.duckdb", to: forkAgain });
  const [mine] = await rows(forkAgain, "SELECT (SELECT count(*) FROM pairs WHERE i < 0) AS own, " +
    "(SELECT count(*) FROM big) AS big, (SELECT count(*) FROM big WHERE a = -1) AS updated");
  expect(Number(mine.own)).toBe(2);
  expect(Number(mine.big)).toBe(2_000_000); // the source's later delete is not the fork's
  expect(Number(mine.updated)).toBe(1000);
  const srcAgain = join(dir, "src-again.duckdb");
  await restore({ store, dbKey: "src.duckdb", to: srcAgain });
  const [theirs] = await rows(srcAgain, "SELECT (SELECT count(*) FROM pairs WHERE i < 0) AS own, " +
    "(SELECT count(*) FROM big) AS big");
  expect(Number(theirs.own)).toBe(0);
  expect(Number(theirs.big)).toBe(1_000_000);
  const checked = await verify(store, "fork.duckdb", { drill: "all" });
  expect(checked.problems).toEqual([]);

  // gc of the source keeps what the fork names, and says so...
  const kept = await gc({ store, dbKey: "src.duckdb", keepLast: 1, apply: true });
  expect(kept.heldByForks["fork.duckdb"]).toBeGreaterThan(0);
  const forkAfterGc = join(dir, "fork-after-gc.duckdb");
  await restore({ store, dbKey: "fork.duckdb", to: forkAfterGc });
  expect(Number((await rows(forkAfterGc, "SELECT count(*) AS n FROM big"))[0].n)).toBe(2_000_000);
  // ... and frees it once the fork is gone.
  await store.deleteMany(await keys(store, "fork.duckdb/"));
  const freed = await gc({ store, dbKey: "src.duckdb", keepLast: 1, apply: true });
  expect(freed.heldByForks["fork.duckdb"]).toBe(0);
  expect(freed.deletedSegments.length + freed.deletedPages.length).toBe(kept.heldByForks["fork.duckdb"]);
}, 300_000);

test("haduck fork: the command's output, --generation, and refusals by name", async () => {
  const storeUrl = `file://${join(dir, "cli-store")}`;
  const store = openStore(storeUrl);
  const writer = await attach({ dbPath: join(dir, "cli-src.duckdb"), store, dbKey: "a.duckdb" });
  await writer.connection.run("CREATE TABLE db.t AS SELECT 1 AS x");
  await writer.checkpoint();
  const first = writer.replicator.status.lastGeneration!;
  await writer.connection.run("INSERT INTO db.t VALUES (2)");
  await writer.checkpoint();
  await writer.close();
  const ok = await runHaduck(dir, ["fork", "--store", storeUrl, "--db-key", "a.duckdb", "--to-key", "b.duckdb",
    "--generation", String(first)]);
  expect(ok.stderr).toBe("");
  expect(ok.code).toBe(0);
  expect(ok.stdout).toContain(`forked a.duckdb at generation ${first} into b.duckdb: no block copied`);
  const to = join(dir, "b.duckdb");
  await restore({ store, dbKey: "b.duckdb", to });
  expect((await rows(to, "SELECT x FROM t ORDER BY x")).map((row) => Number(row.x))).toEqual([1]);
  const taken = await runHaduck(dir, ["fork", "--store", storeUrl, "--db-key", "a.duckdb", "--to-key", "b.duckdb"]);
  expect(taken.code).toBe(2);
  expect(taken.stderr).toContain("b.duckdb already holds generations");
  const missing = await runHaduck(dir, ["fork", "--store", storeUrl, "--db-key", "a.duckdb"]);
  expect(missing.code).toBe(2);
  expect(missing.stderr).toContain("--to-key");
  const nothing = await runHaduck(dir, ["fork", "--store", storeUrl, "--db-key", "none.duckdb", "--to-key", "c.duckdb"]);
  expect(nothing.code).not.toBe(0);
  expect(nothing.stderr).toContain("No generations of none.duckdb");
}, 120_000);
