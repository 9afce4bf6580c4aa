import { expect, test } from "bun:test";
import {
  decodeLatestHint,
  encodeLatestHint,
  forkMarkerKey,
  frameKey,
  groupChangesKey,
  latestKey,
  leaseKey,
  manifestKey,
  parseManifestPath,
} from "./_keys.ts";

test("small objects of the store are built and read here: the latest hint round-trips; anything else is no hint", () => {
  const hint = { generation: 42, manifestSha256: "ab".repeat(32) };
  expect(decodeLatestHint(encodeLatestHint(hint))).toEqual(hint);
  for (const bytes of ["", "{", "[]", '{"generation":"42"}', '{"generation":1.5}']) {
    expect(decodeLatestHint(new TextEncoder().encode(bytes))).toBeUndefined();
  }
  expect([latestKey("a.duckdb"), leaseKey("a.duckdb"), groupChangesKey("g")])
    .toEqual(["a.duckdb/latest.json", "a.duckdb/lease.json", "g/changes.json"]);
});

test("a manifest key read from the store's root names its database, a deeper prefix included; nothing else does", () => {
  for (const dbKey of ["a.duckdb", "team/a.duckdb", "x/y/z.duckdb", "frames"]) {
    expect(parseManifestPath(manifestKey(dbKey, 42))).toEqual({ dbKey, generation: 42 });
  }
  for (const key of [latestKey("a.duckdb"), leaseKey("a.duckdb"), forkMarkerKey("a.duckdb", "b.duckdb"),
    frameKey("a.duckdb", 3, 1), "a.duckdb/manifests/42.json", "manifests/00000000000000000042.json",
    manifestKey("a.duckdb/forks/b.duckdb", 1), manifestKey("a.duckdb/segments/b", 1)]) {
    expect({ key, parsed: parseManifestPath(key) }).toEqual({ key, parsed: undefined });
  }
});
