/**
 * The restart matrix (issue 23): statement shapes x how the host ends x which host x what the next
 * host does. Every cell ends with the store's latest restore equal to the live file (tables by
 * content, columns, views, sequences, indexes), every kept generation drilled (restored and opened
 * by DuckDB), and verify clean. A last test shows verify naming a generation that lacks a block
 * its header needs, which every checksum passes.
 *
 * Hosts: a Node process with only @duckdb/node-api (LOAD haduck; ATTACH; the extension starts the
 * replicator as a sidecar), and haduck's own in-process `attach()`. Ends: a clean close, an exit
 * without checkpoint, kill -9 right after a commit returned, kill -9 right after a CHECKPOINT of a
 * large change (its generation is still uploading; for the Node host the kill takes its whole
 * process group, the sidecar too: a machine that died).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import { listGenerations, restore, verify } from "@haduck/duckdb-fs-bridge";
import { type BlockStore, openStore } from "@haduck/s3-block-store";
import { freshBucket } from "./harness/s3.ts";
import { editWhole } from "./harness/stored_manifest.ts";
import { descendants } from "./harness/tree_memory.ts";

const ROOT = resolve(import.meta.dir, "..");
const EXTENSION = join(ROOT, "extension/build/haduck.duckdb_extension");
const HADUCK_BIN = join(ROOT, "packages/cli/bin/haduck.mjs");
const NODE_HOST = join(ROOT, "tests/fixtures/restart_host.mjs");
const BRIDGE_HOST = join(ROOT, "tests/fixtures/restart_bridge_host.ts");
const dir = mkdtempSync(join(tmpdir(), "haduck-restart-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Every shape of issue 23's list, in one first session: what each later step must keep. */
const SHAPES = [
  "CREATE TABLE db.a AS SELECT i, md5(i::VARCHAR) AS s FROM range(150000) t(i)", // bulk, written optimistically
  "CREATE TABLE db.small(i INTEGER, s VARCHAR)",
  "INSERT INTO db.small VALUES (1, 'one'), (2, 'two'), (3, 'three')",
  "UPDATE db.a SET s = 'updated' WHERE i % 1000 = 0",
  "DELETE FROM db.a WHERE i % 777 = 0",
  "CREATE TABLE db.alt(i INTEGER, j INTEGER)",
  "INSERT INTO db.alt VALUES (1, 1), (2, 2)",
  "ALTER TABLE db.alt ALTER i TYPE BIGINT USING 2 * (i + j)",
  "ALTER TABLE db.alt ADD COLUMN k INTEGER DEFAULT 7",
  "ALTER TABLE db.alt RENAME COLUMN j TO jj",
  "ALTER TABLE db.alt ADD COLUMN gone VARCHAR",
  "ALTER TABLE db.alt DROP COLUMN gone",
  "CREATE INDEX a_i ON db.a(i)",
  "CREATE TABLE db.nested(id INTEGER, st STRUCT(x INTEGER, y VARCHAR), l INTEGER[], m MAP(VARCHAR, INTEGER))",
  "INSERT INTO db.nested SELECT i, {'x': i, 'y': i::VARCHAR}, [i, i + 1], MAP {'k': i} FROM range(1000) t(i)",
  "ALTER TABLE db.nested ADD COLUMN st.z INTEGER",
  "ALTER TABLE db.nested RENAME st.y TO yy",
  "ALTER TABLE db.nested DROP COLUMN st.x",
  "CREATE SEQUENCE db.seq START 10",
  "CREATE TABLE db.seqt(id BIGINT, v INTEGER)",
  "INSERT INTO db.seqt SELECT nextval('db.seq'), 1 FROM range(3)",
  "CREATE VIEW db.v AS SELECT 42 AS answer",
  "BEGIN",
  "INSERT INTO db.small VALUES (99, 'rolled back')",
  "ROLLBACK",
  "BEGIN",
  "CREATE TABLE db.rb AS SELECT * FROM range(200000) t(i)", // optimistic writes, then freed
  "ROLLBACK",
  "INSERT INTO db.small VALUES (4, 'after the rollbacks')",
];
/** The large change whose generation is still uploading when the host dies. */
const LARGE_CHANGE = ["CREATE TABLE db.big AS SELECT random() AS r, i FROM range(1000000) t(i)", "CHECKPOINT db"];

const FOLLOW_UPS = {
  /** The next host writes (a small insert, an update, a bulk append) and checkpoints, then closes. */
  "writes and checkpoint": ["INSERT INTO db.small VALUES (5, 'second host')",
    "UPDATE db.a SET s = 'second' WHERE i % 5000 = 1",
    "INSERT INTO db.a SELECT i, 'appended' FROM range(200000, 260000) t(i)", "UPDATE db.seqt SET v = 2",
    "CHECKPOINT db"],
  /** The next host opens the database (DuckDB replays what was left) and closes: its checkpoint at shutdown. */
  "open and close": [],
} as const;

type Host = "node" | "bridge";
type End = "clean" | "no checkpoint" | "kill -9 after a commit" | "kill -9 mid-upload";

interface Cell {
  store: BlockStore;
  env: Record<string, string>;
  dbPath: string;
  dbKey: string;
}

/** Runs one host session; `end` says how it stops. Resolves once the process is gone. */
async function session(cell: Cell, host: Host, end: End | "clean", statements: readonly string[]): Promise<void> {
  const exit = end === "clean" ? "clean" : end === "no checkpoint" ? (host === "node" ? "nockpt" : "exit") : "wait";
  const command = host === "node"
    ? ["node", NODE_HOST, EXTENSION, cell.dbPath, exit, ...statements]
    : [process.execPath, BRIDGE_HOST, cell.dbPath, exit, ...statements];
  // Its own process group: kill -9 of the group is a machine that died (host and sidecar at once).
  const child = Bun.spawn(command, { env: cell.env, stdout: "pipe", stderr: "pipe", detached: true });
  const stderr = new Response(child.stderr).text();
  let output = "";
  const decoder = new TextDecoder();
  for await (const chunk of child.stdout) {
    output += decoder.decode(chunk, { stream: true });
    if (exit === "wait" && output.includes("idle\n")) {
      // After a commit returned: kill the host alone (its sidecar ships what it holds); mid-upload: everything.
      process.kill(end === "kill -9 mid-upload" ? -child.pid : child.pid, "SIGKILL");
      break;
    }
  }
  const code = await child.exited;
  if (exit !== "wait" && code !== 0) throw new Error(`${host} host exited ${code}: ${output}\n${await stderr}`);
  if (exit === "wait" && !output.includes("idle\n")) throw new Error(`${host} host died early: ${output}\n${await stderr}`);
  // A sidecar that outlived its host (a kill of the host alone) ships what the file holds, then exits:
  // waitForStore below waits for the result, not for the process.
}

/** What a database holds, by content: every table's rows, columns and types, views, sequences, indexes. */
async function contentOf(path: string): Promise<string> {
  // A copy, ATTACHed for writing from an in-memory database: DuckDB replays a leftover WAL the way a
  // restart does (read-only replay has known bugs in 1.4.4), and the live file stays untouched.
  const scratch = mkdtempSync(join(dir, "content-"));
  const copy = join(scratch, "copy.duckdb");
  copyFileSync(path, copy);
  if (existsSync(`${path}.wal`)) copyFileSync(`${path}.wal`, `${copy}.wal`);
  const instance = await DuckDBInstance.create(":memory:");
  const connection = await instance.connect();
  try {
    await connection.run(`ATTACH '${copy}' AS x`);
    const rows = async (sql: string) => (await connection.runAndReadAll(sql)).getRowsJS()
      .map((row) => row.map(String).join(":")).join(" | ");
    const parts = [
      await rows("SELECT table_name, column_name, data_type FROM duckdb_columns() WHERE database_name = 'x' " +
        "ORDER BY ALL"),
      await rows("SELECT view_name, sql FROM duckdb_views() WHERE database_name = 'x' AND NOT internal ORDER BY ALL"),
      await rows("SELECT sequence_name, last_value FROM duckdb_sequences() WHERE database_name = 'x' ORDER BY ALL"),
      await rows("SELECT index_name, table_name FROM duckdb_indexes() WHERE database_name = 'x' ORDER BY ALL"),
    ];
    const tables = (await connection.runAndReadAll("SELECT table_name FROM duckdb_tables() WHERE " +
      "database_name = 'x' ORDER BY ALL")).getRowsJS().map((row) => String(row[0]));
    for (const table of tables) {
      parts.push(`${table}=` + await rows(`SELECT count(*), coalesce(sum(hash(t)), 0)::HUGEINT FROM x."${table}" t`));
    }
    return parts.join("\n");
  } finally {
    connection.closeSync();
    instance.closeSync();
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** Waits (bounded) until the store's latest restore holds what the live file holds. */
async function waitForStore(cell: Cell, what: string): Promise<string> {
  const live = await contentOf(cell.dbPath);
  const to = join(dir, `${cell.dbKey}-restored.duckdb`);
  const deadline = Date.now() + 60_000;
  let last = "no restore yet";
  for (;;) {
    try {
      await restore({ store: cell.store, dbKey: cell.dbKey, to, force: true });
      const restored = await contentOf(to);
      if (restored === live) return live;
      last = `the restore differs:\n${restored}\n--- live:\n${live}`;
    } catch (error) {
      last = (error as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`${what}: the store never held the live file: ${last}`);
    await Bun.sleep(200);
  }
}

let cells = 0;
async function newCell(host: Host, s3: boolean): Promise<Cell> {
  const dbKey = `cell${++cells}.duckdb`;
  const dbPath = join(dir, dbKey);
  const base = { PATH: process.env.PATH!, HOME: process.env.HOME ?? "/root", HADUCK_BIN, HADUCK_DB_KEY: dbKey };
  if (!s3) {
    const url = `file://${join(dir, `store-${cells}`)}`;
    return { store: openStore(url), env: { ...base, HADUCK_STORE: url }, dbPath, dbKey };
  }
  const { store, bucket, s3: server } = await freshBucket(`restart-${host}`);
  return { store, dbPath, dbKey, env: { ...base, HADUCK_S3_BUCKET: bucket, HADUCK_S3_ENDPOINT: server.endpoint,
    HADUCK_S3_ACCESS_KEY: server.accessKey, HADUCK_S3_SECRET_KEY: server.secretKey, HADUCK_S3_PREFIX: "haduck" } };
}

async function runCell(host: Host, end: End, followUp: keyof typeof FOLLOW_UPS, s3 = false): Promise<void> {
  const cell = await newCell(host, s3);
  const first = end === "kill -9 mid-upload" ? [...SHAPES, ...LARGE_CHANGE] : SHAPES;
  await session(cell, host, end, first);
  await session(cell, host, "clean", FOLLOW_UPS[followUp]);
  const live = await waitForStore(cell, `${host}, ${end}, then ${followUp}`);
  expect(live).toContain("small=");
  const report = await verify(cell.store, cell.dbKey, { drill: "all" });
  expect(report.problems).toEqual([]);
  expect(report.drilled.generations).toBe((await listGenerations(cell.store, cell.dbKey)).length);
  expect(report.drilled.latestCommit).toBe(true);
}

const ENDS: End[] = ["clean", "no checkpoint", "kill -9 after a commit", "kill -9 mid-upload"];
for (const host of ["node", "bridge"] as const) {
  describe(`restart matrix, ${host} host, filesystem store`, () => {
    for (const end of ENDS) {
      for (const followUp of Object.keys(FOLLOW_UPS) as (keyof typeof FOLLOW_UPS)[]) {
        test(`${end}, then the next host: ${followUp}; the latest restore equals the live file`, async () => {
          await runCell(host, end, followUp);
        }, 180_000);
      }
    }
  });
}

describe("restart matrix on radosgw", () => {
  for (const [host, end] of [["node", "no checkpoint"], ["node", "kill -9 mid-upload"], ["bridge", "kill -9 after a commit"]] as const) {
    test(`${host} host, ${end}, then writes and a checkpoint: the latest restore equals the live file`, async () => {
      await runCell(host, end, "writes and checkpoint", true);
    }, 180_000);
  }
});

test("verify names a generation from which a block its header needs was removed, though every checksum passes", async () => {
  const cell = await newCell("node", false);
  await session(cell, "node", "clean", SHAPES);
  await waitForStore(cell, "the first session");
  const generations = await listGenerations(cell.store, cell.dbKey);
  const latest = generations.at(-1)!;
  // Half of the latest generation's blocks taken out of its block map, written back as a manifest
  // whose pages and digests are all consistent: what a writer that lost track of blocks would publish.
  const storeDir = join(dir, `store-${cells}`, cell.dbKey);
  editWhole((key) => join(storeDir, key), cell.dbKey, latest, (manifest) => {
    manifest.blocks = manifest.blocks.filter((_block: unknown, index: number) => index % 2 === 1);
  });
  expect((await verify(cell.store, cell.dbKey, { drill: "none" })).problems).toEqual([]);
  const report = await verify(cell.store, cell.dbKey);
  expect(report.problems.length).toBeGreaterThan(0);
  expect(report.problems.join("\n")).toContain(`Generation ${latest}`);
}, 120_000);

for (const host of ["node", "bridge"] as const) {
  test(`${host} host: after a restart that found a leftover WAL, frames resume at once (no checkpoint needed)`, async () => {
    const cell = await newCell(host, false);
    await session(cell, host, "no checkpoint", ["CREATE TABLE db.t(i INTEGER)", "INSERT INTO db.t VALUES (1)"]);
    // The second host commits and stays up: only a frame can bring its commit to the store.
    const command = host === "node"
      ? ["node", NODE_HOST, EXTENSION, cell.dbPath, "wait", "INSERT INTO db.t VALUES (2)"]
      : [process.execPath, BRIDGE_HOST, cell.dbPath, "wait", "INSERT INTO db.t VALUES (2)"];
    const child = Bun.spawn(command, { env: cell.env, stdout: "pipe", stderr: "pipe", detached: true });
    try {
      let output = "";
      for await (const chunk of child.stdout) {
        output += new TextDecoder().decode(chunk);
        if (output.includes("idle\n")) break;
      }
      // The first host's replicator is done by now (the second one's ATTACH waited for it).
      const generationAtIdle = (await listGenerations(cell.store, cell.dbKey)).at(-1);
      const to = join(dir, `${cell.dbKey}-frames.duckdb`);
      const deadline = Date.now() + 10_000;
      let rows: unknown[] = [];
      let restored: { generation: number; frames: number } | undefined;
      while (Date.now() < deadline) {
        restored = await restore({ store: cell.store, dbKey: cell.dbKey, to, force: true });
        const instance = await DuckDBInstance.create(":memory:");
        const connection = await instance.connect();
        await connection.run(`ATTACH '${to}' AS r (READ_ONLY)`);
        rows = (await connection.runAndReadAll("SELECT i FROM r.t ORDER BY i")).getRowsJS().map((row) => Number(row[0]));
        connection.closeSync();
        instance.closeSync();
        if (rows.length === 2) break;
        await Bun.sleep(100);
      }
      expect(rows).toEqual([1, 2]);
      // In a frame of the generation the first host left, not in a checkpoint of the second one.
      expect(restored!.generation).toBe(generationAtIdle!);
      expect(restored!.frames).toBeGreaterThan(0);
    } finally {
      process.kill(-child.pid, "SIGKILL");
      await child.exited;
    }
  }, 120_000);
}

test("kill -9 of a host's replicator while it commits without checkpoints: the next commit starts another, and frames go on in the same generation", async () => {
  const cell = await newCell("node", false);
  const host = Bun.spawn(["node", join(ROOT, "tests/fixtures/commit_host.mjs"), EXTENSION, cell.dbPath],
    { env: cell.env, stdout: "pipe", stderr: "inherit" });
  let output = "";
  const reading = (async () => {
    for await (const chunk of host.stdout) output += new TextDecoder().decode(chunk);
  })();
  const acks = () => [...output.matchAll(/ack (\d+) (\d+)/g)].map((m) => ({ i: Number(m[1]), at: Number(m[2]) }));
  try {
    const started = Date.now();
    while (!/status [1-9]/.test(output)) { // frames flow
      if (Date.now() - started > 30_000) throw new Error(`no frames from the host: ${output.slice(-500)}`);
      await Bun.sleep(20);
    }
    const generation = (await listGenerations(cell.store, cell.dbKey)).at(-1)!;
    const replicator = descendants(host.pid);
    expect(replicator.length).toBeGreaterThan(0);
    for (const pid of replicator) process.kill(pid, "SIGKILL");
    const killedAt = Date.now();
    // A commit made 3 s after the kill (the restart waits at most 2 s after the last start) must reach
    // the store in a frame of the same generation: no checkpoint runs in this host.
    while (!acks().some((ack) => ack.at > killedAt + 3000)) await Bun.sleep(20);
    const target = acks().find((ack) => ack.at > killedAt + 3000)!;
    const to = join(dir, `${cell.dbKey}-after-kill.duckdb`);
    const deadline = Date.now() + 15_000;
    let newest = -1;
    let restored;
    while (newest < target.i) {
      if (Date.now() > deadline) throw new Error(`commit ${target.i} never reached the store (newest ${newest})`);
      restored = await restore({ store: cell.store, dbKey: cell.dbKey, to, force: true });
      const instance = await DuckDBInstance.create(":memory:");
      const connection = await instance.connect();
      await connection.run(`ATTACH '${to}' AS r (READ_ONLY)`);
      const rows = (await connection.runAndReadAll("SELECT i FROM r.t ORDER BY i")).getRowsJS().map((row) => Number(row[0]));
      connection.closeSync();
      instance.closeSync();
      expect(rows).toEqual(rows.map((_, index) => index)); // a prefix of the commit order, always
      newest = rows.at(-1) ?? -1;
      if (newest < target.i) await Bun.sleep(100);
    }
    expect(restored!.generation).toBe(generation);
    expect(restored!.frames).toBeGreaterThan(0);
  } finally {
    for (const pid of [...descendants(host.pid), host.pid]) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone already
      }
    }
    await host.exited;
    await reading;
  }
}, 120_000);

for (const host of ["node", "bridge"] as const) {
  test(`${host} host: a file new to the store that stock DuckDB left with a WAL (killed after a bulk insert) ships whole`, async () => {
    const cell = await newCell(host, false);
    // Stock DuckDB, no haduck: a bulk insert (row groups written past the header's blocks), then kill -9.
    const script = `import { DuckDBInstance } from "@duckdb/node-api";
      const instance = await DuckDBInstance.create(${JSON.stringify(cell.dbPath)});
      const connection = await instance.connect();
      await connection.run("PRAGMA disable_checkpoint_on_shutdown");
      await connection.run("CREATE TABLE small(i INTEGER)");
      await connection.run("CREATE TABLE a AS SELECT i, md5(i::VARCHAR) AS s FROM range(150000) t(i)");
      console.log("idle");
      setInterval(() => {}, 1000);`;
    const file = join(ROOT, "tests/fixtures", `.stock-${cells}.mjs`);
    await Bun.write(file, script);
    try {
      const child = Bun.spawn(["node", file], { stdout: "pipe", stderr: "inherit" });
      for await (const chunk of child.stdout) if (new TextDecoder().decode(chunk).includes("idle")) break;
      child.kill("SIGKILL");
      await child.exited;
    } finally {
      rmSync(file, { force: true });
    }
    expect(existsSync(`${cell.dbPath}.wal`)).toBe(true);
    await session(cell, host, "clean", ["INSERT INTO db.small VALUES (1)", "CHECKPOINT db"]);
    await waitForStore(cell, `${host}: a stock file with a WAL`);
    const report = await verify(cell.store, cell.dbKey, { drill: "all" });
    expect(report.problems).toEqual([]);
  }, 120_000);
}
