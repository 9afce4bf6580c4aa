/**
 * Fault schedules at scale: `bun bench/fault_schedule.ts [seeds] [steps] [firstSeed]` (defaults
 * 200, 8, 1000) runs that many seeded schedules (tests/harness/fault_schedule.ts) on the filesystem
 * store, and on radosgw every tenth, and writes bench/results/fault_schedule.json: per store,
 * seeds run, faults injected, generations checked, and the two that must stay 0: generations that
 * did not restore to their committed state, and verify problems (with the failing seeds).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AwsClient } from "aws4fetch";
import { type BlockStore, openStore, S3BlockStore } from "@haduck/s3-block-store";
import { runSchedule } from "../tests/harness/fault_schedule.ts";
import { startRadosgw } from "../tests/harness/radosgw.ts";
import { writeResult } from "./_report.ts";

const SEEDS = Number(process.argv[2] ?? 200);
const STEPS = Number(process.argv[3] ?? 8);
const FIRST = Number(process.argv[4] ?? 1000);
const dir = mkdtempSync(join(tmpdir(), "haduck-schedules-"));
const cluster = await startRadosgw();
const totals: Record<string, { seeds: number; faults: number; generations: number; badGenerations: number;
  verifyProblems: number; holdTimeouts: number; failingSeeds: number[]; seconds: number }> = {};
try {
  const client = new AwsClient({ accessKeyId: cluster.accessKey, secretAccessKey: cluster.secretKey, service: "s3",
    region: cluster.region, retries: 0 });
  await client.fetch(`${cluster.endpoint}/schedules`, { method: "PUT" });
  const stores: Record<string, BlockStore> = {
    filesystem: openStore(`file://${join(dir, "store")}`),
    radosgw: new S3BlockStore({ ...cluster, bucket: "schedules", prefix: "haduck" }),
  };
  for (let seed = FIRST; seed < FIRST + SEEDS; seed++) {
    for (const [name, store] of Object.entries(stores)) {
      if (name === "radosgw" && seed % 10 !== 0) continue;
      const total = totals[name] ??= { seeds: 0, faults: 0, generations: 0, badGenerations: 0, verifyProblems: 0,
        holdTimeouts: 0, failingSeeds: [], seconds: 0 };
      const started = performance.now();
      const result = await runSchedule({ seed, steps: STEPS, store, dir });
      total.seconds += (performance.now() - started) / 1000;
      total.seeds++;
      total.faults += result.faults;
      total.generations += result.generations;
      total.badGenerations += result.mismatches.length;
      total.verifyProblems += result.verifyProblems.length;
      total.holdTimeouts += result.holdTimeouts;
      if (result.mismatches.length + result.verifyProblems.length > 0) {
        total.failingSeeds.push(seed);
        console.error(`seed ${seed} (${name}):`, result.mismatches, result.verifyProblems);
      }
    }
    if ((seed - FIRST + 1) % 20 === 0) console.log(`${seed - FIRST + 1}/${SEEDS} seeds`, JSON.stringify(totals));
  }
} finally {
  await cluster.stop();
  rmSync(dir, { recursive: true, force: true });
}
writeResult("fault_schedule", { seeds: SEEDS, steps: STEPS, firstSeed: FIRST, stores: totals });
console.log(JSON.stringify(totals, null, 2));
