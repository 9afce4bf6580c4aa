/**
 * @module
 * Where an upload pass gets its blocks: straight from the live database file, or from a copy
 * staged while the hold protected them.
 *
 * Every read here is synchronous on purpose. Between DuckDB's GENERATION_READY and our release,
 * DuckDB waits; asynchronous file I/O runs on the runtime's thread pool, which DuckDB's own
 * queries occupy (two threads on a 2-core machine), so an async read could wait for the very
 * connections that wait for it: a deadlock only the hold's timeout broke (issue 12). A
 * synchronous read needs nothing but the calling thread and the page cache.
 */
import { closeSync, fstatSync, openSync, readSync, unlinkSync, writeSync } from "node:fs";
import { blockOffset, type DuckDBFileInfo, HEADER_REGION_BYTES, parseHeaderRegion } from "@haduck/duckblock";

/** The local file moved on (or shrank) under a read: not the store's fault, and nothing is lost (carry). */
export class ReadRaceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ReadRaceError";
  }
}

/** The blocks of one pass, in the pass's order, plus the header region they belong to. */
export interface BlockSource {
  readonly fileInfo: DuckDBFileInfo;
  readonly headerRegion: Uint8Array;
  /**
   * Fills `into` with blocks `blocks[index] .. blocks[index + count - 1]`, which are adjacent in the
   * file, and says for each whether it passes DuckDB's own checksum (computed once, by the read that
   * made sure the block was not caught half-written).
   */
  read(into: Uint8Array, index: number, count: number): boolean[];
  close(): void;
}

/**
 * Fills `into` with the bytes at `position`. Bytes past the end of the file read as zeros, never as
 * whatever the reused buffer held before: DuckDB truncates free blocks off the file's tail after
 * writing a header that still counts them, and a restored file has zeros there too.
 */
function readBlocks(fd: number, into: Uint8Array, position: number): void {
  let done = 0;
  while (done < into.byteLength) {
    const read = readSync(fd, into, done, into.byteLength - done, position + done);
    if (read === 0) {
      into.fill(0, done);
      return;
    }
    done += read;
  }
}

/**
 * Reads a run of blocks and makes sure none of them was caught half-written. DuckDB writes the
 * next checkpoint's blocks while the hold still protects the current header, and it rewrites a
 * metadata block in place when it adds sub-blocks to it (MetadataManager::Flush): the sub-blocks
 * the current header uses keep their bytes, but a read racing that write can return a mix of old
 * and new. A complete block, old or new, passes DuckDB's own checksum; so a block that fails it is
 * read again until two reads agree (a free block of zeros or garbage fails it every time, the same
 * way). Blocks that keep changing are a race: the attempt is carried, never published.
 */
function readBlocksSettled(fd: number, into: Uint8Array, position: number, blockSize: number,
  checksumOk: (block: Uint8Array) => boolean, what: () => string): boolean[] {
  readBlocks(fd, into, position);
  const valid: boolean[] = [];
  let again: Uint8Array | undefined;
  for (let at = 0; at < into.byteLength; at += blockSize) {
    const block = into.subarray(at, at + blockSize);
    let ok = checksumOk(block);
    if (!ok) {
      again ??= new Uint8Array(blockSize);
      let settled = false;
      for (let attempt = 0; attempt < 3 && !settled; attempt++) {
        readBlocks(fd, again, position + at);
        settled = Buffer.compare(again, block) === 0;
        block.set(again);
        ok = checksumOk(block);
        settled ||= ok;
      }
      if (!settled) throw new ReadRaceError(`${what()} at offset ${position + at} changed while it was read`);
    }
    valid.push(ok);
  }
  return valid;
}

/** Writes all of `bytes` at `position` (a short write is retried, never left as a hole of zeros). */
function writeAll(fd: number, bytes: Uint8Array, position: number): void {
  for (let done = 0; done < bytes.byteLength;) {
    done += writeSync(fd, bytes, done, bytes.byteLength - done, position + done);
  }
}

/** Reads exactly `into.byteLength` bytes at `position`, or throws (the header region, the spool). */
function readExactly(fd: number, into: Uint8Array, position: number, what: string): void {
  let done = 0;
  while (done < into.byteLength) {
    const read = readSync(fd, into, done, into.byteLength - done, position + done);
    if (read === 0) {
      throw new ReadRaceError(`${what} ended after ${done} of ${into.byteLength} bytes at offset ${position}`);
    }
    done += read;
  }
}

/**
 * Bytes [position, position + length) of the file at `path`, or undefined when it is missing or
 * shorter (DuckDB removed or cut it). The header and the WAL are read this way.
 */
export function readRange(path: string, position: number, length: number): Uint8Array | undefined {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch {
    return undefined;
  }
  try {
    if (fstatSync(fd).size < position + length) return undefined;
    const bytes = new Uint8Array(length);
    readExactly(fd, bytes, position, path);
    return bytes;
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** The active header of the file at `dbPath`, or undefined when it is missing or not a database yet. */
export function readFileInfo(dbPath: string): DuckDBFileInfo | undefined {
  const region = readRange(dbPath, 0, HEADER_REGION_BYTES);
  try {
    return region && parseHeaderRegion(region);
  } catch {
    return undefined;
  }
}

function openAtGeneration(dbPath: string, generation: number): { fd: number; region: Uint8Array; info: DuckDBFileInfo } {
  const fd = openSync(dbPath, "r");
  try {
    const region = new Uint8Array(HEADER_REGION_BYTES);
    readExactly(fd, region, 0, `the header region of ${dbPath}`);
    const info = parseHeaderRegion(region);
    if (info.generation !== generation) {
      // DuckDB already wrote a newer header: never pair it with these blocks.
      throw new ReadRaceError(`the file's header is at generation ${info.generation}, expected ${generation}`);
    }
    return { fd, region, info };
  } catch (error) {
    closeSync(fd);
    throw error;
  }
}

/** Reads blocks from the live file as the pass asks for them (catch-up and reconcile: no hold). */
export function openFileSource(dbPath: string, generation: number, blocks: readonly number[],
  blockChecksumOk: (block: Uint8Array) => boolean): BlockSource {
  const { fd, region, info } = openAtGeneration(dbPath, generation);
  return {
    fileInfo: info,
    headerRegion: region,
    read(into, index) {
      return readBlocksSettled(fd, into, blockOffset(blocks[index], info.blockAllocSize), info.blockAllocSize, blockChecksumOk,
        () => `block ${blocks[index]} of ${dbPath}`);
    },
    close: () => closeSync(fd),
  };
}

/** Blocks copied to the spool per read at most (1 MiB at DuckDB's default block size). */
const SPOOL_RUN_BLOCKS_MAX = 4;

export interface StageOptions {
  dbPath: string;
  generation: number;
  blocks: readonly number[];
  /** Reused across passes; blocks beyond it go to a spool file. */
  memory: Uint8Array;
  /** Blocks read per call at most when adjacent. */
  runBlocksMax: number;
  /** DuckDB's block checksum: a block failing it is read again until it settles (see readBlocksSettled). */
  blockChecksumOk: (block: Uint8Array) => boolean;
  /**
   * performance.now() past which staging stops: the hold would run out anyway, and stopping first
   * lets DuckDB go on. What was staged by then is the source's `blocks` (a prefix of `blocks`).
   */
  deadline?: number;
}

/** A staged source: `blocks` is what staging read before its deadline (all of the blocks asked for, or a prefix). */
export type StagedSource = BlockSource & { readonly blocks: readonly number[] };

/**
 * Copies the blocks a generation needs while the hold protects them, so the hold lasts as long as
 * local reads and never as long as uploads. The first blocks go to `memory`; the rest to a spool
 * file beside the database, unlinked at once (a crash leaves nothing behind), so memory stays
 * bounded whatever the generation's size.
 */
export function stageBlocks(options: StageOptions): StagedSource {
  const { dbPath, blocks, memory } = options;
  const { fd, region, info } = openAtGeneration(dbPath, options.generation);
  const blockSize = info.blockAllocSize;
  const inMemory = Math.min(blocks.length, Math.floor(memory.byteLength / blockSize));
  let spool: number | undefined;
  let staged = blocks.length;
  const valid = new Uint8Array(blocks.length); // DuckDB's checksum, per block, as staging found it
  try {
    if (inMemory < blocks.length) {
      const spoolPath = `${dbPath}.haduck-spool-${crypto.randomUUID().slice(0, 8)}`;
      spool = openSync(spoolPath, "wx+");
      unlinkSync(spoolPath);
    }
    // Blocks on their way to the spool pass through a small buffer: the memory bound is `memory`'s.
    const spoolRunBlocks = Math.min(options.runBlocksMax, SPOOL_RUN_BLOCKS_MAX);
    const scratch = spool === undefined ? undefined : new Uint8Array(spoolRunBlocks * blockSize);
    for (let start = 0; start < blocks.length;) {
      let end = start + 1;
      const limit = start < inMemory ? inMemory : blocks.length;
      const runMax = start < inMemory ? options.runBlocksMax : spoolRunBlocks;
      while (end < limit && end - start < runMax && blocks[end] === blocks[end - 1] + 1) end++;
      const bytes = (end - start) * blockSize;
      const into = start < inMemory
        ? memory.subarray(start * blockSize, start * blockSize + bytes)
        : scratch!.subarray(0, bytes);
      if (options.deadline !== undefined && performance.now() > options.deadline) {
        staged = start;
        break;
      }
      readBlocksSettled(fd, into, blockOffset(blocks[start], blockSize), blockSize, options.blockChecksumOk,
        () => `block ${blocks[start]} of ${dbPath}`).forEach((ok, i) => valid[start + i] = ok ? 1 : 0);
      if (start >= inMemory) writeAll(spool!, into, (start - inMemory) * blockSize);
      start = end;
    }
  } catch (error) {
    if (spool !== undefined) closeSync(spool);
    throw error;
  } finally {
    closeSync(fd);
  }
  return {
    fileInfo: info,
    headerRegion: region,
    blocks: staged === blocks.length ? blocks : blocks.slice(0, staged),
    read(into, index, count) {
      const ok: boolean[] = [];
      for (let i = 0; i < count; i++) {
        const at = index + i;
        const target = into.subarray(i * blockSize, (i + 1) * blockSize);
        if (at < inMemory) target.set(memory.subarray(at * blockSize, (at + 1) * blockSize));
        else readExactly(spool!, target, (at - inMemory) * blockSize, "the spool");
        ok.push(valid[at] === 1);
      }
      return ok;
    },
    close() {
      if (spool !== undefined) closeSync(spool);
    },
  };
}
