/**
 * @module
 * The one retry policy of every store call: retryable failures (5xx, 429, network errors,
 * timeouts) are retried with full jitter and a cap; everything else fails at once.
 */
import { StoreError } from "./_errors.ts";

export interface RetryPolicy {
  /** Attempts in all, the first included. 1 means no retry. Default 6. */
  attemptsMax: number;
  /** The first backoff's upper bound. Default 100 ms. */
  delayBaseMs: number;
  /** No backoff exceeds this. Default 5000 ms. */
  delayCapMs: number;
  /** Each attempt is aborted after this long. 0 means no timeout. Default 30000 ms. */
  attemptTimeoutMs: number;
  /** Called before each retry (for metrics); `attempt` is the attempt that failed, from 1. */
  onRetry?: (info: { attempt: number; delayMs: number; error: unknown }) => void;
  /** Replaceable for tests. Default `Math.random`. */
  random?: () => number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  attemptsMax: 6,
  delayBaseMs: 100,
  delayCapMs: 5000,
  attemptTimeoutMs: 30_000,
};

/** Whether an error is worth another attempt under the policy. */
export function isRetryable(error: unknown): boolean {
  if (error instanceof StoreError) return error.retryable;
  // fetch() rejects with TypeError (or a runtime-specific error) on connection failures.
  return error instanceof Error && error.name !== "AbortError";
}

/** Full jitter: a uniformly random delay in [0, min(cap, base * 2^attempt)). */
export function backoffDelayMs(policy: RetryPolicy, attempt: number): number {
  const ceiling = Math.min(policy.delayCapMs, policy.delayBaseMs * 2 ** (attempt - 1));
  return Math.floor((policy.random ?? Math.random)() * ceiling);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Runs `attempt` until it succeeds, fails with a non-retryable error, or the policy gives up; then
 * `giveUp` turns the last error into the error the caller sees.
 *
 * @example
 * ```ts
 * import { DEFAULT_RETRY_POLICY, withRetry } from "./_retry.ts";
 * const value = await withRetry(DEFAULT_RETRY_POLICY, async () => 42, (error) => error);
 * ```
 */
export async function withRetry<T>(
  policy: RetryPolicy,
  attempt: (attemptNumber: number) => Promise<T>,
  giveUp: (lastError: unknown, attempts: number) => unknown,
  signal?: AbortSignal,
): Promise<T> {
  for (let attemptNumber = 1;; attemptNumber++) {
    try {
      return await attempt(attemptNumber);
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      if (!isRetryable(error) || attemptNumber >= policy.attemptsMax) {
        throw isRetryable(error) ? giveUp(error, attemptNumber) : error;
      }
      const delayMs = backoffDelayMs(policy, attemptNumber);
      policy.onRetry?.({ attempt: attemptNumber, delayMs, error });
      await sleep(delayMs, signal);
    }
  }
}
