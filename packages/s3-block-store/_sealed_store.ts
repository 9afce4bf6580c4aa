/**
 * @module
 * `SealedStore`: a `BlockStore` that encrypts at the store boundary. It wraps the real store: `put`
 * seals the body with the keyring's current key (`_seal_format.ts`), `get` opens it with the key its
 * header names (ranged reads fetch and open only the chunks they need), `head` and `list` report
 * plaintext sizes. Everything above it (segments, frames, manifests, block map pages, hints, fork
 * markers, a group's changes) is sealed without knowing it; the lease (`lease.json`) stays plain: it
 * holds no user data, and it must stay readable for fencing by every node during a key rotation,
 * which `haduck rekey` could otherwise only reach by rewriting a live leader's lease under it.
 *
 * Without a current key it writes plain objects and refuses sealed ones with `EncryptionKeyError`
 * naming the key id they need (a store read without its key is refused, never garbled). With one it
 * refuses a plain object (`NotSealedError`) unless `acceptPlain` (the migration window of a plain
 * store; `haduck rekey` uses it). Raw copies between stores (the same relative key) stay openable:
 * the seal binds the key relative to the store's prefix, not the store. Objects are opened in place
 * over the bytes `inner.get()` returns, so the inner store must hand out bytes its caller owns (both
 * stores do; a caching wrapper under this one must copy).
 */
import { BlockNotFoundError, ChecksumMismatchError, EncryptionKeyError, NotSealedError } from "./_errors.ts";
import { sha256Hex } from "./_digest.ts";
import { ENCRYPTION_ENV, Keyring } from "./_keyring.ts";
import {
  chunkOffsetBytes,
  looksSealed,
  openChunks,
  openSealed,
  parseSealHeader,
  plainSizeBytes,
  seal,
  SEAL_HEADER_BYTES,
  SEAL_TAG_BYTES,
  sealedSizeBytes,
  type SealHeader,
  type SealKey,
} from "./_seal_format.ts";
import type { BlockStore, GetOptions, ListOptions, ObjectInfo, PutOptions, PutResult, StoreCapabilities } from "./_types.ts";

export interface SealedStoreOptions {
  keyring: Keyring;
  /** Accept plain objects although a current key is set (a store moving to encryption). Default false. */
  acceptPlain?: boolean;
  /** Headers of sealed objects kept for ranged reads (immutable objects: one request per range). Default 4096. */
  headerCacheEntriesMax?: number;
}

/** Sealing buffers kept for reuse, at most this many ... */
const SEAL_POOL_BUFFERS_MAX = 16;
/** ... of at least this size (a commit's frame, a few KiB, gets a buffer of its own) ... */
const SEAL_POOL_BUFFER_BYTES_MIN = 256 * 1024;
/** ... and at most this size each (a segment is 4 MiB by default) ... */
const SEAL_POOL_BUFFER_BYTES_MAX = 16 * 1024 * 1024;
/** ... allocated in whole MiB, so that one fits the next segment of about the same size. */
const SEAL_POOL_BUFFER_STEP_BYTES = 1024 * 1024;
/**
 * The pool, shared by every `SealedStore` of the process: a store keeps no reference to a body once
 * its put settles (the `BlockStore` contract), and new pages are what sealing pays most for here
 * (a page fault costs about 14 microseconds on this VM; filling 16 segment-sized buffers took 250
 * ms), so a store opened later (a command's second store, a restarted replicator) starts warm.
 */
const sealBuffers: Uint8Array[] = [];

/** What `reseal()` did to one object. */
export type ResealOutcome = "current" | "resealed" | "plain-kept" | "gone";

/** Objects that stay plain in every store (see the module comment). */
export function staysPlain(key: string): boolean {
  return key === "lease.json" || key.endsWith("/lease.json");
}

export class SealedStore implements BlockStore {
  readonly inner: BlockStore;
  readonly keyring: Keyring;
  readonly acceptPlain: boolean;
  readonly #headers = new Map<string, SealHeader | "plain">();
  readonly #headerCacheEntriesMax: number;

  /**
   * @example
   * ```ts
   * import { FsBlockStore, Keyring, SealedStore } from "@haduck/s3-block-store";
   * const store = new SealedStore(new FsBlockStore("/tmp/haduck-sealed"),
   *   { keyring: Keyring.fromEnv({ HADUCK_ENCRYPTION_KEY: "11".repeat(32) }) });
   * await store.put("demo/latest.json", new TextEncoder().encode("{}"));
   * ```
   */
  constructor(inner: BlockStore, options: SealedStoreOptions) {
    this.inner = inner;
    this.keyring = options.keyring;
    this.acceptPlain = options.acceptPlain ?? false;
    this.#headerCacheEntriesMax = options.headerCacheEntriesMax ?? 4096;
  }

  get url(): string {
    return this.inner.url;
  }

  /** Whether new objects are sealed (a current key is configured). */
  get sealing(): boolean {
    return this.keyring.current !== undefined;
  }

  async put(key: string, body: Uint8Array, options: PutOptions = {}): Promise<PutResult> {
    const current = this.keyring.current;
    this.#headers.delete(key);
    if (!current || staysPlain(key)) return await this.inner.put(key, body, options);
    const { sha256: _plainDigest, ...rest } = options; // the digest of the plaintext: not of what is stored
    const into = this.#takeBuffer(sealedSizeBytes(body.byteLength));
    try {
      return await this.inner.put(key, seal(current, key, body, { into }), rest);
    } finally {
      this.#giveBuffer(into);
    }
  }

  /**
   * A buffer for a seal of `sizeBytes`: one a settled put gave back, or a new one (see `sealBuffers`).
   * Reusing segment-sized buffers spares the allocator and the collector as much as the segment
   * uploader's own pool does.
   */
  #takeBuffer(sizeBytes: number): Uint8Array | undefined {
    if (sizeBytes < SEAL_POOL_BUFFER_BYTES_MIN || sizeBytes > SEAL_POOL_BUFFER_BYTES_MAX) return undefined;
    const index = sealBuffers.findIndex((buffer) => buffer.byteLength >= sizeBytes && buffer.byteLength <= 2 * sizeBytes);
    if (index >= 0) return sealBuffers.splice(index, 1)[0];
    const step = SEAL_POOL_BUFFER_STEP_BYTES;
    return new Uint8Array(Math.min(SEAL_POOL_BUFFER_BYTES_MAX, Math.ceil(sizeBytes / step) * step));
  }

  #giveBuffer(buffer: Uint8Array | undefined): void {
    if (buffer && sealBuffers.length < SEAL_POOL_BUFFERS_MAX) sealBuffers.push(buffer);
  }

  async get(key: string, options: GetOptions = {}): Promise<Uint8Array> {
    if (staysPlain(key)) return await this.inner.get(key, options);
    if (options.range && (this.sealing || this.#headers.has(key))) return await this.#getRange(key, options);
    if (options.range) return await this.inner.get(key, options); // no key: nothing sealed can be read in part
    const bytes = this.open(key, await this.inner.get(key, { signal: options.signal }));
    if (options.sha256 !== undefined && sha256Hex(bytes) !== options.sha256.toLowerCase()) {
      throw new ChecksumMismatchError(key, `expected SHA-256 ${options.sha256}, got ${sha256Hex(bytes)}`);
    }
    return bytes;
  }

  /** The plaintext of the stored bytes `bytes` of `key` (sealed or, where allowed, plain); `bytes` are spent. */
  open(key: string, bytes: Uint8Array, options: { acceptPlain?: boolean } = {}): Uint8Array {
    if (!looksSealed(bytes)) {
      this.#plainAllowed(key, options.acceptPlain);
      return bytes;
    }
    const header = parseSealHeader(key, bytes);
    return openSealed(this.#keyFor(key, header), key, bytes);
  }

  #plainAllowed(key: string, acceptPlain = false): void {
    const current = this.keyring.current;
    if (current && !this.acceptPlain && !acceptPlain) throw new NotSealedError(key, current.id);
  }

  #keyFor(key: string, header: SealHeader): SealKey {
    const found = this.keyring.get(header.keyId);
    if (!found) throw new EncryptionKeyError(key, header.keyId, this.keyring.ids);
    return found;
  }

  /** A ranged read: the header (cached after the first), then only the chunks the range touches. */
  async #getRange(key: string, options: GetOptions): Promise<Uint8Array> {
    const { offsetBytes, lengthBytes } = options.range!;
    if (!(offsetBytes >= 0) || !(lengthBytes >= 1)) {
      throw new RangeError(`Invalid range for ${key}: offset >= 0 and length >= 1 are required`);
    }
    for (let attempt = 0;; attempt++) {
      const cached = this.#headers.get(key);
      const header = cached ?? await this.#readHeader(key, options.signal);
      if (header === "plain") {
        this.#plainAllowed(key);
        return await this.inner.get(key, options);
      }
      try {
        const bytes = await this.#readChunks(key, header, offsetBytes, lengthBytes, options.signal);
        if (options.sha256 !== undefined && sha256Hex(bytes) !== options.sha256.toLowerCase()) {
          throw new ChecksumMismatchError(key, `expected SHA-256 ${options.sha256}, got ${sha256Hex(bytes)}`);
        }
        return bytes;
      } catch (error) {
        this.#headers.delete(key);
        // A cached header may be of an object rewritten since (a hint, or a rekey): read it again, once.
        if (cached === undefined || attempt > 0 || error instanceof BlockNotFoundError) throw error;
      }
    }
  }

  async #readHeader(key: string, signal?: AbortSignal): Promise<SealHeader | "plain"> {
    let first: Uint8Array;
    try {
      first = await this.inner.get(key, { range: { offsetBytes: 0, lengthBytes: SEAL_HEADER_BYTES }, signal });
    } catch (error) {
      if (error instanceof BlockNotFoundError) throw error;
      // Shorter than a header: no sealed object; a plain one is read whole (it is small).
      first = await this.inner.get(key, { signal });
      if (looksSealed(first)) throw error;
    }
    const header = looksSealed(first) ? parseSealHeader(key, first) : "plain";
    if (this.#headers.size >= this.#headerCacheEntriesMax) this.#headers.delete(this.#headers.keys().next().value!);
    this.#headers.set(key, header);
    return header;
  }

  async #readChunks(key: string, header: SealHeader, offsetBytes: number, lengthBytes: number,
    signal?: AbortSignal): Promise<Uint8Array> {
    const end = offsetBytes + lengthBytes;
    if (end > header.plainBytes) {
      throw new ChecksumMismatchError(key, `asked for ${lengthBytes} bytes at ${offsetBytes}, the object holds ` +
        `${header.plainBytes}`);
    }
    const sealKey = this.#keyFor(key, header);
    const first = Math.floor(offsetBytes / header.chunkBytes);
    const last = Math.floor((end - 1) / header.chunkBytes);
    const from = chunkOffsetBytes(header, first);
    const to = chunkOffsetBytes(header, last) + Math.min(header.chunkBytes, header.plainBytes - last * header.chunkBytes) +
      SEAL_TAG_BYTES;
    const sealed = await this.inner.get(key, { range: { offsetBytes: from, lengthBytes: to - from }, signal });
    const plain = openChunks({ key: sealKey, header, objectKey: key, first, sealed });
    const skip = offsetBytes - first * header.chunkBytes;
    return plain.subarray(skip, skip + lengthBytes);
  }

  async head(key: string, options?: { signal?: AbortSignal }): Promise<ObjectInfo | undefined> {
    const info = await this.inner.head(key, options);
    return info && this.#plainInfo(info);
  }

  async *list(prefix: string, options?: ListOptions): AsyncIterable<ObjectInfo> {
    for await (const info of this.inner.list(prefix, options)) yield this.#plainInfo(info);
  }

  /** A sealed object's size is its plaintext's (the sizes map one to one); plain objects keep theirs. */
  #plainInfo(info: ObjectInfo): ObjectInfo {
    if (staysPlain(info.key) || (!this.sealing && !this.#headers.has(info.key))) return info;
    const cached = this.#headers.get(info.key);
    const size = cached === "plain" ? undefined : cached?.plainBytes ?? plainSizeBytes(info.sizeBytes);
    return size === undefined ? info : { ...info, sizeBytes: size };
  }

  async delete(key: string, options?: { signal?: AbortSignal }): Promise<void> {
    this.#headers.delete(key);
    await this.inner.delete(key, options);
  }

  async deleteMany(keys: string[], options?: { signal?: AbortSignal }): Promise<void> {
    for (const key of keys) this.#headers.delete(key);
    await this.inner.deleteMany(keys, options);
  }

  probeCapabilities(): Promise<StoreCapabilities> {
    return this.inner.probeCapabilities();
  }

  /**
   * Rewrites `info` (a raw listing entry of `inner`) sealed with the current key, unless it is already
   * (resumable: a second run skips what the first did). The plaintext stays the same; the rewrite is a
   * compare-and-swap on the listed ETag, so an object changed or deleted meanwhile is never
   * overwritten with old content nor brought back: it is read again, or reported gone.
   */
  async reseal(info: ObjectInfo, options: { dryRun?: boolean; signal?: AbortSignal } = {}): Promise<{
    outcome: ResealOutcome; from?: string; bytes: number }> {
    const current = this.keyring.current;
    if (!current) throw new RangeError("reseal() needs a current key");
    if (staysPlain(info.key)) return { outcome: "plain-kept", bytes: 0 };
    let seen: ObjectInfo | undefined = info;
    for (let attempt = 0; seen; attempt++) {
      if (attempt === 5) {
        throw new ChecksumMismatchError(info.key, "it changed five times while rekey read it; run rekey again");
      }
      try {
        const done = await this.#resealOnce(seen, current, options);
        if (done) return done;
      } catch (error) {
        if (error instanceof BlockNotFoundError) return { outcome: "gone", bytes: 0 };
        throw error;
      }
      seen = await this.inner.head(info.key, { signal: options.signal }); // changed meanwhile: look again
    }
    return { outcome: "gone", bytes: 0 };
  }

  /** One try of `reseal()`: undefined when the object changed under it (the caller looks again). */
  async #resealOnce(seen: ObjectInfo, current: SealKey, options: { dryRun?: boolean; signal?: AbortSignal }) {
    const signal = options.signal;
    // The header first: an object already sealed with the current key costs one small read.
    if (seen.sizeBytes >= SEAL_HEADER_BYTES) {
      const first = await this.inner.get(seen.key, { range: { offsetBytes: 0, lengthBytes: SEAL_HEADER_BYTES }, signal });
      if (looksSealed(first) && parseSealHeader(seen.key, first).keyId === current.id) {
        return { outcome: "current" as const, bytes: 0 };
      }
    }
    const raw = await this.inner.get(seen.key, { signal });
    const from = looksSealed(raw) ? parseSealHeader(seen.key, raw).keyId : "plain";
    if (from === current.id) return { outcome: "current" as const, bytes: 0 };
    const plain = this.open(seen.key, raw, { acceptPlain: true });
    if (options.dryRun) return { outcome: "resealed" as const, from, bytes: plain.byteLength };
    const sealed = seal(current, seen.key, plain);
    try {
      await this.inner.put(seen.key, sealed, { ifMatch: seen.etag, signal });
    } catch (error) {
      if ((error as { code?: string }).code === "PRECONDITION_FAILED") return undefined;
      // Too large for a conditional write (S3 multipart): only segments are, and they never change.
      if (!(error instanceof RangeError)) throw error;
      await this.inner.put(seen.key, sealed, { signal });
    }
    this.#headers.delete(seen.key);
    return { outcome: "resealed" as const, from, bytes: plain.byteLength };
  }
}

/**
 * The store `inner` as the environment configures encryption (`HADUCK_ENCRYPTION_KEY`,
 * `HADUCK_ENCRYPTION_KEY_FILE`, `HADUCK_ENCRYPTION_ACCEPT_PLAIN`). Without a key it still refuses a
 * sealed object by name instead of handing out ciphertext.
 *
 * @example
 * ```ts
 * import { openStore, sealedStoreFromEnv } from "@haduck/s3-block-store";
 * const store = sealedStoreFromEnv(openStore("file:///tmp/haduck-store"), { HADUCK_ENCRYPTION_KEY: "22".repeat(32) });
 * console.log(store.sealing);
 * ```
 */
export function sealedStoreFromEnv(inner: BlockStore, env: Record<string, string | undefined>): SealedStore {
  const acceptPlain = env[ENCRYPTION_ENV.acceptPlain];
  return new SealedStore(inner, { keyring: Keyring.fromEnv(env), acceptPlain: acceptPlain === "1" ||
    acceptPlain === "true" });
}
