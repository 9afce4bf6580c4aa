import { expect, test } from "bun:test";
import { Ledger } from "./_ledger.ts";
import type { Manifest } from "@haduck/duckblock";

const published = (generation: number) => ({ manifest: { generation } as Manifest, sha256: `sha-${generation}` });

test("an attempt takes the carried blocks and, unless it publishes, gives all of them back", () => {
  const ledger = new Ledger(published(3));
  ledger.carry([1, 2], 4);
  const taken = ledger.take([7]);
  expect([...taken.blocks()]).toEqual([1, 2, 7]);
  expect(ledger.behind).toBe(false);
  ledger.carry([9], 5); // a generation released unread while the attempt was in flight
  ledger.giveBack([...taken.blocks()], 5);
  expect([...ledger.carried.blocks()]).toEqual([1, 2, 7, 9]);
  expect(ledger.carriedGeneration).toBe(5);
});

test("blocks given back keep the newest generation they were taken at", () => {
  const ledger = new Ledger(published(3));
  ledger.carry([1], 8);
  const taken = ledger.take([2]);
  ledger.giveBack([...taken.blocks()], 5); // an older generation's attempt carried newer blocks
  expect(ledger.carriedGeneration).toBe(8);
  expect([...ledger.carried.blocks()]).toEqual([1, 2]);
});

test("publishing clears what the manifest holds and keeps what came after it", () => {
  const ledger = new Ledger(published(3));
  ledger.carry([1, 2], 4);
  ledger.publish(published(4));
  expect(ledger.behind).toBe(false);
  ledger.carry([5], 6);
  ledger.publish(published(5));
  expect([...ledger.carried.blocks()]).toEqual([5]); // carried at 6: not in generation 5
  ledger.carry([6], 4); // at or before the published generation: in it already
  expect([...ledger.carried.blocks()]).toEqual([5]);
  expect(() => ledger.publish(published(2))).toThrow("cannot go back");
});

test("a manifest whose answer was lost stays uncertain until a later one is published", () => {
  const ledger = new Ledger(published(3));
  ledger.uncertainGeneration = 4;
  ledger.storeFailing = true;
  ledger.publish(published(4));
  expect(ledger.uncertainGeneration).toBeUndefined();
  expect(ledger.storeFailing).toBe(false);
});
