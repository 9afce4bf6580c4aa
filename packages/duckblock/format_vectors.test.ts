/** The test vectors of docs/FORMAT.md, read from the document itself so the two cannot drift. */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { COMPRESSION_NONE, decodeSegment, encodeSegment, hex, sha256 } from "./_format.ts";
import { decodeFrame, encodeFrame } from "./_frames.ts";

const FORMAT = readFileSync(resolve(import.meta.dir, "../../docs/FORMAT.md"), "utf8");

function vector(name: string): string {
  const match = new RegExp("```hex " + name + "\\n([0-9a-f\\n]+)```").exec(FORMAT);
  if (!match) throw new Error(`docs/FORMAT.md has no \`\`\`hex ${name} block`);
  return match[1].replace(/\n/g, "");
}

const block2 = Uint8Array.from({ length: 16 }, (_, i) => i);
const block5 = new TextEncoder().encode("haduck block #2!");

test("encodeSegment() reproduces the segment test vector of docs/FORMAT.md byte for byte", () => {
  const { bytes, sha256: digest } = encodeSegment(
    { blockAllocSize: 16384, generation: 7n, sequence: 0, previousSha256: new Uint8Array(32).fill(0xab) },
    [
      { blockId: 5n, raw: block5, stored: block5, compression: COMPRESSION_NONE, duckdbChecksumValid: false },
      { blockId: 2n, raw: block2, stored: block2, compression: COMPRESSION_NONE, duckdbChecksumValid: true },
    ],
  );
  expect(hex(bytes)).toBe(vector("segment"));
  expect(hex(digest)).toBe(vector("segment-sha256"));
  expect(hex(sha256(bytes.subarray(0, 224)))).toBe(vector("segment-sha256")); // header and entries
  expect(hex(bytes.subarray(256))).toBe(vector("segment-sha256")); // the trailer
});

test("decodeSegment() reads the test vector back, and refuses it with any byte flipped", () => {
  const bytes = Buffer.from(vector("segment"), "hex");
  const { header, entries } = decodeSegment(new Uint8Array(bytes));
  expect(header).toEqual({ blockAllocSize: 16384, generation: 7n, sequence: 0,
    previousSha256: new Uint8Array(32).fill(0xab) });
  expect(entries.map((entry) => [entry.blockId, entry.offsetBytes, entry.duckdbChecksumValid])).toEqual([
    [2n, 224, true],
    [5n, 240, false],
  ]);
  expect(bytes.subarray(240, 256)).toEqual(Buffer.from(block5));
  for (let at = 0; at < bytes.length; at += 7) {
    const flipped = new Uint8Array(bytes);
    flipped[at] ^= 0x01;
    expect(() => decodeSegment(flipped)).toThrow(RangeError);
  }
});

test("decodeSegment() refuses bytes outside every entry even under a recomputed trailer, and names a bad payload", () => {
  const bytes = new Uint8Array(Buffer.from(vector("segment"), "hex"));
  const resealed = (segment: Uint8Array, payloadStart = 224) => {
    segment.set(sha256(segment.subarray(0, payloadStart)), segment.byteLength - 32);
    return segment;
  };
  // One stray byte between the last payload and the trailer.
  const padded = new Uint8Array(bytes.byteLength + 1);
  padded.set(bytes.subarray(0, 256));
  expect(() => decodeSegment(resealed(padded))).toThrow("1 bytes lie outside every entry");
  // Entry 1 moved one byte on: a gap between the payloads.
  const gapped = new Uint8Array(bytes);
  new DataView(gapped.buffer).setBigUint64(96 + 64 + 8, 241n, true);
  expect(() => decodeSegment(resealed(gapped))).toThrow("entry 1 does not follow");
  // A payload byte flipped: the trailer holds, the entry's digest does not.
  const flipped = new Uint8Array(bytes);
  flipped[245] ^= 0x20;
  expect(() => decodeSegment(flipped)).toThrow("entry 1 (block 5): its SHA-256 does not match");
  expect(decodeSegment(flipped, { payloads: false }).entries.length).toBe(2); // for callers that check payloads
});

const frameInputs = () => ({
  blockAllocSize: 262144, generation: 7, number: 2, walOffset: 4096,
  wal: new TextEncoder().encode("haduck WAL bytes: two commits!!!"),
  commits: [{ walEnd: 4116, unixMs: 1795000000000 }, { walEnd: 4128, unixMs: 1795000000250 }],
  blockIds: [] as number[], blocks: new Uint8Array(0), previousSha256: new Uint8Array(32).fill(0xcd),
});

test("encodeFrame() reproduces the frame test vector of docs/FORMAT.md byte for byte", () => {
  const { bytes, sha256: digest } = encodeFrame(frameInputs(), { version: 1 });
  expect(hex(bytes)).toBe(vector("frame"));
  expect(hex(digest)).toBe(vector("frame").slice(-64));
  expect(hex(sha256(bytes.subarray(0, bytes.byteLength - 32)))).toBe(hex(digest));
});

test("decodeFrame() reads the frame vector back, and refuses it with any byte flipped", () => {
  const bytes = new Uint8Array(Buffer.from(vector("frame"), "hex"));
  const frame = decodeFrame(bytes, "vector");
  const { wal, previousSha256, ...rest } = frameInputs();
  expect({ ...frame, wal: undefined, previousSha256: undefined, sha256: undefined, blocks: undefined })
    .toEqual({ ...rest, epoch: 0, version: 1, wal: undefined, previousSha256: undefined, sha256: undefined,
      blocks: undefined });
  expect(Buffer.from(frame.wal)).toEqual(Buffer.from(wal));
  expect(Buffer.from(frame.previousSha256)).toEqual(Buffer.from(previousSha256));
  for (let at = 0; at < bytes.length; at++) {
    const flipped = new Uint8Array(bytes);
    flipped[at] ^= 0x10;
    expect(() => decodeFrame(flipped, "frames/x.hwal")).toThrow("WAL frame frames/x.hwal is damaged");
  }
});

test("a frame with blocks round-trips, and a resealed frame whose fields do not add up is refused", () => {
  const block = Uint8Array.from({ length: 16384 }, (_, i) => i % 251);
  const { bytes } = encodeFrame({ ...frameInputs(), blockAllocSize: 16384, blockIds: [3, 9],
    blocks: new Uint8Array([...block, ...block.reverse()]) }, { version: 1 });
  const frame = decodeFrame(bytes, "k");
  expect(frame.blockIds).toEqual([3, 9]);
  expect(frame.blocks.byteLength).toBe(32768);
  const reseal = (edit: (view: DataView) => void) => {
    const copy = new Uint8Array(bytes);
    edit(new DataView(copy.buffer));
    copy.set(sha256(copy.subarray(0, copy.byteLength - 32)), copy.byteLength - 32);
    return copy;
  };
  expect(() => decodeFrame(reseal((view) => view.setUint32(52, 3, true)), "k")).toThrow("add up");
  expect(() => decodeFrame(reseal((view) => view.setBigUint64(96, 4200n, true)), "k")).toThrow("commit 0");
  expect(() => decodeFrame(reseal((view) => view.setBigUint64(128, 10n, true)), "k")).toThrow("not ascending");
});

/** The version 2 vector: one block that zstd shrinks, and a WAL run it does not (stored raw). */
const frameV2Inputs = () => {
  const block = new Uint8Array(16384);
  block.set(new TextEncoder().encode("haduck block v2!"));
  return { ...frameInputs(), blockAllocSize: 16384, number: 3, epoch: 2, blockIds: [4], blocks: block };
};

test("encodeFrame() reproduces the version 2 frame vector of docs/FORMAT.md (zstd where it pays) byte for byte", () => {
  const { bytes, sha256: digest } = encodeFrame(frameV2Inputs());
  expect(hex(bytes)).toBe(vector("frame-v2"));
  expect(hex(digest)).toBe(vector("frame-v2").slice(-64));
  expect(bytes.byteLength).toBeLessThan(16384 / 50); // the block went in compressed
  const view = new DataView(bytes.buffer);
  expect([view.getUint16(8, true), view.getUint8(96 + 32 + 12), view.getUint8(96 + 32 + 16 + 12)]).toEqual([2, 1, 0]);
});

test("decodeFrame() reads version 2 back to the raw pieces, and refuses it with any byte flipped", () => {
  const bytes = new Uint8Array(Buffer.from(vector("frame-v2"), "hex"));
  const frame = decodeFrame(bytes, "vector");
  const inputs = frameV2Inputs();
  expect({ version: frame.version, number: frame.number, epoch: frame.epoch, blockIds: frame.blockIds,
    commits: frame.commits }).toEqual({ version: 2, number: 3, epoch: 2, blockIds: [4], commits: inputs.commits });
  expect(Buffer.compare(frame.blocks, inputs.blocks)).toBe(0);
  expect(Buffer.compare(frame.wal, inputs.wal)).toBe(0);
  for (let at = 0; at < bytes.length; at++) {
    const flipped = new Uint8Array(bytes);
    flipped[at] ^= 0x10;
    expect(() => decodeFrame(flipped, "frames/x.hwal")).toThrow("WAL frame frames/x.hwal is damaged");
  }
});

test("a version 2 frame whose resealed piece table lies is refused by name, never decoded wrong", () => {
  const bytes = encodeFrame(frameV2Inputs()).bytes;
  const reseal = (edit: (view: DataView) => void) => {
    const copy = new Uint8Array(bytes);
    edit(new DataView(copy.buffer));
    copy.set(sha256(copy.subarray(0, copy.byteLength - 32)), copy.byteLength - 32);
    return copy;
  };
  const blockEntry = 96 + 32;
  expect(() => decodeFrame(reseal((view) => view.setUint8(blockEntry + 12, 0)), "k")).toThrow("a raw piece");
  expect(() => decodeFrame(reseal((view) => view.setUint8(blockEntry + 12, 9)), "k")).toThrow("unknown compression 9");
  expect(() => decodeFrame(reseal((view) => view.setUint32(blockEntry + 8, 1, true)), "k")).toThrow("add up");
  expect(() => decodeFrame(reseal((view) => view.setBigUint64(blockEntry + 16, 5n, true)), "k")).toThrow("names a block");
  // Random blocks stay raw: a frame is never larger than version 1's plus its piece table (8 more
  // bytes per block, 16 for the WAL's entry).
  const random = crypto.getRandomValues(new Uint8Array(16384));
  const raw = encodeFrame({ ...frameV2Inputs(), blocks: random });
  expect(raw.bytes.byteLength).toBe(encodeFrame({ ...frameV2Inputs(), blocks: random }, { version: 1 }).bytes.byteLength + 8 + 16);
  expect(Buffer.compare(decodeFrame(raw.bytes, "k").blocks, random)).toBe(0);
});
