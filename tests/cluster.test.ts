/**
 * The cluster (issue 24), Jepsen-style, on the filesystem store: three `haduck serve` nodes on one
 * store and key, clients writing (client, n) through every node. Faults: kill -9 of the leader,
 * SIGSTOP of the leader for three TTLs and SIGCONT (a zombie that wakes up), kill -9 of a follower.
 * After each: another node leads within TTL + 2 s, every acknowledged write is on every node,
 * nothing never sent is, the old node rejoins as a follower, and the store holds one fenced history
 * (`haduck verify`). Also: two nodes started at once on an empty key, exactly one leads; a store that
 * ignores If-Match is refused by name.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  BIN,
  TOKEN,
  type ClusterNodeProcess,
  type NodeOptions,
  sql,
  startNode,
  status,
  waitForLeader,
  WriteLoad,
} from "./harness/cluster.ts";
import { launchChromium } from "./harness/browser.ts";
import { queryFile } from "./harness/duckdb.ts";
import { restore } from "@haduck/duckdb-fs-bridge";
import { openStore } from "@haduck/s3-block-store";

const TTL_MS = 2000;
const dir = mkdtempSync(join(tmpdir(), "haduck-cluster-"));
const running: ClusterNodeProcess[] = [];
afterAll(() => {
  for (const node of running) node.process.kill(9);
  rmSync(dir, { recursive: true, force: true });
});

function options(name: string, dbKey: string, extra: Partial<NodeOptions> = {}): NodeOptions {
  return { dir: join(dir, dbKey), name, storeArgs: ["--store", `file://${join(dir, "store")}`], dbKey, ttlMs: TTL_MS,
    ...extra };
}

async function start(name: string, dbKey: string, extra: Partial<NodeOptions> = {}) {
  const node = await startNode(options(name, dbKey, extra));
  running.push(node);
  return node;
}

/** Three nodes on `dbKey`, their leader, and the acks table made through it. */
async function threeWithAcks(dbKey: string) {
  const nodes = [await start("a", dbKey), await start("b", dbKey), await start("c", dbKey)];
  const { leader } = await waitForLeader(nodes, 10_000);
  expect((await sql(leader.url, { sql: "CREATE TABLE acks(client INTEGER, n INTEGER)" })).status).toBe(200);
  return { nodes, leader };
}

async function rows(url: string): Promise<[number, number][]> {
  const result = await sql(url, { sql: "SELECT client, n FROM acks ORDER BY client, n" });
  if (result.status !== 200) throw new Error(`read on ${url} failed: ${result.status} ${result.body.error}`);
  return result.body.rows as [number, number][];
}

/** Waits until every node's reads hold every acknowledged write (followers converge). */
async function converged(nodes: ClusterNodeProcess[], load: WriteLoad, timeoutMs: number): Promise<string[]> {
  const deadline = performance.now() + timeoutMs;
  let problems: string[] = [];
  while (performance.now() < deadline) {
    problems = [];
    for (const node of nodes) {
      try {
        problems.push(...load.check(await rows(node.url), node.name));
      } catch (error) {
        problems.push((error as Error).message);
      }
    }
    if (problems.length === 0) return [];
    await Bun.sleep(200);
  }
  return problems;
}

async function verify(dbKey: string): Promise<{ code: number; out: string }> {
  const child = Bun.spawn([process.execPath, BIN, "verify", "--store", `file://${join(dir, "store")}`, "--db-key", dbKey],
    { stdout: "pipe", stderr: "pipe" });
  const out = await new Response(child.stdout).text() + await new Response(child.stderr).text();
  return { code: await child.exited, out };
}

test("three nodes: kill -9 of the leader, a paused leader that wakes up, kill -9 of a follower; no acknowledged write lost", async () => {
  const dbKey = "jepsen.duckdb";
  const nodes = [await start("a", dbKey), await start("b", dbKey), await start("c", dbKey)];
  let { leader } = await waitForLeader(nodes, 10_000);
  // A write through a follower is forwarded to the leader.
  const follower = nodes.find((node) => node !== leader)!;
  const created = await sql(follower.url, { sql: "CREATE TABLE acks(client INTEGER, n INTEGER)" });
  expect(created.status).toBe(200);
  const followerStatus = await status(follower.url);
  expect(followerStatus?.role).toBe("follower");
  expect(followerStatus?.leader).toBe(leader.url);
  expect(followerStatus?.epoch).toBeGreaterThanOrEqual(1);

  let alive = [...nodes];
  const load = new WriteLoad(4, () => alive.map((node) => node.url));
  load.start();
  const prefixProblems: string[] = [];
  const reading = (async () => {
    // Reads on every node during the load: each shows, per client, every acknowledged n below its highest.
    for (let i = 0; i < 40; i++) {
      for (const node of alive) {
        const before = new Map([...load.acknowledged].map(([client, acked]) => [client, new Set(acked)]));
        const result = await sql(node.url, { sql: "SELECT client, n FROM acks" }, 5000);
        if (result.status === 200) prefixProblems.push(...load.checkPrefix(result.body.rows as [number, number][], before, node.name));
      }
      await Bun.sleep(100);
    }
  })();
  await Bun.sleep(1500);

  // 1. kill -9 of the leader.
  const killedAt = performance.now();
  leader.process.kill(9);
  await leader.process.exited;
  alive = alive.filter((node) => node !== leader);
  const first = await waitForLeader(alive, TTL_MS + 8000);
  const failoverMs = performance.now() - killedAt;
  expect(failoverMs).toBeLessThan(TTL_MS + 2000); // the contract: another node leads within TTL + 2 s
  const restarted = await start(leader.name, dbKey);
  alive.push(restarted);
  leader = first.leader;
  await Bun.sleep(1500);

  // 2. SIGSTOP of the leader for three TTLs, then SIGCONT: it must step down and acknowledge nothing on the old epoch.
  const paused = leader;
  paused.process.kill("SIGSTOP");
  alive = alive.filter((node) => node !== paused);
  const second = await waitForLeader(alive, TTL_MS + 8000);
  expect(second.ms).toBeLessThan(TTL_MS + 2000);
  await Bun.sleep(Math.max(0, TTL_MS * 3 - 0));
  paused.process.kill("SIGCONT");
  alive.push(paused);
  leader = second.leader;
  await Bun.sleep(2000);
  const woke = await status(paused.url);
  expect(woke?.role).not.toBe("leader");

  // 3. kill -9 of a follower; it comes back and converges.
  const victim = alive.find((node) => node !== leader)!;
  victim.process.kill(9);
  await victim.process.exited;
  alive = alive.filter((node) => node !== victim);
  await Bun.sleep(1000);
  alive.push(await start(victim.name, dbKey));
  await Bun.sleep(1500);

  await load.stop();
  await reading;
  const acked = [...load.acknowledged.values()].reduce((sum, set) => sum + set.size, 0);
  expect(acked).toBeGreaterThan(20);
  expect(prefixProblems).toEqual([]);
  expect(await converged(alive, load, 20_000)).toEqual([]);
  const roles = await Promise.all(alive.map(async (node) => (await status(node.url))?.role));
  expect(roles.filter((role) => role === "leader").length).toBe(1);
  expect(roles.filter((role) => role === "follower").length).toBe(alive.length - 1);
  for (const node of alive) node.process.kill("SIGTERM");
  await Promise.all(alive.map((node) => node.process.exited));
  const verified = await verify(dbKey);
  expect(verified.out).toContain(": 0 problems");
  expect(verified.code).toBe(0);
}, 240_000);

test("two nodes started at once on an empty key: exactly one leads; the other takes over when it stops", async () => {
  const dbKey = "pair.duckdb";
  const [a, b] = await Promise.all([start("a", dbKey), start("b", dbKey)]);
  const { leader } = await waitForLeader([a, b], 10_000);
  const other = leader === a ? b : a;
  expect((await status(other.url))?.role).toBe("follower");
  expect((await sql(other.url, { sql: "CREATE TABLE t AS SELECT 42 AS x" })).status).toBe(200);
  // The dashboard shows the cluster: this node follows, who leads, the epoch, what it forwarded.
  const chromium = await launchChromium();
  try {
    const page = await chromium.browser.newPage();
    await page.goto(`${other.url}#token=${TOKEN}`);
    await page.waitForFunction(() => document.querySelector('[data-field="role"]')?.textContent === "follower");
    expect(await page.locator('[data-field="leader"]').textContent()).toBe(leader.url);
    expect(Number(await page.locator('[data-field="epoch"]').textContent())).toBeGreaterThanOrEqual(1);
    expect(Number(await page.locator('[data-field="forwarded"]').textContent())).toBeGreaterThanOrEqual(1);
    const shot = await page.screenshot({ path: process.env.HADUCK_SCREENSHOT ?? join(dir, "cluster-dashboard.png"), fullPage: true });
    expect(shot.byteLength).toBeGreaterThan(1000);
    const metrics = await (await fetch(`${other.url}metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
    expect(metrics).toMatch(/haduck_leader\{db="pair.duckdb"\} 0/);
    expect(metrics).toMatch(/haduck_forwarded_statements_total\{db="pair.duckdb"\} [1-9]/);
  } finally {
    await chromium.close();
  }
  // A clean stop releases the lease: the other leads at once, without waiting for the TTL.
  leader.process.kill("SIGTERM");
  await leader.process.exited;
  const { ms } = await waitForLeader([other], TTL_MS + 5000);
  expect(ms).toBeLessThan(TTL_MS + 5000);
  const read = await sql(other.url, { sql: "SELECT x FROM t" });
  expect(read.body.rows).toEqual([[42]]);
  other.process.kill("SIGTERM");
  await other.process.exited;
}, 120_000);

test("read-your-writes: a follower given a write's position answers only once it shows it, or forwards", async () => {
  const dbKey = "ryw.duckdb";
  const [a, b] = [await start("a", dbKey), await start("b", dbKey)];
  const { leader } = await waitForLeader([a, b], 10_000);
  const follower = leader === a ? b : a;
  expect((await sql(leader.url, { sql: "CREATE TABLE w(n INTEGER)" })).status).toBe(200);
  let forwarded = 0;
  for (let n = 1; n <= 60; n++) {
    const written = await sql(leader.url, { sql: "INSERT INTO w VALUES ($1)", params: [n] });
    expect(written.status).toBe(200);
    const position = written.body.position!;
    // Half in the body, half in the header a proxy would carry in a cookie.
    const read = n % 2 === 0
      ? await sql(follower.url, { sql: "SELECT max(n) FROM w", after: position })
      : await fetch(`${follower.url}sql`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}`,
        "content-type": "application/json", "x-haduck-position": position },
        body: JSON.stringify({ sql: "SELECT max(n) FROM w" }) }).then(async (r) => ({ status: r.status, body: await r.json() }));
    expect(read.status).toBe(200);
    expect(read.body.rows![0][0]).toBe(n);
    if (read.body.role === "leader") forwarded++;
  }
  expect(forwarded).toBeLessThan(60); // the follower answered most itself
  // Bounded staleness and linearizable reads go to the leader when the follower cannot promise them.
  const leaderRead = await sql(follower.url, { sql: "SELECT count(*) FROM w", consistency: "leader" });
  expect(leaderRead.body).toMatchObject({ role: "leader", rows: [[60]] });
  const bad = await sql(follower.url, { sql: "SELECT 1", after: "not a position" });
  expect(bad.status).toBe(400);
  for (const node of [a, b]) node.process.kill("SIGTERM");
  await Promise.all([a.process.exited, b.process.exited]);
}, 120_000);

test("handoff: SIGTERM to the leader under writes through the other nodes: no client error, nothing lost, a short pause", async () => {
  const dbKey = "handoff.duckdb";
  const started = await threeWithAcks(dbKey);
  const nodes = started.nodes;
  let leader = started.leader;
  let targets = nodes.filter((node) => node !== leader);
  const load = new WriteLoad(3, () => targets.map((node) => node.url));
  const ackTimes: number[] = [];
  const count = () => [...load.acknowledged.values()].reduce((sum, set) => sum + set.size, 0);
  load.start();
  const sampler = setInterval(() => ackTimes.push(count()), 20);
  let all = nodes;
  const pauses: number[] = [];
  for (let round = 0; round < 4; round++) {
    await Bun.sleep(1000);
    const before = count();
    const stoppedAt = performance.now();
    leader.process.kill("SIGTERM");
    // Writes go on through the others; the first acknowledged after the stop ends the pause.
    while (count() === before && performance.now() - stoppedAt < 10_000) await Bun.sleep(5);
    pauses.push(performance.now() - stoppedAt);
    expect(await leader.process.exited).toBe(0);
    const others = all.filter((node) => node !== leader);
    const next = await waitForLeader(others, TTL_MS + 5000);
    const restarted = await start(leader.name, dbKey);
    all = [...others, restarted];
    leader = next.leader;
    targets = all.filter((node) => node !== leader);
  }
  await load.stop();
  clearInterval(sampler);
  expect(load.errorSamples).toEqual([]);
  expect(await converged(all, load, 20_000)).toEqual([]);
  console.log(`handoff write pauses (ms): ${pauses.map(Math.round).join(", ")}`);
  expect(Math.max(...pauses)).toBeLessThan(TTL_MS); // no TTL waited: the lease was handed over
  for (const node of all) node.process.kill("SIGTERM");
  await Promise.all(all.map((node) => node.process.exited));
}, 180_000);

test("TLS between nodes: a self-signed certificate, forwarding over HTTPS, and a node with the wrong CA refused", async () => {
  const tlsDir = join(dir, "tls");
  const certificate = (name: string) => {
    const made = Bun.spawnSync(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
      "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", join(tlsDir, `${name}.key`), "-out",
      join(tlsDir, `${name}.pem`)], { stdout: "pipe", stderr: "pipe" });
    if (made.exitCode !== 0) throw new Error(`openssl failed: ${made.stderr}`);
    return { cert: join(tlsDir, `${name}.pem`), key: join(tlsDir, `${name}.key`) };
  };
  Bun.spawnSync(["mkdir", "-p", tlsDir]);
  const good = certificate("cluster");
  const other = certificate("stranger");
  const flags = (ca: string) => ["--tls-cert", good.cert, "--tls-key", good.key, "--tls-ca", ca];
  const dbKey = "tls.duckdb";
  const a = await start("a", dbKey, { extraArgs: flags(good.cert) });
  expect(a.url.startsWith("https://")).toBe(true);
  const b = await start("b", dbKey, { extraArgs: flags(good.cert) });
  const c = await start("c", dbKey, { extraArgs: flags(other.cert) }); // trusts another CA only
  const ca = await Bun.file(good.cert).text();
  const https = async (url: string, path: string, body?: unknown) => {
    const response = await fetch(`${url}${path}`, { method: body ? "POST" : "GET",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: body ? JSON.stringify(body) : undefined, tls: { ca } } as RequestInit);
    return { status: response.status, body: await response.json() };
  };
  const roles = await Promise.all([a, b, c].map(async (node) => (await https(node.url, "status")).body.role));
  expect(roles.filter((role) => role === "leader").length).toBe(1);
  const leader = [a, b, c][roles.indexOf("leader")];
  const trusting = [a, b].find((node) => node !== leader)!;
  // A follower forwards the write over HTTPS, checking the leader's certificate against its CA.
  const created = await https(trusting.url, "sql", { sql: "CREATE TABLE t AS SELECT 1 AS x" });
  expect(created.status).toBe(200);
  expect(created.body.role).toBe("leader");
  expect(leader).not.toBe(c); // a leads: it started first, and says where it listens only once it leads
  const refused = await https(c.url, "sql", { sql: "INSERT INTO t VALUES (2)" });
  expect(refused.status).toBe(503);
  expect(refused.body.error).toContain("--tls-ca");
  expect((await https(leader.url, "sql", { sql: "SELECT count(*) FROM t" })).body.rows).toEqual([[1]]);
  // Plain HTTP to an HTTPS node gets no answer.
  expect(await fetch(leader.url.replace("https://", "http://") + "healthz").then(() => "answered", () => "refused"))
    .toBe("refused");
  for (const node of [a, b, c]) node.process.kill("SIGTERM");
  await Promise.all([a, b, c].map((node) => node.process.exited));
}, 120_000);

test("a node that led, was paused and stepped down, and leads again: every write it acknowledges is in the store", async () => {
  const dbKey = "again.duckdb";
  const a = await start("a", dbKey);
  const b = await start("b", dbKey);
  await waitForLeader([a, b], 10_000);
  expect((await sql(a.url, { sql: "CREATE TABLE acks(n INTEGER)" })).status).toBe(200);
  for (let n = 1; n <= 5; n++) expect((await sql(a.url, { sql: "INSERT INTO acks VALUES ($1)", params: [n] })).status).toBe(200);
  a.process.kill("SIGSTOP");
  await waitForLeader([b], TTL_MS + 5000);
  for (let n = 6; n <= 10; n++) expect((await sql(b.url, { sql: "INSERT INTO acks VALUES ($1)", params: [n] })).status).toBe(200);
  a.process.kill("SIGCONT");
  await Bun.sleep(TTL_MS);
  b.process.kill(9);
  await b.process.exited;
  await waitForLeader([a], TTL_MS + 5000);
  const acked: number[] = [];
  for (let n = 11; n <= 30; n++) {
    if ((await sql(a.url, { sql: "INSERT INTO acks VALUES ($1)", params: [n] })).status === 200) acked.push(n);
  }
  expect(acked.length).toBeGreaterThan(10);
  a.process.kill(9); // no clean stop: only what the store holds counts
  await a.process.exited;
  const to = join(dir, "again-check.duckdb");
  await restore({ store: openStore(`file://${join(dir, "store")}`), dbKey, to });
  const rows = (await queryFile(to, "SELECT n FROM acks")).map((row) => Number(row.n));
  for (const n of [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, ...acked]) expect(rows).toContain(n);
}, 120_000);

test("haduck handoff: the leader hands its lease to the node named, without stopping, and follows", async () => {
  const dbKey = "named.duckdb";
  const { nodes, leader } = await threeWithAcks(dbKey);
  const [first, second] = nodes.filter((node) => node !== leader);
  const load = new WriteLoad(2, () => [first.url, second.url]);
  load.start();
  await Bun.sleep(500);
  // Asked through a follower: the command finds the leader; the lease goes to `second`, not `first`.
  const child = Bun.spawn([process.execPath, BIN, "handoff", "--node", first.url, "--to", second.url],
    { env: { ...process.env, HADUCK_ADMIN_TOKEN: TOKEN }, stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(),
    child.exited]);
  expect(err).toBe("");
  expect(code).toBe(0);
  expect(out).toContain(`handed off to ${second.url}`);
  expect((await status(second.url))?.role).toBe("leader"); // it leads when the command returns
  await Bun.sleep(1000);
  expect((await status(leader.url))?.role).toBe("follower"); // still running, following now
  // The new leader records the takeover as a handoff from the old one (the dashboard's last failover).
  const said = (await status(second.url)) as unknown as { databases: { lastFailover: unknown }[] };
  expect(said.databases[0].lastFailover).toMatchObject({ from: leader.url, to: second.url, kind: "handoff" });
  await load.stop();
  expect(load.errorSamples).toEqual([]);
  expect(await converged(nodes, load, 20_000)).toEqual([]);
  for (const node of nodes) node.process.kill("SIGTERM");
  await Promise.all(nodes.map((node) => node.process.exited));
}, 120_000);

test("one node stopped cleanly and started again keeps its own file (nothing restored, nothing moved aside)", async () => {
  const dbKey = "single.duckdb";
  let node = await start("solo", dbKey);
  expect((await sql(node.url, { sql: "CREATE TABLE t AS SELECT range AS i FROM range(1000)" })).status).toBe(200);
  node.process.kill("SIGTERM");
  expect(await node.process.exited).toBe(0);
  node = await start("solo", dbKey);
  expect(node.log()).toContain("leading at epoch 2");
  expect(node.log()).not.toContain("kept aside");
  expect((await sql(node.url, { sql: "INSERT INTO t VALUES (1000)" })).status).toBe(200);
  expect((await sql(node.url, { sql: "SELECT count(*) FROM t" })).body.rows).toEqual([[1001]]);
  node.process.kill("SIGTERM");
  expect(await node.process.exited).toBe(0);
}, 60_000);
