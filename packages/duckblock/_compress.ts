/**
 * @module
 * The zstd rule segments and WAL frames share: level 1, and only where it pays (DuckDB compresses its
 * columns itself, and random-looking bytes cost zstd time for nothing).
 */
import * as zlib from "node:zlib";

/**
 * node:zlib's zstd, where the runtime has it: Bun, Deno and Node 22.15 or later do; Node 20 does
 * not, and there segments and frames are written raw (a valid store: every block says how it is
 * stored), and a compressed block met on a read fails by name (`requireZstd()`).
 */
const ZSTD = zlib as unknown as {
  zstdCompressSync?: (raw: Uint8Array, options: object) => Uint8Array;
  zstdDecompressSync?: (stored: Uint8Array, options: { maxOutputLength: number }) => Uint8Array;
};

/** zstd level 1: about 1.3 GiB/s here (level 3: 0.9), and DuckDB's blocks are compressed already. */
const ZSTD_FAST = { params: { [(zlib.constants as Record<string, number>).ZSTD_c_compressionLevel ?? 100]: 1 } };

/** node:zlib's zstd decompression, or an error naming the runtimes that have it. */
export function requireZstd(): NonNullable<typeof ZSTD.zstdDecompressSync> {
  if (ZSTD.zstdDecompressSync) return ZSTD.zstdDecompressSync;
  throw new Error(`This store holds zstd-compressed blocks and this runtime's node:zlib has no zstd (Node ` +
    `${process.versions.node}): run on Node 22.15 or later, Bun or Deno`);
}
/** A block that zstd shrinks by less than this fraction is stored raw. */
const COMPRESSION_GAIN_MIN = 0.1;
/** After a block that does not compress, this many blocks are stored raw without trying... */
const COMPRESSION_BACKOFF_BLOCKS = 16;
/** ...doubling with each further block that does not, up to this many (random data costs zstd for nothing). */
const COMPRESSION_BACKOFF_BLOCKS_MAX = 512;
/** Bytes sampled (one in this many) to see whether a block is mostly zeros, as DuckDB's metadata is. */
const ZERO_PROBE_STRIDE = 512;
/** A block with at least this fraction of zeros in the sample is tried even while backing off. */
const ZERO_PROBE_MIN = 1 / 8;

/**
 * Whether a strided sample of `raw` is at least `ZERO_PROBE_MIN` zeros: DuckDB's metadata blocks are
 * (100-390 of 512 samples; they shrink 4x) and random or compressed column data is not (8-23), so a
 * metadata block between incompressible data blocks is still compressed. 512 reads a block.
 */
function mostlyZeros(raw: Uint8Array): boolean {
  let zeros = 0;
  for (let i = 0; i < raw.byteLength; i += ZERO_PROBE_STRIDE) if (raw[i] === 0) zeros++;
  return zeros >= (raw.byteLength / ZERO_PROBE_STRIDE) * ZERO_PROBE_MIN;
}

/**
 * zstd per block where it pays: DuckDB compresses its columns itself, and random-looking blocks
 * cost zstd time for nothing. After a block that does not shrink, the next blocks skip zstd for a
 * while (longer after each miss in a row), then it tries again; a block mostly of zeros (DuckDB's
 * metadata) is tried all the same. Returns the compressed bytes, or
 * undefined to store the block raw.
 */
export class AdaptiveCompressor {
  #skip = 0;
  #backoff = COMPRESSION_BACKOFF_BLOCKS;
  constructor(readonly enabled: boolean) {}

  compress(raw: Uint8Array): Uint8Array | undefined {
    if (!this.enabled || !ZSTD.zstdCompressSync) return undefined;
    if (this.#skip > 0) {
      this.#skip--;
      if (!mostlyZeros(raw)) return undefined;
    }
    const stored = ZSTD.zstdCompressSync(raw, ZSTD_FAST);
    if (stored.byteLength <= raw.byteLength * (1 - COMPRESSION_GAIN_MIN)) {
      this.#backoff = COMPRESSION_BACKOFF_BLOCKS;
      return stored;
    }
    this.#skip = this.#backoff;
    this.#backoff = Math.min(this.#backoff * 2, COMPRESSION_BACKOFF_BLOCKS_MAX);
    return undefined;
  }
}

