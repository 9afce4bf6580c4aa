/**
 * @module
 * Several connections writing to one database at once: inserts, updates and deletes of each
 * connection's own rows, DuckDB's automatic checkpoints, and manual CHECKPOINTs (which DuckDB
 * refuses while another connection writes: counted, not failed). Shared by
 * tests/concurrency.test.ts and bench/concurrency.ts; runs the same on a haduck-attached database
 * and on a plain one, so the two can be compared under the same load.
 */
import type { DuckDBInstance } from "@duckdb/node-api";
import { seededRandom } from "./workload.ts";

export interface LoadOptions {
  instance: DuckDBInstance;
  /** The table to write, qualified (`db.t`); created by `prepareLoad`. */
  table: string;
  connections: number;
  durationMs: number;
  /** Rows per insert at most. Default 20000. */
  insertRowsMax?: number;
  /** Chance in 100 that a step is a manual CHECKPOINT of `checkpointAlias`. Default 3. */
  checkpointPercent?: number;
  checkpointAlias?: string;
  seed?: number;
  /** Called every `sampleMs` while the load runs (a status poll, say). */
  onSample?: () => void;
  sampleMs?: number;
  /** Go on past `durationMs` until this answers true (checked between statements), for at most
   * `maxDurationMs` in all: a test that needs something to have happened under load waits for it
   * instead of counting on the machine's speed. */
  until?: () => boolean;
  maxDurationMs?: number;
}

export interface LoadFigures {
  commits: number;
  commitsPerSecond: number;
  latencyMs: { p50: number; p99: number; max: number };
  checkpoints: number;
  checkpointsRefused: number;
  conflicts: number;
}

export async function prepareLoad(instance: DuckDBInstance, table: string): Promise<void> {
  const connection = await instance.connect();
  await connection.run(`CREATE TABLE ${table} (id BIGINT, w INTEGER, v BIGINT, s VARCHAR)`);
  connection.closeSync();
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];

export async function runLoad(options: LoadOptions): Promise<LoadFigures> {
  const latencies: number[] = [];
  let checkpoints = 0;
  let checkpointsRefused = 0;
  let conflicts = 0;
  const started = performance.now();
  const end = started + options.durationMs;
  const hardEnd = started + Math.max(options.durationMs, options.maxDurationMs ?? options.durationMs);
  const goOn = () => {
    const now = performance.now();
    return now < end || (options.until !== undefined && !options.until() && now < hardEnd);
  };
  const rowsMax = options.insertRowsMax ?? 20000;
  const sampler = options.onSample && setInterval(options.onSample, options.sampleMs ?? 100);
  await Promise.all(Array.from({ length: options.connections }, async (_, writer) => {
    const random = seededRandom((options.seed ?? 1) * 1000 + writer);
    const connection = await options.instance.connect();
    let next = 0;
    try {
      while (goOn()) {
        const roll = random(100);
        let sql: string;
        if (roll < (options.checkpointPercent ?? 3) && options.checkpointAlias) sql = `CHECKPOINT ${options.checkpointAlias}`;
        else if (roll < 60) {
          const rows = 1 + random(rowsMax);
          sql = `INSERT INTO ${options.table} SELECT ${next} + i, ${writer}, i % 1000, md5((${next} + i)::VARCHAR) ` +
            `FROM range(${rows}) r(i)`;
          next += rows;
        } else if (roll < 85) {
          sql = `UPDATE ${options.table} SET v = v + 1 WHERE w = ${writer} AND id % ${2 + random(30)} = 0`;
        } else sql = `DELETE FROM ${options.table} WHERE w = ${writer} AND id % ${5 + random(50)} = ${random(5)}`;
        const begun = performance.now();
        try {
          await connection.run(sql);
          if (sql.startsWith("CHECKPOINT")) checkpoints++;
          else latencies.push(performance.now() - begun);
        } catch (error) {
          const message = (error as Error).message;
          if (sql.startsWith("CHECKPOINT") && /other write transactions|transaction/i.test(message)) checkpointsRefused++;
          else if (/conflict/i.test(message)) conflicts++;
          else throw error;
        }
      }
    } finally {
      connection.closeSync();
    }
  }));
  if (sampler) clearInterval(sampler);
  const seconds = (performance.now() - started) / 1000;
  const sorted = latencies.sort((a, b) => a - b);
  return {
    commits: sorted.length,
    commitsPerSecond: sorted.length / seconds,
    latencyMs: { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), max: sorted[sorted.length - 1] ?? 0 },
    checkpoints,
    checkpointsRefused,
    conflicts,
  };
}
