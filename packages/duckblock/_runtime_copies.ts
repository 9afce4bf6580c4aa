/**
 * @module
 * `RuntimeCopies`: a bound on the memory the runtime holds for us and frees only when its collector
 * runs: the copies Bun's fetch makes of request bodies, and the bodies of responses we have read
 * and dropped. Our own buffers are pooled or small; these are not ours to pool. So every
 * `bytesPerCollection` bytes handed over (or read), a full collection runs: a few milliseconds with
 * the small JS heap a replicator keeps, and the peak stays a constant above the baseline whatever
 * the database's size (bench/scale.ts). Elsewhere than Bun it does nothing.
 */
export class RuntimeCopies {
  #bytes = 0;
  constructor(readonly bytesPerCollection: number) {}

  add(bytes: number): void {
    this.#bytes += bytes;
    if (this.#bytes < this.bytesPerCollection) return;
    this.collect();
  }

  /** Frees what was dropped now (before a child process starts, say: the two would add up). */
  collect(): void {
    this.#bytes = 0;
    (globalThis as { Bun?: { gc(force: boolean): void } }).Bun?.gc(true);
  }
}
