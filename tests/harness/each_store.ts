/**
 * @module
 * One test declared for each kind of store: a directory (`FsBlockStore`) and a fresh radosgw bucket
 * (which fails loudly when the S3 server is missing, as `freshBucket` does). `run` gets the store and
 * a label to name its files and keys by.
 */
import { test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { join } from "node:path";
import { type BlockStore, openStore } from "@haduck/s3-block-store";
import { freshBucket } from "./s3.ts";

export function testOnEachStore(title: string, options: { dir: string; label: string; timeoutMs: number },
  run: (store: BlockStore, label: string) => Promise<void>): void {
  test(`${title} (filesystem)`, async () => {
    const storeDir = mkdtempSync(join(options.dir, `${options.label}-store-`));
    await run(openStore(`file://${storeDir}`), `${options.label}-fs`);
  }, options.timeoutMs);
  test(`${title} (radosgw)`, async () => {
    const { store } = await freshBucket(options.label);
    await run(store, `${options.label}-s3`);
  }, options.timeoutMs);
}
