/**
 * @module
 * A bound on requests and bytes in flight. A request waits (in FIFO order) until both its slot
 * and its bytes fit; one request larger than the byte bound runs alone rather than never.
 */

export interface LimiterOptions {
  /** Requests in flight at most. Default 16. */
  requestsInFlightMax?: number;
  /** Payload bytes in flight at most. Default 64 MiB. */
  bytesInFlightMax?: number;
}

export class Limiter {
  readonly requestsInFlightMax: number;
  readonly bytesInFlightMax: number;
  #requests = 0;
  #bytes = 0;
  #waiters: { bytes: number; wake: () => void }[] = [];

  constructor(options: LimiterOptions = {}) {
    this.requestsInFlightMax = options.requestsInFlightMax ?? 16;
    this.bytesInFlightMax = options.bytesInFlightMax ?? 64 * 1024 * 1024;
    if (!(this.requestsInFlightMax >= 1) || !(this.bytesInFlightMax >= 1)) {
      throw new RangeError("Limiter bounds must be at least 1");
    }
  }

  get requestsInFlight(): number {
    return this.#requests;
  }

  get bytesInFlight(): number {
    return this.#bytes;
  }

  #fits(bytes: number): boolean {
    if (this.#requests >= this.requestsInFlightMax) return false;
    return this.#requests === 0 || this.#bytes + bytes <= this.bytesInFlightMax;
  }

  async run<T>(bytes: number, task: () => Promise<T>): Promise<T> {
    if (this.#waiters.length > 0 || !this.#fits(bytes)) {
      // #wakeNext() accounts for the request before waking it, so a burst of releases cannot overshoot.
      await new Promise<void>((wake) => this.#waiters.push({ bytes, wake }));
    } else {
      this.#requests++;
      this.#bytes += bytes;
    }
    try {
      return await task();
    } finally {
      this.#requests--;
      this.#bytes -= bytes;
      this.#wakeNext();
    }
  }

  #wakeNext(): void {
    while (this.#waiters.length > 0 && this.#fits(this.#waiters[0].bytes)) {
      const waiter = this.#waiters.shift()!;
      this.#requests++;
      this.#bytes += waiter.bytes;
      waiter.wake();
    }
  }
}
