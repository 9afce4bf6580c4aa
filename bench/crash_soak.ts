/**
 * The long kill -9 soak: tests/crash.test.ts with many more trials (default 200; the suite runs
 * 20). Writes bench/results/crash_soak.json with the trials run, the generations committed and
 * verified, and the outcome. Run: `bun bench/crash_soak.ts [trials]`.
 */
import { resolve } from "node:path";
import { writeResult } from "./_report.ts";

const TRIALS = Number(process.argv[2] ?? 200);
const started = performance.now();
const child = Bun.spawnSync([process.execPath, "test", "--timeout", String(TRIALS * 30_000),
  resolve(import.meta.dir, "../tests/crash.test.ts")], {
  env: { ...process.env, HADUCK_CRASH_TRIALS: String(TRIALS) },
  stdout: "pipe",
  stderr: "pipe",
});
const output = child.stdout.toString() + child.stderr.toString();
const figures = /crash figures: (\{.*\})/.exec(output)?.[1];
writeResult("crash_soak", { trials: TRIALS, passed: child.exitCode === 0,
  seconds: Math.round((performance.now() - started) / 1000), ...(figures ? JSON.parse(figures) : {}) });
if (child.exitCode !== 0) {
  console.error(output.split("\n").slice(-40).join("\n"));
  process.exit(1);
}
