/**
 * Fault schedules: from a seed, a store that refuses, delays, or performs-but-loses-the-answer of
 * individual operations chosen by key class (segments, manifests, latest.json) and moment, under a
 * random workload with checkpoints. Afterwards every published generation restores, opens in stock
 * DuckDB, and equals a reference fed the same statements up to that point; the latest is the local
 * file's; verify finds no problem; no checkpoint waited for the hold to time out.
 * `bun bench/fault_schedule.ts` runs hundreds of seeds.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStore } from "@haduck/s3-block-store";
import { runSchedule } from "./harness/fault_schedule.ts";
import { keyClassOf } from "./harness/faulty_store.ts";
import { freshBucket } from "./harness/s3.ts";

const dir = mkdtempSync(join(tmpdir(), "haduck-schedule-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const FIRST_SEED = Number(process.env.HADUCK_SCHEDULE_SEED ?? 1);
const SEEDS = Number(process.env.HADUCK_SCHEDULE_SEEDS ?? 24);

test(`${SEEDS} fault schedules on the filesystem store: every generation is a committed state`, async () => {
  const store = openStore(`file://${join(dir, "store")}`);
  let faults = 0;
  for (let seed = FIRST_SEED; seed < FIRST_SEED + SEEDS; seed++) {
    const result = await runSchedule({ seed, steps: 6, store, dir });
    faults += result.faults;
    expect({ seed, mismatches: result.mismatches, verify: result.verifyProblems, holdTimeouts: result.holdTimeouts })
      .toEqual({ seed, mismatches: [], verify: [], holdTimeouts: 0 });
    expect(result.matched).toBe(result.generations);
  }
  expect(faults).toBeGreaterThan(SEEDS); // the schedules did inject faults
}, 600_000);

test("fault schedules on radosgw: every generation is a committed state", async () => {
  const { store } = await freshBucket("schedule");
  for (let seed = 101; seed < 105; seed++) {
    const result = await runSchedule({ seed, steps: 6, store, dir });
    expect({ seed, mismatches: result.mismatches, verify: result.verifyProblems })
      .toEqual({ seed, mismatches: [], verify: [] });
    expect(result.matched).toBe(result.generations);
  }
}, 600_000);

test("keys are classed as segment, page, manifest and latest for the schedules", () => {
  expect(keyClassOf("db/segments/00000000000000000001-ab12cd34-0000.dblk")).toBe("segment");
  expect(keyClassOf("db/manifests/00000000000000000001.json")).toBe("manifest");
  expect(keyClassOf("db/blockmaps/00000000000000000001-ab12cd34-000000.json")).toBe("page");
  expect(keyClassOf("db/latest.json")).toBe("latest");
  expect(keyClassOf("db/lease.json")).toBe("other");
});
