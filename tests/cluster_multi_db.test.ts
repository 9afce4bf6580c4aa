/**
 * Several databases per node: `haduck serve --db PATH=KEY` repeated. Each database has its own
 * lease, role, replica and leader; `POST /sql` picks one with "db"; `/status` lists every one. Two
 * nodes serve three databases; writes through the follower are forwarded to each database's
 * leader; kill -9 of the leader: the other node leads every database, and every acknowledged write
 * of each is there. With --group, one lease stands for every database (one epoch), and followers
 * are told of changes by the group's change object. Bad --db lists fail by name before anything opens.
 */
import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BIN, type ClusterNodeProcess, sql, startNode, status, TOKEN } from "./harness/cluster.ts";

const TTL_MS = 2000;
const KEYS = ["alpha.duckdb", "beta.duckdb", "gamma.duckdb"];
const dir = mkdtempSync(join(tmpdir(), "haduck-cluster-multi-"));
const running: ClusterNodeProcess[] = [];
afterAll(() => {
  for (const node of running) node.process.kill(9);
  rmSync(dir, { recursive: true, force: true });
});

async function start(name: string, group?: string, keys = KEYS) {
  const store = join(dir, group ? `store-${group}` : "store");
  const node = await startNode({ dir: join(dir, group ?? "own"), name, storeArgs: ["--store", `file://${store}`],
    dbKey: keys[0], ttlMs: TTL_MS, databases: keys.map((key) => `${key.replace(".duckdb", "")}.db=${key}`),
    extraArgs: group ? ["--group", group] : [] });
  running.push(node);
  return node;
}

/** Waits until `node` says `role` for every database. */
async function rolesAre(node: ClusterNodeProcess, role: string, timeoutMs: number, count = KEYS.length): Promise<number> {
  const started = performance.now();
  while (performance.now() - started < timeoutMs) {
    const said = await status(node.url);
    if (said && said.databases.length === count && said.databases.every((entry) => entry.role === role)) {
      return performance.now() - started;
    }
    await Bun.sleep(50);
  }
  throw new Error(`${node.name} did not become ${role} of every database: ${JSON.stringify(await status(node.url))}`);
}

test("two nodes, three databases each: per-database leases, forwarding by database, failover of every one", async () => {
  const first = await start("first");
  await rolesAre(first, "leader", 30_000);
  const second = await start("second");
  await rolesAre(second, "follower", 30_000);
  const said = (await status(second.url))!;
  expect(said.databases.map((entry) => entry.db).sort()).toEqual([...KEYS].sort());
  for (const entry of said.databases) expect(entry.leader).toBe(first.url);
  // Each database its own table and rows, written through the follower (forwarded to its leader).
  const acked = new Map<string, number>();
  for (const [index, db] of KEYS.entries()) {
    expect((await sql(second.url, { db, sql: `CREATE TABLE t${index} (i INT)` })).status).toBe(200);
    let n = 0;
    for (let i = 0; i < 5 + index; i++) {
      const answer = await sql(second.url, { db, sql: `INSERT INTO t${index} VALUES (?)`, params: [i] });
      expect(answer.status).toBe(200);
      n++;
    }
    acked.set(db, n);
  }
  // A database without that table says so by name: the statements went to their own databases.
  expect((await sql(first.url, { db: KEYS[0], sql: "SELECT count(*) FROM t1" })).body.error).toContain("t1");
  const unknown = await sql(first.url, { db: "nope.duckdb", sql: "SELECT 1" });
  expect(unknown.status).toBe(404);
  first.process.kill(9);
  const tookMs = await rolesAre(second, "leader", 6 * TTL_MS + 10_000);
  for (const [index, db] of KEYS.entries()) {
    const count = await sql(second.url, { db, sql: `SELECT count(*)::INT FROM t${index}` });
    expect(count.status).toBe(200);
    expect(count.body.rows).toEqual([[acked.get(db)]]);
    expect((await sql(second.url, { db, sql: `INSERT INTO t${index} VALUES (100)` })).status).toBe(200);
  }
  console.log(`three databases failed over to the second node in ${tookMs.toFixed(0)} ms`);
  ownLeases = { node: second, acked };
}, 180_000);

let ownLeases: { node: ClusterNodeProcess; acked: Map<string, number> } | undefined;

test("databases that had leases of their own join a group: its epoch goes on above theirs, nothing is lost", async () => {
  const { node, acked } = ownLeases!;
  const before = Math.max(...(await status(node.url))!.databases.map((entry) => entry.epoch));
  expect(before).toBeGreaterThanOrEqual(2); // the failover above took every database to a new epoch
  node.process.kill(9);
  await Bun.sleep(TTL_MS + 500); // its own leases run out: nobody writes while the group starts
  const grouped = await startNode({ dir: join(dir, "joined"), name: "joined", dbKey: KEYS[0], ttlMs: TTL_MS,
    storeArgs: ["--store", `file://${join(dir, "store")}`], extraArgs: ["--group", "joined"],
    databases: KEYS.map((key) => `${key.replace(".duckdb", "")}.db=${key}`) });
  running.push(grouped);
  await rolesAre(grouped, "leader", 60_000);
  const epochs = (await status(grouped.url))!.databases.map((entry) => entry.epoch);
  expect(new Set(epochs).size).toBe(1);
  expect(epochs[0]).toBeGreaterThan(before);
  for (const [index, db] of KEYS.entries()) {
    const count = await sql(grouped.url, { db, sql: `SELECT count(*)::INT FROM t${index}` });
    expect(count.body.rows).toEqual([[acked.get(db)! + 1]]); // and the write made after the failover
    expect((await sql(grouped.url, { db, sql: `INSERT INTO t${index} VALUES (200)` })).status).toBe(200);
  }
}, 180_000);

const GROUP_KEYS = Array.from({ length: 20 }, (_, i) => `g${i}.duckdb`);

test("a group of 20 databases: one lease, followers told of changes; reads follow writes, kill -9 fails over all", async () => {
  const first = await start("first", "grp", GROUP_KEYS);
  await rolesAre(first, "leader", 60_000, GROUP_KEYS.length);
  const second = await start("second", "grp", GROUP_KEYS);
  await rolesAre(second, "follower", 60_000, GROUP_KEYS.length);
  // One lease object for the group, none per database.
  const store = join(dir, "store-grp");
  expect(existsSync(join(store, "grp", "lease.json"))).toBe(true);
  for (const key of GROUP_KEYS) expect(existsSync(join(store, key, "lease.json"))).toBe(false);
  const epochs = new Set((await status(second.url))!.databases.map((entry) => entry.epoch));
  expect(epochs.size).toBe(1); // one epoch fences every database's history
  // The follower reports itself for every database in one request a round: the leader lists it for each.
  const deadline = performance.now() + 10_000;
  let listed: { db: string; nodes?: { address: string; role: string }[] }[] = [];
  while (performance.now() < deadline) {
    listed = (await status(first.url))?.databases as typeof listed ?? [];
    if (listed.length === GROUP_KEYS.length && listed.every((entry) => entry.nodes?.length === 2)) break;
    await Bun.sleep(100);
  }
  for (const entry of listed) {
    expect(entry.nodes?.map((node) => [node.address, node.role]).sort()).toEqual([[first.url, "leader"],
      [second.url, "follower"]].sort());
  }
  const acked = new Map<string, number>();
  for (const [index, db] of GROUP_KEYS.entries()) {
    expect((await sql(second.url, { db, sql: `CREATE TABLE t${index} (i INT)` })).status).toBe(200);
    let position = "";
    for (let i = 0; i < 4; i++) {
      const answer = await sql(first.url, { db, sql: `INSERT INTO t${index} VALUES (?)`, params: [i] });
      expect(answer.status).toBe(200);
      position = answer.body.position!;
    }
    acked.set(db, 4);
    // The follower's replica (polling on its own only every 30 s) is told of the change and shows it.
    const started = performance.now();
    let shown = 0;
    while (performance.now() - started < 5_000) {
      const read = await sql(second.url, { db, sql: `SELECT count(*)::INT FROM t${index}`, maxLagMs: 60_000 });
      if (read.status === 200 && read.body.role === "follower") shown = (read.body.rows as number[][])[0][0];
      if (shown === 4) break;
      await Bun.sleep(50);
    }
    expect(shown).toBe(4);
    // And a read with the write's position waits for it on the follower, never stale.
    const after = await sql(second.url, { db, sql: `SELECT count(*)::INT FROM t${index}`, after: position });
    expect(after.body.rows).toEqual([[4]]);
  }
  first.process.kill(9);
  const tookMs = await rolesAre(second, "leader", 6 * TTL_MS + 30_000, GROUP_KEYS.length);
  console.log(`a group of ${GROUP_KEYS.length} databases failed over in ${tookMs.toFixed(0)} ms`);
  for (const [index, db] of GROUP_KEYS.entries()) {
    const count = await sql(second.url, { db, sql: `SELECT count(*)::INT FROM t${index}` });
    expect(count.body.rows).toEqual([[acked.get(db)]]);
    expect((await sql(second.url, { db, sql: `INSERT INTO t${index} VALUES (100)` })).status).toBe(200);
  }
  const after = (await status(second.url))!.databases;
  expect(new Set(after.map((entry) => entry.epoch)).size).toBe(1);
  expect(after[0].epoch).toBeGreaterThan([...epochs][0]);
}, 180_000);

test("serve with a bad list of databases fails by name before anything opens", async () => {
  const run = async (...args: string[]) => {
    const child = Bun.spawn([process.execPath, BIN, "serve", ...args, "--listen", "127.0.0.1:0",
      "--store", `file://${join(dir, "bad-store")}`], { cwd: dir, env: { ...process.env, HADUCK_ADMIN_TOKEN: TOKEN },
      stdout: "pipe", stderr: "pipe" });
    return { code: await child.exited, stderr: await new Response(child.stderr).text() };
  };
  const twice = await run("--db", "x.db=same.duckdb", "--db", "y.db=same.duckdb");
  expect(twice.code).toBe(2);
  expect(twice.stderr).toContain("same.duckdb twice");
  const both = await run("z.db", "--db", "x.db=k.duckdb");
  expect(both.code).toBe(2);
  expect(both.stderr).toContain("not both");
  const keyFlag = await run("--db", "x.db=k.duckdb", "--db-key", "other.duckdb");
  expect(keyFlag.code).toBe(2);
  expect(keyFlag.stderr).toContain("PATH=KEY");
}, 60_000);
