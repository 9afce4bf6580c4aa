/**
 * Followers that cost the change (issue 34): a snapshot is a copy-on-write view of the follower's
 * base (the extension's overlay), a newer generation is written into the base in place, and a
 * promotion renames the base into the writer's file. At a size where a copy would show (a database
 * of about 160 MiB), the extension's own counters say how many bytes the snapshots copied or wrote:
 * they must follow the changes, not the database, while every read stays one committed state, also a
 * read that runs across applies and across the promotion itself.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { attach, follow, snapshotStats } from "@haduck/duckdb-fs-bridge";
import { openStore } from "@haduck/s3-block-store";

const dir = mkdtempSync(join(tmpdir(), "haduck-views-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const MiB = 1024 * 1024;

async function until(what: string, condition: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!await condition()) {
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs} ms`);
    await Bun.sleep(20);
  }
}

/** Bytes a directory's files occupy on disk (sparse overlays count what they hold). */
function allocated(path: string): number {
  return readdirSync(path).reduce((sum, name) => sum + statSync(join(path, name)).blocks * 512, 0);
}

test("at 160 MiB a follower's applies and snapshots cost the change; the promotion renames its base", async () => {
  const store = openStore(`file://${join(dir, "store")}`);
  const writer = await attach({ dbPath: join(dir, "primary.duckdb"), store, dbKey: "big.duckdb" });
  await writer.connection.run("CREATE TABLE db.big AS SELECT i, random() AS a, random() AS b, random() AS c " +
    "FROM range(8000000) r(i)");
  await writer.connection.run("CREATE TABLE db.pairs(i INTEGER)");
  await writer.checkpoint();
  expect(await writer.flush()).toBe(true);
  const size = statSync(join(dir, "primary.duckdb")).size;
  expect(size).toBeGreaterThan(150 * MiB);
  const replicaDir = join(dir, "replica");
  const replica = await follow({ store, dbKey: "big.duckdb", dir: replicaDir, pollMs: 20 });
  const pairs = async () => Number((await replica.query("SELECT count(*) AS n FROM pairs"))[0].n);
  let writerClosed = false;
  try {
    const before = snapshotStats();
    expect(before.overlaysOpen).toBeGreaterThanOrEqual(1);
    // A long read on the first snapshot runs across every apply below.
    const sum = Number((await writer.connection.runAndReadAll("SELECT sum(a) AS s FROM db.big")).getRowObjectsJS()[0].s);
    const slow = replica.query("SELECT sum(a) AS s, count(*) AS n FROM big, range(6)");
    const reads: number[] = [];
    for (let i = 0; i < 20; i++) {
      await writer.connection.run(`INSERT INTO db.pairs VALUES (${2 * i}), (${2 * i + 1})`);
      await writer.connection.run(`UPDATE db.big SET a = a + 1 WHERE i = ${i * 397_000}`);
      if (i % 5 === 4) await writer.checkpoint(); // some changes arrive as generations, most as frames
      expect(await writer.flush()).toBe(true);
      await until(`the follower shows commit ${i}`, async () => await pairs() === 2 * (i + 1));
      reads.push(await pairs());
    }
    const [old] = await slow;
    expect(Number(old.n)).toBe(8_000_000 * 6);
    expect(Number(old.s)).toBeCloseTo(sum * 6, 3); // the first snapshot's state, whole, after 20 applies
    const after = snapshotStats();
    const copied = (after.bytesPreserved - before.bytesPreserved) + (after.bytesWrittenOverlay - before.bytesWrittenOverlay);
    // 20 snapshots as copies would have written 20 x the database (3.2 GB); views write what changed
    // (here about 2.5 MiB a commit: a checkpoint rewrites a row group's column) and what the long
    // read's snapshot kept of it.
    console.log(`database ${(size / MiB).toFixed(0)} MiB; 20 applies copied or wrote ${(copied / MiB).toFixed(1)} MiB ` +
      `into overlays; follower's disk ${(allocated(replicaDir) / MiB).toFixed(0)} MiB`);
    expect(copied).toBeLessThan(size);
    expect(reads.every((n, i) => n === 2 * (i + 1))).toBe(true);
    // Disk: the base, its WAL, and the open snapshot's overlay: not a second database.
    expect(allocated(replicaDir)).toBeLessThan(size * 1.1 + 32 * MiB);

    // Promotion: a read on the newest snapshot runs while the base becomes the writer's file and the
    // new writer changes it; it finishes on the state it started on.
    const expected = Number((await replica.query("SELECT sum(a) AS s FROM big"))[0].s);
    const during = replica.query("SELECT sum(a) AS s FROM big, range(8)");
    await writer.close();
    writerClosed = true;
    const baseInode = statSync(join(replicaDir, "base.duckdb")).ino;
    const to = join(dir, "promoted.duckdb");
    const shown = await replica.materialize(to);
    expect(shown.frames + shown.generation).toBeGreaterThan(0);
    expect(statSync(to).ino).toBe(baseInode); // renamed, not copied
    const promoted = await attach({ dbPath: to, store, dbKey: "big.duckdb" });
    try {
      await promoted.connection.run("UPDATE db.big SET a = 0");
      await promoted.connection.run("CHECKPOINT db");
      const [row] = await during;
      expect(Number(row.s)).toBeCloseTo(expected * 8, 3);
      const pairsNow = await promoted.connection.runAndReadAll("SELECT count(*) AS n FROM db.pairs");
      expect(Number(pairsNow.getRowObjectsJS()[0].n)).toBe(40);
    } finally {
      await promoted.close();
    }
    expect(snapshotStats().overlaysOpen).toBe(0);
  } finally {
    await replica.close();
    if (!writerClosed) await writer.close();
  }
}, 300_000);
