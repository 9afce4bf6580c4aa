/**
 * A second store (`--replica-store`) end to end, on radosgw and a directory: a `haduck serve` node
 * writes to an S3 primary and mirrors to an S3 replica behind a fault proxy and to a directory. The
 * S3 replica is cut off (every connection dropped) under durable writes and a checkpoint, then
 * healed: commits go on, /status and /metrics show its lag and error meanwhile, it catches up, and a
 * restore from each store equals the live database; then the primary's objects are deleted and the
 * replica alone restores, verifies and lists generations. The reconcile pass copies only what a
 * replica lacks (PUTs counted at the proxy). And the sidecar a DuckDB host starts mirrors too
 * (`HADUCK_REPLICA_STORES`). Fails loudly without radosgw.
 */
import { expect, test } from "bun:test";
import { join, resolve } from "node:path";
import { reconcileReplica } from "@haduck/duckblock";
import { type BlockStore, openStore, S3BlockStore } from "@haduck/s3-block-store";
import { sql, startNode, TOKEN, waitForLeader } from "./harness/cluster.ts";
import { runHaduck } from "./harness/cli.ts";
import { queryFile } from "./harness/duckdb.ts";
import { startFaultProxy } from "./harness/fault_proxy.ts";
import { freshBucket } from "./harness/s3.ts";
import { clusterScratch } from "./harness/scratch.ts";
import { digest } from "./harness/workload.ts";

const { dir, running, proxies } = clusterScratch("replica-store");

interface ReplicaView {
  url: string;
  state: string;
  objectsBehind: number;
  bytesBehind: number;
  lagMs: number;
  lastError: string | null;
}

async function replicaStores(url: string): Promise<ReplicaView[]> {
  const response = await fetch(`${url}status`, { headers: { authorization: `Bearer ${TOKEN}` } });
  const body = await response.json() as { databases: { replicaStores: ReplicaView[] }[] };
  return body.databases[0].replicaStores;
}

async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await Bun.sleep(50);
  }
}

/** The live database's content through `POST /sql`, as `digest` sees a file. */
function liveDigest(url: string): Promise<string> {
  return digest(async (statement) => {
    const answer = await sql(url, { sql: statement });
    if (answer.status !== 200) throw new Error(`${statement}: ${answer.status} ${answer.body.error}`);
    return (answer.body.rows ?? []).map((row) =>
      Object.fromEntries(answer.body.columns!.map((column, i) => [column, (row as unknown[])[i]]))
    );
  });
}

const fileDigest = (path: string) => digest((statement) => queryFile(path, statement) as Promise<Record<string, unknown>[]>);

async function restoredDigest(storeArgs: string[], env: Record<string, string>, dbKey: string, name: string) {
  const to = join(dir, `${name}.duckdb`);
  const restored = await runHaduck(dir, ["restore", ...storeArgs, "--db-key", dbKey, "--to", to, "--force"], env);
  expect({ code: restored.code, stderr: restored.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
  return fileDigest(to);
}

/** Durable inserts, each timed; every one must be acknowledged. */
async function timedWrites(url: string, from: number, count: number): Promise<number[]> {
  const latencies: number[] = [];
  for (let i = from; i < from + count; i++) {
    const started = performance.now();
    const answer = await sql(url, { sql: `INSERT INTO t SELECT ${i}, repeat('x', 2000) || ${i}` });
    latencies.push(performance.now() - started);
    expect({ i, status: answer.status, error: answer.body.error }).toEqual({ i, status: 200, error: undefined });
  }
  return latencies;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

test("radosgw: a replica store cut off under writes costs commits nothing, shows its lag and error, catches up, and restores alone", async () => {
  const primary = await freshBucket("replica-primary");
  const second = await freshBucket("replica-second");
  const { s3 } = primary;
  const proxy = await startFaultProxy(s3.endpoint);
  proxies.push(proxy);
  const env = { HADUCK_S3_ACCESS_KEY: s3.accessKey, HADUCK_S3_SECRET_KEY: s3.secretKey, HADUCK_S3_REGION: s3.region,
    HADUCK_S3_ENDPOINT: s3.endpoint };
  const dbKey = "rs.duckdb";
  const primaryUrl = `s3://${primary.bucket}/haduck`;
  const secondUrl = `s3://${second.bucket}/haduck`;
  const dirUrl = `file://${join(dir, "replica-dir")}`;
  const node = await startNode({ dir, name: "writer", dbKey, ttlMs: 3000, env, storeArgs: ["--store", primaryUrl,
    "--replica-store", `${secondUrl}?endpoint=${proxy.endpoint}`, "--replica-store", dirUrl] });
  running.push(node);
  await waitForLeader([node], 30_000);
  expect((await sql(node.url, { sql: "CREATE TABLE t(id INTEGER, v VARCHAR)" })).status).toBe(200);
  const healthy = await timedWrites(node.url, 0, 20);
  await waitFor("both replicas caught up", 30_000, async () => {
    const stores = await replicaStores(node.url);
    return stores.length === 2 && stores.every((store) => store.state === "caught-up") ? stores : undefined;
  });

  // Stalled first (requests accepted, never answered), then cut off (every connection dropped).
  proxy.setRule(() => ({ kind: "blackhole" }));
  const down = await timedWrites(node.url, 100, 10);
  proxy.setRule(() => ({ kind: "reset-before-request" }));
  down.push(...await timedWrites(node.url, 110, 10));
  const checkpoint = await fetch(`${node.url}checkpoint`, { method: "POST", signal: AbortSignal.timeout(20_000),
    headers: { authorization: `Bearer ${TOKEN}` } });
  expect(checkpoint.status).toBe(200);
  down.push(...await timedWrites(node.url, 200, 10));
  // A commit that waited for the replica would wait out its retries (seconds); none did.
  expect(Math.max(...down)).toBeLessThan(5000);
  console.log(`durable write latency: healthy median ${median(healthy).toFixed(1)} ms, replica down median ` +
    `${median(down).toFixed(1)} ms (max ${Math.max(...down).toFixed(1)} ms)`);
  // A stalled request gives up after the replica's attempt timeout (10 s), then the drops fail fast.
  const failing = await waitFor("the cut-off replica to show as failing", 60_000, async () => {
    const stores = await replicaStores(node.url);
    const cut = stores.find((store) => store.url === secondUrl);
    return cut?.state === "failing" && cut.objectsBehind > 0 ? cut : undefined;
  });
  expect(failing.lastError).toContain(secondUrl);
  expect(failing.bytesBehind).toBeGreaterThan(0);
  expect(failing.lagMs).toBeGreaterThan(0);
  // The directory replica is not held up by the other one.
  expect((await replicaStores(node.url)).find((store) => store.url === dirUrl)?.objectsBehind ?? -1).toBeLessThan(5);
  const metrics = await (await fetch(`${node.url}metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
  expect(metrics).toContain(`haduck_replica_store_up{db="${dbKey}",store="${secondUrl}"} 0`);
  expect(metrics).toContain(`haduck_replica_store_up{db="${dbKey}",store="${dirUrl}"} 1`);
  const behind = new RegExp(`haduck_replica_store_objects_behind\\{db="${dbKey}",store="${secondUrl}"\\} (\\d+)`)
    .exec(metrics);
  expect(Number(behind?.[1])).toBeGreaterThan(0);
  expect(metrics).not.toContain(s3.secretKey);
  expect(node.log()).toContain(`replica store Cannot copy`);

  // Healed: it catches up without a restart.
  proxy.setRule(() => ({ kind: "pass" }));
  await waitFor("the healed replica to catch up", 60_000, async () => {
    const stores = await replicaStores(node.url);
    return stores.every((store) => store.state === "caught-up" && store.objectsBehind === 0) ? stores : undefined;
  });
  expect(node.log()).toMatch(/answering again after/);
  const live = await liveDigest(node.url);
  expect(live).toContain("t:50:");
  const creds = { ...env };
  expect(await restoredDigest(["--store", primaryUrl], creds, dbKey, "from-primary")).toBe(live);
  expect(await restoredDigest(["--store", secondUrl], creds, dbKey, "from-second")).toBe(live);
  expect(await restoredDigest(["--store", dirUrl], creds, dbKey, "from-dir")).toBe(live);

  // The reconcile pass sends only what the replica lacks: two objects lost there, two PUTs.
  const secondStore = new S3BlockStore({ ...s3, bucket: second.bucket, prefix: "haduck" });
  const lost: string[] = [];
  for await (const info of secondStore.list(`${dbKey}/segments/`)) if (lost.length < 1) lost.push(info.key);
  for await (const info of secondStore.list(`${dbKey}/manifests/`)) if (lost.length < 2) lost.push(info.key);
  await secondStore.deleteMany(lost);
  const viaProxy = new S3BlockStore({ ...s3, endpoint: proxy.endpoint, bucket: second.bucket, prefix: "haduck" });
  const puts = () => proxy.forwarded.filter((request) => request.method === "PUT").length;
  const before = puts();
  const report = await reconcileReplica({ primary: primary.store, replica: viaProxy, dbKey, concurrencyMax: 4 });
  expect({ copied: report.objectsCopied, puts: puts() - before }).toEqual({ copied: 2, puts: 2 });
  expect(report.objectsHeld).toBeGreaterThan(10);
  const again = await reconcileReplica({ primary: primary.store, replica: viaProxy, dbKey, concurrencyMax: 4 });
  expect({ copied: again.objectsCopied, puts: puts() - before }).toEqual({ copied: 0, puts: 2 });

  // The primary gone: the replica alone restores, verifies and lists its generations.
  node.process.kill("SIGTERM");
  await node.process.exited;
  running.splice(running.indexOf(node), 1);
  const everything: string[] = [];
  for await (const info of primary.store.list(`${dbKey}/`)) everything.push(info.key);
  await primary.store.deleteMany(everything);
  expect(await countObjects(primary.store, `${dbKey}/`)).toBe(0);
  const afterStop = await restoredDigest(["--store", secondUrl], creds, dbKey, "second-alone");
  expect(afterStop).toContain("t:50:");
  const verified = await runHaduck(dir, ["verify", "--store", secondUrl, "--db-key", dbKey], creds);
  expect({ code: verified.code, stderr: verified.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
  const generations = await runHaduck(dir, ["generations", "--store", dirUrl, "--db-key", dbKey, "--json"], creds);
  expect(generations.code).toBe(0);
  expect(JSON.parse(generations.stdout).length).toBeGreaterThanOrEqual(2);
});

async function countObjects(store: BlockStore, prefix: string): Promise<number> {
  let count = 0;
  for await (const _ of store.list(prefix)) count++;
  return count;
}

test("the sidecar a DuckDB host starts mirrors to HADUCK_REPLICA_STORES; gc applies its policy to each store", async () => {
  const root = resolve(import.meta.dir, "..");
  const primaryDir = join(dir, "sidecar-primary");
  const replicaDirs = [join(dir, "sidecar-replica-1"), join(dir, "sidecar-replica-2")];
  const dbPath = join(dir, "host.duckdb");
  const env: Record<string, string> = { PATH: process.env.PATH!, HOME: process.env.HOME ?? "/root",
    HADUCK_BIN: join(root, "packages/cli/bin/haduck.mjs"), HADUCK_STORE: `file://${primaryDir}`,
    HADUCK_REPLICA_STORES: replicaDirs.map((path) => `file://${path}`).join(", ") };
  const host = Bun.spawn(["node", join(root, "tests/fixtures/node_host.mjs"),
    join(root, "extension/build/haduck.duckdb_extension"), dbPath,
    "CREATE TABLE mydb.t AS SELECT i, md5(i::VARCHAR) AS s FROM range(100000) r(i)", "CHECKPOINT mydb",
    "UPDATE mydb.t SET s = 'u' WHERE i % 7 = 0", "CHECKPOINT mydb", "INSERT INTO mydb.t VALUES (-1, 'last')",
    "CHECKPOINT mydb"], { env, stdout: "pipe", stderr: "pipe" });
  const stderr = await new Response(host.stderr).text();
  expect({ code: await host.exited, stderr }).toEqual({ code: 0, stderr: expect.any(String) });
  const local = await fileDigest(dbPath);
  for (const [index, store] of [primaryDir, ...replicaDirs].entries()) {
    // The sidecar ships after the host exits, then copies to the replicas: wait for the store's copy.
    await waitFor(`store ${index} to hold the host's file`, 60_000, async () => {
      const to = join(dir, `host-${index}.duckdb`);
      const restored = await runHaduck(dir, ["restore", "--store", `file://${store}`, "--db-key", "host.duckdb",
        "--to", to, "--force"]);
      return restored.code === 0 && await fileDigest(to) === local ? true : undefined;
    });
  }
  // gc with the replicas: the same policy, applied to each store on its own.
  const gc = await runHaduck(dir, ["gc", "--store", `file://${primaryDir}`, "--replica-store",
    `file://${replicaDirs[0]}`, "--replica-store", `file://${replicaDirs[1]}`, "--db-key", "host.duckdb",
    "--keep-last", "1", "--apply", "--json"]);
  expect({ code: gc.code, stderr: gc.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
  const report = JSON.parse(gc.stdout);
  expect(report.kept.length).toBe(1);
  expect(report.replicaStores.map((each: { store: string }) => each.store))
    .toEqual(replicaDirs.map((path) => `file://${path}`));
  for (const each of [report, ...report.replicaStores]) {
    expect(each.kept).toEqual(report.kept);
    expect(each.deletedGenerations.length).toBeGreaterThan(0);
  }
  for (const store of replicaDirs) {
    const generations = await runHaduck(dir, ["generations", "--store", `file://${store}`, "--db-key", "host.duckdb",
      "--json"]);
    expect(JSON.parse(generations.stdout).length).toBe(1);
  }
});

test("attach --replica-store: the replica holds the file's commits when attach exits, and restores it alone", async () => {
  const dbPath = join(dir, "attached.duckdb");
  const [store, replica] = [`file://${join(dir, "attach-primary")}`, `file://${join(dir, "attach-replica")}`];
  const attached = await runHaduck(dir, ["attach", dbPath, "--store", store, "--replica-store", replica, "--sync",
    "-c", "CREATE TABLE t AS SELECT i, md5(i::VARCHAR) AS s FROM range(50000) r(i)", "-c", "CHECKPOINT",
    "-c", "INSERT INTO t VALUES (-1, 'after the checkpoint')"]);
  expect({ code: attached.code, stderr: attached.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
  const to = join(dir, "attached-from-replica.duckdb");
  const restored = await runHaduck(dir, ["restore", "--store", replica, "--db-key", "attached.duckdb", "--to", to]);
  expect({ code: restored.code, stderr: restored.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
  expect(await fileDigest(to)).toBe(await fileDigest(dbPath));
  expect(await fileDigest(to)).toContain("t:50001:");
  // The lease and nothing else stays behind: the replica lists the same keys as the primary.
  const keys = async (url: string) => {
    const out: string[] = [];
    for await (const info of openStore(url).list("attached.duckdb/")) out.push(info.key);
    return out.filter((key) => !key.endsWith("/lease.json"));
  };
  expect(await keys(replica)).toEqual(await keys(store));
});

test("--replica-store is checked before anything opens: a bad URL, or a replica without a store, is a usage error", async () => {
  const bad = await runHaduck(dir, ["attach", join(dir, "x.duckdb"), "--store", `file://${join(dir, "p")}`,
    "--replica-store", "ftp://nowhere", "-c", "SELECT 1"]);
  expect(bad.code).toBe(2);
  expect(bad.stderr).toContain("--replica-store");
  expect(bad.stderr).toContain("file:///abs/dir");
  const alone = await runHaduck(dir, ["attach", join(dir, "y.duckdb"), "--replica-store", `file://${join(dir, "r")}`,
    "-c", "SELECT 1"], { HADUCK_STORE: "" });
  expect(alone.code).toBe(2);
  expect(alone.stderr).toContain("give --store too");
  const unknown = await runHaduck(dir, ["attach", join(dir, "z.duckdb"), "--store", `file://${join(dir, "p")}`,
    "--replica-store", "s3://bucket-name/p?secret=x", "-c", "SELECT 1"]);
  expect(unknown.code).toBe(2);
  expect(unknown.stderr).toContain("only ?endpoint=");
  expect(openStore("s3://bucket-name/p?endpoint=http://127.0.0.1:9&region=eu-west-1", { HADUCK_S3_ACCESS_KEY: "a",
    HADUCK_S3_SECRET_KEY: "b" }).url).toBe("s3://bucket-name/p");
});
