/**
 * @module
 * Progress for long operations: a bar with rate and ETA redrawn in place when stderr is a
 * terminal, otherwise a plain line at every tenth of the way (logs stay readable).
 */

export interface Progress {
  update(done: number, total: number, bytes: number): void;
  finish(): void;
}

const mib = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MiB`;

/** A progress reporter for `label` on `stream` (default stderr). */
export function progress(label: string, stream: NodeJS.WriteStream = process.stderr): Progress {
  const started = performance.now();
  let lastTenth = -1;
  let drawn = false;
  return {
    update(done, total, bytes) {
      const fraction = total === 0 ? 1 : done / total;
      const seconds = (performance.now() - started) / 1000;
      const rate = seconds > 0 ? bytes / seconds : 0;
      const etaSeconds = fraction > 0 ? seconds * (1 - fraction) / fraction : 0;
      const figures = `${Math.floor(fraction * 100)}% ${done}/${total} blocks, ${mib(bytes)}, ${mib(rate)}/s, ` +
        `ETA ${etaSeconds.toFixed(0)} s`;
      if (stream.isTTY) {
        const width = 30;
        const filled = Math.round(fraction * width);
        stream.write(`\r${label} [${"#".repeat(filled)}${" ".repeat(width - filled)}] ${figures}  `);
        drawn = true;
        return;
      }
      const tenth = Math.floor(fraction * 10);
      if (tenth > lastTenth) {
        lastTenth = tenth;
        stream.write(`${label}: ${figures}\n`);
      }
    },
    finish() {
      if (drawn) stream.write("\n");
    },
  };
}
