/**
 * @module
 * Progress for long operations (uploads, restores, verify, gc, the extension build): a bar with rate
 * and ETA redrawn in place when stderr is a terminal, as git and curl do. Off a terminal it is
 * silent, so that logs and the output scripts parse carry no progress; `--progress` (any command)
 * asks for a plain line at every tenth of the way instead (a log that wants to see a long restore).
 */

/** Where progress goes: stderr, or a fake terminal in tests. */
export interface ProgressStream {
  isTTY?: boolean;
  /** The terminal's width: a bar never wraps onto a second line. */
  columns?: number;
  write(text: string): unknown;
}

export interface Progress {
  /** `done` of `total` units; `bytes` moved so far (omit for work that is not a transfer). */
  update(done: number, total: number, bytes?: number): void;
  /** Ends the bar's line (a terminal's next output starts on a line of its own). */
  finish(): void;
}

export interface ProgressOptions {
  /** Default `process.stderr`. */
  stream?: ProgressStream;
  /** What `done` and `total` count. Default `"blocks"`. */
  unit?: string;
  /**
   * When the work began (`performance.now()` time): the rate is the bytes over the time since then.
   * Default: when the reporter is made. A reporter made at the work's first report must say when the
   * work began, or the bytes of that report count as moved in no time (the first upload once showed
   * 38820.7 MiB/s).
   */
  startedMs?: number;
  /** Replaceable for tests. Default `performance.now`. */
  now?: () => number;
}

/** Plain lines off a terminal (`--progress`); set once by `main()` before a command runs. */
let linesOffTerminal = false;

/** `--progress`: report progress as plain lines when stderr is not a terminal. */
export function reportProgressOffTerminal(on: boolean): void {
  linesOffTerminal = on;
}

/** A terminal is redrawn at most this often (the last update always draws). */
const REDRAW_INTERVAL_MS = 100;
const BAR_WIDTH = 24;

const mib = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MiB`;

/**
 * Bytes per second over `elapsedMs`, or undefined while no time has passed (no rate can be told
 * from one instant).
 */
export function transferRateBytesPerSecond(bytes: number, elapsedMs: number): number | undefined {
  if (!(elapsedMs > 0) || !(bytes >= 0)) return undefined;
  return bytes / (elapsedMs / 1000);
}

/** The figures after the bar: percent, done/total, bytes and rate (a transfer), ETA. */
export function progressFigures(done: number, total: number, elapsedMs: number, unit: string, bytes?: number): string {
  const fraction = total === 0 ? 1 : Math.min(1, done / total);
  const parts = [`${Math.floor(fraction * 100)}% ${done}/${total} ${unit}`];
  if (bytes !== undefined) {
    const rate = transferRateBytesPerSecond(bytes, elapsedMs);
    parts.push(mib(bytes));
    if (rate !== undefined) parts.push(`${mib(rate)}/s`);
  }
  const etaSeconds = fraction > 0 ? (elapsedMs / 1000) * (1 - fraction) / fraction : undefined;
  return `${parts.join(", ")}${etaSeconds === undefined ? "" : `, ETA ${etaSeconds.toFixed(0)} s`}`;
}

/**
 * A progress reporter for `label`: a bar on a terminal, plain lines with `--progress`, else nothing.
 *
 * @example
 * ```ts
 * import { progress } from "./_progress.ts";
 * const bar = progress("restore");
 * bar.update(5, 10, 5 * 262144);
 * bar.finish();
 * ```
 */
export function progress(label: string, options: ProgressOptions = {}): Progress {
  const stream = options.stream ?? process.stderr;
  const now = options.now ?? (() => performance.now());
  const startedMs = options.startedMs ?? now();
  const unit = options.unit ?? "blocks";
  const terminal = stream.isTTY === true;
  let lastTenth = -1;
  let lastDrawMs = -Infinity;
  let drawn = false;
  return {
    update(done, total, bytes) {
      const at = now();
      const figures = () => progressFigures(done, total, at - startedMs, unit, bytes);
      if (terminal) {
        if (done < total && at - lastDrawMs < REDRAW_INTERVAL_MS) return;
        lastDrawMs = at;
        const fraction = total === 0 ? 1 : Math.min(1, done / total);
        const filled = Math.round(fraction * BAR_WIDTH);
        const line = `${label} [${"#".repeat(filled)}${" ".repeat(BAR_WIDTH - filled)}] ${figures()}`;
        // One line, cut to the terminal's width, redrawn in place (\r, then erase to the end of the line).
        const width = Math.max(20, (stream.columns ?? 80) - 1);
        stream.write(`\r${line.slice(0, width)}\x1b[K`);
        drawn = true;
        return;
      }
      if (!linesOffTerminal) return;
      const tenth = Math.floor((total === 0 ? 1 : done / total) * 10);
      if (tenth > lastTenth) {
        lastTenth = tenth;
        stream.write(`${label}: ${figures()}\n`);
      }
    },
    finish() {
      if (drawn) stream.write("\n");
      drawn = false;
    },
  };
}

/**
 * Progress of work in steps (verify's walk, then each drill; gc's reads, then its deletes): one bar
 * per step, the previous finished when the next begins.
 */
export function steppedProgress(options: ProgressOptions = {}): {
  update(step: string, unit: string, done: number, total: number, bytes?: number): void;
  finish(): void;
} {
  let current: { step: string; bar: Progress } | undefined;
  return {
    update(step, unit, done, total, bytes) {
      if (current?.step !== step) {
        current?.bar.finish();
        current = { step, bar: progress(step, { ...options, unit }) };
      }
      current.bar.update(done, total, bytes);
    },
    finish() {
      current?.bar.finish();
    },
  };
}
