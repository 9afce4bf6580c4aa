import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { blockStoreContract } from "./_contract.ts";
import { FsBlockStore, openStore, StoreConfigError } from "./mod.ts";

const root = mkdtempSync(join(tmpdir(), "haduck-fs-store-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

blockStoreContract("FsBlockStore", test, async () => new FsBlockStore(join(root, crypto.randomUUID())));

test("FsBlockStore leaves no temp files or locks behind after writes", async () => {
  const dir = join(root, "clean");
  const store = new FsBlockStore(dir);
  await store.put("a/b", new Uint8Array([1]));
  await store.put("a/b", new Uint8Array([2]), { ifMatch: (await store.head("a/b"))!.etag });
  await store.put("a/c", new Uint8Array([3]), { ifNoneMatch: "*" }).catch(() => {});
  expect(readdirSync(join(dir, "a")).sort()).toEqual(["b", "c"]);
});

test("openStore() refuses relative and malformed file URLs with the expected form", () => {
  expect(() => openStore("file://relative/dir")).toThrow(StoreConfigError);
  expect(() => openStore("file://relative/dir")).toThrow("file:///absolute/dir");
  expect(() => openStore("ftp://x")).toThrow("s3://bucket/prefix or file:///abs/dir");
  expect(openStore(`file://${root}/x`).url).toBe(`file://${root}/x`);
});
