/**
 * Whoever can write the store can write a lease naming any address. Before a node sends anything to
 * the leader the lease names (a forwarded statement with its client's token, its membership report
 * with the admin token), it checks the record's proof: an HMAC of the address under the nodes'
 * shared token (attack of 2026-12-07: a forged lease collected the admin token and clients'
 * statements). A forged lease costs availability while it lasts, never a token or a statement.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ClusterNodeProcess, sql, startNode, TOKEN, waitForLeader } from "./harness/cluster.ts";

const dir = mkdtempSync(join(tmpdir(), "haduck-forgery-"));
const nodes: ClusterNodeProcess[] = [];

afterAll(() => {
  for (const node of nodes) node.process.kill(9);
  rmSync(dir, { recursive: true, force: true });
});

test("a lease forged in the store gets no token and no statement; the cluster leads again after it", async () => {
  // What a forged leader would hear: every request, with its headers and body.
  const heard: string[] = [];
  const thief = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: async (request) => {
    heard.push(`${request.method} ${new URL(request.url).pathname} ${request.headers.get("authorization")} ` +
      await request.text());
    return new Response("{}", { status: 200, headers: { "content-type": "application/json" } });
  } });
  try {
    for (const name of ["a", "b"]) {
      nodes.push(await startNode({ dir, name, storeArgs: ["--store", `file://${dir}/store`], dbKey: "forged.duckdb",
        ttlMs: 2000 }));
    }
    const { leader } = await waitForLeader(nodes, 30_000);
    const follower = nodes.find((node) => node !== leader)!;
    expect((await sql(leader.url, { sql: "CREATE TABLE t (x INTEGER)" })).status).toBe(200);
    // Through the follower: forwarded to the real leader, whose lease vouches for its address.
    expect((await sql(follower.url, { sql: "INSERT INTO t VALUES (1)" })).status).toBe(200);
    const leasePath = join(dir, "store", "forged.duckdb", "lease.json");
    const real = JSON.parse(readFileSync(leasePath, "utf8"));
    expect(typeof real.proof).toBe("string");
    // Forge: a newer epoch, the thief's address, a fresh nonce every 250 ms for 6 s (three TTLs).
    const forged = (n: number) => JSON.stringify({ format: "haduck-lease", version: 1, epoch: real.epoch + 50,
      holder: "thief", address: `http://127.0.0.1:${thief.port}/`, ttlMs: 2000, released: false, nonce: `n${n}`,
      proof: real.proof });
    let n = 0;
    const forging = setInterval(() => writeFileSync(leasePath, forged(n++)), 250);
    const answers: number[] = [];
    try {
      for (const end = Date.now() + 6_000; Date.now() < end;) {
        answers.push((await sql(follower.url, { sql: "INSERT INTO t VALUES (99)" }, 5_000)).status);
        await Bun.sleep(200);
      }
    } finally {
      clearInterval(forging);
    }
    expect(heard).toEqual([]);
    // Until the nodes see the forged record, statements still reach the real leader; after, none goes anywhere.
    expect(answers.length).toBeGreaterThan(2);
    expect(answers.at(-1), String(answers)).not.toBe(200);
    expect(nodes.some((node) => node.log().includes("without a proof made with this node's HADUCK_ADMIN_TOKEN")))
      .toBe(true);
    // The forged record stays until a TTL passes; then a node claims the next epoch and leads.
    const next = await waitForLeader(nodes, 30_000);
    const after = JSON.parse(readFileSync(leasePath, "utf8"));
    expect(after.epoch).toBeGreaterThan(real.epoch + 50);
    expect(after.holder).not.toBe("thief");
    expect((await sql(next.leader.url, { sql: "SELECT count(*) FROM t WHERE x = 1" })).body.rows).toEqual([[1]]);
    expect(heard).toEqual([]);
    expect(TOKEN.length).toBeGreaterThan(16);
  } finally {
    thief.stop(true);
  }
}, 180_000);
