/**
 * Hostile or damaged objects in the store: each is detected and refused by name, nothing is
 * applied (no file appears under the target name), and nothing is followed into a huge
 * allocation. A good copy of the same store restores fine, so every refusal is about the damage.
 */
import { beforeAll, expect, test } from "bun:test";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { attach, gc, listGenerations, restore, verify } from "@haduck/duckdb-fs-bridge";
import { FsBlockStore } from "@haduck/s3-block-store";
import { rowCount } from "./harness/duckdb.ts";
import { editWhole, manifestPath, readWhole } from "./harness/stored_manifest.ts";

const dir = mkdtempSync(join(tmpdir(), "haduck-hostile-"));
const pristine = join(dir, "pristine");
const KEY = "hostile.duckdb";
let generations: number[] = [];

beforeAll(async () => {
  const db = await attach({ dbPath: join(dir, KEY), store: new FsBlockStore(pristine) });
  await db.connection.run("CREATE TABLE t AS SELECT i, md5(i::VARCHAR) AS s FROM range(100000) r(i)");
  await db.checkpoint();
  await db.connection.run("UPDATE t SET s = 'x' WHERE i < 10");
  await db.checkpoint();
  // Table u is written in the second-to-last generation and kept by the last: losing that
  // generation's manifest is what loseGeneration() below plays through.
  await db.connection.run("CREATE TABLE u AS SELECT i FROM range(50000) r(i)");
  await db.checkpoint();
  await db.connection.run("UPDATE t SET s = 'y' WHERE i >= 99990");
  await db.checkpoint();
  await db.close();
  generations = await listGenerations(new FsBlockStore(pristine), KEY);
  return () => rmSync(dir, { recursive: true, force: true });
});

/** A fresh copy of the good store, damaged by `tamper`; returns the store and the object path helper. */
function damaged(name: string, tamper: (path: (key: string) => string) => void): FsBlockStore {
  const root = join(dir, name);
  cpSync(pristine, root, { recursive: true });
  tamper((key) => join(root, KEY, key));
  return new FsBlockStore(root);
}

const latest = () => generations[generations.length - 1];
const pristinePath = (key: string) => join(pristine, KEY, key);

/** Edits a manifest as a whole (its block map pages joined) and stores it back with new pages. */
function editManifest(path: (key: string) => string, generation: number, edit: (manifest: any) => void) {
  editWhole(path, KEY, generation, edit);
}

async function expectRefused(store: FsBlockStore, name: string, mentions: string[]) {
  const to = join(dir, `${name}.restored.duckdb`);
  const error = await restore({ store, dbKey: KEY, to }).catch((e) => e);
  expect(error).toBeInstanceOf(Error);
  expect(["INTEGRITY", "CHECKSUM_MISMATCH"]).toContain(error.code); // both exit 5 from the CLI
  for (const mention of mentions) expect(error.message).toContain(mention);
  expect(existsSync(to)).toBe(false);
  const report = await verify(store, KEY).catch((e) => ({ problems: [(e as Error).message] }));
  expect(report.problems.length).toBeGreaterThan(0);
}

test("the undamaged store restores (the control for every case below)", async () => {
  const to = join(dir, "control.duckdb");
  await restore({ store: new FsBlockStore(pristine), dbKey: KEY, to });
  expect(await rowCount(to)).toBe(100000);
});

test("a manifest claiming a huge block is refused before that block is fetched", async () => {
  const store = damaged("huge", (path) => editManifest(path, latest(), (m) => {
    m.blocks[0][4] = 2 ** 40; // rawBytes
  }));
  await expectRefused(store, "huge", [manifestPath(latest()), "raw bytes"]);
});

test("a manifest with another block size or a broken shape is refused by name", async () => {
  const odd = damaged("block-size", (path) => editManifest(path, latest(), (m) => {
    m.database.blockAllocSize = 12345;
  }));
  await expectRefused(odd, "block-size", ["block_alloc_size 12345"]);
  const shapeless = damaged("shape", (path) => editManifest(path, latest(), (m) => {
    m.blocks[3] = [1, 2, 3];
  }));
  await expectRefused(shapeless, "shape", ["8-element array"]);
  const outside = damaged("outside", (path) => editManifest(path, latest(), (m) => {
    m.blocks[0][2] = m.segments[m.blocks[0][1]].sizeBytes; // offset past the segment's end
  }));
  await expectRefused(outside, "outside", ["outside its segment"]);
});

test("a manifest of another database under this key is refused", async () => {
  const store = damaged("foreign", (path) => editManifest(path, latest(), (m) => {
    m.database.dbIdentifier = "ff".repeat(16);
  }));
  await expectRefused(store, "foreign", ["another database"]);
});

test("a truncated segment and a flipped bit are named, and nothing is written", async () => {
  const manifest = readWhole(pristinePath, KEY, latest());
  const segment = manifest.segments[manifest.blocks[0][1]].key.slice(KEY.length + 1);
  const truncated = damaged("truncated", (path) => truncateSync(path(segment), 1000));
  await expectRefused(truncated, "truncated", []);
  const flipped = damaged("flipped", (path) => {
    const bytes = readFileSync(path(segment));
    bytes[manifest.blocks[0][2] + 100] ^= 0x10;
    writeFileSync(path(segment), bytes);
  });
  await expectRefused(flipped, "flipped", [segment]);
});

test("a broken chain is found by verify, naming both generations", async () => {
  const store = damaged("chain", (path) => editManifest(path, generations[generations.length - 2], (m) => {
    m.createdAt = "2000-01-01T00:00:00.000Z"; // any change to a manifest breaks the next one's chain
  }));
  const report = await verify(store, KEY);
  expect(report.problems.join("\n")).toContain(`generation ${latest()} does not chain to generation ` +
    `${generations[generations.length - 2]}`);
});

test("a manifest that is not JSON, or of a future format version, is refused by name", async () => {
  const garbage = damaged("garbage", (path) => writeFileSync(path(manifestPath(latest())), "\u0000\u0001 not json"));
  await expectRefused(garbage, "garbage", [manifestPath(latest()), "not JSON"]);
  const future = damaged("future", (path) => editManifest(path, latest(), (m) => {
    m.version = 3;
  }));
  await expectRefused(future, "future", [manifestPath(latest()), "version 1 or 2"]);
});

test("another database attached under a key with history is refused; a restored copy continues the chain", async () => {
  const store = new FsBlockStore(join(dir, "identity-store"));
  const first = await attach({ dbPath: join(dir, "first.duckdb"), store, dbKey: "shared" });
  await first.connection.run("CREATE TABLE t AS SELECT * FROM range(1000) r(i)");
  await first.close();
  // A stranger: same DuckDB version, same zero db_identifier, its own haduck identity.
  const stranger = await attach({ dbPath: join(dir, "stranger.duckdb"), store: new FsBlockStore(join(dir, "other")) });
  await stranger.connection.run("CREATE TABLE t AS SELECT * FROM range(5) r(i)");
  await stranger.close();
  const refused = await attach({ dbPath: join(dir, "stranger.duckdb"), store, dbKey: "shared" }).catch((e) => e);
  expect(refused.code).toBe("FOREIGN_DATABASE");
  expect(refused.message).toContain("haduck identity");
  // A plain DuckDB file that haduck never saw.
  rmSync(join(dir, "stranger.duckdb.haduck-identity"));
  const unknown = await attach({ dbPath: join(dir, "stranger.duckdb"), store, dbKey: "shared" }).catch((e) => e);
  expect(unknown.code).toBe("FOREIGN_DATABASE");
  expect(unknown.message).toContain("no haduck identity");
  // The database's own file gone: refused with the way back, which then works.
  rmSync(join(dir, "first.duckdb"));
  const missing = await attach({ dbPath: join(dir, "first.duckdb"), store, dbKey: "shared" }).catch((e) => e);
  expect(missing.code).toBe("NO_LOCAL_FILE");
  expect(missing.message).toContain("haduck restore");
  await restore({ store, dbKey: "shared", to: join(dir, "first.duckdb") });
  const back = await attach({ dbPath: join(dir, "first.duckdb"), store, dbKey: "shared" });
  await back.connection.run("INSERT INTO t SELECT * FROM range(10)");
  await back.checkpoint();
  await back.close();
  expect(back.replicator.status.lastError).toBeNull();
  expect((await verify(store, "shared")).problems).toEqual([]);
  const latestCopy = join(dir, "first-latest.duckdb");
  await restore({ store, dbKey: "shared", to: latestCopy });
  expect(await rowCount(latestCopy)).toBe(1010);
}, 30_000); // restores and drills that start DuckDB in a child: seconds each on a busy machine

/**
 * What a refused manifest write used to cause: generation P's manifest never landed, and the next
 * one (the latest) took the entries of P's predecessor for the blocks changed only in P. Every
 * checksum still holds. With `rechain`, P's manifest is gone and the latest chains past it (what
 * the store held then); without, P stays and the latest inherits from further back than P had.
 */
function loseGeneration(name: string, rechain: boolean): FsBlockStore {
  const [older, lost] = [generations[generations.length - 3], generations[generations.length - 2]];
  const read = (generation: number) => readWhole(pristinePath, KEY, generation);
  const [olderManifest, lostManifest] = [read(older), read(lost)];
  const olderBlocks = new Map(olderManifest.blocks.map((block: any[]) => [block[0], block]));
  const freshIn = (m: any, generation: number) => (block: any[]) =>
    m.segments[block[1]].key.includes(`/segments/${String(generation).padStart(20, "0")}-`);
  return damaged(name, (path) => {
    editManifest(path, latest(), (m) => {
      const changedInLost = m.blocks.filter(freshIn(m, lost));
      expect(changedInLost.length).toBeGreaterThan(0);
      m.blocks = m.blocks.flatMap((block: any[]) => {
        if (!freshIn(m, lost)(block)) return [block];
        const old = olderBlocks.get(block[0]) as any[] | undefined;
        if (!old) return [];
        let index = m.segments.findIndex((segment: any) => segment.key === olderManifest.segments[old[1]].key);
        if (index < 0) index = m.segments.push(olderManifest.segments[old[1]]) - 1;
        return [[block[0], index, ...old.slice(2)]];
      });
      if (rechain) {
        m.previousGeneration = older;
        m.previousManifestSha256 = createHash("sha256").update(readFileSync(path(manifestPath(older)))).digest("hex");
      }
    });
    expect(lostManifest.generation).toBe(lost);
    if (rechain) rmSync(path(manifestPath(lost)));
  });
}

test("a manifest that lost a generation's changes (older entries, valid checksums) never restores", async () => {
  const store = loseGeneration("lost-changes", true);
  // Every object and checksum is fine: only DuckDB can tell, and verify's drill of the latest commit asks it.
  expect((await verify(store, KEY, { drill: "none" })).problems).toEqual([]);
  const drilled = (await verify(store, KEY)).problems;
  expect(drilled.length).toBe(1);
  expect(drilled[0]).toContain("The latest commit does not restore: Generation");
  const to = join(dir, "lost-changes.restored.duckdb");
  const error = await restore({ store, dbKey: KEY, to }).catch((e) => e);
  expect(error.code).toBe("INTEGRITY");
  expect(error.message).toContain(`Generation ${latest()} of ${KEY} does not open in DuckDB`);
  expect(existsSync(to)).toBe(false);
  expect(readdirSync(dir).filter((name) => name.includes("lost-changes.restored"))).toEqual([]);
}, 30_000); // restores and drills that start DuckDB in a child: seconds each on a busy machine

test("verify names an entry no segment holds, a gap in the chain, and a block inherited from too far back", async () => {
  const previous = generations[generations.length - 2];
  const misplaced = damaged("misplaced", (path) => editManifest(path, latest(), (m) => {
    m.blocks[0] = [...m.blocks[0]];
    m.blocks[0][0] = m.blocks[m.blocks.length - 1][0] + 1; // another block's bytes under this id
    m.blockCount = Math.max(m.blockCount, m.blocks[0][0] + 1);
    m.fileSizeBytes = 12288 + m.blockCount * m.database.blockAllocSize;
    m.blocks.sort((a: number[], b: number[]) => a[0] - b[0]);
  }));
  expect((await verify(misplaced, KEY)).problems.join("\n")).toContain("no segment holds the entry");
  const gap = damaged("gap", (path) => editManifest(path, latest(), (m) => {
    m.previousGeneration = previous - 1;
  }));
  expect((await verify(gap, KEY)).problems.join("\n")).toContain(`chains to generation ${previous - 1}, but the ` +
    `generation before it is ${previous}`);
  const farBack = loseGeneration("far-back", false);
  expect((await verify(farBack, KEY)).problems.join("\n")).toContain(`which generation ${previous} did not have`);
});

test("a damaged, missing or out-of-range block map page is refused by name, and nothing is written", async () => {
  const stored = JSON.parse(readFileSync(pristinePath(manifestPath(latest())), "utf8"));
  expect(stored.version).toBe(2);
  const page = stored.pages[0].key.slice(KEY.length + 1);
  const flipped = damaged("page-flipped", (path) => {
    const bytes = readFileSync(path(page));
    bytes[bytes.length >> 1] ^= 0x01;
    writeFileSync(path(page), bytes);
  });
  await expectRefused(flipped, "page-flipped", [stored.pages[0].key, "SHA-256"]);
  const missing = damaged("page-missing", (path) => rmSync(path(page)));
  await expectRefused(missing, "page-missing", [stored.pages[0].key, "missing"]);
  // A page that claims blocks of another page's range (its checksum made to match).
  const strayed = damaged("page-range", (path) => {
    const edited = JSON.parse(readFileSync(path(page), "utf8"));
    edited.blocks[0][0] = edited.firstBlock + 512;
    const bytes = Buffer.from(JSON.stringify(edited));
    writeFileSync(path(page), bytes);
    const manifest = JSON.parse(readFileSync(path(manifestPath(latest())), "utf8"));
    manifest.pages[0].sizeBytes = bytes.byteLength;
    manifest.pages[0].sha256 = createHash("sha256").update(bytes).digest("hex");
    writeFileSync(path(manifestPath(latest())), JSON.stringify(manifest));
  });
  await expectRefused(strayed, "page-range", [stored.pages[0].key, "outside its range"]);
});

test("a manifest naming a page outside its database's keys is refused before anything is fetched", async () => {
  const store = damaged("page-elsewhere", (path) => {
    const manifest = JSON.parse(readFileSync(path(manifestPath(latest())), "utf8"));
    manifest.pages[0].key = `other.duckdb/blockmaps/${manifest.pages[0].key.split("/").pop()}`;
    writeFileSync(path(manifestPath(latest())), JSON.stringify(manifest));
  });
  await expectRefused(store, "page-elsewhere", [manifestPath(latest()), "malformed key"]);
});

test("gc refuses, deleting nothing, when a kept generation's block map page is missing", async () => {
  const stored = JSON.parse(readFileSync(pristinePath(manifestPath(latest())), "utf8"));
  const page = stored.pages[0].key.slice(KEY.length + 1);
  const store = damaged("gc-page-missing", (path) => rmSync(path(page)));
  const keys = async () => {
    const found: string[] = [];
    for await (const object of store.list(`${KEY}/`)) found.push(object.key);
    return found;
  };
  const before = await keys();
  const error = await gc({ store, dbKey: KEY, keepLast: 1, apply: true }).catch((e) => e);
  expect(error.code).toBe("INTEGRITY");
  expect(error.message).toContain(stored.pages[0].key);
  expect(await keys()).toEqual(before);
});
