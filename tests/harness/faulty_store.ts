/**
 * @module
 * `FaultyStore`: a `BlockStore` around a real one that, from a seed, fails individual operations
 * chosen by key class (segment, manifest, `latest.json`, other) and by moment (a window of the
 * operation count): it refuses them (nothing reaches the store), performs them and loses the
 * answer (the store has it, the caller sees an error, as S3 does after a timeout), or delays them.
 * Narrow faults that whole-host fault injection misses: only manifests refused, say.
 */
import { StoreUnavailableError } from "@haduck/s3-block-store";
import type {
  BlockStore, GetOptions, ListOptions, ObjectInfo, PutOptions, PutResult, StoreCapabilities,
} from "@haduck/s3-block-store";
import { seededRandom } from "./workload.ts";

export type KeyClass = "segment" | "page" | "manifest" | "latest" | "other";
export type FaultKind = "refuse" | "lose-answer" | "delay";
export type Operation = "put" | "get" | "head" | "list" | "delete";

export interface FaultRule {
  keyClass: KeyClass;
  operations: Operation[];
  kind: FaultKind;
  /** Chance that a matching operation inside the window fails. */
  probability: number;
  /** Operations (counted across the store) from `fromOperation` up to, not including, `untilOperation`. */
  fromOperation: number;
  untilOperation: number;
}

export function keyClassOf(key: string): KeyClass {
  if (/\/segments\//.test(key)) return "segment";
  if (/\/blockmaps\//.test(key)) return "page";
  if (/\/manifests\//.test(key)) return "manifest";
  if (key.endsWith("/latest.json")) return "latest";
  return "other";
}

/** A random schedule of one to three rules, each on one key class, for a workload of about `operations` calls. */
export function randomSchedule(seed: number, operations: number): FaultRule[] {
  const random = seededRandom(seed * 7919 + 17);
  const classes: KeyClass[] = ["segment", "page", "manifest", "manifest", "latest"];
  const kinds: FaultKind[] = ["refuse", "lose-answer", "lose-answer", "delay"];
  return Array.from({ length: 1 + random(3) }, () => {
    const from = random(operations);
    return {
      keyClass: classes[random(classes.length)],
      operations: random(4) === 0 ? ["put", "get", "head", "list"] : ["put"],
      kind: kinds[random(kinds.length)],
      probability: 0.3 + random(70) / 100,
      fromOperation: from,
      untilOperation: from + 5 + random(operations),
    } satisfies FaultRule;
  });
}

export interface FaultRecord {
  operation: Operation;
  key: string;
  kind: FaultKind;
}

export class FaultyStore implements BlockStore {
  readonly url: string;
  /** Every fault injected, in order. */
  readonly faults: FaultRecord[] = [];
  /** Off: every operation passes (the workload's end, the restores). */
  enabled = true;
  #count = 0;
  readonly #random: (n: number) => number;

  constructor(readonly inner: BlockStore, readonly rules: FaultRule[], seed: number) {
    this.url = inner.url;
    this.#random = seededRandom(seed);
  }

  /** The fault for this call, if any (and counts it). */
  #fault(operation: Operation, key: string): FaultKind | undefined {
    const index = this.#count++;
    if (!this.enabled) return undefined;
    for (const rule of this.rules) {
      if (rule.keyClass !== keyClassOf(key) || !rule.operations.includes(operation)) continue;
      if (index < rule.fromOperation || index >= rule.untilOperation) continue;
      if (this.#random(1000) < rule.probability * 1000) {
        this.faults.push({ operation, key, kind: rule.kind });
        return rule.kind;
      }
    }
    return undefined;
  }

  async #apply<T>(operation: Operation, key: string, call: () => Promise<T>): Promise<T> {
    const fault = this.#fault(operation, key);
    if (fault === "refuse") throw new StoreUnavailableError(`injected: ${operation} ${key} refused (503)`);
    if (fault === "delay") await new Promise((resolve) => setTimeout(resolve, 5 + this.#random(50)));
    const result = await call();
    if (fault === "lose-answer") throw new StoreUnavailableError(`injected: ${operation} ${key} done, answer lost`);
    return result;
  }

  put(key: string, body: Uint8Array, options?: PutOptions): Promise<PutResult> {
    return this.#apply("put", key, () => this.inner.put(key, body, options));
  }

  get(key: string, options?: GetOptions): Promise<Uint8Array> {
    return this.#apply("get", key, () => this.inner.get(key, options));
  }

  head(key: string, options?: { signal?: AbortSignal }): Promise<ObjectInfo | undefined> {
    return this.#apply("head", key, () => this.inner.head(key, options));
  }

  async *list(prefix: string, options?: ListOptions): AsyncIterable<ObjectInfo> {
    const fault = this.#fault("list", prefix);
    if (fault === "refuse" || fault === "lose-answer") {
      throw new StoreUnavailableError(`injected: list ${prefix} refused (503)`);
    }
    yield* this.inner.list(prefix, options);
  }

  delete(key: string, options?: { signal?: AbortSignal }): Promise<void> {
    return this.#apply("delete", key, () => this.inner.delete(key, options));
  }

  deleteMany(keys: string[], options?: { signal?: AbortSignal }): Promise<void> {
    return this.inner.deleteMany(keys, options);
  }

  probeCapabilities(): Promise<StoreCapabilities> {
    return this.inner.probeCapabilities();
  }
}
