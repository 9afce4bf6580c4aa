/**
 * A second store's cost, in one run on the test S3 server (ratios, since the machine is shared):
 * commit latency as `--sync` waits for it (a one-row INSERT, then `flush()`: durable in the primary)
 * for four databases open side by side: one store; a replica on a server of its own (an HTTP sink
 * in another process: the mirror's own cost in the writer's process, as a replica in another
 * region costs it); a replica in a directory (its fsyncs share the disk with DuckDB's WAL); a
 * replica in a second bucket on the same S3 server (the replica's PUTs load the server the
 * primary's commits wait on, where a real second store is elsewhere: an upper bound). Blocks of `BLOCK` commits rotate
 * between them; before each block the mirrors have caught up, so one's copies do not land in
 * another's block. And the bytes and requests per commit of each, counted at its store clients
 * (its primary's, plus its replica's). A checkpoint every `CHECKPOINT_EVERY` commits of each.
 * Writes bench/results/replica_store.json. Run with HADUCK_TEST_S3_* set:
 * `bun bench/replica_store.ts [blocks] [commits per block]`.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type AttachedDatabase, attach } from "@haduck/duckdb-fs-bridge";
import { MirroredStore } from "@haduck/duckblock";
import { type BlockStore, FsBlockStore, S3BlockStore } from "@haduck/s3-block-store";
import { createBucket, median, percentile, writeResult } from "./_report.ts";

const BLOCKS = Number(process.argv[2] ?? 30);
const BLOCK = Number(process.argv[3] ?? 25);
const CHECKPOINT_EVERY = 50;
const s3 = {
  endpoint: process.env.HADUCK_TEST_S3_ENDPOINT!,
  accessKey: process.env.HADUCK_TEST_S3_ACCESS_KEY!,
  secretKey: process.env.HADUCK_TEST_S3_SECRET_KEY!,
};
if (!s3.endpoint) throw new Error("set HADUCK_TEST_S3_ENDPOINT, _ACCESS_KEY and _SECRET_KEY (the test S3 server)");
const dir = mkdtempSync(join(tmpdir(), "haduck-bench-replica-"));
const primaryBucket = await createBucket(s3, "bench-primary");
const replicaBucket = await createBucket(s3, "bench-replica");

type ModeName = "oneStore" | "replicaDirectory" | "replicaS3" | "replicaSink";

// A replica on a server of its own: an HTTP sink in another process that answers every PUT 200 and
// keeps nothing. It isolates the writer's side of a mirror (copier, signing, sending) from the
// shared test server's load: what a replica in another region costs the commits.
const sink = Bun.spawn([process.execPath, "-e", `
  const server = Bun.serve({ port: 0, hostname: "127.0.0.1", async fetch(request) {
    await request.arrayBuffer();
    if (request.method === "GET" && new URL(request.url).searchParams.has("list-type")) {
      return new Response('<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><IsTruncated>false</IsTruncated>' +
        '<KeyCount>0</KeyCount></ListBucketResult>', { headers: { "content-type": "application/xml" } });
    }
    if (request.method !== "PUT") return new Response(null, { status: 404 });
    return new Response(null, { status: 200, headers: { etag: '"' + crypto.randomUUID() + '"' } });
  } });
  console.log(server.port);
`], { stdout: "pipe", stderr: "inherit" });
const sinkPort = await (async () => {
  let text = "";
  for await (const chunk of sink.stdout) {
    text += new TextDecoder().decode(chunk);
    if (text.includes("\n")) return Number(text.trim());
  }
  throw new Error("the sink server did not start");
})();

interface Mode {
  name: ModeName;
  db: AttachedDatabase;
  primary: S3BlockStore;
  replica?: BlockStore;
  mirror?: MirroredStore;
  latenciesMs: number[];
  /** Per block: its median. */
  blockMediansMs: number[];
  commits: number;
  catchUpMs: number[];
  /** The writer process's CPU (user + system) over its blocks, the replica's catch-up included. */
  cpuMicros: number;
}

async function open(name: ModeName): Promise<Mode> {
  const dbKey = `bench-${name}.duckdb`;
  const primary = new S3BlockStore({ ...s3, bucket: primaryBucket, prefix: "haduck" });
  const replica = name === "replicaDirectory" ? new FsBlockStore(join(dir, "replica"))
    : name === "replicaS3" ? new S3BlockStore({ ...s3, bucket: replicaBucket, prefix: "haduck" })
    : name === "replicaSink" ? new S3BlockStore({ ...s3, endpoint: `http://127.0.0.1:${sinkPort}`, bucket: replicaBucket,
      prefix: "haduck" })
    : undefined;
  const mirror = replica ? new MirroredStore(primary, [replica], { dbKey }) : undefined;
  const db = await attach({ dbPath: join(dir, dbKey), store: mirror ?? primary, dbKey });
  await db.connection.run("CREATE TABLE t(id INTEGER, v VARCHAR)");
  await db.flush();
  return { name, db, primary, replica, mirror, latenciesMs: [], blockMediansMs: [], commits: 0, catchUpMs: [],
    cpuMicros: 0 };
}

const counters = (mode: Mode) => ({
  requests: mode.primary.stats.requests + (mode.replica instanceof S3BlockStore ? mode.replica.stats.requests : 0),
  bytesSent: mode.primary.stats.bytesSent + (mode.replica instanceof S3BlockStore ? mode.replica.stats.bytesSent : 0),
});

async function block(mode: Mode): Promise<void> {
  const latencies: number[] = [];
  const cpu = process.cpuUsage();
  for (let i = 0; i < BLOCK; i++) {
    const id = mode.commits++;
    const started = performance.now();
    await mode.db.connection.run(`INSERT INTO t VALUES (${id}, md5('${id}'))`);
    if (!await mode.db.flush()) throw new Error(`commit ${id} is not durable: ${mode.db.replicator.status.lastError}`);
    latencies.push(performance.now() - started);
    if (mode.commits % CHECKPOINT_EVERY === 0) await mode.db.checkpoint();
  }
  mode.latenciesMs.push(...latencies);
  mode.blockMediansMs.push(median(latencies));
  const drainedAt = performance.now();
  if (mode.mirror && !await mode.mirror.drained(120_000)) throw new Error(`${mode.name}: no catch-up within 120 s`);
  if (mode.mirror) mode.catchUpMs.push(performance.now() - drainedAt);
  const used = process.cpuUsage(cpu);
  mode.cpuMicros += used.user + used.system;
}

const modes = [await open("oneStore"), await open("replicaSink"), await open("replicaDirectory"), await open("replicaS3")];
for (const mode of modes) await mode.mirror?.drained(60_000);
const before = modes.map(counters);
for (let round = 0; round < BLOCKS; round++) {
  // Rotate which goes first, so none always runs right after another's.
  for (let k = 0; k < modes.length; k++) await block(modes[(round + k) % modes.length]);
  if ((round + 1) % 5 === 0) {
    console.log(`block ${round + 1}/${BLOCKS}: ` + modes.map((mode) =>
      `${mode.name} p50 ${median(mode.latenciesMs).toFixed(1)} ms`).join(", "));
  }
}
const after = modes.map(counters);
for (const mode of modes) {
  await mode.db.close();
  await mode.mirror?.close();
}
sink.kill();
rmSync(dir, { recursive: true, force: true });

const one = modes[0];
function summary(mode: Mode, index: number) {
  const commits = mode.commits;
  return {
    commitLatencyMs: { p50: median(mode.latenciesMs), p90: percentile(mode.latenciesMs, 0.9),
      p99: percentile(mode.latenciesMs, 0.99) },
    requestsPerCommit: (after[index].requests - before[index].requests) / commits,
    bytesSentPerCommit: (after[index].bytesSent - before[index].bytesSent) / commits,
    // The writer process's CPU per commit (DuckDB's threads included): what a mirror adds on the host.
    writerCpuMsPerCommit: mode.cpuMicros / 1000 / commits,
    ...(mode.mirror ? {
      // Each block's median over the one-store block of the same round: robust to others' load drifting.
      commitLatencyPairedRatio: median(mode.blockMediansMs.map((ms, block) => ms / one.blockMediansMs[block])),
      commitLatencyP50Ratio: median(mode.latenciesMs) / median(one.latenciesMs),
      replicaCatchUpAfterBlockMs: { p50: median(mode.catchUpMs), max: Math.max(...mode.catchUpMs) },
    } : {}),
  };
}
const figures = Object.fromEntries(modes.map((mode, index) => [mode.name, summary(mode, index)]));
writeResult("replica_store", {
  blocks: BLOCKS,
  commitsPerBlock: BLOCK,
  checkpointEvery: CHECKPOINT_EVERY,
  ...figures,
  note: "requests and bytes count the replica's too where it is S3 (a directory replica makes no request); " +
    "replicaSink: a replica on a server of its own (an HTTP sink in another process that keeps nothing), the " +
    "writer's side alone; replicaDirectory: the replica's fsyncs share the disk with DuckDB's WAL; replicaS3: " +
    "both buckets on the one test server, so its latency includes that server's extra load",
  goal: "commit latency with a replica store <= 1.05x one store",
});
console.log(JSON.stringify(figures, null, 2));
