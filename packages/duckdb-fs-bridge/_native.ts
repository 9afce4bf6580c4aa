/**
 * @module
 * The extension as seen from TypeScript: its path, a DuckDB instance with it loaded, and its C API
 * over bun:ffi (the same image DuckDB loaded, so globals such as the ring are shared).
 */
import { DuckDBInstance } from "@duckdb/node-api";
import { dlopen, FFIType, ptr, toArrayBuffer } from "bun:ffi";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { RING_LAYOUT as L, type RingEvent } from "./_ring_layout.ts";

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), "../..");

/** Where the built extension is (HADUCK_EXTENSION_PATH overrides). */
export function extensionPath(): string {
  const path = process.env.HADUCK_EXTENSION_PATH ?? join(ROOT, "extension/build/haduck.duckdb_extension");
  if (!existsSync(path)) {
    throw new Error(`The haduck extension is not built (${path} is missing): run \`npm ci\` or ` +
      "`bun tools/build_extension.ts` at the repository root");
  }
  return path;
}

/** A DuckDB instance with the haduck extension loaded. */
export async function openDuckDB(path = ":memory:"): Promise<DuckDBInstance> {
  const instance = await DuckDBInstance.create(path, { allow_unsigned_extensions: "true" });
  const connection = await instance.connect();
  await connection.run(`LOAD '${extensionPath()}'`);
  connection.closeSync();
  return instance;
}

const SYMBOLS = {
  haduck_ring_address: { args: [], returns: FFIType.u64 },
  haduck_consumer_attach: { args: [], returns: FFIType.void },
  haduck_consumer_detach: { args: [], returns: FFIType.void },
  haduck_set_hold_ms: { args: [FFIType.u64], returns: FFIType.void },
  haduck_generation_info: { args: [FFIType.u64, FFIType.ptr], returns: FFIType.i32 },
  haduck_generation_blocks: { args: [FFIType.u64, FFIType.ptr, FFIType.u64], returns: FFIType.u64 },
  haduck_generation_release: { args: [FFIType.u64], returns: FFIType.i32 },
  haduck_pending_generations: { args: [FFIType.ptr, FFIType.u64], returns: FFIType.u64 },
  haduck_file_path: { args: [FFIType.u32, FFIType.ptr, FFIType.u64], returns: FFIType.u64 },
  haduck_hold_stats: { args: [FFIType.ptr], returns: FFIType.void },
  haduck_block_checksum_ok: { args: [FFIType.ptr, FFIType.u64], returns: FFIType.i32 },
} as const;

export interface GenerationInfo {
  seq: bigint;
  fileId: number;
  iteration: number;
  blockCount: number;
  headerBlockCount: number;
  blockAllocSize: number;
  createdUnixMs: number;
  needsFullScan: boolean;
}

let library: ReturnType<typeof dlopen<typeof SYMBOLS>> | undefined;

/** The extension's C API. Call after a DuckDB instance loaded the extension (libduckdb.so must be loaded). */
export class Native {
  readonly #symbols: ReturnType<typeof dlopen<typeof SYMBOLS>>["symbols"];
  readonly #ring: ArrayBuffer;
  readonly #u32: Uint32Array;
  readonly #u64: BigUint64Array;

  constructor() {
    library ??= dlopen(extensionPath(), SYMBOLS);
    this.#symbols = library.symbols;
    this.#ring = toArrayBuffer(Number(this.#symbols.haduck_ring_address()), 0, L.HADUCK_RING_SIZE);
    this.#u32 = new Uint32Array(this.#ring);
    this.#u64 = new BigUint64Array(this.#ring);
    if (this.#u32[L.HADUCK_RING_OFFSET_MAGIC / 4] !== L.HADUCK_RING_MAGIC ||
      this.#u32[L.HADUCK_RING_OFFSET_VERSION / 4] !== L.HADUCK_RING_VERSION) {
      throw new Error("The haduck extension's event ring has an unexpected magic or version: rebuild the extension " +
        "and the bridge from the same checkout");
    }
  }

  attach(holdMs: number): void {
    this.#symbols.haduck_set_hold_ms(BigInt(holdMs));
    this.#symbols.haduck_consumer_attach();
  }

  detach(): void {
    this.#symbols.haduck_consumer_detach();
  }

  /** Pops up to `max` events (single consumer). */
  drain(max = 1024): RingEvent[] {
    const events: RingEvent[] = [];
    const headIndex = L.HADUCK_RING_OFFSET_HEAD / 8;
    while (events.length < max) {
      const head = Atomics.load(this.#u64, headIndex);
      const slot = L.HADUCK_RING_OFFSET_SLOTS + Number(head % BigInt(L.HADUCK_RING_SLOT_COUNT)) * L.HADUCK_RING_SLOT_SIZE;
      const seq = Atomics.load(this.#u64, slot / 8);
      if (seq !== head + 1n) break;
      events.push({
        type: this.#u32[(slot + L.HADUCK_EVENT_OFFSET_TYPE) / 4],
        fileId: this.#u32[(slot + L.HADUCK_EVENT_OFFSET_FILE_ID) / 4],
        a: this.#u64[(slot + L.HADUCK_EVENT_OFFSET_A) / 8],
        b: this.#u64[(slot + L.HADUCK_EVENT_OFFSET_B) / 8],
        c: this.#u64[(slot + L.HADUCK_EVENT_OFFSET_C) / 8],
        d: this.#u64[(slot + L.HADUCK_EVENT_OFFSET_D) / 8],
      });
      Atomics.store(this.#u64, slot / 8, head + BigInt(L.HADUCK_RING_SLOT_COUNT));
      Atomics.store(this.#u64, headIndex, head + 1n);
    }
    return events;
  }

  /** Reads and clears the sticky overflow flag. */
  takeOverflow(): boolean {
    return Atomics.exchange(this.#u32, L.HADUCK_RING_OFFSET_OVERFLOW / 4, 0) !== 0;
  }

  generationInfo(seq: bigint): GenerationInfo | undefined {
    const out = new BigUint64Array(8);
    if (this.#symbols.haduck_generation_info(seq, ptr(out)) !== 1) return undefined;
    return {
      seq,
      fileId: Number(out[0]),
      iteration: Number(out[1]),
      blockCount: Number(out[2]),
      headerBlockCount: Number(out[3]),
      blockAllocSize: Number(out[4]),
      createdUnixMs: Number(out[5]),
      needsFullScan: out[6] === 1n,
    };
  }

  generationBlocks(seq: bigint, count: number): number[] {
    const out = new BigUint64Array(Math.max(1, count));
    const total = Number(this.#symbols.haduck_generation_blocks(seq, ptr(out), BigInt(count)));
    return Array.from(out.subarray(0, Math.min(total, count)), Number);
  }

  /** 1: publishable; 0: abandoned (carry its blocks); -1: unknown. */
  release(seq: bigint): number {
    return this.#symbols.haduck_generation_release(seq);
  }

  pendingGenerations(): bigint[] {
    const out = new BigUint64Array(1024);
    const total = Number(this.#symbols.haduck_pending_generations(ptr(out), 1024n));
    return Array.from(out.subarray(0, Math.min(total, 1024)));
  }

  filePath(fileId: number): string | undefined {
    const out = new Uint8Array(4096);
    const length = Number(this.#symbols.haduck_file_path(fileId, ptr(out), 4096n));
    return length === 0 ? undefined : new TextDecoder().decode(out.subarray(0, Math.min(length, 4096)));
  }

  holdStats(): { waits: number; waitMsTotal: number; waitMsMax: number; timeouts: number } {
    const out = new BigUint64Array(4);
    this.#symbols.haduck_hold_stats(ptr(out));
    return { waits: Number(out[0]), waitMsTotal: Number(out[1]) / 1e6, waitMsMax: Number(out[2]) / 1e6,
      timeouts: Number(out[3]) };
  }

  blockChecksumOk(block: Uint8Array): boolean {
    return this.#symbols.haduck_block_checksum_ok(ptr(block), BigInt(block.byteLength)) === 1;
  }
}
