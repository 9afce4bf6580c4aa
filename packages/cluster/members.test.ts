/** The member table a leader keeps and the list a node shows: order, ageing, bounds. */
import { expect, test } from "bun:test";
import type { ClusterMember } from "@haduck/admin";
import { MEMBER_FORGET_MS, MemberReporter, MEMBERS_MAX, MemberTable, nodesKnown } from "./_members.ts";

const self: ClusterMember = { address: "http://127.0.0.1:1/", role: "leader", epoch: 2, lagMs: 0, seenMsAgo: 0 };
const follower = (port: number, lagMs = 10) =>
  ({ address: `http://127.0.0.1:${port}/`, role: "follower" as const, epoch: 2, lagMs });

test("MemberTable lists the leader first, then the nodes heard from by address, aged, and forgets the silent ones", () => {
  const table = new MemberTable();
  table.record(follower(3), 1000);
  table.record(follower(2, 40), 1500);
  table.record({ ...follower(1), role: "candidate" }, 1500); // a report under the leader's own address is the leader
  const listed = table.list(self, 2000);
  expect(listed.map((node) => node.address)).toEqual([self.address, "http://127.0.0.1:2/", "http://127.0.0.1:3/"]);
  expect(listed[1]).toEqual({ ...follower(2, 40), seenMsAgo: 500 });
  expect(listed[2].seenMsAgo).toBe(1000);
  expect(table.list(self, 1000 + MEMBER_FORGET_MS + 1).map((node) => node.address))
    .toEqual([self.address, "http://127.0.0.1:2/"]);
  // A node heard from again replaces its entry.
  table.record(follower(3, 99), 3000);
  expect(table.list(self, 3000).find((node) => node.address === "http://127.0.0.1:3/")?.lagMs).toBe(99);
});

test("MemberTable keeps at most MEMBERS_MAX nodes, dropping the longest silent", () => {
  const table = new MemberTable();
  for (let port = 2; port < 2 + MEMBERS_MAX + 10; port++) table.record(follower(port), port);
  const listed = table.list(self, 100);
  expect(listed.length).toBe(MEMBERS_MAX + 1);
  expect(listed.some((node) => node.address === "http://127.0.0.1:2/")).toBe(false);
  expect(listed.some((node) => node.address === `http://127.0.0.1:${2 + MEMBERS_MAX + 9}/`)).toBe(true);
});

test("nodesKnown(): a follower shows what its leader answered, aged, and before that the leader the lease names", () => {
  const me: ClusterMember = { ...follower(2), seenMsAgo: 0 };
  expect(nodesKnown(me, "http://127.0.0.1:1/", new MemberTable(), undefined)).toEqual([me,
    { address: "http://127.0.0.1:1/", role: "leader", epoch: 2, lagMs: 0, seenMsAgo: 0 }]);
  const learned = { nodes: [self, { ...follower(2, 500), seenMsAgo: 0 }, { ...follower(3), seenMsAgo: 100 }],
    lastFailover: null, at: performance.now() - 1000 };
  const shown = nodesKnown({ ...me, lagMs: 7 }, self.address, new MemberTable(), learned);
  expect(shown[0]).toEqual({ ...me, lagMs: 7 }); // itself as it is now, not as the leader last heard
  expect(shown.length).toBe(3);
  expect(shown[1].seenMsAgo).toBeGreaterThanOrEqual(1000);
  expect(shown[2].seenMsAgo).toBeGreaterThanOrEqual(1100);
  expect(nodesKnown(me, null, new MemberTable(), undefined)).toEqual([me]);
});

test("MemberReporter refuses an interval under 50 ms, and a round with nobody to report to sends nothing", async () => {
  expect(() => new MemberReporter([], { address: "http://127.0.0.1:1/", token: "t".repeat(16), intervalMs: 0 }))
    .toThrow(RangeError);
  let asked = 0;
  const leading = { dbKey: "a.duckdb", memberReport: () => (asked++, undefined), learnCluster: () => {} };
  const reporter = new MemberReporter([leading], { address: "http://127.0.0.1:1/", token: "t".repeat(16),
    intervalMs: 50 });
  await reporter.report();
  expect(asked).toBe(1);
});

test("MemberReporter.stop() does not wait for a leader that never answers", async () => {
  // A listener that takes the connection and never answers: the report hangs until it is aborted.
  const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  try {
    let learned = 0;
    const following = { dbKey: "a.duckdb", learnCluster: () => learned++,
      memberReport: () => ({ leader: `http://127.0.0.1:${silent.port}/`, role: "follower" as const, epoch: 1, lagMs: 0 }) };
    const reporter = new MemberReporter([following], { address: "http://127.0.0.1:1/", token: "t".repeat(16),
      intervalMs: 50 });
    reporter.start();
    await Bun.sleep(100);
    const started = performance.now();
    await reporter.stop();
    expect(performance.now() - started).toBeLessThan(500);
    expect(learned).toBe(0);
  } finally {
    silent.stop(true);
  }
});
