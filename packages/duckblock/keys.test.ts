import { expect, test } from "bun:test";
import { decodeLatestHint, encodeLatestHint, groupChangesKey, latestKey, leaseKey } from "./_keys.ts";

test("small objects of the store are built and read here: the latest hint round-trips; anything else is no hint", () => {
  const hint = { generation: 42, manifestSha256: "ab".repeat(32) };
  expect(decodeLatestHint(encodeLatestHint(hint))).toEqual(hint);
  for (const bytes of ["", "{", "[]", '{"generation":"42"}', '{"generation":1.5}']) {
    expect(decodeLatestHint(new TextEncoder().encode(bytes))).toBeUndefined();
  }
  expect([latestKey("a.duckdb"), leaseKey("a.duckdb"), groupChangesKey("g")])
    .toEqual(["a.duckdb/latest.json", "a.duckdb/lease.json", "g/changes.json"]);
});
