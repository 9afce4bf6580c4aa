/**
 * The leader's side of the lease without a store or a node: a fake lease whose renews the test
 * answers (succeed, fail, find another epoch) and whose validity the test sets. Checked: renews come
 * every TTL/3, a renew that finds another epoch deposes at once, failed renews are retried while the
 * lease is still valid and depose once it ran out, and a crowd of linearizable reads costs one renew.
 */
import { expect, test } from "bun:test";
import { LeaseLostError } from "@haduck/lease";
import type { LeaseLike } from "./_group.ts";
import { LeaseKeeper } from "./_lease_keeper.ts";

class FakeLease implements LeaseLike {
  epoch: number | undefined = 3;
  validUntil = performance.now() + 60_000;
  renews = 0;
  /** What the next renews do: "ok", "fail" (a store that does not answer), or "lost" (another epoch). */
  answer: "ok" | "fail" | "lost" = "ok";
  /** While set, renews wait for it (a slow store). */
  gate: Promise<void> | undefined;

  get valid(): boolean {
    return performance.now() < this.validUntil;
  }
  async renew(): Promise<void> {
    this.renews++;
    await this.gate;
    if (this.answer === "lost") throw new LeaseLostError("epoch 4 took the lease");
    if (this.answer === "fail") throw new Error("connect ECONNREFUSED");
  }
  observe(): never {
    throw new Error("not used");
  }
  tryAcquire(): never {
    throw new Error("not used");
  }
  release(): never {
    throw new Error("not used");
  }
}

function keeper(lease: FakeLease, ttlMs: number) {
  const state: { deposed?: string; ended: number } = { ended: 0 };
  const keeper = new LeaseKeeper({ lease: () => lease, ttlMs, retryMs: 5, deposed: () => state.deposed,
    depose: (reason) => state.deposed ??= reason, ended: () => state.ended++ });
  return { keeper, state };
}

test("a leader renews every TTL/3 and keeps leading while renews land", async () => {
  const lease = new FakeLease();
  const { keeper: k, state } = keeper(lease, 90);
  k.start();
  await Bun.sleep(200);
  await k.stop();
  // 200 ms at one renew per 30 ms: about six; fewer than three means the loop stalled, more than ten that it spins.
  expect(lease.renews).toBeGreaterThanOrEqual(3);
  expect(lease.renews).toBeLessThanOrEqual(10);
  expect(state.deposed).toBeUndefined();
  expect(state.ended).toBe(1);
});

test("a renew that finds another epoch deposes the leader at once, and the loop ends", async () => {
  const lease = new FakeLease();
  lease.answer = "lost";
  const { keeper: k, state } = keeper(lease, 30);
  k.start();
  for (let i = 0; i < 100 && state.ended === 0; i++) await Bun.sleep(5);
  expect(state.deposed).toContain("epoch 4");
  expect(lease.renews).toBe(1); // no second try: another epoch leads
  expect(state.ended).toBe(1);
});

test("failed renews are retried while the lease is valid, and depose once it ran out", async () => {
  const lease = new FakeLease();
  lease.answer = "fail";
  lease.validUntil = performance.now() + 400;
  const { keeper: k, state } = keeper(lease, 30);
  k.start();
  await Bun.sleep(60);
  expect(state.deposed).toBeUndefined(); // still valid: a store hiccup is not a step down
  expect(lease.renews).toBeGreaterThanOrEqual(2);
  for (let i = 0; i < 400 && state.ended === 0; i++) await Bun.sleep(5);
  expect(state.deposed).toContain("its lease ran out");
  expect(state.deposed).toContain("ECONNREFUSED");
});

test("a crowd of linearizable reads that arrived before a renew started is confirmed by that one renew", async () => {
  const lease = new FakeLease();
  const { keeper: k } = keeper(lease, 60_000); // the renew loop does not run here
  let open!: () => void;
  lease.gate = new Promise<void>((resolve) => open = resolve);
  const first = k.confirm(performance.now()); // starts a renew, which waits on the gate
  await Bun.sleep(1);
  const arrived = performance.now();
  // These arrived after the first renew started: one more renew confirms all of them.
  const crowd = Array.from({ length: 50 }, () => k.confirm(arrived));
  open();
  await Promise.all([first, ...crowd]);
  expect(lease.renews).toBe(2);
  // A read that arrived before a renew in flight started shares it.
  lease.gate = new Promise<void>((resolve) => open = resolve);
  const before = performance.now();
  await Bun.sleep(1);
  const inFlight = k.confirm(performance.now());
  const earlier = k.confirm(before);
  open();
  await Promise.all([inFlight, earlier]);
  expect(lease.renews).toBe(3);
});

test("a confirm whose renew finds another epoch fails the read", async () => {
  const lease = new FakeLease();
  lease.answer = "lost";
  const { keeper: k } = keeper(lease, 60_000);
  await expect(k.confirm(performance.now())).rejects.toBeInstanceOf(LeaseLostError);
});
