import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openFileSource, ReadRaceError, stageBlocks } from "./_block_source.ts";

const dir = mkdtempSync(join(tmpdir(), "haduck-source-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const BLOCK = 16384;

/** A DuckDB-shaped file: header region (generation 7, `blockCount` blocks counted) and `written` blocks of `fill`. */
function fakeDatabase(name: string, blockCount: number, written: number): string {
  const header = new Uint8Array(12288);
  header.set(new TextEncoder().encode("DUCK"), 8);
  const view = new DataView(header.buffer);
  view.setBigUint64(4096 + 8, 7n, true); // generation
  view.setBigUint64(4096 + 32, BigInt(blockCount), true);
  view.setBigUint64(4096 + 40, BigInt(BLOCK), true);
  const blocks = new Uint8Array(written * BLOCK).fill(0xab);
  const path = join(dir, name);
  writeFileSync(path, Buffer.concat([header, blocks]));
  return path;
}

test("blocks past the end of the file read as zeros, never as a reused buffer's old bytes", () => {
  // DuckDB truncates free blocks off the tail after writing a header that still counts them.
  const path = fakeDatabase("short.duckdb", 4, 2);
  const source = openFileSource(path, 7, [0, 1, 2, 3], () => true);
  const into = new Uint8Array(4 * BLOCK).fill(0xee);
  source.read(into, 0, 4);
  source.close();
  expect(into.subarray(0, 2 * BLOCK).every((byte) => byte === 0xab)).toBe(true);
  expect(into.subarray(2 * BLOCK).every((byte) => byte === 0)).toBe(true);
});

test("staging copies blocks to memory and spills the rest to an unlinked spool, in the pass's order", () => {
  const path = fakeDatabase("staged.duckdb", 6, 6);
  const memory = new Uint8Array(2 * BLOCK);
  const source = stageBlocks({ dbPath: path, generation: 7, blocks: [0, 2, 3, 5], memory, runBlocksMax: 16,
    blockChecksumOk: () => true });
  const into = new Uint8Array(BLOCK);
  for (let index = 0; index < 4; index++) {
    into.fill(0);
    source.read(into, index, 1);
    expect(into.every((byte) => byte === 0xab)).toBe(true);
  }
  source.close();
  expect(readdirSync(dir).filter((name) => name.includes("spool"))).toEqual([]);
});

test("a header that moved on is a ReadRaceError (a local race, never a store failure)", () => {
  const path = fakeDatabase("moved.duckdb", 2, 2);
  expect(() => stageBlocks({ dbPath: path, generation: 6, blocks: [0], memory: new Uint8Array(BLOCK),
    runBlocksMax: 16, blockChecksumOk: () => true })).toThrow(ReadRaceError);
});
