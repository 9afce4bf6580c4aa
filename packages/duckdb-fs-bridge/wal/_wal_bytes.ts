/**
 * @module
 * The local WAL as bytes: a range of `<db>.wal` read synchronously (undefined when the file is gone
 * or shorter: DuckDB removed or cut it), and whether a run of entries only logs a checkpoint.
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";

/** Bytes [from, to) of the WAL, or undefined when the file is missing or shorter. */
export function readWal(path: string, from: number, to: number): Uint8Array | undefined {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch {
    return undefined;
  }
  try {
    if (fstatSync(fd).size < to) return undefined;
    const bytes = new Uint8Array(to - from);
    for (let done = 0; done < bytes.byteLength;) {
      const read = readSync(fd, bytes, done, bytes.byteLength - done, from + done);
      if (read === 0) return undefined;
      done += read;
    }
    return bytes;
  } finally {
    closeSync(fd);
  }
}

/** WAL entry types (DuckDB 1.4.4, wal_type.hpp) that a checkpoint's own sync logs. */
const WAL_CHECKPOINT = 99;
const WAL_FLUSH = 100;

/**
 * Whether WAL bytes (whole entries: u64 size, u64 checksum, payload starting with field 100, the
 * entry's type) hold a CHECKPOINT entry and nothing but WAL_FLUSH besides.
 */
export function onlyCheckpoint(bytes: Uint8Array): boolean {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let checkpoint = false;
  for (let at = 0; at < bytes.byteLength;) {
    if (at + 19 > bytes.byteLength) return false;
    const size = Number(view.getBigUint64(at, true));
    const payload = at + 16;
    if (view.getUint16(payload, true) !== 100) return false;
    const type = bytes[payload + 2];
    if (type === WAL_CHECKPOINT) checkpoint = true;
    else if (type !== WAL_FLUSH) return false;
    at = payload + size;
  }
  return checkpoint;
}
