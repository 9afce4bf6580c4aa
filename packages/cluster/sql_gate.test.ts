import { expect, test } from "bun:test";
import type { DuckDBConnection } from "@duckdb/node-api";
import { StatementGate } from "./_sql_run.ts";

/** A statement that runs until `finish()`: what the gate sees of DuckDB. */
function statement() {
  let finish!: () => void;
  const done = new Promise<void>((resolve) => finish = resolve);
  const entry = { connection: { interrupt() {} } as unknown as DuckDBConnection, phase: "judging" as const };
  return { entry, finish, started: false, run: undefined as Promise<unknown> | undefined, done };
}

const start = (gate: StatementGate, reader: boolean, signal?: AbortSignal) => {
  const s = statement();
  s.run = gate.run(signal, s.entry, async () => {
    s.started = true;
    await s.done;
  }, reader);
  s.run.catch(() => {});
  return s;
};

test("StatementGate: readers never take the last slot; the admin's statement starts while readers wait", async () => {
  const gate = new StatementGate(4, 8);
  const readers = [start(gate, true), start(gate, true), start(gate, true), start(gate, true)];
  await Bun.sleep(1);
  expect(readers.map((s) => s.started)).toEqual([true, true, true, false]);
  const admin = start(gate, false);
  await Bun.sleep(1);
  expect(admin.started).toBe(true);
  expect(gate.running).toBe(4);
  // A slot that frees goes to the first waiter that may take it: the waiting reader.
  readers[0].finish();
  await Bun.sleep(1);
  expect(readers[3].started).toBe(true);
  for (const s of [...readers, admin]) s.finish();
  await Promise.all([...readers, admin].map((s) => s.run));
  expect(gate.running).toBe(0);
});

test("StatementGate: a full queue and a wait past the deadline are OVERLOADED; a client that leaves is let go", async () => {
  const gate = new StatementGate(1, 1);
  gate.queueWaitMaxMs = 50;
  const first = start(gate, false);
  const waiting = start(gate, false);
  const refused = gate.run(undefined, statement().entry, async () => {});
  await expect(refused).rejects.toMatchObject({ code: "OVERLOADED" }); // the queue (1) is full
  await expect(waiting.run).rejects.toMatchObject({ code: "OVERLOADED" }); // waited 50 ms with the slot taken
  expect(waiting.started).toBe(false);
  const leaving = new AbortController();
  const left = start(gate, false, leaving.signal);
  leaving.abort();
  await expect(left.run).rejects.toMatchObject({ code: "CLIENT_GONE" });
  first.finish();
  await first.run;
  expect(gate.running).toBe(0);
  expect(left.started).toBe(false);
});

test("chunkWeight: a NULL string weighs one byte, whatever its unused bytes hold; a string weighs its length", async () => {
  const { DuckDBInstance } = await import("@duckdb/node-api");
  const { chunkWeight } = await import("./_sql_run.ts");
  for (let instance = 0; instance < 3; instance++) {
    const connection = await (await DuckDBInstance.create(":memory:")).connect();
    const weigh = async (sql: string) => {
      const result = await connection.stream(sql);
      let weight = 0;
      for (let chunk = await result.fetchChunk(); chunk && chunk.rowCount > 0; chunk = await result.fetchChunk()) {
        weight += chunkWeight(chunk);
      }
      return weight;
    };
    // Strings first: a NULL's string_t then holds whatever the memory held (measured: 15,085 bytes
    // for 3,000 NULLs, and an admin's small CALL duckdb_settings() answered 413).
    expect(await weigh("CALL duckdb_settings()")).toBeGreaterThan(1000);
    expect(await weigh("SELECT NULL::VARCHAR AS s FROM range(3000)")).toBe(3000);
    expect(await weigh("SELECT CASE WHEN range % 2 = 0 THEN repeat('x', 100) END AS s FROM range(4096)"))
      .toBe(4096 + 2048 * 100);
    connection.closeSync();
  }
});
