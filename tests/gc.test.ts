/**
 * Retention: gc keeps the newest N generations (and the young ones), deletes only what no kept
 * generation references, is a dry run unless applied, and never touches a generation being
 * uploaded. Every kept generation still restores and verifies.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { attach, gc, listGenerations, restore, verify } from "@haduck/duckdb-fs-bridge";
import { type BlockStore, FsBlockStore } from "@haduck/s3-block-store";
import { rowCount } from "./harness/duckdb.ts";
import { freshBucket } from "./harness/s3.ts";

const dir = mkdtempSync(join(tmpdir(), "haduck-gc-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function keys(store: BlockStore, prefix: string): Promise<string[]> {
  const found: string[] = [];
  for await (const object of store.list(prefix)) found.push(object.key);
  return found;
}

/** Six generations, each adding 1000 rows; returns the rows each generation holds. */
async function sixGenerations(store: BlockStore, name: string): Promise<Map<number, number>> {
  const db = await attach({ dbPath: join(dir, name), store });
  const rows = new Map<number, number>();
  await db.connection.run("CREATE TABLE t (i INT, s VARCHAR)");
  for (let step = 0; step < 6; step++) {
    await db.connection.run(`INSERT INTO t SELECT i, md5(i::VARCHAR) FROM range(1000) r(i)`);
    await db.connection.run(`UPDATE t SET s = 'changed ${step}' WHERE i % 10 = ${step}`);
    await db.checkpoint();
    rows.set(db.replicator.status.lastGeneration!, (step + 1) * 1000);
  }
  await db.close();
  return rows;
}

for (const kind of ["file", "s3"] as const) {
  test(`gc keeps the newest generations, dry run first, and the kept ones still restore (${kind} store)`, async () => {
    const store = kind === "file" ? new FsBlockStore(join(dir, "store")) : (await freshBucket("gc")).store;
    const name = `${kind}.duckdb`;
    const rows = await sixGenerations(store, name);
    const all = await listGenerations(store, name);
    const segmentsBefore = await keys(store, `${name}/segments/`);

    const dry = await gc({ store, dbKey: name, keepLast: 2 });
    expect(dry.applied).toBe(false);
    expect(dry.kept).toEqual(all.slice(-2));
    expect(dry.deletedGenerations).toEqual(all.slice(0, -2));
    expect(dry.deletedSegments.length).toBeGreaterThan(0);
    expect(await listGenerations(store, name)).toEqual(all); // nothing deleted
    expect(await keys(store, `${name}/segments/`)).toEqual(segmentsBefore);

    const pagesBefore = await keys(store, `${name}/blockmaps/`);
    expect(dry.deletedPages.length).toBeGreaterThan(0);
    const applied = await gc({ store, dbKey: name, keepLast: 2, apply: true });
    expect(applied.deletedSegments).toEqual(dry.deletedSegments);
    expect(applied.deletedPages).toEqual(dry.deletedPages);
    expect((await keys(store, `${name}/blockmaps/`)).length).toBe(pagesBefore.length - dry.deletedPages.length);
    expect(await listGenerations(store, name)).toEqual(all.slice(-2));
    const segmentsAfter = await keys(store, `${name}/segments/`);
    expect(segmentsAfter.length).toBe(segmentsBefore.length - dry.deletedSegments.length);
    expect((await verify(store, name)).problems).toEqual([]);
    for (const generation of all.slice(-2)) {
      const to = join(dir, `${kind}-restored-${generation}.duckdb`);
      await restore({ store, dbKey: name, to, generation });
      expect(await rowCount(to)).toBe(rows.get(generation)!);
    }
    const gone = await restore({ store, dbKey: name, to: join(dir, `${kind}-gone.duckdb`), generation: all[0] })
      .catch((error) => error);
    expect(gone.code).toBe("GENERATION_NOT_FOUND");
    // A second pass finds nothing more to delete.
    const again = await gc({ store, dbKey: name, keepLast: 2, apply: true });
    expect(again.deletedGenerations).toEqual([]);
    expect(again.deletedSegments).toEqual([]);
    expect(again.deletedPages).toEqual([]);
  });
}

test("gc never deletes segments newer than the newest manifest (an upload in progress), but does delete orphans", async () => {
  const store = new FsBlockStore(join(dir, "store-guard"));
  const name = "guard.duckdb";
  await sixGenerations(store, name);
  const all = await listGenerations(store, name);
  const newest = all[all.length - 1];
  const inFlight = `${name}/segments/${String(newest + 1).padStart(20, "0")}-deadbeef-0000.dblk`;
  const orphan = `${name}/segments/${String(newest).padStart(20, "0")}-0badf00d-0000.dblk`;
  const pageInFlight = `${name}/blockmaps/${String(newest + 1).padStart(20, "0")}-deadbeef-000000.json`;
  const pageOrphan = `${name}/blockmaps/${String(newest).padStart(20, "0")}-0badf00d-000000.json`;
  await store.put(inFlight, new Uint8Array([1, 2, 3]));
  await store.put(orphan, new Uint8Array([4, 5, 6])); // left by a writer killed before its manifest
  await store.put(pageInFlight, new Uint8Array([7]));
  await store.put(pageOrphan, new Uint8Array([8]));
  const report = await gc({ store, dbKey: name, keepLast: 1, apply: true });
  expect(report.deletedSegments).toContain(orphan);
  expect(report.deletedSegments).not.toContain(inFlight);
  expect(report.deletedPages).toContain(pageOrphan);
  expect(report.deletedPages).not.toContain(pageInFlight);
  expect(await store.head(inFlight)).toBeDefined();
  expect(await store.head(orphan)).toBeUndefined();
  expect(await store.head(pageInFlight)).toBeDefined();
  expect(await store.head(pageOrphan)).toBeUndefined();
  // What is left restores: the newest generation's pages were all kept.
  expect((await verify(store, name)).problems).toEqual([]);

  await expect(gc({ store, dbKey: name, keepLast: 0 })).rejects.toThrow(RangeError);
});

test("gc --keep-within keeps every generation younger than the duration", async () => {
  const store = new FsBlockStore(join(dir, "store-young"));
  const name = "young.duckdb";
  await sixGenerations(store, name);
  const all = await listGenerations(store, name);
  const young = await gc({ store, dbKey: name, keepLast: 1, keepWithinMs: 3_600_000 });
  expect(young.kept).toEqual(all);
  expect(young.deletedGenerations).toEqual([]);
  const later = await gc({ store, dbKey: name, keepLast: 1, keepWithinMs: 3_600_000,
    now: () => Date.now() + 2 * 3_600_000 });
  expect(later.kept).toEqual(all.slice(-1));
});
