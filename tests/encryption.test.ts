/**
 * Client-side encryption end to end on radosgw (issue 36): a writer whose store is opened as the CLI
 * opens it (HADUCK_ENCRYPTION_KEY), killed -9; restore equals the live file, verify --drill passes, a
 * follower reads, the store holds no plaintext; a flipped bit and a swapped object are refused by
 * name; a wrong and a missing key are exit 3 naming the key id. Rotation under writes, rekey killed
 * -9 midway and resumed, then the old key retired. A DuckDB host with only the extension (its
 * sidecar) writes an encrypted store too.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type BlockStore, FsBlockStore, keyIdOf, parseKey } from "@haduck/s3-block-store";
import { queryFile } from "./harness/duckdb.ts";
import { runHaduck } from "./harness/cli.ts";
import { freshBucket, type TestS3 } from "./harness/s3.ts";
import { type FaultProxy, startFaultProxy } from "./harness/fault_proxy.ts";
import { type ClusterNodeProcess, sql, startNode, status, waitForLeader, WriteLoad } from "./harness/cluster.ts";

const ROOT = resolve(import.meta.dir, "..");
const WRITER = join(ROOT, "tests/fixtures/encrypted_writer.ts");
const BRIDGE_HOST = join(ROOT, "tests/fixtures/restart_bridge_host.ts");
const NODE_HOST = join(ROOT, "tests/fixtures/node_host.mjs");
const EXTENSION = join(ROOT, "extension/build/haduck.duckdb_extension");
const MARKER = "SECRET-MARKER-7f3a";
const KEY_A = "a1".repeat(32);
const KEY_B = Buffer.from("b2".repeat(32), "hex").toString("base64"); // base64 works as well as hex
const ID_A = keyIdOf(parseKey(KEY_A, "test"));
const ID_B = keyIdOf(parseKey(KEY_B, "test"));
const dir = mkdtempSync(join(tmpdir(), "haduck-encryption-"));
const nodes: ClusterNodeProcess[] = [];
afterAll(() => {
  for (const node of nodes) node.process.kill(9);
  rmSync(dir, { recursive: true, force: true });
});

function storeEnv(s3: TestS3, bucket: string, endpoint = s3.endpoint): Record<string, string> {
  return { HADUCK_STORE: `s3://${bucket}/haduck`, HADUCK_S3_ENDPOINT: endpoint, HADUCK_S3_ACCESS_KEY: s3.accessKey,
    HADUCK_S3_SECRET_KEY: s3.secretKey, HADUCK_ENCRYPTION_KEY: "", HADUCK_ENCRYPTION_KEY_FILE: "" };
}

/** Whole rows of `t`, order-independent (a lost UPDATE changes it, not only a lost row). */
async function content(path: string): Promise<string> {
  const [row] = await queryFile(path, "SELECT count(*)::BIGINT AS n, sum(hash(batch, i, v))::HUGEINT AS h FROM t");
  return `${row.n}:${row.h}`;
}

/** The writer fixture, running until killed; `durable()` is the rows of the last commit it saw in the store. */
function startWriter(dbPath: string, dbKey: string, env: Record<string, string>) {
  const child = Bun.spawn([process.execPath, WRITER, dbPath, dbKey], { cwd: ROOT, env: { ...process.env, ...env },
    stdout: "pipe", stderr: "pipe" });
  let output = "";
  let errors = "";
  const reading = Promise.all([(async () => {
    for await (const chunk of child.stdout) output += new TextDecoder().decode(chunk);
  })(), (async () => {
    for await (const chunk of child.stderr) errors += new TextDecoder().decode(chunk);
  })()]);
  const durable = () => [...output.matchAll(/durable (\d+) (\d+)/g)].map((m) => Number(m[1])).pop() ?? 0;
  return {
    durable,
    async waitForRows(rows: number) {
      const deadline = Date.now() + 120_000;
      while (durable() < rows) {
        if (child.exitCode !== null || Date.now() > deadline) {
          throw new Error(`the writer stopped at ${durable()} rows (exit ${child.exitCode}): ${errors.slice(-2000)}`);
        }
        await Bun.sleep(20);
      }
    },
    async kill() {
      child.kill("SIGKILL");
      await child.exited;
      await reading;
    },
  };
}

/** Attaches the file once more (reconcile ships what the kill left), then closes cleanly. */
async function reconcile(dbPath: string, dbKey: string, env: Record<string, string>) {
  const child = Bun.spawn([process.execPath, BRIDGE_HOST, dbPath, "clean"], { cwd: ROOT,
    env: { ...process.env, ...env, HADUCK_DB_KEY: dbKey }, stdout: "pipe", stderr: "pipe" });
  const [stderr, code] = await Promise.all([new Response(child.stderr).text(), child.exited]);
  expect({ code, stderr: stderr.includes("replicator:") ? stderr : "" }).toEqual({ code: 0, stderr: "" });
}

/** Every stored object's raw bytes, read past the seal. */
async function rawObjects(store: BlockStore): Promise<Map<string, Uint8Array>> {
  const objects = new Map<string, Uint8Array>();
  for await (const info of store.list("")) objects.set(info.key, await store.get(info.key));
  return objects;
}

/** The key id a raw object is sealed with, or `plain`. */
const sealedWith = (bytes: Uint8Array) =>
  Buffer.from(bytes.subarray(0, 6)).toString() === "HDSEAL" ? Buffer.from(bytes.subarray(8, 16)).toString("hex") : "plain";

test("encrypted on radosgw: kill -9, restore equals the live file, verify --drill, a follower, no plaintext stored, tampering and wrong keys refused", async () => {
  const { store: raw, bucket, s3 } = await freshBucket("encrypted");
  const env = { ...storeEnv(s3, bucket), HADUCK_ENCRYPTION_KEY: KEY_A };
  const dbPath = join(dir, "enc.duckdb");
  const writer = startWriter(dbPath, "enc.duckdb", env);
  await writer.waitForRows(4000);
  await writer.kill();
  const acknowledged = writer.durable();
  // The kill's state restores: at least every commit the writer saw durable.
  const killed = await runHaduck(dir, ["restore", "--db-key", "enc.duckdb", "--to", join(dir, "killed.duckdb")], env);
  expect({ code: killed.code, stderr: killed.code === 0 ? "" : killed.stderr }).toEqual({ code: 0, stderr: "" });
  expect(Number((await content(join(dir, "killed.duckdb"))).split(":")[0])).toBeGreaterThanOrEqual(acknowledged);
  // A restart ships what the kill left; then the store's copy is the live file, row for row.
  await reconcile(dbPath, "enc.duckdb", env);
  const restored = await runHaduck(dir, ["restore", "--db-key", "enc.duckdb", "--to", join(dir, "restored.duckdb")], env);
  expect(restored.code).toBe(0);
  const live = await content(dbPath);
  expect(await content(join(dir, "restored.duckdb"))).toBe(live);
  const verified = await runHaduck(dir, ["verify", "--db-key", "enc.duckdb", "--drill"], env);
  expect({ code: verified.code, stdout: verified.stdout }).toEqual({ code: 0, stdout: expect.stringContaining(" 0 problems") });
  // A follower (the lazy read-only view) reads the encrypted store.
  const follower = await runHaduck(dir, ["attach", "--from-store", "--db-key", "enc.duckdb", "-c",
    "SELECT count(*)::BIGINT || ':' || sum(hash(batch, i, v))::HUGEINT AS c FROM t"], env);
  expect(follower.code).toBe(0);
  expect(follower.stdout).toContain(live);

  // Nothing in the store is plaintext: every object but the lease is sealed with key A, no marker anywhere.
  const objects = await rawObjects(raw);
  expect(objects.size).toBeGreaterThan(10);
  for (const [key, bytes] of objects) {
    expect({ key, marker: Buffer.from(bytes).includes(MARKER) }).toEqual({ key, marker: false });
    if (!key.endsWith("/lease.json")) expect({ key, sealedWith: sealedWith(bytes) }).toEqual({ key, sealedWith: ID_A });
  }

  // A wrong key and no key: exit 3, naming the key id the store needs (and never the key).
  for (const key of [KEY_B, ""]) {
    for (const command of [["restore", "--to", join(dir, "never.duckdb")], ["verify"], ["generations"]]) {
      const refused = await runHaduck(dir, [...command, "--db-key", "enc.duckdb"], { ...env, HADUCK_ENCRYPTION_KEY: key });
      expect({ command, code: refused.code }).toEqual({ command, code: 3 });
      expect(refused.stderr).toContain(`key id ${ID_A}`);
      expect(refused.stderr).not.toContain(KEY_A);
    }
  }

  // A flipped bit in a segment: verify fails (exit 5) naming it; the original back, verify passes again.
  const segmentKey = [...objects.keys()].filter((key) => key.includes("/segments/")).pop()!;
  const good = objects.get(segmentKey)!;
  const flipped = good.slice();
  flipped[Math.floor(flipped.byteLength / 2)] ^= 0x10;
  await raw.put(segmentKey, flipped);
  const tampered = await runHaduck(dir, ["verify", "--db-key", "enc.duckdb", "--no-drill"], env);
  expect(tampered.code).toBe(5);
  expect(tampered.stdout + tampered.stderr).toContain(segmentKey.replace(/^haduck\//, ""));
  await raw.put(segmentKey, good);
  // An object put in place of another of the same size (other key) is refused by name.
  const bySize = new Map<number, string>();
  let swapped: [string, string] | undefined;
  for (const [key, bytes] of objects) {
    if (!key.includes("/frames/")) continue;
    const other = bySize.get(bytes.byteLength);
    if (other) swapped = [other, key];
    bySize.set(bytes.byteLength, key);
  }
  expect(swapped).toBeDefined(); // the writer's frames are alike: two have the same size
  await raw.put(swapped![0], objects.get(swapped![1])!);
  const swappedVerify = await runHaduck(dir, ["verify", "--db-key", "enc.duckdb", "--no-drill"], env);
  expect(swappedVerify.code).toBe(5);
  expect(swappedVerify.stdout + swappedVerify.stderr).toContain(swapped![0]);
  expect(swappedVerify.stdout + swappedVerify.stderr).toContain("put in place of another");
  await raw.put(swapped![0], objects.get(swapped![0])!);
  expect((await runHaduck(dir, ["verify", "--db-key", "enc.duckdb", "--no-drill"], env)).code).toBe(0);

  // The other commands on the encrypted store: databases, status, fork, gc, and the fork restores.
  const databases = await runHaduck(dir, ["databases", "--json"], env);
  expect(JSON.parse(databases.stdout).map((db: { dbKey: string }) => db.dbKey)).toEqual(["enc.duckdb"]);
  expect(JSON.parse((await runHaduck(dir, ["status", "--db-key", "enc.duckdb", "--json"], env)).stdout).lastGeneration)
    .toBeGreaterThan(0);
  expect((await runHaduck(dir, ["fork", "--db-key", "enc.duckdb", "--to-key", "enc-fork.duckdb"], env)).code).toBe(0);
  const collected = await runHaduck(dir, ["gc", "--db-key", "enc.duckdb", "--keep-last", "1", "--apply", "--json"], env);
  expect(collected.code).toBe(0);
  expect(JSON.parse(collected.stdout).deletedGenerations.length).toBeGreaterThan(0);
  const forked = await runHaduck(dir, ["restore", "--db-key", "enc-fork.duckdb", "--to", join(dir, "fork.duckdb")], env);
  expect(forked.code).toBe(0);
  expect(await content(join(dir, "fork.duckdb"))).toBe(live);
  expect((await runHaduck(dir, ["verify", "--db-key", "enc.duckdb"], env)).code).toBe(0);
}, 600_000);

test("rotation under writes: new commits use the new key at once, rekey killed -9 midway resumes, then the old key retires", async () => {
  const { store: raw, bucket, s3 } = await freshBucket("rekey");
  const envA = { ...storeEnv(s3, bucket), HADUCK_ENCRYPTION_KEY: KEY_A };
  const envBA = { ...storeEnv(s3, bucket), HADUCK_ENCRYPTION_KEY: `${KEY_B},${KEY_A}` };
  const dbPath = join(dir, "rot.duckdb");
  const first = startWriter(dbPath, "rot.duckdb", envA);
  await first.waitForRows(6000);
  await first.kill();
  // The writer comes back with the new key first: what it writes from now on is sealed with B.
  const writer = startWriter(dbPath, "rot.duckdb", envBA);
  await writer.waitForRows(first.durable() + 1000);
  const before = await rawObjects(raw);
  const newest = [...before.keys()].filter((key) => key.includes("/frames/")).sort().pop()!;
  expect(sealedWith(before.get(newest)!)).toBe(ID_B);
  const oldCount = [...before.values()].filter((bytes) => sealedWith(bytes) === ID_A).length;
  expect(oldCount).toBeGreaterThan(20);

  // rekey over a slow link (200 ms a request), killed -9 after its first progress line.
  const proxy: FaultProxy = await startFaultProxy(s3.endpoint);
  proxy.setRule(() => ({ kind: "pass", latencyMs: 200 }));
  try {
    const rekey = Bun.spawn([process.execPath, join(ROOT, "packages/cli/bin/haduck.ts"), "rekey"], { cwd: dir,
      env: { ...process.env, ...storeEnv(s3, bucket, proxy.endpoint), HADUCK_ENCRYPTION_KEY: `${KEY_B},${KEY_A}` },
      stdout: "pipe", stderr: "pipe" });
    let progress = "";
    const deadline = Date.now() + 60_000;
    const reading = (async () => {
      for await (const chunk of rekey.stderr) progress += new TextDecoder().decode(chunk);
    })();
    while (!/rekey: \d+ objects checked/.test(progress) && rekey.exitCode === null && Date.now() < deadline) {
      await Bun.sleep(10);
    }
    rekey.kill("SIGKILL");
    expect(await rekey.exited).not.toBe(0);
    await reading;
  } finally {
    await proxy.close();
  }
  const midway = [...(await rawObjects(raw)).values()].map(sealedWith);
  const leftA = midway.filter((id) => id === ID_A).length;
  expect(leftA).toBeGreaterThan(0); // killed midway: some objects still have the old key
  expect(leftA).toBeLessThan(oldCount); // and some were resealed before the kill

  // Resumed (while the writer still writes): what the first run did is skipped, the rest resealed.
  const resumed = await runHaduck(dir, ["rekey", "--json"], envBA);
  expect(resumed.code).toBe(0);
  const report = JSON.parse(resumed.stdout);
  expect(report.currentKeyId).toBe(ID_B);
  expect(report.objectsCurrent).toBeGreaterThan(0);
  expect(report.objectsResealed[ID_A]).toBeGreaterThan(0);
  expect(report.objectsResealed[ID_A]).toBeLessThanOrEqual(leftA);
  await writer.kill();

  // The old key retires: B alone opens everything; A alone is refused, naming B.
  const envB = { ...storeEnv(s3, bucket), HADUCK_ENCRYPTION_KEY: KEY_B };
  for (const [key, bytes] of await rawObjects(raw)) {
    if (!key.endsWith("/lease.json")) expect({ key, sealedWith: sealedWith(bytes) }).toEqual({ key, sealedWith: ID_B });
  }
  await reconcile(dbPath, "rot.duckdb", envB);
  const restored = await runHaduck(dir, ["restore", "--db-key", "rot.duckdb", "--to", join(dir, "rot-restored.duckdb")], envB);
  expect({ code: restored.code, stderr: restored.code === 0 ? "" : restored.stderr }).toEqual({ code: 0, stderr: "" });
  expect(await content(join(dir, "rot-restored.duckdb"))).toBe(await content(dbPath));
  const verified = await runHaduck(dir, ["verify", "--db-key", "rot.duckdb", "--drill"], envB);
  expect({ code: verified.code, stdout: verified.stdout }).toEqual({ code: 0, stdout: expect.stringContaining(" 0 problems") });
  const oldOnly = await runHaduck(dir, ["verify", "--db-key", "rot.duckdb"], { ...envB, HADUCK_ENCRYPTION_KEY: KEY_A });
  expect(oldOnly.code).toBe(3);
  expect(oldOnly.stderr).toContain(`key id ${ID_B}`);
}, 600_000);

test("a plain store moves to encryption with rekey: plain objects refused until then, sealed afterwards", async () => {
  const storeDir = join(dir, "plain-store");
  const env = { HADUCK_STORE: `file://${storeDir}`, HADUCK_ENCRYPTION_KEY: "", HADUCK_ENCRYPTION_KEY_FILE: "" };
  const dbPath = join(dir, "plain.duckdb");
  const made = await runHaduck(dir, ["attach", dbPath, "-c", `CREATE TABLE t AS SELECT 0 AS batch, i::INT AS i, ` +
    `'${MARKER}' || i AS v FROM range(5000) r(i)`, "-c", "CHECKPOINT"], env);
  expect(made.code).toBe(0);
  const envA = { ...env, HADUCK_ENCRYPTION_KEY: KEY_A };
  const refused = await runHaduck(dir, ["verify", "--db-key", "plain.duckdb"], envA);
  expect(refused.code).toBe(3);
  expect(refused.stderr).toContain("not encrypted");
  expect(refused.stderr).toContain("haduck rekey");
  const dry = await runHaduck(dir, ["rekey", "--dry-run"], envA);
  expect(dry.code).toBe(0);
  expect(dry.stdout).toMatch(/would reseal \(\d+ plain\)/);
  const moved = await runHaduck(dir, ["rekey"], envA);
  expect(moved.code).toBe(0);
  for (const [key, bytes] of await rawObjects(new FsBlockStore(storeDir))) {
    expect({ key, sealedWith: sealedWith(bytes) }).toEqual({ key, sealedWith: ID_A });
  }
  const restored = await runHaduck(dir, ["restore", "--db-key", "plain.duckdb", "--to", join(dir, "plain-r.duckdb")], envA);
  expect(restored.code).toBe(0);
  expect(await content(join(dir, "plain-r.duckdb"))).toBe(await content(dbPath));
}, 300_000);

test("a DuckDB host with only the extension: its sidecar seals what it ships, and a restore with the key equals the file", async () => {
  const storeDir = join(dir, "sidecar-store");
  const dbPath = join(dir, "host.duckdb");
  const env: Record<string, string> = { PATH: process.env.PATH!, HOME: process.env.HOME ?? "/root",
    HADUCK_BIN: join(ROOT, "packages/cli/bin/haduck.mjs"), HADUCK_STORE: `file://${storeDir}`,
    HADUCK_ENCRYPTION_KEY: KEY_A };
  const child = Bun.spawn(["node", NODE_HOST, EXTENSION, dbPath,
    `CREATE TABLE mydb.t AS SELECT i % 7 AS batch, i::INT AS i, '${MARKER}' || i AS v FROM range(100000) r(i)`,
    "CHECKPOINT mydb", "UPDATE mydb.t SET v = v || '-u' WHERE i % 3 = 0"], { env, stdout: "pipe", stderr: "pipe" });
  const [stderr, code] = await Promise.all([new Response(child.stderr).text(), child.exited]);
  expect({ code, stderr: code === 0 ? "" : stderr }).toEqual({ code: 0, stderr: "" });
  const cli = { HADUCK_STORE: `file://${storeDir}`, HADUCK_ENCRYPTION_KEY: KEY_A, HADUCK_ENCRYPTION_KEY_FILE: "" };
  // The sidecar ships the last commits after the host exits: wait until the store has them.
  const live = await content(dbPath);
  const deadline = Date.now() + 60_000;
  for (let restored = ""; restored !== live;) {
    if (Date.now() > deadline) throw new Error(`the store never caught up with ${dbPath}: ${restored} vs ${live}`);
    await Bun.sleep(200);
    const result = await runHaduck(dir, ["restore", "--db-key", "host.duckdb", "--force", "--to",
      join(dir, "host-r.duckdb")], cli);
    if (result.code === 0) restored = await content(join(dir, "host-r.duckdb"));
  }
  for (const [key, bytes] of await rawObjects(new FsBlockStore(storeDir))) {
    expect({ key, marker: Buffer.from(bytes).includes(MARKER), sealedWith: sealedWith(bytes) })
      .toEqual({ key, marker: false, sealedWith: ID_A });
  }
  const without = await runHaduck(dir, ["restore", "--db-key", "host.duckdb", "--to", join(dir, "never.duckdb")],
    { ...cli, HADUCK_ENCRYPTION_KEY: "" });
  expect(without.code).toBe(3);
  expect(without.stderr).toContain(`key id ${ID_A}`);
}, 300_000);

test("an encrypted cluster on radosgw: kill -9 of the leader, a follower takes over, nothing acknowledged is lost", async () => {
  const { store: raw, bucket, s3 } = await freshBucket("enc-cluster");
  const env = { ...storeEnv(s3, bucket), HADUCK_STORE: "", HADUCK_ENCRYPTION_KEY: KEY_A };
  for (const name of ["a", "b"]) {
    nodes.push(await startNode({ dir: join(dir, "cluster"), name, dbKey: "c.duckdb", ttlMs: 2000, env,
      storeArgs: ["--store", `s3://${bucket}/haduck`] }));
  }
  const { leader } = await waitForLeader(nodes, 30_000);
  expect((await sql(leader.url, { sql: "CREATE TABLE acks(client INTEGER, n INTEGER)" })).status).toBe(200);
  const load = new WriteLoad(2, () => nodes.filter((node) => node.process.exitCode === null).map((node) => node.url));
  load.start();
  await Bun.sleep(2000);
  leader.process.kill(9);
  await leader.process.exited;
  const survivor = nodes.find((node) => node !== leader)!;
  await waitForLeader([survivor], 30_000);
  await Bun.sleep(1000);
  await load.stop();
  expect((await status(survivor.url))?.role).toBe("leader");
  const read = await sql(survivor.url, { sql: "SELECT client, n FROM acks" });
  expect(read.status).toBe(200);
  expect(load.check(read.body.rows as [number, number][], "the new leader")).toEqual([]);
  expect([...load.acknowledged.values()].reduce((sum, set) => sum + set.size, 0)).toBeGreaterThan(5);
  // The cluster's objects are sealed too; only the lease is plain.
  for (const [key, bytes] of await rawObjects(raw)) {
    expect({ key, sealedWith: sealedWith(bytes) }).toEqual({ key, sealedWith: key.endsWith("/lease.json") ? "plain" : ID_A });
  }
}, 300_000);
