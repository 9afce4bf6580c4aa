/**
 * @module
 * The sealed object format (docs/FORMAT.md, "Sealed objects"): what an object's bytes become in a store
 * configured with an encryption key. A 56-byte header (magic, version, chunk size, key id, plaintext
 * length, a random salt) and then the plaintext in chunks of 64 KiB, each sealed with AES-256-GCM and
 * followed by its 16-byte tag. The key of each object is derived from the master key and the salt
 * (HKDF-SHA256), so a nonce (the chunk index and a last-chunk flag) never repeats under a key. The
 * associated data of every chunk binds the whole header, the chunk's index, whether it is the last, and
 * the object's key in the store: a flipped bit, a truncated object, chunks moved around or an object
 * put in place of another (same size, other key) fail to open, by name. Synchronous, and writing in
 * place: a chunk's AES-256-GCM is `_seal_cipher.ts`'s (libcrypto through Bun's FFI where it loads,
 * else `node:crypto`; both about twice as fast as WebCrypto's here).
 */
import { createHash, hkdfSync } from "node:crypto";
import { chunkCipher } from "./_seal_cipher.ts";
import { ChecksumMismatchError } from "./_errors.ts";

/** The first six bytes of every sealed object. */
export const SEAL_MAGIC = "HDSEAL";
export const SEAL_VERSION = 1;
export const SEAL_HEADER_BYTES = 56;
export const SEAL_TAG_BYTES = 16;
/** Plaintext bytes per chunk when sealing (a reader takes the size from the header). */
export const SEAL_CHUNK_BYTES = 65536;
const KEY_ID_BYTES = 8;
const OBJECT_KEY_INFO = new TextEncoder().encode("haduck seal v1 object key");
const KEY_ID_PREFIX = new TextEncoder().encode("haduck seal v1 key id\0");
const MAGIC_BYTES = new TextEncoder().encode(SEAL_MAGIC);

/** A master key and its id (16 hex digits, derived from the key: a wrong key never shares an id). */
export interface SealKey {
  id: string;
  bytes: Uint8Array;
}

/** The parsed header of a sealed object. */
export interface SealHeader {
  keyId: string;
  plainBytes: number;
  chunkBytes: number;
  salt: Uint8Array;
  /** The 56 header bytes as stored (bound into every chunk). */
  raw: Uint8Array;
}

/** The id of a master key: the first 8 bytes of SHA-256("haduck seal v1 key id\0" || key), in hex. */
export function keyIdOf(key: Uint8Array): string {
  return createHash("sha256").update(KEY_ID_PREFIX).update(key).digest("hex").slice(0, 2 * KEY_ID_BYTES);
}

export function sealKey(bytes: Uint8Array): SealKey {
  if (bytes.byteLength !== 32) throw new RangeError(`An encryption key is 32 bytes, not ${bytes.byteLength}`);
  return { id: keyIdOf(bytes), bytes };
}

const toHex = (bytes: Uint8Array) => Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
const fromHex = (hex: string) => Uint8Array.from(hex.match(/../g) ?? [], (pair) => parseInt(pair, 16));

const chunkCount = (plainBytes: number, chunkBytes: number) => Math.max(1, Math.ceil(plainBytes / chunkBytes));

/** The stored size of `plainBytes` sealed. */
export function sealedSizeBytes(plainBytes: number, chunkBytes = SEAL_CHUNK_BYTES): number {
  return SEAL_HEADER_BYTES + plainBytes + SEAL_TAG_BYTES * chunkCount(plainBytes, chunkBytes);
}

/** The plaintext size a sealed object of `sealedBytes` holds (the inverse of `sealedSizeBytes`), or undefined. */
export function plainSizeBytes(sealedBytes: number, chunkBytes = SEAL_CHUNK_BYTES): number | undefined {
  const body = sealedBytes - SEAL_HEADER_BYTES;
  if (body < SEAL_TAG_BYTES) return undefined;
  const whole = Math.floor(body / (chunkBytes + SEAL_TAG_BYTES));
  const rest = body % (chunkBytes + SEAL_TAG_BYTES);
  if (rest === 0) return whole * chunkBytes;
  return rest < SEAL_TAG_BYTES || (rest === SEAL_TAG_BYTES && whole > 0) ? undefined : whole * chunkBytes + rest -
    SEAL_TAG_BYTES;
}

/** Whether `bytes` start like a sealed object (the magic and a known version). */
export function looksSealed(bytes: Uint8Array): boolean {
  if (bytes.byteLength < SEAL_HEADER_BYTES) return false;
  for (let i = 0; i < MAGIC_BYTES.byteLength; i++) if (bytes[i] !== MAGIC_BYTES[i]) return false;
  return true;
}

/** Parses the header of the sealed object `key`; a header no reader can trust is `ChecksumMismatchError`. */
export function parseSealHeader(key: string, bytes: Uint8Array): SealHeader {
  if (!looksSealed(bytes)) throw new ChecksumMismatchError(key, "it does not start with a sealed object's header");
  const view = new DataView(bytes.buffer, bytes.byteOffset, SEAL_HEADER_BYTES);
  const version = view.getUint8(6);
  const chunkLog2 = view.getUint8(7);
  if (version !== SEAL_VERSION || chunkLog2 < 10 || chunkLog2 > 24) {
    throw new ChecksumMismatchError(key, `its seal header has version ${version} and chunk size 2^${chunkLog2}, ` +
      `this haduck reads version ${SEAL_VERSION} with chunks of 2^10 to 2^24 bytes: upgrade haduck or restore the object`);
  }
  const plainBytes = Number(view.getBigUint64(16));
  if (!Number.isSafeInteger(plainBytes)) throw new ChecksumMismatchError(key, "its seal header has an impossible length");
  return {
    keyId: toHex(bytes.subarray(8, 16)),
    plainBytes,
    chunkBytes: 2 ** chunkLog2,
    salt: bytes.slice(24, 56),
    raw: bytes.slice(0, SEAL_HEADER_BYTES),
  };
}

function encodeHeader(keyId: string, plainBytes: number, salt: Uint8Array): Uint8Array {
  const header = new Uint8Array(SEAL_HEADER_BYTES);
  const view = new DataView(header.buffer);
  header.set(MAGIC_BYTES, 0);
  view.setUint8(6, SEAL_VERSION);
  view.setUint8(7, Math.log2(SEAL_CHUNK_BYTES));
  header.set(fromHex(keyId), 8);
  view.setBigUint64(16, BigInt(plainBytes));
  header.set(salt, 24);
  return header;
}

/** The AES-256 key of one object: HKDF-SHA256(master key, salt, "haduck seal v1 object key"). */
function objectKeyOf(master: Uint8Array, salt: Uint8Array): Uint8Array {
  return new Uint8Array(hkdfSync("sha256", master, salt, OBJECT_KEY_INFO, 32));
}

/**
 * The nonce and associated data of one object's chunks, built once and updated per chunk: the nonce
 * is the chunk's index (8 bytes, big endian), three zero bytes and the last-chunk flag; the associated
 * data is the header, the index (8 bytes, big endian), the last flag, and the object's key. A cipher
 * reads both during its call only, so the buffers are reused from one chunk to the next.
 */
class ChunkParameters {
  readonly nonce = new Uint8Array(12);
  readonly associatedData: Uint8Array;
  readonly #nonceView = new DataView(this.nonce.buffer);
  readonly #adView: DataView;

  constructor(header: Uint8Array, objectKey: string) {
    const keyBytes = new TextEncoder().encode(objectKey);
    this.associatedData = new Uint8Array(SEAL_HEADER_BYTES + 9 + keyBytes.byteLength);
    this.associatedData.set(header, 0);
    this.associatedData.set(keyBytes, SEAL_HEADER_BYTES + 9);
    this.#adView = new DataView(this.associatedData.buffer);
  }

  /** Sets both for chunk `index`. */
  at(index: number, last: boolean): this {
    this.#nonceView.setBigUint64(0, BigInt(index));
    this.nonce[11] = last ? 1 : 0;
    this.#adView.setBigUint64(SEAL_HEADER_BYTES, BigInt(index));
    this.associatedData[SEAL_HEADER_BYTES + 8] = last ? 1 : 0;
    return this;
  }
}

/**
 * Seals `plain` as the object `objectKey` under `key`. `salt` is random unless given (test vectors);
 * `into`, a buffer of at least `sealedSizeBytes(plain.byteLength)`, is written instead of a new one
 * (the result is a view of it).
 *
 * @example
 * ```ts
 * import { openSealed, seal, sealKey } from "./_seal_format.ts";
 * const key = sealKey(new Uint8Array(32).fill(7));
 * const sealed = seal(key, "demo.duckdb/latest.json", new TextEncoder().encode("{}"));
 * console.log(new TextDecoder().decode(openSealed(key, "demo.duckdb/latest.json", sealed)));
 * ```
 */
export function seal(key: SealKey, objectKey: string, plain: Uint8Array,
  options: { salt?: Uint8Array; into?: Uint8Array } = {}): Uint8Array {
  const saltBytes = options.salt ?? crypto.getRandomValues(new Uint8Array(32));
  if (saltBytes.byteLength !== 32) throw new RangeError("A seal's salt is 32 bytes");
  const header = encodeHeader(key.id, plain.byteLength, saltBytes);
  const aesKey = objectKeyOf(key.bytes, saltBytes);
  const chunks = chunkCount(plain.byteLength, SEAL_CHUNK_BYTES);
  const size = sealedSizeBytes(plain.byteLength);
  if (options.into && options.into.byteLength < size) throw new RangeError(`seal() of ${objectKey} needs ${size} bytes`);
  const out = options.into?.subarray(0, size) ?? new Uint8Array(size);
  out.set(header, 0);
  const parameters = new ChunkParameters(header, objectKey);
  const cipher = chunkCipher();
  for (let index = 0; index < chunks; index++) {
    const last = index === chunks - 1;
    parameters.at(index, last);
    const part = plain.subarray(index * SEAL_CHUNK_BYTES, (index + 1) * SEAL_CHUNK_BYTES);
    const at = SEAL_HEADER_BYTES + index * (SEAL_CHUNK_BYTES + SEAL_TAG_BYTES);
    cipher.seal(aesKey, parameters.nonce, parameters.associatedData, part, out.subarray(at, at + part.byteLength),
      out.subarray(at + part.byteLength, at + part.byteLength + SEAL_TAG_BYTES));
  }
  return out;
}

/** Where chunk `index` of a sealed object starts, in the stored bytes. */
export function chunkOffsetBytes(header: SealHeader, index: number): number {
  return SEAL_HEADER_BYTES + index * (header.chunkBytes + SEAL_TAG_BYTES);
}

/**
 * Opens chunks `first..` of the object `objectKey` from `sealed`, the stored bytes starting at chunk
 * `first` (a whole object: `first` 0 and the bytes after the header). Every chunk that fails to
 * verify is `ChecksumMismatchError` naming the object. The plaintext is written over `sealed` itself
 * (chunk n's plaintext lands before chunk n+1's ciphertext starts, once chunk n is read), so an open
 * allocates nothing as large as the object; the result is a view of `sealed`, whose bytes are spent.
 */
export function openChunks(options: { key: SealKey; header: SealHeader; objectKey: string; first: number;
  sealed: Uint8Array }): Uint8Array {
  const { key, header, objectKey, first, sealed } = options;
  const total = chunkCount(header.plainBytes, header.chunkBytes);
  const stride = header.chunkBytes + SEAL_TAG_BYTES;
  const count = Math.ceil(sealed.byteLength / stride);
  const plainStart = first * header.chunkBytes;
  const plainEnd = Math.min(header.plainBytes, (first + count) * header.chunkBytes);
  if (first + count > total || sealed.byteLength !== plainEnd - plainStart + count * SEAL_TAG_BYTES) {
    throw new ChecksumMismatchError(objectKey, `its sealed chunks ${first}..${first + count - 1} are ` +
      `${sealed.byteLength} bytes, which does not fit the ${header.plainBytes} bytes its header promises: ` +
      "the object was truncated or extended");
  }
  const aesKey = objectKeyOf(key.bytes, header.salt);
  const parameters = new ChunkParameters(header.raw, objectKey);
  const cipher = chunkCipher();
  for (let n = 0; n < count; n++) {
    const index = first + n;
    const last = index === total - 1;
    const start = n * stride;
    const end = Math.min(sealed.byteLength, (n + 1) * stride) - SEAL_TAG_BYTES;
    parameters.at(index, last);
    if (!cipher.openInPlace(aesKey, parameters.nonce, parameters.associatedData, sealed.subarray(start, end),
      sealed.subarray(end, end + SEAL_TAG_BYTES))) {
      throw new ChecksumMismatchError(objectKey, `its seal does not verify at chunk ${index} of ` +
        `${total} (key ${header.keyId}): the object was altered, truncated, or put in place of another object`);
    }
    // Chunk n's plaintext moves down over the tags before it (a memmove, nothing allocated).
    if (n > 0) sealed.copyWithin(n * header.chunkBytes, start, end);
  }
  return sealed.subarray(0, plainEnd - plainStart);
}

/** Opens a whole sealed object (header included), checking its length against its header; `sealed` is spent. */
export function openSealed(key: SealKey, objectKey: string, sealed: Uint8Array): Uint8Array {
  const header = parseSealHeader(objectKey, sealed);
  if (header.keyId !== key.id) throw new RangeError(`${objectKey} is sealed with key ${header.keyId}, not ${key.id}`);
  const expected = SEAL_HEADER_BYTES + header.plainBytes +
    SEAL_TAG_BYTES * chunkCount(header.plainBytes, header.chunkBytes);
  if (sealed.byteLength !== expected) {
    throw new ChecksumMismatchError(objectKey, `it is ${sealed.byteLength} bytes, its seal header promises ` +
      `${expected}: the object was truncated or extended`);
  }
  return openChunks({ key, header, objectKey, first: 0, sealed: sealed.subarray(SEAL_HEADER_BYTES) });
}
