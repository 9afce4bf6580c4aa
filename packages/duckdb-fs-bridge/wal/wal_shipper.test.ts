/** The WAL entries a checkpoint's own sync logs are told apart from commits (DuckDB 1.4.4's layout). */
import { expect, test } from "bun:test";
import { onlyCheckpoint } from "./_wal_shipper.ts";

/** One WAL entry: u64 payload size, u64 checksum, payload (field 100 = the entry type, then the rest). */
function entry(type: number, rest: number[] = [0xff, 0xff]): number[] {
  const payload = [0x64, 0x00, type, ...rest];
  const size = new Uint8Array(8);
  new DataView(size.buffer).setBigUint64(0, BigInt(payload.length), true);
  return [...size, 1, 2, 3, 4, 5, 6, 7, 8, ...payload];
}

test("a CHECKPOINT entry and its WAL_FLUSH are a checkpoint's sync; anything else is a commit", () => {
  expect(onlyCheckpoint(Uint8Array.from([...entry(99, [0x65, 0x00, 7, 0xff, 0xff]), ...entry(100)]))).toBe(true);
  expect(onlyCheckpoint(Uint8Array.from(entry(99)))).toBe(true);
  expect(onlyCheckpoint(Uint8Array.from(entry(100)))).toBe(false); // a flush alone: no checkpoint
  expect(onlyCheckpoint(Uint8Array.from([...entry(26), ...entry(100)]))).toBe(false); // an insert, then its flush
  expect(onlyCheckpoint(Uint8Array.from([...entry(99), ...entry(26)]))).toBe(false);
  expect(onlyCheckpoint(Uint8Array.from(entry(99)).subarray(0, 12))).toBe(false); // torn
  expect(onlyCheckpoint(new Uint8Array(0))).toBe(false);
});
