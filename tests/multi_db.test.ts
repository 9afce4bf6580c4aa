/**
 * Several databases in one process (what `serve --db PATH=KEY ...` runs): each has its own
 * replicator, and the extension's one ring reaches every one of them (each attached consumer gets
 * every event; the extension has a consumer while one is attached). Commits and checkpoints of
 * three databases interleave; each one's store holds exactly its own rows, frames and generations;
 * closing one leaves the others replicating.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { attach, restore, verify } from "@haduck/duckdb-fs-bridge";
import { openStore } from "@haduck/s3-block-store";
import { queryFile } from "./harness/duckdb.ts";

const dir = mkdtempSync(join(tmpdir(), "haduck-multi-db-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("three databases in one process replicate side by side; closing one leaves the others shipping", async () => {
  const store = openStore(`file://${join(dir, "store")}`);
  const names = ["a", "b", "c"];
  const dbs = [];
  for (const name of names) dbs.push(await attach({ dbPath: join(dir, `${name}.duckdb`), store, walFlushMs: 50 }));
  for (const db of dbs) await db.connection.run("CREATE TABLE t (db VARCHAR, i INT, pad VARCHAR)");
  for (let round = 0; round < 20; round++) {
    for (const [index, db] of dbs.entries()) {
      await db.connection.run(`INSERT INTO t VALUES ('${names[index]}', ${round}, repeat('x', 100))`);
      expect(await db.flush()).toBe(true); // a frame of its own database, durable
    }
    if (round % 7 === 3) await dbs[round % 3].checkpoint();
  }
  for (const db of dbs) {
    expect(db.replicator.status.framesStopped).toBeNull();
    expect(db.replicator.status.lastError).toBeNull();
    // Each commit went out as a frame of its own database: none fell back to a checkpoint (which
    // flush() does when the frames did not carry a commit, as when another replicator took its events).
    expect(db.replicator.status.framesShipped).toBeGreaterThanOrEqual(20);
    expect(db.replicator.status.generationsCommitted).toBeLessThanOrEqual(4);
  }
  // One closes; the others go on, durable commit by commit.
  await dbs[0].close();
  for (const db of dbs.slice(1)) {
    await db.connection.run(`INSERT INTO t VALUES ('after', 0, '')`);
    expect(await db.flush()).toBe(true);
  }
  for (const db of dbs.slice(1)) await db.close();
  for (const [index, name] of names.entries()) {
    const to = join(dir, `${name}-restored.duckdb`);
    const result = await restore({ store, dbKey: `${name}.duckdb`, to });
    expect(result.warning).toBeNull();
    const rows = await queryFile(to, "SELECT db, count(*)::INT AS n FROM t GROUP BY db ORDER BY db");
    expect(rows).toEqual(index === 0 ? [{ db: name, n: 20 }] : [{ db: "after", n: 1 }, { db: name, n: 20 }]);
    expect((await verify(store, `${name}.duckdb`, { drill: "none" })).problems).toEqual([]);
  }
}, 120_000);
