import { attach } from "@haduck/duckdb-fs-bridge";
import { FsBlockStore } from "@haduck/s3-block-store";
import { rmSync } from "node:fs";
rmSync("/tmp/prof", { recursive: true, force: true });
const gens: any[] = [];
for (const compress of [true, false]) {
  rmSync("/tmp/prof", { recursive: true, force: true });
  const db = await attach({ dbPath: "/tmp/prof/db.duckdb".replace("/prof/", "/prof-" + compress + "-"), store: new FsBlockStore("/tmp/prof/store"), onGeneration: (e) => gens.push(e) });
  await db.connection.run("CREATE TABLE t AS SELECT i, random() AS a, random() AS b, random() AS c FROM range(5000000) r(i)");
  gens.length = 0;
  await db.checkpoint();
  (db.replicator.options as any).compress = compress;
  const ms = gens.reduce((s, g) => s + g.durationMs, 0), bytes = gens.reduce((s, g) => s + g.bytesShipped, 0);
  console.log({ compress, ms, mib: bytes / 1048576, mibps: bytes / 1048576 / (ms / 1000) });
  await db.close();
}
