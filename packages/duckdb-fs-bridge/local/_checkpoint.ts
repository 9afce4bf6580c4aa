/**
 * @module
 * A manual CHECKPOINT that copes with other connections. DuckDB refuses `CHECKPOINT` while another
 * connection has a write transaction open ("there are other write transactions active"); its own
 * automatic checkpoints simply wait for a quiet moment. So do we: retry with a short backoff until
 * a quiet moment comes or the deadline passes, then fail by name. Never report success for a
 * checkpoint that did not run.
 */
import type { DuckDBConnection } from "@duckdb/node-api";
import { ReplicationError } from "@haduck/duckblock";

export interface CheckpointOptions {
  /** How long to keep trying while other connections write. Default 30000 ms; 0 tries once. */
  timeoutMs?: number;
}

const BUSY = /other write transactions|transaction.*active/i;

/**
 * Runs `CHECKPOINT alias` on `connection`, retrying while other connections write.
 *
 * @example
 * ```ts
 * import { attach, checkpointWhenQuiet } from "@haduck/duckdb-fs-bridge";
 * const db = await attach({ dbPath: "/tmp/demo.duckdb" });
 * await checkpointWhenQuiet(db.connection, db.alias, { timeoutMs: 5000 });
 * await db.close();
 * ```
 */
export async function checkpointWhenQuiet(connection: DuckDBConnection, alias: string,
  options: CheckpointOptions = {}): Promise<void> {
  const deadline = performance.now() + (options.timeoutMs ?? 30_000);
  for (let delayMs = 5;; delayMs = Math.min(delayMs * 2, 100)) {
    try {
      await connection.run(`CHECKPOINT ${alias}`);
      return;
    } catch (error) {
      const message = (error as Error).message;
      if (!BUSY.test(message)) throw error;
      if (performance.now() + delayMs > deadline) {
        throw new ReplicationError("BUSY", `Cannot checkpoint ${alias}: other connections kept a write transaction ` +
          `open for ${options.timeoutMs ?? 30_000} ms (DuckDB: ${message}); commit or close them and retry`,
          { cause: error });
      }
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
}
