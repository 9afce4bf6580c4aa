import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FsBlockStore } from "@haduck/s3-block-store";
import type { Manifest, ManifestBlock } from "./_format.ts";
import { assembleManifest, encodeManifest, PAGE_BLOCKS, type StoredManifest, writePages } from "./_manifest_pages.ts";

const dir = mkdtempSync(join(tmpdir(), "haduck-pages-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const BLOCK = 262144;
const digest = (n: number) => n.toString(16).padStart(64, "0");

/** A manifest of `count` blocks (block ids `ids`), four blocks to a segment. */
function manifest(generation: number, ids: number[], changed = new Map<number, string>()): Manifest {
  const segments = Array.from({ length: Math.ceil(ids.length / 4) + 1 }, (_, i) =>
    ({ key: `db/segments/${String(i).padStart(20, "0")}-aaaaaaaa-0000.dblk`, sizeBytes: 4 * BLOCK + 4096,
      sha256: digest(i + 1) }));
  const blockCount = Math.max(...ids) + 1;
  const blocks = ids.map((id, i) => [id, changed.has(id) ? segments.length - 1 : Math.floor(i / 4),
    changed.has(id) ? 0 : (i % 4) * BLOCK, BLOCK, BLOCK, 0, 1, changed.get(id) ?? digest(id + 100)] as ManifestBlock);
  return { format: "haduck-manifest", version: 2, dbKey: "db", generation, previousGeneration: generation - 1,
    previousManifestSha256: null, writerEpoch: 0, createdAt: new Date(0).toISOString(),
    database: { dbIdentifier: "00", blockAllocSize: BLOCK, storageVersion: 64, libraryVersion: "v1.4.4" },
    fileSizeBytes: 12288 + blockCount * BLOCK, blockCount, segments, header: [-1, 0, 0, 12288, 12288, 0, 1, digest(7)],
    blocks, stats: { blocksShipped: 0, bytesShipped: 0, blocksSkippedUnchanged: 0 } };
}

const ids = Array.from({ length: 2000 }, (_, i) => i);

test("a generation writes only the pages whose entries changed, and names its predecessor's for the rest", () => {
  const first = manifest(1, ids);
  const encoded = encodeManifest(first, undefined, "11111111");
  expect(encoded.pages.length).toBe(Math.ceil(2000 / PAGE_BLOCKS));
  expect(encoded.newPages.length).toBe(encoded.pages.length);
  first.pages = encoded.pages;
  const second = manifest(2, ids, new Map([[1500, digest(999)]]));
  const next = encodeManifest(second, first, "22222222");
  expect(next.newPages.map((page) => page.key)).toEqual([next.pages[2].key]);
  expect(next.pages[2].key).toContain("/blockmaps/00000000000000000002-22222222-000002.json");
  expect(next.pages.filter((_, i) => i !== 2)).toEqual(encoded.pages.filter((_, i) => i !== 2));
  // A block gone from a page's range (the file cut back) makes that page new as well.
  const shorter = encodeManifest(manifest(3, ids.slice(0, 1999)), first, "33333333");
  expect(shorter.newPages.map((page) => page.key)).toEqual([shorter.pages[3].key]);
  // The manifest itself stays small: it names pages, not blocks.
  expect(next.bytes.byteLength).toBeLessThan(4096);
});

test("stored pages assemble back into the whole manifest, sparse ranges included", async () => {
  const store = new FsBlockStore(join(dir, "store"));
  const sparse = [...ids.slice(0, 10), ...ids.slice(1200, 1300), 1999];
  const whole = manifest(4, sparse);
  const encoded = encodeManifest(whole, undefined, "44444444");
  expect(encoded.pages.map((page) => page.firstBlock)).toEqual([0, 1024, 1536]);
  await writePages(store, encoded.newPages);
  const stored = JSON.parse(new TextDecoder().decode(encoded.bytes)) as StoredManifest;
  const assembled = await assembleManifest(store, stored, "test manifest");
  const resolve = (m: Manifest) => m.blocks.map((block) => [block[0], m.segments[block[1]].key, ...block.slice(2)]);
  expect(resolve(assembled)).toEqual(resolve(whole));
  expect(assembled.segments[assembled.header[1]].key).toBe(whole.segments[whole.header[1]].key);
  expect(assembled.pages).toEqual(encoded.pages);
});
