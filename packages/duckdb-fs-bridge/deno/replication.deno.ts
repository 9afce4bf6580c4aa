/**
 * The bridge under Deno: the extension's ring read over Deno.dlopen, a generation shipped to a
 * filesystem store at each checkpoint, then restored into a file stock DuckDB opens.
 */
import assert from "node:assert/strict";
import { DuckDBInstance } from "@duckdb/node-api";
import { FsBlockStore } from "@haduck/s3-block-store";
import { attach, listGenerations, Native, restore, verify } from "../mod.ts";

Deno.test("under Deno: attach, checkpoint ships generations over Deno.dlopen, restore opens in stock DuckDB", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "haduck-deno-bridge-" });
  try {
    const store = new FsBlockStore(`${dir}/store`);
    const shipped: number[] = [];
    const db = await attach({ dbPath: `${dir}/deno.duckdb`, store, onGeneration: (event) => shipped.push(event.generation) });
    await db.connection.run("CREATE TABLE t AS SELECT i, md5(i::VARCHAR) AS s FROM range(200000) r(i)");
    await db.checkpoint();
    await db.connection.run("UPDATE t SET s = 'deno' WHERE i = 4242");
    await db.checkpoint();
    await db.close();
    assert.ok(shipped.length >= 2, `expected at least 2 generations, got ${shipped.length}`);
    assert.deepEqual(await listGenerations(store, "deno.duckdb"), shipped);
    assert.deepEqual((await verify(store, "deno.duckdb")).problems, []);
    const native = new Native();
    await restore({ store, dbKey: "deno.duckdb", to: `${dir}/restored.duckdb`,
      blockChecksumOk: (block) => native.blockChecksumOk(block) });
    const instance = await DuckDBInstance.create(`${dir}/restored.duckdb`, { access_mode: "READ_ONLY" });
    const connection = await instance.connect();
    const rows = (await connection.runAndReadAll("SELECT count(*)::INT AS n, max(s) FILTER (i = 4242) AS s FROM t"))
      .getRowObjects();
    connection.closeSync();
    instance.closeSync();
    assert.deepEqual(rows, [{ n: 200000, s: "deno" }]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
