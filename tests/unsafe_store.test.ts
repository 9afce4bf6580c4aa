/**
 * A store that accepts conditional headers and ignores them (some S3-compatible servers do) is
 * refused at attach, by trying, before anything is written: manifests must be immutable.
 */
import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { attach } from "@haduck/duckdb-fs-bridge";
import { FsBlockStore, type PutOptions, type PutResult } from "@haduck/s3-block-store";

const dir = mkdtempSync(join(tmpdir(), "haduck-unsafe-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A fake of such a server: every write lands, whatever its conditions say. */
class IgnoresConditions extends FsBlockStore {
  override put(key: string, body: Uint8Array, options: PutOptions = {}): Promise<PutResult> {
    return super.put(key, body, { signal: options.signal });
  }
}

test("attach refuses a store that does not enforce create-only writes, naming the fix", async () => {
  const store = new IgnoresConditions(join(dir, "store"));
  expect((await store.probeCapabilities()).createOnly).toBe(false);
  const error = await attach({ dbPath: join(dir, "unsafe.duckdb"), store }).catch((e) => e);
  expect(error.code).toBe("UNSAFE_STORE");
  expect(error.message).toContain("does not enforce it");
  expect(error.message).toContain("file:// store");
  expect(existsSync(join(dir, "unsafe.duckdb"))).toBe(false); // nothing was opened or written
  expect(existsSync(join(dir, "store", "unsafe.duckdb"))).toBe(false);
});

test("haduck attach exits 3 (configuration) on such a store", async () => {
  // The CLI builds its own stores; this shows the exit-code mapping through the same error.
  const { exitCodeOf } = await import(resolve(import.meta.dir, "../packages/cli/_main.ts"));
  const error = await attach({ dbPath: join(dir, "unsafe2.duckdb"), store: new IgnoresConditions(join(dir, "s2")) })
    .catch((e) => e);
  expect(exitCodeOf(error)).toBe(3);
});
