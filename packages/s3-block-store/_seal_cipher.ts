/**
 * @module
 * AES-256-GCM of one sealed chunk (`_seal_format.ts`), written where the caller says. Two ways to the
 * same bytes:
 * - `node:crypto` (Bun, Deno and Node alike): every `update()` hands its output back in a new buffer,
 *   which the seal then copies into place. On Bun with a large heap (a replicator's segments in flight)
 *   the collector lets hundreds of MiB of such buffers pile up before it frees any, so each new one
 *   lands on pages the process never touched; at about 14 microseconds a page fault on this machine,
 *   that cost 2 to 5 ms of CPU per MiB, ten times the cipher itself (docs/ARCHITECTURE.md,
 *   "Client-side encryption").
 * - OpenSSL's libcrypto through Bun's FFI, when Bun runs and `libcrypto.so.3` loads: the same
 *   EVP calls `node:crypto` makes, writing into the caller's buffers, so a seal or an open allocates
 *   nothing. It is checked against `node:crypto` on a fixed input before it is used.
 * Which one a process uses is `chunkCipher().name`.
 */
import { createCipheriv, createDecipheriv } from "node:crypto";
import { createRequire } from "node:module";
import type * as BunFfi from "bun:ffi";

export interface ChunkCipher {
  readonly name: "libcrypto" | "node:crypto";
  /** Seals `plain` into `out` (as long, not overlapping it in part) and writes the 16-byte tag into `tag`. */
  seal(key: Uint8Array, nonce: Uint8Array, associatedData: Uint8Array, plain: Uint8Array, out: Uint8Array,
    tag: Uint8Array): void;
  /** Opens `body` in place; false when `tag` does not verify (then `body` holds no plaintext to trust). */
  openInPlace(key: Uint8Array, nonce: Uint8Array, associatedData: Uint8Array, body: Uint8Array,
    tag: Uint8Array): boolean;
}

/** A plain view of a Buffer's bytes: Bun copies a Buffer into a Uint8Array with `set()` on a slow path. */
const view = (buffer: Uint8Array) => new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);

const nodeCipher: ChunkCipher = {
  name: "node:crypto",
  seal(key, nonce, associatedData, plain, out, tag) {
    const cipher = createCipheriv("aes-256-gcm", key, nonce);
    cipher.setAAD(associatedData);
    out.set(view(cipher.update(plain)));
    cipher.final();
    tag.set(view(cipher.getAuthTag()));
  },
  openInPlace(key, nonce, associatedData, body, tag) {
    const decipher = createDecipheriv("aes-256-gcm", key, nonce);
    decipher.setAAD(associatedData);
    decipher.setAuthTag(tag);
    const plain = view(decipher.update(body));
    try {
      decipher.final();
    } catch {
      return false;
    }
    body.set(plain);
    return true;
  },
};

const EVP_CTRL_GCM_SET_TAG = 0x11;
const EVP_CTRL_GCM_GET_TAG = 0x10;

/** libcrypto's GCM through Bun's FFI, or undefined where that cannot be had (not Bun, no libcrypto). */
function libcryptoCipher(): ChunkCipher | undefined {
  if (typeof (globalThis as { Bun?: unknown }).Bun === "undefined" || process.platform !== "linux") return undefined;
  try {
    // Required, not imported: the JavaScript build of this package (for Node and Deno) holds this file too.
    const { dlopen, FFIType } = createRequire(import.meta.url)("bun:ffi") as typeof BunFfi;
    const { ptr, i32 } = FFIType;
    const init = { args: [ptr, ptr, ptr, ptr, ptr], returns: i32 } as const;
    const update = { args: [ptr, ptr, ptr, ptr, i32], returns: i32 } as const;
    const final = { args: [ptr, ptr, ptr], returns: i32 } as const;
    const { symbols: evp } = dlopen("libcrypto.so.3", {
      EVP_CIPHER_CTX_new: { args: [], returns: ptr },
      EVP_aes_256_gcm: { args: [], returns: ptr },
      EVP_EncryptInit_ex: init,
      EVP_EncryptUpdate: update,
      EVP_EncryptFinal_ex: final,
      EVP_DecryptInit_ex: init,
      EVP_DecryptUpdate: update,
      EVP_DecryptFinal_ex: final,
      EVP_CIPHER_CTX_ctrl: { args: [ptr, i32, i32, ptr], returns: i32 },
    });
    // One context each way for the process (JavaScript runs one seal at a time); set up once, given a
    // key and nonce per chunk. GCM's nonce is 12 bytes by default, as ours.
    const sealing = evp.EVP_CIPHER_CTX_new();
    const opening = evp.EVP_CIPHER_CTX_new();
    if (!sealing || !opening || evp.EVP_EncryptInit_ex(sealing, evp.EVP_aes_256_gcm(), null, null, null) !== 1 ||
      evp.EVP_DecryptInit_ex(opening, evp.EVP_aes_256_gcm(), null, null, null) !== 1) return undefined;
    const written = new Int32Array(1);
    const scratch = new Uint8Array(16); // what a GCM final writes: nothing, but it wants a pointer
    const fail = (what: string): never => {
      throw new Error(`libcrypto's ${what} failed`);
    };
    // libcrypto writes through raw pointers: the lengths are checked here, where JavaScript cannot.
    const fits = (into: Uint8Array, from: Uint8Array, tag: Uint8Array) => {
      if (into.byteLength < from.byteLength || tag.byteLength !== 16) {
        throw new RangeError(`A sealed chunk needs ${from.byteLength} bytes and a 16-byte tag, not ` +
          `${into.byteLength} and ${tag.byteLength}`);
      }
    };
    const cipher: ChunkCipher = {
      name: "libcrypto",
      seal(key, nonce, associatedData, plain, out, tag) {
        fits(out, plain, tag);
        if (evp.EVP_EncryptInit_ex(sealing, null, null, key, nonce) !== 1) fail("EVP_EncryptInit_ex");
        if (evp.EVP_EncryptUpdate(sealing, null, written, associatedData, associatedData.byteLength) !== 1) {
          fail("EVP_EncryptUpdate (associated data)");
        }
        if (plain.byteLength > 0 && evp.EVP_EncryptUpdate(sealing, out, written, plain, plain.byteLength) !== 1) {
          fail("EVP_EncryptUpdate");
        }
        if (evp.EVP_EncryptFinal_ex(sealing, scratch, written) !== 1) fail("EVP_EncryptFinal_ex");
        if (evp.EVP_CIPHER_CTX_ctrl(sealing, EVP_CTRL_GCM_GET_TAG, 16, tag) !== 1) fail("getting the GCM tag");
      },
      openInPlace(key, nonce, associatedData, body, tag) {
        fits(body, body, tag);
        if (evp.EVP_DecryptInit_ex(opening, null, null, key, nonce) !== 1) fail("EVP_DecryptInit_ex");
        if (evp.EVP_DecryptUpdate(opening, null, written, associatedData, associatedData.byteLength) !== 1) {
          fail("EVP_DecryptUpdate (associated data)");
        }
        if (body.byteLength > 0 && evp.EVP_DecryptUpdate(opening, body, written, body, body.byteLength) !== 1) {
          fail("EVP_DecryptUpdate");
        }
        if (evp.EVP_CIPHER_CTX_ctrl(opening, EVP_CTRL_GCM_SET_TAG, 16, tag) !== 1) fail("setting the GCM tag");
        return evp.EVP_DecryptFinal_ex(opening, scratch, written) === 1;
      },
    };
    return agreesWithNode(cipher) ? cipher : undefined;
  } catch {
    return undefined; // no libcrypto.so.3, or an FFI that cannot reach it: node:crypto does the same work
  }
}

/** Whether `cipher` seals and opens a fixed input exactly as `node:crypto` does (offsets in views included). */
function agreesWithNode(cipher: ChunkCipher): boolean {
  const key = Uint8Array.from({ length: 32 }, (_, i) => i);
  const nonce = Uint8Array.from({ length: 12 }, (_, i) => 100 + i);
  const associatedData = Uint8Array.from({ length: 70 }, (_, i) => 200 - i);
  const backing = Uint8Array.from({ length: 3000 }, (_, i) => (i * 7) & 255);
  const plain = backing.subarray(3, 2003);
  const expected = new Uint8Array(2016);
  nodeCipher.seal(key, nonce, associatedData, plain, expected.subarray(0, 2000), expected.subarray(2000));
  const actual = new Uint8Array(2021).subarray(5);
  cipher.seal(key, nonce, associatedData, plain, actual.subarray(0, 2000), actual.subarray(2000));
  if (!actual.every((byte, i) => byte === expected[i])) return false;
  if (!cipher.openInPlace(key, nonce, associatedData, actual.subarray(0, 2000), actual.subarray(2000))) return false;
  if (!actual.subarray(0, 2000).every((byte, i) => byte === plain[i])) return false;
  expected[2000] ^= 1;
  return !cipher.openInPlace(key, nonce, associatedData, expected.subarray(0, 2000), expected.subarray(2000));
}

let chosen: ChunkCipher | undefined;

/** The cipher this process seals and opens with (chosen once: libcrypto where it can be had). */
export function chunkCipher(): ChunkCipher {
  return chosen ??= libcryptoCipher() ?? nodeCipher;
}

/** `node:crypto`'s way, for tests that compare the two. */
export const nodeChunkCipher: ChunkCipher = nodeCipher;
