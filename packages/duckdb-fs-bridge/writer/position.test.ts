import { expect, test } from "bun:test";
import { Position } from "./_position.ts";
import type { Manifest } from "@haduck/duckblock";

const published = (generation: number) => ({ manifest: { generation } as Manifest, sha256: `sha-${generation}` });

test("an attempt takes the carried blocks and, unless it publishes, gives all of them back", () => {
  const position = new Position(published(3));
  position.carry([1, 2], 4);
  const taken = position.take([7]);
  expect([...taken.blocks()]).toEqual([1, 2, 7]);
  expect(position.behind).toBe(false);
  position.carry([9], 5); // a generation released unread while the attempt was in flight
  position.giveBack([...taken.blocks()], 5);
  expect([...position.carried.blocks()]).toEqual([1, 2, 7, 9]);
  expect(position.carriedGeneration).toBe(5);
});

test("blocks given back keep the newest generation they were taken at", () => {
  const position = new Position(published(3));
  position.carry([1], 8);
  const taken = position.take([2]);
  position.giveBack([...taken.blocks()], 5); // an older generation's attempt carried newer blocks
  expect(position.carriedGeneration).toBe(8);
  expect([...position.carried.blocks()]).toEqual([1, 2]);
});

test("publishing clears what the manifest holds and keeps what came after it", () => {
  const position = new Position(published(3));
  position.carry([1, 2], 4);
  position.publish(published(4));
  expect(position.behind).toBe(false);
  position.carry([5], 6);
  position.publish(published(5));
  expect([...position.carried.blocks()]).toEqual([5]); // carried at 6: not in generation 5
  position.carry([6], 4); // at or before the published generation: in it already
  expect([...position.carried.blocks()]).toEqual([5]);
  expect(() => position.publish(published(2))).toThrow("cannot go back");
});

test("a manifest whose answer was lost stays uncertain until a later one is published", () => {
  const position = new Position(published(3));
  position.uncertainGeneration = 4;
  position.storeFailing = true;
  position.publish(published(4));
  expect(position.uncertainGeneration).toBeUndefined();
  expect(position.storeFailing).toBe(false);
});
