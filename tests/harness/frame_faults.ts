/**
 * @module
 * `FrameFaults`: a `BlockStore` around a real one that fails the PUTs of chosen WAL frames by
 * number, the others untouched, to test a pipelined shipper with frames in flight: refuse frame k
 * (nothing stored) a few times or for good, perform it and lose the answer, or delay it, while k+1
 * and k+2 go out; or every frame at once (`mode`). It records the order frames landed in and every
 * body sent per key.
 */
import { parseFrameKey } from "@haduck/duckblock";
import {
  type BlockStore,
  type GetOptions,
  type ListOptions,
  type PutOptions,
  StoreUnavailableError,
} from "@haduck/s3-block-store";

export interface FrameFault {
  kind: "refuse" | "lose-answer" | "delay";
  /** How many PUTs of the frame this applies to (Infinity: all of them). */
  times: number;
  delayMs?: number;
}

export class FrameFaults implements BlockStore {
  /** Frame number -> its fault (any generation). */
  readonly rules = new Map<number, FrameFault>();
  /** Every frame PUT at once, whatever its number: refused, or performed with its answer lost. */
  mode: "ok" | "refuse" | "lose-answer" = "ok";
  /** Delays the first PUT of every `every`-th frame by `ms` (frames then land out of order). */
  delayEvery: { every: number; ms: number } | undefined;
  faults = 0;
  /** Frames stored while a lower-numbered frame of their generation was not: pipelining at work. */
  outOfOrder = 0;
  /** Keys that were sent with two different bodies (must stay 0: a frame key holds one frame). */
  rewrites = 0;
  readonly #stored = new Map<number, Set<number>>();
  readonly #bodies = new Map<string, string>();
  readonly #attempts = new Map<string, number>();
  constructor(readonly inner: BlockStore) {}

  get url() {
    return this.inner.url;
  }

  /** Whether frames 1..number of `generation` are all stored. */
  storedUpTo(generation: number, number: number): boolean {
    const stored = this.#stored.get(generation) ?? new Set();
    for (let n = 1; n <= number; n++) if (!stored.has(n)) return false;
    return true;
  }

  storedFrames(generation: number): number[] {
    return [...(this.#stored.get(generation) ?? [])].sort((a, b) => a - b);
  }

  async put(key: string, body: Uint8Array, options?: PutOptions) {
    const frame = parseFrameKey(key);
    if (!frame) return await this.inner.put(key, body, options);
    const digest = Buffer.from(await crypto.subtle.digest("SHA-256", body)).toString("hex");
    if (this.#bodies.has(key) && this.#bodies.get(key) !== digest) this.rewrites++;
    this.#bodies.set(key, digest);
    const attempt = (this.#attempts.get(key) ?? 0) + 1;
    this.#attempts.set(key, attempt);
    const rule = this.mode === "ok" ? this.rules.get(frame.number) : { kind: this.mode, times: Infinity };
    const faulty = rule && attempt <= rule.times;
    if (faulty) this.faults++;
    if (faulty && rule.kind === "refuse") throw new StoreUnavailableError(`injected: PUT of frame ${frame.number} refused`);
    if (faulty && rule.kind === "delay") await Bun.sleep(rule.delayMs ?? 300);
    if (!faulty && attempt === 1 && this.delayEvery && frame.number % this.delayEvery.every === 0) {
      await Bun.sleep(this.delayEvery.ms);
    }
    const result = await this.inner.put(key, body, options);
    const stored = this.#stored.get(frame.generation) ?? new Set<number>();
    this.#stored.set(frame.generation, stored);
    stored.add(frame.number);
    for (let n = 1; n < frame.number; n++) {
      if (!stored.has(n)) {
        this.outOfOrder++;
        break;
      }
    }
    if (faulty && rule.kind === "lose-answer") {
      throw new StoreUnavailableError(`injected: PUT of frame ${frame.number} performed, answer lost`);
    }
    return result;
  }
  get(key: string, options?: GetOptions) {
    return this.inner.get(key, options);
  }
  head(key: string, options?: { signal?: AbortSignal }) {
    return this.inner.head(key, options);
  }
  list(prefix: string, options?: ListOptions) {
    return this.inner.list(prefix, options);
  }
  delete(key: string, options?: { signal?: AbortSignal }) {
    return this.inner.delete(key, options);
  }
  deleteMany(keys: string[], options?: { signal?: AbortSignal }) {
    return this.inner.deleteMany(keys, options);
  }
  probeCapabilities() {
    return this.inner.probeCapabilities();
  }
}
