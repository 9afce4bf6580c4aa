/**
 * @module
 * The gate every statement of `POST /sql` passes on a node: `runningMax` at once, `queuedMax` more
 * waiting in order, readers never holding the last slot, and the running reads interrupted when
 * the node stops.
 */
import type { DuckDBConnection } from "@duckdb/node-api";

/** An error with a stable code the admin app maps to a status (see `STATUS_OF_CODE`). */
export function coded(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

/** A statement in the gate: its connection, and where it is (what an interrupt may do to it). */
export interface Running {
  connection: DuckDBConnection;
  /**
   * Where the statement is: `reading` only inside the READ ONLY transaction of a read, the one
   * place where interrupting it can never lose or half-apply a write (a stopping node interrupts
   * those, and says they did not run).
   */
  phase: "judging" | "reading" | "writing";
  interrupted?: string;
  /** The client was answered (a timeout DuckDB did not honour in time): nothing may start running now. */
  detached?: boolean;
}

/**
 * At most `runningMax` statements at once per node, `queuedMax` more waiting (in order); beyond
 * that a request is refused at once (`OVERLOADED`: 503 with Retry-After). Two cores run DuckDB's
 * threads; more statements at once only share them, and each holds memory.
 */
export class StatementGate {
  readonly runningMax: number;
  readonly queuedMax: number;
  #running = new Set<Running>();
  #waiting: { reader: boolean; go: () => void }[] = [];
  #slots: number;

  /** How long a statement may wait for a slot before it is refused (OVERLOADED). */
  queueWaitMaxMs = 30_000;
  #readers = 0;

  constructor(runningMax = 4, queuedMax = 64) {
    if (!Number.isSafeInteger(runningMax) || runningMax < 1) throw new RangeError(`Invalid runningMax ${runningMax}`);
    if (!Number.isSafeInteger(queuedMax) || queuedMax < 0) throw new RangeError(`Invalid queuedMax ${queuedMax}`);
    this.runningMax = runningMax;
    this.queuedMax = queuedMax;
    this.#slots = runningMax;
  }

  get running(): number {
    return this.#running.size;
  }

  /**
   * Waits for a slot (or throws OVERLOADED: the queue is full, or the wait passed `queueWaitMaxMs`;
   * or CLIENT_GONE), runs `fn`, frees the slot. A `reader` (the read token) never takes the last
   * slot: readers cannot hold every slot, so the admin's statements always get one.
   */
  async run<T>(signal: AbortSignal | undefined, entry: Running, fn: () => Promise<T>, reader = false): Promise<T> {
    if (!this.#mayStart(reader)) {
      if (this.#waiting.length >= this.queuedMax) {
        throw coded(`This node runs ${this.runningMax} statements at once and ${this.queuedMax} more are ` +
          "waiting: retry shortly (Retry-After), or send fewer at once", "OVERLOADED");
      }
      await new Promise<void>((resolve, reject) => {
        const waiter = { reader, go: () => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", leave);
          resolve();
        } };
        const remove = () => this.#waiting.splice(this.#waiting.indexOf(waiter), 1);
        const leave = () => {
          remove();
          clearTimeout(timer);
          reject(coded("The client left before its statement ran", "CLIENT_GONE"));
        };
        const timer = setTimeout(() => {
          remove();
          signal?.removeEventListener("abort", leave);
          reject(coded(`This node's ${this.runningMax} statement slots stayed busy for ${this.queueWaitMaxMs} ms: ` +
            "retry shortly (Retry-After)", "OVERLOADED"));
        }, this.queueWaitMaxMs);
        this.#waiting.push(waiter);
        signal?.addEventListener("abort", leave, { once: true });
      });
    }
    this.#slots--;
    if (reader) this.#readers++;
    this.#running.add(entry);
    try {
      return await fn();
    } finally {
      this.#running.delete(entry);
      this.#slots++;
      if (reader) this.#readers--;
      this.#wakeNext();
    }
  }

  #mayStart(reader: boolean): boolean {
    if (this.#slots === 0) return false;
    return !reader || this.runningMax === 1 || this.#readers < this.runningMax - 1;
  }

  /** Starts the first waiter that may start now (an admin's statement may pass readers that may not). */
  #wakeNext(): void {
    const next = this.#waiting.find((waiter) => this.#mayStart(waiter.reader));
    if (!next) return;
    this.#waiting.splice(this.#waiting.indexOf(next), 1);
    next.go();
  }

  /** Interrupts every running read (a node that stops): they answer an error, and nothing they did is lost. */
  interruptReads(why: string): void {
    for (const entry of this.#running) {
      if (entry.phase !== "reading") continue;
      entry.interrupted = why;
      entry.connection.interrupt();
    }
  }
}
