/**
 * @module
 * What every benchmark shares: the median and percentiles of its samples, a fresh bucket on the
 * test S3 server, and one place its figures go (`bench/results/<name>.json`, printed too).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { AwsClient } from "aws4fetch";

export const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

/** The `p` quantile of `values` (nearest rank), NaN for none. */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] : NaN;
}

/** Creates a bucket named `<prefix>-<random>` on the S3 server; returns its name. */
export async function createBucket(s3: { endpoint: string; accessKey: string; secretKey: string },
  prefix: string): Promise<string> {
  const name = `${prefix}-${crypto.randomUUID().slice(0, 8)}`;
  const client = new AwsClient({ accessKeyId: s3.accessKey, secretAccessKey: s3.secretKey, service: "s3",
    region: "us-east-1", retries: 0 });
  const response = await client.fetch(`${s3.endpoint}/${name}`, { method: "PUT" });
  if (response.status !== 200) throw new Error(`Cannot create bucket ${name}: ${response.status}`);
  return name;
}

export function writeResult(name: string, result: Record<string, unknown>): void {
  const out = resolve(import.meta.dir, "results");
  mkdirSync(out, { recursive: true });
  const full = { benchmark: name, measuredAt: new Date().toISOString(), ...result };
  writeFileSync(join(out, `${name}.json`), JSON.stringify(full, null, 2) + "\n");
  console.log(`bench: wrote bench/results/${name}.json`);
}
