/**
 * Peak memory of replication: the same load and changes under plain DuckDB and under haduck
 * replicating to radosgw, each in a fresh process, at two database sizes. Goal: haduck's peak at
 * most 64 MiB above plain DuckDB's, and that difference independent of the database's size.
 * Writes bench/results/memory.json. Run: `bun bench/memory.ts [smallMiB] [largeMiB]`.
 */
import { AwsClient } from "aws4fetch";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { startRadosgw } from "../tests/harness/radosgw.ts";
import { writeResult } from "./_report.ts";

const SIZES = [Number(process.argv[2] ?? 256), Number(process.argv[3] ?? 1024)];
const CHILD = resolve(import.meta.dir, "_memory_child.ts");
const dir = mkdtempSync(join(tmpdir(), "haduck-bench-memory-"));
const cluster = await startRadosgw();
try {
  const client = new AwsClient({ accessKeyId: cluster.accessKey, secretAccessKey: cluster.secretKey, service: "s3",
    region: cluster.region, retries: 0 });
  const env = { ...process.env, HADUCK_TEST_S3_ENDPOINT: cluster.endpoint, HADUCK_TEST_S3_ACCESS_KEY: cluster.accessKey,
    HADUCK_TEST_S3_SECRET_KEY: cluster.secretKey };
  const runs: { mode: string; sizeMiB: number; peakRssMiB: number }[] = [];
  for (const sizeMiB of SIZES) {
    for (const mode of ["plain", "haduck"]) {
      const bucket = `memory-${crypto.randomUUID().slice(0, 8)}`;
      await client.fetch(`${cluster.endpoint}/${bucket}`, { method: "PUT" });
      const child = Bun.spawnSync([process.execPath, CHILD, mode, String(sizeMiB), join(dir, `${mode}-${sizeMiB}.duckdb`),
        bucket], { env, stderr: "inherit" });
      if (child.exitCode !== 0) throw new Error(`memory run ${mode} ${sizeMiB} MiB failed`);
      const run = JSON.parse(child.stdout.toString().trim().split("\n").pop()!);
      runs.push(run);
      console.log(JSON.stringify(run));
    }
  }
  const overhead = SIZES.map((sizeMiB) => {
    const peak = (mode: string) => runs.find((run) => run.mode === mode && run.sizeMiB === sizeMiB)!.peakRssMiB;
    return { sizeMiB, plainPeakMiB: peak("plain"), haduckPeakMiB: peak("haduck"), overheadMiB: peak("haduck") - peak("plain") };
  });
  writeResult("memory", { goalOverheadMiBMax: 64, runs, overhead });
  console.log(JSON.stringify(overhead));
} finally {
  await cluster.stop();
  rmSync(dir, { recursive: true, force: true });
}
