/**
 * @module
 * The extension as seen from TypeScript: a DuckDB instance with it loaded (the build for this DuckDB,
 * found by _extension_path.ts), and its C API over FFI (bun:ffi or Deno.dlopen: the same image DuckDB
 * loaded, so globals such as the ring are shared).
 */
import { DuckDBInstance } from "@duckdb/node-api";
import { RING_LAYOUT as L, type RingEvent } from "./_ring_layout.ts";
import type { ExtensionSymbols, OpenExtension } from "./ffi/_symbols.ts";
import type { Consumer, GenerationInfo } from "./_consumer.ts";
import { extensionPath, hostDuckDBVersion } from "./_extension_path.ts";

/**
 * The DuckDB release this process runs (`@duckdb/node-api`'s), without the `v`: `1.4.4`. The
 * extension build for it is the one loaded (`extensionPath()`).
 */
export const DUCKDB_VERSION: string = hostDuckDBVersion().replace(/^v/, "");

/**
 * A DuckDB instance with the haduck extension loaded: the build for this DuckDB release, or a
 * `DuckDBVersionError` naming the supported releases (thrown before DuckDB opens anything).
 */
export async function openDuckDB(path = ":memory:"): Promise<DuckDBInstance> {
  const extension = extensionPath();
  const instance = await DuckDBInstance.create(path, { allow_unsigned_extensions: "true" });
  const connection = await instance.connect();
  await connection.run(`LOAD '${extension}'`);
  connection.closeSync();
  return instance;
}

/**
 * Why this package does not load on Node: it reads the extension's event ring over FFI (bun:ffi or
 * Deno.dlopen), and Node has none. Said at import, by name, rather than as a failure deep inside
 * attach(); a Node host replicates through the extension alone (ATTACH 'haduck:...' starts the
 * `haduck sidecar`, which runs on the Bun the CLI brings).
 */
export const NODE_NEEDS_FFI_MESSAGE = "@haduck/duckdb-fs-bridge runs on Bun and Deno, not on Node: it reads the haduck " +
  "extension's event ring over FFI (bun:ffi, Deno.dlopen), which Node does not have. Run this program with Bun " +
  "(`bun app.js`) or Deno (`deno run --allow-ffi --allow-read --allow-write --allow-env --allow-run app.js`), or " +
  "replicate from Node through the extension alone (ATTACH 'haduck:...' with HADUCK_STORE set) or the CLI (`npx haduck`)";

// The FFI backend of this runtime: bun:ffi, or Deno.dlopen.
const { openExtension }: { openExtension: OpenExtension } = "Deno" in globalThis
  ? await import("./ffi/deno.ts")
  : "Bun" in globalThis
  ? await import("./ffi/bun.ts")
  : (() => {
    throw new Error(NODE_NEEDS_FFI_MESSAGE);
  })();

let library: ExtensionSymbols | undefined;

/** The process's consumers of the ring, each with the events drained for it and not yet taken. */
const ROUTER = { consumers: new Map<object, { events: RingEvent[]; overflow: boolean }>() };

/** The extension's C API. Call after a DuckDB instance loaded the extension (libduckdb.so must be loaded). */
export class Native implements Consumer {
  readonly #symbols: ExtensionSymbols;
  readonly #u32: Uint32Array;
  readonly #u64: BigUint64Array;

  constructor() {
    this.#symbols = symbols();
    this.#u32 = new Uint32Array(this.#symbols.ring);
    this.#u64 = new BigUint64Array(this.#symbols.ring);
    if (this.#u32[L.HADUCK_RING_OFFSET_MAGIC / 4] !== L.HADUCK_RING_MAGIC ||
      this.#u32[L.HADUCK_RING_OFFSET_VERSION / 4] !== L.HADUCK_RING_VERSION) {
      throw new Error("The haduck extension's event ring has an unexpected magic or version: rebuild the extension " +
        "and the bridge from the same checkout");
    }
  }

  /**
   * Becomes a consumer. The ring is the process's, and so is the extension's consumer state: every
   * attached `Native` (one per replicator: several databases in one process) gets every event from
   * the moment it attached, and the extension has a consumer while at least one is attached.
   */
  attach(holdMs: number): void {
    this.#symbols.setHoldMs(BigInt(holdMs));
    if (ROUTER.consumers.has(this)) return;
    ROUTER.consumers.set(this, { events: [], overflow: false });
    if (ROUTER.consumers.size === 1) this.#symbols.consumerAttach();
  }

  detach(): void {
    if (!ROUTER.consumers.delete(this)) return;
    if (ROUTER.consumers.size === 0) this.#symbols.consumerDetach();
  }

  /** Up to `max` events for this consumer, oldest first (the ring is drained into every attached one). */
  drain(max = 1024): RingEvent[] {
    this.#pull();
    const mine = ROUTER.consumers.get(this);
    // Not attached: the ring's own events only while nobody is (others' events are theirs).
    if (!mine) return ROUTER.consumers.size === 0 ? this.#pop(max) : [];
    return mine.events.splice(0, max);
  }

  /** Moves what the ring holds into every attached consumer's queue. */
  #pull(): void {
    if (ROUTER.consumers.size === 0) return;
    for (;;) {
      const events = this.#pop(1024);
      for (const queue of ROUTER.consumers.values()) queue.events.push(...events); // read-only, shared
      if (events.length < 1024) break;
    }
    if (Atomics.exchange(this.#u32, L.HADUCK_RING_OFFSET_OVERFLOW / 4, 0) !== 0) {
      for (const queue of ROUTER.consumers.values()) queue.overflow = true;
    }
  }

  /** Pops up to `max` events off the ring. */
  #pop(max: number): RingEvent[] {
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
        e: this.#u64[(slot + L.HADUCK_EVENT_OFFSET_E) / 8],
        f: this.#u64[(slot + L.HADUCK_EVENT_OFFSET_F) / 8],
      });
      Atomics.store(this.#u64, slot / 8, head + BigInt(L.HADUCK_RING_SLOT_COUNT));
      Atomics.store(this.#u64, headIndex, head + 1n);
    }
    return events;
  }

  /** Reads and clears the sticky overflow flag (this consumer's copy of it). */
  takeOverflow(): boolean {
    const mine = ROUTER.consumers.get(this);
    if (!mine) return ROUTER.consumers.size === 0 && Atomics.exchange(this.#u32, L.HADUCK_RING_OFFSET_OVERFLOW / 4, 0) !== 0;
    this.#pull();
    const overflow = mine.overflow;
    mine.overflow = false;
    return overflow;
  }

  generationInfo(seq: bigint): GenerationInfo | undefined {
    const out = new BigUint64Array(8);
    if (this.#symbols.generationInfo(seq, out) !== 1) return undefined;
    return {
      seq,
      fileId: Number(out[0]),
      generation: Number(out[1]),
      blockCount: Number(out[2]),
      headerBlockCount: Number(out[3]),
      blockAllocSize: Number(out[4]),
      createdUnixMs: Number(out[5]),
      needsFullScan: out[6] === 1n,
    };
  }

  generationBlocks(seq: bigint, count: number): number[] {
    const out = new BigUint64Array(Math.max(1, count));
    const total = Number(this.#symbols.generationBlocks(seq, out, BigInt(count)));
    return Array.from(out.subarray(0, Math.min(total, count)), Number);
  }

  /** 1: publishable; 0: abandoned (carry its blocks); -1: unknown. */
  release(seq: bigint): number {
    return this.#symbols.generationRelease(seq);
  }

  pendingGenerations(): bigint[] {
    const out = new BigUint64Array(1024);
    const total = Number(this.#symbols.pendingGenerations(out, 1024n));
    return Array.from(out.subarray(0, Math.min(total, 1024)));
  }

  filePath(fileId: number): string | undefined {
    const out = new Uint8Array(4096);
    const length = Number(this.#symbols.filePath(fileId, out, 4096n));
    return length === 0 ? undefined : new TextDecoder().decode(out.subarray(0, Math.min(length, 4096)));
  }

  holdStats(): { waits: number; waitMsTotal: number; waitMsMax: number; timeouts: number } {
    const out = new BigUint64Array(4);
    this.#symbols.holdStats(out);
    return { waits: Number(out[0]), waitMsTotal: Number(out[1]) / 1e6, waitMsMax: Number(out[2]) / 1e6,
      timeouts: Number(out[3]) };
  }

  /** Benchmarks only: pushes up to `count` synthetic events (type 0) into the ring; returns how many fit. */
  debugPushEvents(count: number): number {
    return Number(this.#symbols.debugPushEvents(BigInt(count)));
  }

  blockChecksumOk(block: Uint8Array): boolean {
    return this.#symbols.blockChecksumOk(block, BigInt(block.byteLength)) === 1;
  }
}

const cString = (text: string) => new TextEncoder().encode(`${text}\0`);

/** The C API's answer: 0, or -(length + 1) of the message it wrote into `error`. */
function snapshotCall(call: (error: Uint8Array, capacity: bigint) => number): void {
  const error = new Uint8Array(1024);
  const answer = call(error, BigInt(error.byteLength));
  if (answer < 0) throw new Error(new TextDecoder().decode(error.subarray(0, -answer - 1)));
}

/**
 * Copy-on-write views of a file, kept by the extension (extension/src/snapshot.hpp): a follower's
 * snapshots of its base. `open()` makes `overlay` show `base` as it is now, at no cost that grows
 * with the file; DuckDB attaches it as `haduck-snapshot://<overlay>`. Whoever writes the base calls
 * `beforeWrite()` first (the extension's own file systems do it for DuckDB's writes). Needs the
 * extension loaded in this process (`openDuckDB()`), and FFI: Bun or Deno.
 */
export interface SnapshotStats {
  overlaysOpen: number;
  bytesPreserved: number;
  bytesReadBase: number;
  bytesReadOverlay: number;
  bytesWrittenOverlay: number;
  /** Reads that waited for a block of a lazily opened base. */
  lazyWaits: number;
}

export const Snapshots: {
  open(base: string, overlay: string): void;
  close(overlay: string): boolean;
  allowBase(path: string, allow: boolean): void;
  beforeWrite(base: string, offset: number, length?: number): void;
  stats(): SnapshotStats;
  lazyOpen(base: string, blockAllocSize: number, missing: Uint8Array): void;
  lazyWanted(base: string): number[];
  lazyFilled(base: string, first: number, count: number): void;
  lazyFailed(base: string, block: number, message: string): void;
  lazyClose(base: string, message: string): void;
} = {
  open(base: string, overlay: string): void {
    const s = symbols();
    snapshotCall((error, capacity) => s.snapshotOpen(cString(base), cString(overlay), error, capacity));
  },
  /** Forgets `overlay` (after DuckDB closed it); the file stays. */
  close(overlay: string): boolean {
    return symbols().snapshotClose(cString(overlay)) === 1;
  },
  /** Lets `haduck-snapshot://<path>` open `path` itself (an in-place replay of the base), or no longer. */
  allowBase(path: string, allow: boolean): void {
    symbols().snapshotAllowBase(cString(path), allow ? 1 : 0);
  },
  /** Before `base`'s bytes [offset, offset + length) are overwritten (length undefined: before it is cut at offset). */
  beforeWrite(base: string, offset: number, length?: number): void {
    const s = symbols();
    snapshotCall((error, capacity) => s.snapshotBeforeWrite(cString(base), BigInt(offset),
      length === undefined ? 0xffff_ffff_ffff_ffffn : BigInt(length), error, capacity));
  },
  stats(): SnapshotStats {
    const out = new BigUint64Array(6);
    symbols().snapshotStats(out);
    return { overlaysOpen: Number(out[0]), bytesPreserved: Number(out[1]), bytesReadBase: Number(out[2]),
      bytesReadOverlay: Number(out[3]), bytesWrittenOverlay: Number(out[4]), lazyWaits: Number(out[5]) };
  },
  lazyOpen(base: string, blockAllocSize: number, missing: Uint8Array): void {
    const s = symbols();
    // bun:ffi takes no pointer to an empty buffer: a database without blocks passes one unused byte.
    const flags = missing.byteLength > 0 ? missing : new Uint8Array(1);
    snapshotCall((error, capacity) =>
      s.lazyOpen(cString(base), BigInt(blockAllocSize), flags, BigInt(missing.byteLength), error, capacity));
  },
  lazyWanted(base: string): number[] {
    const out = new BigUint64Array(256);
    const count = Number(symbols().lazyWanted(cString(base), out, 256n));
    return Array.from(out.subarray(0, count), Number);
  },
  lazyFilled(base: string, first: number, count: number): void {
    symbols().lazyFilled(cString(base), BigInt(first), BigInt(count));
  },
  lazyFailed(base: string, block: number, message: string): void {
    symbols().lazyFailed(cString(base), BigInt(block), cString(message));
  },
  lazyClose(base: string, message: string): void {
    symbols().lazyClose(cString(base), cString(message));
  },
};

/** What the extension's snapshots cost this process so far (bytes copied into overlays, read, written). */
export function snapshotStats(): SnapshotStats {
  return Snapshots.stats();
}

function symbols(): ExtensionSymbols {
  return library ??= openExtension(extensionPath(), L.HADUCK_RING_SIZE);
}
