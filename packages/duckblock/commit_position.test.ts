import { expect, test } from "bun:test";
import { compareCommitPositions, formatCommitPosition, parseCommitPosition } from "./_commit_position.ts";

test("a commit position round-trips through its token, and bad tokens are refused by name", () => {
  for (const position of [{ epoch: 0, generation: -1, walBytes: 0 }, { epoch: 7, generation: 14, walBytes: 4096 }]) {
    expect(parseCommitPosition(formatCommitPosition(position))).toEqual(position);
  }
  for (const bad of ["", "1:2", "a:b:c", "1:2:3:4", "-1:2:3", "1:2:-3"]) {
    expect(() => parseCommitPosition(bad)).toThrow(/Invalid position/);
  }
});

test("positions order by generation, then WAL bytes; the epoch does not order", () => {
  expect(compareCommitPositions("1:3:0", "1:2:900")).toBeGreaterThan(0);
  expect(compareCommitPositions("1:2:100", "1:2:900")).toBeLessThan(0);
  expect(compareCommitPositions("9:2:100", "1:2:100")).toBe(0);
  expect(compareCommitPositions("0:-1:0", "1:0:0")).toBeLessThan(0);
});
