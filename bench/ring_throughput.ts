/**
 * Ring throughput: events per second through the extension's lock-free ring with 1, 2 and 4
 * producer threads and one consumer, against a mutex-guarded deque in the same run (ratio), and
 * the TypeScript side: how fast the bridge's reader (Atomics over the shared memory) drains the
 * events a real DuckDB produces. Writes bench/results/ring_throughput.json.
 * Run: `bun bench/ring_throughput.ts [eventsPerProducer]`.
 */
import { join, resolve } from "node:path";
import { compileStandalone, ROOT } from "../tools/build_extension.ts";
import { Native, openDuckDB } from "@haduck/duckdb-fs-bridge";
import { median, writeResult } from "./_report.ts";

const PER_PRODUCER = process.argv[2] ?? "2000000";
const binary = compileStandalone(join(ROOT, "extension/build/ring_bench"), [resolve(import.meta.dir, "native/ring_bench.cpp")]);
const child = Bun.spawnSync([binary, PER_PRODUCER], { stderr: "inherit" });
if (child.exitCode !== 0) throw new Error(`ring_bench failed with exit ${child.exitCode}`);
const native = JSON.parse(child.stdout.toString());
for (const run of native.runs) console.log(JSON.stringify(run));

// The TypeScript reader against the SQL reader (what Node uses), both draining the real ring.
const instance = await openDuckDB();
const connection = await instance.connect();
const reader = new Native();
const ROUNDS = 200;
const drainRates = { ffi: [] as number[], sql: [] as number[] };
for (let trial = 0; trial < 5; trial++) {
  let events = 0;
  let started = performance.now();
  for (let round = 0; round < ROUNDS; round++) {
    reader.debugPushEvents(4096);
    events += reader.drain(4096).length;
  }
  drainRates.ffi.push(events / ((performance.now() - started) / 1000));
  events = 0;
  started = performance.now();
  for (let round = 0; round < ROUNDS / 10; round++) {
    reader.debugPushEvents(4096);
    events += (await connection.runAndReadAll("SELECT count(*)::INT AS n FROM haduck_drain_events(max := 4096)"))
      .getRowObjects()[0].n as number;
  }
  drainRates.sql.push(events / ((performance.now() - started) / 1000));
}
connection.closeSync();
instance.closeSync();
const typescript = { ffiDrainEventsPerSecond: median(drainRates.ffi), sqlDrainEventsPerSecond: median(drainRates.sql),
  ratio: median(drainRates.ffi) / median(drainRates.sql) };
console.log(JSON.stringify(typescript));
writeResult("ring_throughput", { native, typescript });
