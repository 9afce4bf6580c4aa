/**
 * @module
 * What every benchmark shares: the median of its rounds and one place its figures go
 * (`bench/results/<name>.json`, printed too).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";

export const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

export function writeResult(name: string, result: Record<string, unknown>): void {
  const out = resolve(import.meta.dir, "results");
  mkdirSync(out, { recursive: true });
  const full = { benchmark: name, measuredAt: new Date().toISOString(), ...result };
  writeFileSync(join(out, `${name}.json`), JSON.stringify(full, null, 2) + "\n");
  console.log(`bench: wrote bench/results/${name}.json`);
}
