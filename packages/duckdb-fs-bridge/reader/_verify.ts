/**
 * @module
 * `verify()`: every object and checksum of a database's history (`verifyObjects`), then a drill:
 * the latest commit (by default) or every kept generation restored into a scratch directory and
 * opened by stock DuckDB in a child process, which reads every row.
 *
 * Why the drill by default: checksums prove that each object is what its writer stored, not that a
 * generation holds every block its header needs. A generation that inherits the manifest's old
 * bytes for a block DuckDB rewrote unseen (issue 23: a restart after optimistic writes) passes every
 * checksum; only DuckDB reading the file finds it. The latest commit is the one a failover or a
 * restore uses, so it is always drilled; `drill: "all"` drills every generation too.
 */
import type { BlockStore } from "@haduck/s3-block-store";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isEncryptionKeyError, listGenerations, ReplicationError, verifyObjects, type VerifyReport as ObjectsReport } from "@haduck/duckblock";
import { restore } from "./_restore.ts";

export interface VerifyOptions {
  /**
   * What is restored and opened in DuckDB after the objects check out: `"latest"` (default) the
   * latest commit (the newest generation with its WAL frames replayed), `"all"` every kept
   * generation and the latest commit, `"none"` nothing (objects and checksums only).
   */
  drill?: "latest" | "all" | "none";
  /** The ceiling of the drill's open check memory, MiB (see `OpenCheckOptions.memoryMaxMb`). */
  checkMemoryMaxMb?: number;
  /** Called as verify goes (for a progress bar; it must not throw). */
  onProgress?: (event: VerifyProgress) => void;
}

/**
 * What verify is doing: `"objects"` walks the generations (`done` of `total`); `"drill"` restores
 * one (`generation`, or `"latest"`: the latest commit) and reports its blocks written and bytes.
 */
export interface VerifyProgress {
  step: "objects" | "drill";
  generation?: number | "latest";
  done: number;
  total: number;
  bytes?: number;
}

export interface VerifyReport extends ObjectsReport {
  /** What the drill restored and opened: generations (without frames), and whether the latest commit was. */
  drilled: { generations: number; latestCommit: boolean; latestFrames: number };
}

/**
 * Checks a database's history in the store; problems are named in `report.problems` (empty: none).
 *
 * @example
 * ```ts
 * import { verify } from "@haduck/duckdb-fs-bridge";
 * import { openStore } from "@haduck/s3-block-store";
 * const report = await verify(openStore("file:///tmp/haduck-store"), "demo.duckdb", { drill: "all" });
 * if (report.problems.length > 0) console.error(report.problems.join("\n"));
 * ```
 */
export async function verify(store: BlockStore, dbKey: string, options: VerifyOptions = {}): Promise<VerifyReport> {
  const drill = options.drill ?? "latest";
  if (!["latest", "all", "none"].includes(drill)) {
    throw new TypeError(`Invalid drill ${JSON.stringify(drill)}: expected "latest", "all" or "none"`);
  }
  const onProgress = options.onProgress;
  const report: VerifyReport = { ...await verifyObjects(store, dbKey,
    { onProgress: onProgress && ((done, total) => onProgress({ step: "objects", done, total })) }),
    drilled: { generations: 0, latestCommit: false, latestFrames: 0 } };
  if (drill === "none" || report.problems.length > 0) return report;
  const dir = mkdtempSync(join(tmpdir(), "haduck-drill-"));
  try {
    if (drill === "all") {
      for (const generation of await listGenerations(store, dbKey)) {
        const to = join(dir, `drill-${generation}.duckdb`);
        try {
          await restore({ store, dbKey, to, generation, checkMemoryMaxMb: options.checkMemoryMaxMb,
            onProgress: drillProgress(onProgress, generation) });
          report.drilled.generations++;
        } catch (error) {
          if (isCheckUnavailable(error) || isEncryptionKeyError(error)) throw error; // the machine's condition, not the store's
          report.problems.push(`Generation ${generation} does not restore: ${(error as Error).message}`);
        }
        rmSync(to, { force: true });
        rmSync(`${to}.haduck-identity`, { force: true });
      }
    }
    try {
      const result = await restore({ store, dbKey, to: join(dir, "drill-latest.duckdb"),
        checkMemoryMaxMb: options.checkMemoryMaxMb, onProgress: drillProgress(onProgress, "latest") });
      report.drilled.latestCommit = true;
      report.drilled.latestFrames = result.frames;
      // The frames the restore did not apply, unless the walk of the objects named them already.
      if (result.warning && !report.skipped.some((said) => said.endsWith(result.warning!))) {
        report.skipped.push(`The latest commit: ${result.warning}`);
      }
    } catch (error) {
      if (isCheckUnavailable(error) || isEncryptionKeyError(error)) throw error;
      report.problems.push(`The latest commit does not restore: ${(error as Error).message}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return report;
}

/** A drill restore's progress as verify's. */
function drillProgress(onProgress: VerifyOptions["onProgress"], generation: number | "latest") {
  return onProgress && ((done: number, total: number, bytes: number) =>
    onProgress({ step: "drill", generation, done, total, bytes }));
}

/** The drill's open check could not run here (memory, disk, a killed child): no verdict on the store. */
function isCheckUnavailable(error: unknown): boolean {
  return error instanceof ReplicationError && error.code === "CHECK_UNAVAILABLE";
}
