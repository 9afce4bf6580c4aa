/**
 * One run of bench/memory.ts in a process of its own, so its peak resident memory (VmHWM) is its
 * own: `plain` DuckDB or `haduck` replicating to the S3 store in HADUCK_TEST_S3_* (bucket argv[4]),
 * loading about `sizeMiB`, checkpointing, then changing 5% three times. Prints one JSON line.
 */
import { readFileSync } from "node:fs";
import { DuckDBInstance } from "@duckdb/node-api";
import { attach } from "@haduck/duckdb-fs-bridge";
import { S3BlockStore } from "@haduck/s3-block-store";

const [mode, sizeMiB, dbPath, bucket] = process.argv.slice(2);
const rows = Math.round((Number(sizeMiB) * 1048576) / 32);
const load = `CREATE TABLE t AS SELECT i, random() AS a, random() AS b, random() AS c FROM range(${rows}) r(i)`;
const change = `INSERT INTO t SELECT i, random(), random(), random() FROM range(${Math.round(rows / 20)}) r(i)`;
const SETTINGS = "SET threads = 2; SET memory_limit = '1GB'";

if (mode === "plain") {
  const instance = await DuckDBInstance.create(dbPath);
  const connection = await instance.connect();
  await connection.run(SETTINGS);
  for (const sql of [load, "CHECKPOINT", change, "CHECKPOINT", change, "CHECKPOINT", change, "CHECKPOINT"]) {
    await connection.run(sql);
  }
  connection.closeSync();
  instance.closeSync();
} else {
  const store = new S3BlockStore({ endpoint: process.env.HADUCK_TEST_S3_ENDPOINT!, bucket,
    accessKey: process.env.HADUCK_TEST_S3_ACCESS_KEY!, secretKey: process.env.HADUCK_TEST_S3_SECRET_KEY! });
  const db = await attach({ dbPath, store });
  await db.connection.run(SETTINGS);
  await db.connection.run(load);
  await db.checkpoint();
  for (let round = 0; round < 3; round++) {
    await db.connection.run(change);
    await db.checkpoint();
  }
  await db.close();
}
const status = readFileSync("/proc/self/status", "utf8");
const kib = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)![1]);
console.log(JSON.stringify({ mode, sizeMiB: Number(sizeMiB), peakRssMiB: kib("VmHWM") / 1024 }));
