import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Native, openDuckDB } from "../native/_native.ts";

const dir = mkdtempSync(join(tmpdir(), "haduck-checksum-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("the extension's block checksum is DuckDB's: every block of a fresh database passes, a flipped bit fails", async () => {
  const path = join(dir, "fresh.duckdb");
  const instance = await openDuckDB(path);
  const connection = await instance.connect();
  await connection.run("CREATE TABLE t AS SELECT i, random() AS a, md5(i::VARCHAR) AS s FROM range(300000) r(i)");
  await connection.run("CHECKPOINT");
  connection.closeSync();
  instance.closeSync();
  const native = new Native();
  const file = readFileSync(path);
  const blockSize = 262144;
  const blocks = (file.byteLength - 12288) / blockSize;
  expect(blocks).toBeGreaterThan(10);
  const verdicts = Array.from({ length: blocks }, (_, index) =>
    native.blockChecksumOk(file.subarray(12288 + index * blockSize, 12288 + (index + 1) * blockSize)));
  expect(verdicts.filter((ok) => !ok).length).toBe(0);
  const block = Uint8Array.from(file.subarray(12288, 12288 + blockSize));
  block[blockSize - 1] ^= 0x04;
  expect(native.blockChecksumOk(block)).toBe(false);
});
