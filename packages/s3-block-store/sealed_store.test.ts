import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freshBucket } from "../../tests/harness/s3.ts";
import { blockStoreContract } from "./_contract.ts";
import { chunkCipher, nodeChunkCipher } from "./_seal_cipher.ts";
import {
  type BlockStore,
  ChecksumMismatchError,
  EncryptionKeyError,
  FsBlockStore,
  keyIdOf,
  Keyring,
  NotSealedError,
  plainSizeBytes,
  rekey,
  seal,
  SEAL_CHUNK_BYTES,
  SEAL_HEADER_BYTES,
  SealedStore,
  sealedSizeBytes,
  sealedStoreFromEnv,
  sealKey,
  StoreConfigError,
} from "./mod.ts";

const root = mkdtempSync(join(tmpdir(), "haduck-sealed-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const KEY_A = "0123456789abcdef".repeat(4);
const KEY_B = "fedcba9876543210".repeat(4);
const keyring = (...keys: string[]) => Keyring.fromEnv({ HADUCK_ENCRYPTION_KEY: keys.join(",") });
const fsStore = () => new FsBlockStore(join(root, crypto.randomUUID()));
const sealed = (inner: BlockStore, ...keys: string[]) => new SealedStore(inner, { keyring: keyring(...keys) });
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");

function randomBytes(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i += 65536) crypto.getRandomValues(bytes.subarray(i, Math.min(length, i + 65536)));
  return bytes;
}

blockStoreContract("SealedStore over FsBlockStore", test, () => Promise.resolve(sealed(fsStore(), KEY_A)));
blockStoreContract("SealedStore over S3BlockStore (radosgw)", test, async () =>
  sealed((await freshBucket("sealed-contract", { listPageSize: 2, multipartThresholdBytes: 5 * 1024 * 1024,
    multipartPartSizeBytes: 5 * 1024 * 1024 })).store, KEY_A));

// The vector of docs/FORMAT.md ("Sealed objects"): key bytes 00..1f, salt a0..bf.
const VECTOR = {
  key: Uint8Array.from({ length: 32 }, (_, i) => i),
  salt: Uint8Array.from({ length: 32 }, (_, i) => 0xa0 + i),
  objectKey: "demo.duckdb/latest.json",
  plaintext: "haduck test vector: a sealed object\n",
  keyId: "6b57f6a903c2e1d2",
  sealedHex: "48445345414c01106b57f6a903c2e1d20000000000000024a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbd" +
    "bebf59f2c8ef4a872efd306ab7211a8e956c7b88a7c79f38ed875a000507be390081176d2e2fd3309add097ce73fac51f00afdb4c41b",
};

/** The format of docs/FORMAT.md written again with WebCrypto alone, to check the code against the spec. */
async function sealBySpec(key: Uint8Array, salt: Uint8Array, objectKey: string, plain: Uint8Array): Promise<Uint8Array> {
  const chunkBytes = 65536;
  const header = new Uint8Array(56);
  header.set(new TextEncoder().encode("HDSEAL"), 0);
  header[6] = 1;
  header[7] = 16;
  const id = new Uint8Array(await crypto.subtle.digest("SHA-256",
    new Uint8Array([...new TextEncoder().encode("haduck seal v1 key id\0"), ...key]))).subarray(0, 8);
  header.set(id, 8);
  new DataView(header.buffer).setBigUint64(16, BigInt(plain.byteLength));
  header.set(salt, 24);
  const master = await crypto.subtle.importKey("raw", key, "HKDF", false, ["deriveKey"]);
  const aes = await crypto.subtle.deriveKey({ name: "HKDF", hash: "SHA-256", salt,
    info: new TextEncoder().encode("haduck seal v1 object key") }, master, { name: "AES-GCM", length: 256 }, false,
  ["encrypt"]);
  const chunks = Math.max(1, Math.ceil(plain.byteLength / chunkBytes));
  const parts: Uint8Array[] = [header];
  for (let index = 0; index < chunks; index++) {
    const last = index === chunks - 1;
    const iv = new Uint8Array(12);
    new DataView(iv.buffer).setBigUint64(0, BigInt(index));
    iv[11] = last ? 1 : 0;
    const keyBytes = new TextEncoder().encode(objectKey);
    const ad = new Uint8Array(56 + 9 + keyBytes.byteLength);
    ad.set(header, 0);
    new DataView(ad.buffer).setBigUint64(56, BigInt(index));
    ad[64] = last ? 1 : 0;
    ad.set(keyBytes, 65);
    parts.push(new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: ad }, aes,
      plain.subarray(index * chunkBytes, (index + 1) * chunkBytes))));
  }
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.byteLength, 0));
  let at = 0;
  for (const part of parts) out.set(part, (at += part.byteLength) - part.byteLength);
  return out;
}

test("seal() gives docs/FORMAT.md's test vector byte for byte, and a WebCrypto reading of the spec agrees", async () => {
  const key = sealKey(VECTOR.key);
  expect(key.id).toBe(VECTOR.keyId);
  const plain = new TextEncoder().encode(VECTOR.plaintext);
  const bytes = seal(key, VECTOR.objectKey, plain, { salt: VECTOR.salt });
  expect(hex(bytes)).toBe(VECTOR.sealedHex);
  expect(hex(await sealBySpec(VECTOR.key, VECTOR.salt, VECTOR.objectKey, plain))).toBe(VECTOR.sealedHex);
  // Several chunks, the last one short: the spec and the code still agree.
  const long = randomBytes(3 * SEAL_CHUNK_BYTES + 123);
  expect(hex(seal(key, "k/segments/x.dblk", long, { salt: VECTOR.salt })))
    .toBe(hex(await sealBySpec(VECTOR.key, VECTOR.salt, "k/segments/x.dblk", long)));
  // The vector is documented.
  const format = readFileSync(join(import.meta.dir, "../../docs/FORMAT.md"), "utf8").replace(/\s+/g, "");
  expect(format).toContain(VECTOR.sealedHex);
});

test("libcrypto's GCM (through Bun's FFI) is the one used here, and it agrees with node:crypto at any offset", () => {
  const cipher = chunkCipher();
  // CI installs OpenSSL (libssl3) with radosgw: where it loads, a seal allocates nothing.
  if (existsSync("/usr/lib/x86_64-linux-gnu/libcrypto.so.3")) expect(cipher.name).toBe("libcrypto");
  const key = randomBytes(32);
  const nonce = randomBytes(12);
  const associatedData = randomBytes(90);
  for (const [size, offset] of [[0, 0], [1, 7], [4095, 3], [SEAL_CHUNK_BYTES, 1], [SEAL_CHUNK_BYTES, 0]]) {
    const backing = randomBytes(size + offset + 40);
    const plain = backing.subarray(offset, offset + size);
    const expected = new Uint8Array(size + 16);
    nodeChunkCipher.seal(key, nonce, associatedData, plain, expected.subarray(0, size), expected.subarray(size));
    const actual = new Uint8Array(size + 16 + offset).subarray(offset);
    cipher.seal(key, nonce, associatedData, plain, actual.subarray(0, size), actual.subarray(size));
    expect(hex(actual)).toBe(hex(expected));
    // Either opens what the other sealed, in place; a flipped tag bit is refused by both.
    expect(nodeChunkCipher.openInPlace(key, nonce, associatedData, actual.subarray(0, size), actual.subarray(size)))
      .toBe(true);
    expect(hex(actual.subarray(0, size))).toBe(hex(plain));
    expect(cipher.openInPlace(key, nonce, associatedData, expected.subarray(0, size), expected.subarray(size)))
      .toBe(true);
    expect(hex(expected.subarray(0, size))).toBe(hex(plain));
    const tampered = new Uint8Array(size + 16);
    cipher.seal(key, nonce, associatedData, plain, tampered.subarray(0, size), tampered.subarray(size));
    tampered[size + 3] ^= 1;
    expect(cipher.openInPlace(key, nonce, associatedData, tampered.slice(0, size), tampered.subarray(size))).toBe(false);
    expect(nodeChunkCipher.openInPlace(key, nonce, associatedData, tampered.slice(0, size), tampered.subarray(size)))
      .toBe(false);
  }
  // Too small a destination is refused before libcrypto writes through its pointer.
  expect(() => cipher.seal(key, nonce, associatedData, new Uint8Array(64), new Uint8Array(63), new Uint8Array(16)))
    .toThrow(RangeError);
});

test("sealed sizes map to plaintext sizes one to one, at and around chunk boundaries", () => {
  for (const size of [0, 1, 15, 16, 17, SEAL_CHUNK_BYTES - 1, SEAL_CHUNK_BYTES, SEAL_CHUNK_BYTES + 1,
    2 * SEAL_CHUNK_BYTES, 5 * SEAL_CHUNK_BYTES + 77, 64 * 1024 * 1024]) {
    expect(plainSizeBytes(sealedSizeBytes(size))).toBe(size);
  }
  expect(sealedSizeBytes(0)).toBe(SEAL_HEADER_BYTES + 16);
  expect(plainSizeBytes(SEAL_HEADER_BYTES + 3)).toBeUndefined();
});

test("SealedStore round-trips whole objects and every range across chunk boundaries, in a fresh process's cache too", async () => {
  const inner = fsStore();
  const store = sealed(inner, KEY_A);
  const body = randomBytes(3 * SEAL_CHUNK_BYTES + 100);
  await store.put("db/segments/a.dblk", body);
  expect(await store.get("db/segments/a.dblk")).toEqual(body);
  expect((await store.head("db/segments/a.dblk"))!.sizeBytes).toBe(body.byteLength);
  expect((await inner.head("db/segments/a.dblk"))!.sizeBytes).toBe(sealedSizeBytes(body.byteLength));
  const C = SEAL_CHUNK_BYTES;
  const ranges = [[0, 1], [0, C], [C - 1, 2], [C, C], [C - 1, C + 2], [2 * C + 5, C + 95], [3 * C, 100],
    [3 * C + 99, 1], [0, body.byteLength], [12345, 2 * C]];
  for (const reader of [store, sealed(inner, KEY_A)]) {
    for (const [offsetBytes, lengthBytes] of ranges) {
      expect(await reader.get("db/segments/a.dblk", { range: { offsetBytes, lengthBytes } }))
        .toEqual(body.subarray(offsetBytes, offsetBytes + lengthBytes));
    }
  }
  await expect(store.get("db/segments/a.dblk", { range: { offsetBytes: body.byteLength - 1, lengthBytes: 2 } }))
    .rejects.toThrow("the object holds");
  const listed = [];
  for await (const info of store.list("db/")) listed.push(info.sizeBytes);
  expect(listed).toEqual([body.byteLength]);
});

test("SealedStore stores no plaintext: a marker written through it is nowhere in the raw bytes", async () => {
  const inner = fsStore();
  const store = sealed(inner, KEY_A);
  const marker = new TextEncoder().encode("SECRET-MARKER-0451".repeat(1000));
  await store.put("db/frames/1.hwal", marker);
  const raw = await inner.get("db/frames/1.hwal");
  expect(Buffer.from(raw).includes(Buffer.from("SECRET-MARKER-0451"))).toBe(false);
  expect(Buffer.from(raw).subarray(0, 6).toString()).toBe("HDSEAL");
});

test("an object put in place of another of the same size is refused, naming the object read", async () => {
  const inner = fsStore();
  const store = sealed(inner, KEY_A);
  const a = randomBytes(100_000);
  const b = randomBytes(100_000);
  await store.put("db/segments/a.dblk", a);
  await store.put("db/segments/b.dblk", b);
  // An attacker with write access copies b's stored bytes over a.
  await inner.put("db/segments/a.dblk", await inner.get("db/segments/b.dblk"));
  for (const options of [{}, { range: { offsetBytes: 70_000, lengthBytes: 10 } }]) {
    const error = await sealed(inner, KEY_A).get("db/segments/a.dblk", options).catch((e) => e);
    expect(error).toBeInstanceOf(ChecksumMismatchError);
    expect(error.code).toBe("CHECKSUM_MISMATCH");
    expect(error.message).toContain("db/segments/a.dblk");
    expect(error.message).toContain("put in place of another");
  }
  expect(await store.get("db/segments/b.dblk")).toEqual(b);
});

test("a flipped bit anywhere (header, ciphertext, tag) is refused by name", async () => {
  const inner = fsStore();
  const store = sealed(inner, KEY_A);
  const body = randomBytes(2 * SEAL_CHUNK_BYTES + 10);
  await store.put("db/manifests/1.json", body);
  const good = await inner.get("db/manifests/1.json");
  for (const at of [6, 20, 30, SEAL_HEADER_BYTES, SEAL_HEADER_BYTES + SEAL_CHUNK_BYTES + 3, good.byteLength - 1]) {
    const bad = good.slice();
    bad[at] ^= 0x01;
    await inner.put("db/manifests/1.json", bad);
    const error = await store.get("db/manifests/1.json").catch((e) => e);
    expect(error).toBeInstanceOf(ChecksumMismatchError);
    expect(error.message).toContain("db/manifests/1.json");
  }
  // A flip in the key id names a key nobody has; one in the magic makes a plain object: both refused.
  for (const [at, type] of [[9, EncryptionKeyError], [0, NotSealedError]] as const) {
    const bad = good.slice();
    bad[at] ^= 0x01;
    await inner.put("db/manifests/1.json", bad);
    const error = await store.get("db/manifests/1.json").catch((e) => e);
    expect(error).toBeInstanceOf(type);
    expect(error.message).toContain("db/manifests/1.json");
  }
});

test("a truncated or extended object is refused by name, whole and ranged", async () => {
  const inner = fsStore();
  const store = sealed(inner, KEY_A);
  const body = randomBytes(2 * SEAL_CHUNK_BYTES + 10);
  await store.put("db/segments/t.dblk", body);
  const good = await inner.get("db/segments/t.dblk");
  // Cut at a chunk boundary: every remaining chunk is intact, only the length gives it away.
  for (const cut of [good.byteLength - 1, SEAL_HEADER_BYTES + 2 * (SEAL_CHUNK_BYTES + 16), SEAL_HEADER_BYTES + 10]) {
    await inner.put("db/segments/t.dblk", good.subarray(0, cut));
    const error = await sealed(inner, KEY_A).get("db/segments/t.dblk").catch((e) => e);
    expect(error).toBeInstanceOf(ChecksumMismatchError);
    expect(error.message).toContain("db/segments/t.dblk");
  }
  const longer = new Uint8Array(good.byteLength + 16);
  longer.set(good);
  await inner.put("db/segments/t.dblk", longer);
  await expect(sealed(inner, KEY_A).get("db/segments/t.dblk")).rejects.toThrow("truncated or extended");
  await inner.put("db/segments/t.dblk", good.subarray(0, SEAL_HEADER_BYTES + SEAL_CHUNK_BYTES + 16));
  await expect(sealed(inner, KEY_A).get("db/segments/t.dblk", { range: { offsetBytes: 2 * SEAL_CHUNK_BYTES,
    lengthBytes: 5 } })).rejects.toThrow("db/segments/t.dblk");
});

test("a wrong or missing key is EncryptionKeyError naming the key id the object needs", async () => {
  const inner = fsStore();
  await sealed(inner, KEY_A).put("db/latest.json", new TextEncoder().encode("{}"));
  const idA = keyIdOf(Buffer.from(KEY_A, "hex"));
  for (const store of [sealed(inner, KEY_B), sealed(inner)]) {
    const error = await store.get("db/latest.json").catch((e) => e);
    expect(error).toBeInstanceOf(EncryptionKeyError);
    expect(error.code).toBe("ENCRYPTION_KEY");
    expect(error.keyId).toBe(idA);
    expect(error.message).toContain(`key id ${idA}`);
    expect(error.message).toContain("HADUCK_ENCRYPTION_KEY");
    expect(error.message).not.toContain(KEY_A);
    expect(error.message).not.toContain(KEY_B);
  }
  // The old key anywhere in the keyring opens it.
  expect(await sealed(inner, KEY_B, KEY_A).get("db/latest.json")).toEqual(new TextEncoder().encode("{}"));
});

test("a plain object in an encrypted store is refused unless plain objects are accepted; lease.json stays plain", async () => {
  const inner = fsStore();
  await inner.put("db/manifests/1.json", new TextEncoder().encode("{\"planted\":true}"));
  await inner.put("db/segments/s.dblk", randomBytes(1000));
  const store = sealed(inner, KEY_A);
  const error = await store.get("db/manifests/1.json").catch((e) => e);
  expect(error).toBeInstanceOf(NotSealedError);
  expect(error.message).toContain("db/manifests/1.json");
  expect(error.message).toContain("haduck rekey");
  await expect(store.get("db/segments/s.dblk", { range: { offsetBytes: 0, lengthBytes: 10 } }))
    .rejects.toBeInstanceOf(NotSealedError);
  const migrating = new SealedStore(inner, { keyring: keyring(KEY_A), acceptPlain: true });
  expect(new TextDecoder().decode(await migrating.get("db/manifests/1.json"))).toBe("{\"planted\":true}");
  await store.put("db/lease.json", new TextEncoder().encode("{\"epoch\":1}"));
  expect(new TextDecoder().decode(await inner.get("db/lease.json"))).toBe("{\"epoch\":1}");
  expect(new TextDecoder().decode(await store.get("db/lease.json"))).toBe("{\"epoch\":1}");
});

test("rekey() reseals plain and old-key objects with the current key, keeps the plaintext, and a second run skips all", async () => {
  const inner = fsStore();
  const bodies = new Map<string, Uint8Array>();
  for (let i = 0; i < 12; i++) bodies.set(`db/segments/${i}.dblk`, randomBytes(1000 + i * 20_000));
  const entries = [...bodies];
  for (const [key, body] of entries.slice(0, 4)) await inner.put(key, body); // plain
  for (const [key, body] of entries.slice(4, 8)) await sealed(inner, KEY_A).put(key, body); // old key
  for (const [key, body] of entries.slice(8)) await sealed(inner, KEY_B).put(key, body); // current already
  await inner.put("db/lease.json", new TextEncoder().encode("{}"));
  const store = sealed(inner, KEY_B, KEY_A);
  const dry = await rekey(store, { dryRun: true });
  expect(dry.objectsResealed).toEqual({ plain: 4, [keyIdOf(Buffer.from(KEY_A, "hex"))]: 4 });
  expect(await inner.get("db/segments/0.dblk")).toEqual(bodies.get("db/segments/0.dblk")!);
  const first = await rekey(store, { concurrencyMax: 3 });
  expect(first).toMatchObject({ objectsChecked: 13, objectsCurrent: 4, objectsPlainKept: 1, objectsGone: 0 });
  expect(Object.values(first.objectsResealed).reduce((a, b) => a + b)).toBe(8);
  const second = await rekey(store);
  expect(second).toMatchObject({ objectsChecked: 13, objectsCurrent: 12, objectsResealed: {} });
  // The old key is retired: everything opens with the new one alone.
  for (const [key, body] of bodies) expect(await sealed(inner, KEY_B).get(key)).toEqual(body);
});

test("reseal() never brings back an object deleted after it was listed, nor overwrites one changed meanwhile", async () => {
  const inner = fsStore();
  await sealed(inner, KEY_A).put("db/latest.json", new TextEncoder().encode("old"));
  await sealed(inner, KEY_A).put("db/segments/gone.dblk", new TextEncoder().encode("x"));
  const listed = [];
  for await (const info of inner.list("db/")) listed.push(info);
  await inner.delete("db/segments/gone.dblk");
  await sealed(inner, KEY_B).put("db/latest.json", new TextEncoder().encode("new")); // a writer with the new key
  const store = sealed(inner, KEY_B, KEY_A);
  const outcomes = await Promise.all(listed.map((info) => store.reseal(info)));
  expect(outcomes.map((done) => done.outcome).sort()).toEqual(["current", "gone"]);
  expect(await inner.head("db/segments/gone.dblk")).toBeUndefined();
  expect(new TextDecoder().decode(await sealed(inner, KEY_B).get("db/latest.json"))).toBe("new");
});

test("Keyring reads hex, base64, several keys and key files, and refuses malformed keys without echoing them", () => {
  const bytes = Buffer.from(KEY_A, "hex");
  const base64 = bytes.toString("base64");
  expect(keyring(KEY_A).current!.id).toBe(keyIdOf(bytes));
  expect(Keyring.fromEnv({ HADUCK_ENCRYPTION_KEY: base64 }).current!.id).toBe(keyIdOf(bytes));
  expect(Keyring.fromEnv({ HADUCK_ENCRYPTION_KEY: bytes.toString("base64url") }).current!.id).toBe(keyIdOf(bytes));
  expect(keyring(KEY_B, KEY_A).ids).toEqual([keyIdOf(Buffer.from(KEY_B, "hex")), keyIdOf(bytes)]);
  const file = join(root, "keys");
  writeFileSync(file, `# rotated 2026-12\n${KEY_B}\n\n${base64}  # the old one\n`);
  expect(Keyring.fromEnv({ HADUCK_ENCRYPTION_KEY_FILE: file }).ids).toEqual(keyring(KEY_B, KEY_A).ids);
  expect(Keyring.fromEnv({}).current).toBeUndefined();
  for (const env of [{ HADUCK_ENCRYPTION_KEY: "abcd" }, { HADUCK_ENCRYPTION_KEY: `${KEY_A}00` },
    { HADUCK_ENCRYPTION_KEY_FILE: join(root, "missing") }, { HADUCK_ENCRYPTION_KEY: KEY_A, HADUCK_ENCRYPTION_KEY_FILE: file }]) {
    expect(() => Keyring.fromEnv(env)).toThrow(StoreConfigError);
  }
  expect(() => Keyring.fromEnv({ HADUCK_ENCRYPTION_KEY: `${KEY_A}00` })).not.toThrow(KEY_A);
  expect(() => Keyring.fromEnv({ HADUCK_ENCRYPTION_KEY: "abcd" })).toThrow("64 hex digits");
  expect(sealedStoreFromEnv(fsStore(), { HADUCK_ENCRYPTION_KEY: KEY_A, HADUCK_ENCRYPTION_ACCEPT_PLAIN: "1" }).acceptPlain)
    .toBe(true);
});
