/**
 * One operation of bench/scale.ts in a process of its own, so its peak resident memory is its own:
 * `upload` (attach an existing database to a new key: the first upload, by reconcile), `restore`,
 * `verify`, `drill` (restore + open in DuckDB), `gc` (a dry run); `idle` loads DuckDB and exits (the
 * baseline of bench/scale.ts's process trees). The baseline is this process with
 * DuckDB and the extension loaded, measured before the operation; then the peak is reset
 * (/proc/self/clear_refs) and read after it. Prints one JSON line.
 * Usage: bun bench/_scale_child.ts <operation> <db-path> <db-key> <bucket> [restore-target]
 */
import { readFileSync, writeFileSync } from "node:fs";
import { attach, gc, openDuckDB, restore, verify } from "@haduck/duckdb-fs-bridge";
import { S3BlockStore } from "@haduck/s3-block-store";

const [operation, dbPath, dbKey, bucket, target] = process.argv.slice(2);
if (operation === "idle") {
  await openDuckDB(); // what every operation's process holds before it starts: the tree's baseline
  await Bun.sleep(300);
  process.exit(0);
}
const store = new S3BlockStore({ endpoint: process.env.HADUCK_TEST_S3_ENDPOINT!, bucket, prefix: "haduck",
  accessKey: process.env.HADUCK_TEST_S3_ACCESS_KEY!, secretKey: process.env.HADUCK_TEST_S3_SECRET_KEY! });
await openDuckDB();
const kib = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(readFileSync("/proc/self/status", "utf8"))![1]);
Bun.gc(true);
const baselineMiB = kib("VmRSS") / 1024;
writeFileSync("/proc/self/clear_refs", "5"); // the peak from here on is the operation's
const cpu = process.cpuUsage();
const started = performance.now();
let bytes = 0;
if (operation === "upload") {
  const db = await attach({ dbPath, store, dbKey });
  bytes = db.replicator.status.bytesShipped;
  await db.close();
} else if (operation === "restore" || operation === "drill") {
  const result = await restore({ store, dbKey, to: target, force: true, openCheck: operation === "drill" });
  bytes = result.bytes;
} else if (operation === "verify") {
  const report = await verify(store, dbKey);
  if (report.problems.length > 0) throw new Error(report.problems.join("\n"));
  bytes = report.blocks * 262144;
} else if (operation === "gc") {
  await gc({ store, dbKey, keepLast: 1, apply: false });
}
const seconds = (performance.now() - started) / 1000;
const used = process.cpuUsage(cpu);
console.log(JSON.stringify({ operation, seconds, bytes, mibPerSecond: bytes / 1048576 / seconds,
  cpuSeconds: (used.user + used.system) / 1e6, baselineMiB, peakMiB: kib("VmHWM") / 1024,
  peakAboveBaselineMiB: kib("VmHWM") / 1024 - baselineMiB }));
