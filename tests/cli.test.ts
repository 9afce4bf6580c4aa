/** The CLI driven as a user would: spawned, against radosgw and the filesystem store. */
import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { rowCount } from "./harness/duckdb.ts";
import { freshBucket } from "./harness/s3.ts";
import { readStderr, runHaduck } from "./harness/cli.ts";

const BIN = resolve(import.meta.dir, "../packages/cli/bin/haduck.ts");
const dir = mkdtempSync(join(tmpdir(), "haduck-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const haduck = (args: string[], env: Record<string, string> = {}) => runHaduck(dir, args, env);


for (const kind of ["file", "s3"] as const) {
  test(`haduck attach -c, generations --json, restore and open the copy (${kind} store)`, async () => {
    let storeArgs: string[];
    let env: Record<string, string> = {};
    if (kind === "file") storeArgs = ["--store", `file://${dir}/store`];
    else {
      const { bucket, s3 } = await freshBucket("cli");
      storeArgs = ["--store", `s3://${bucket}/haduck`, "--endpoint", s3.endpoint];
      env = { HADUCK_S3_ACCESS_KEY: s3.accessKey, HADUCK_S3_SECRET_KEY: s3.secretKey };
    }
    const db = `${kind}.duckdb`;
    const attached = await haduck(["attach", db, ...storeArgs, "-c", "CREATE TABLE t AS SELECT * FROM range(50000) r(i)",
      "-c", "CHECKPOINT", "-c", "SELECT count(*) AS n FROM t"], env);
    expect(attached.code).toBe(0);
    expect(attached.stdout).toContain("50000");
    expect(attached.stderr).toMatch(/generation \d+: \d+ blocks/);
    const listed = await haduck(["generations", ...storeArgs, "--db-key", db, "--json"], env);
    expect(listed.code).toBe(0);
    const generations = JSON.parse(listed.stdout);
    expect(generations.length).toBeGreaterThan(0);
    for (const field of ["generation", "time", "blocks", "bytes"]) expect(generations[0]).toHaveProperty(field);
    const databases = await haduck(["databases", ...storeArgs, "--json"], env);
    expect(databases.code).toBe(0);
    expect(JSON.parse(databases.stdout).find((found: { dbKey: string }) => found.dbKey === db)?.lastGeneration)
      .toBe(generations.at(-1).generation);
    const restored = await haduck(["restore", ...storeArgs, "--db-key", db, "--to", `${kind}-copy.duckdb`], env);
    expect(restored.code).toBe(0);
    expect(await rowCount(join(dir, `${kind}-copy.duckdb`))).toBe(50000);
    const again = await haduck(["restore", ...storeArgs, "--db-key", db, "--to", `${kind}-copy.duckdb`], env);
    expect(again.code).toBe(6);
    expect(again.stderr).toContain("--force");
    const verified = await haduck(["verify", "--drill", ...storeArgs, "--db-key", db], env);
    expect(verified.code).toBe(0);
    expect(verified.stdout).toContain("0 problems");
  });
}

test("wrong flags and bad settings give the documented exit codes and one-line messages", async () => {
  const unknown = await haduck(["frobnicate"]);
  expect(unknown.code).toBe(2);
  const badFlag = await haduck(["generations", "--bogus"]);
  expect(badFlag.code).toBe(2);
  const noStore = await haduck(["generations", "--db-key", "x"], { HADUCK_S3_BUCKET: "" });
  expect(noStore.code).toBe(2);
  expect(noStore.stderr).toContain("--store");
  const badUrl = await haduck(["generations", "--store", "ftp://x", "--db-key", "x"]);
  expect(badUrl.code).toBe(3);
  const missingKeys = await haduck(["generations", "--store", "s3://bucket-x/p", "--db-key", "x"], {
    HADUCK_S3_ENDPOINT: "http://127.0.0.1:9", HADUCK_S3_ACCESS_KEY: "", HADUCK_S3_SECRET_KEY: "" });
  expect(missingKeys.code).toBe(3);
  expect(missingKeys.stderr).toContain("HADUCK_S3_ACCESS_KEY");
  expect(missingKeys.stderr.trim().split("\n").length).toBe(1);
});

test("a wrong secret exits 4 naming the keys, and never prints the secret", async () => {
  const { bucket, s3 } = await freshBucket("cli-denied");
  const result = await haduck(["generations", "--store", `s3://${bucket}/haduck`, "--endpoint", s3.endpoint,
    "--db-key", "x"], { HADUCK_S3_ACCESS_KEY: s3.accessKey, HADUCK_S3_SECRET_KEY: "wrong-secret-value" });
  expect(result.code).toBe(4);
  expect(result.stderr).toContain("HADUCK_S3_SECRET_KEY");
  expect(result.stderr + result.stdout).not.toContain("wrong-secret-value");
});

test("with HADUCK_STORE set but empty, attach runs local-only and says so once", async () => {
  const result = await haduck(["attach", "local.duckdb", "-c", "CREATE TABLE t (i INT)"], { HADUCK_STORE: "",
    HADUCK_S3_BUCKET: "", HADUCK_S3_ENDPOINT: "", HADUCK_S3_ACCESS_KEY: "", HADUCK_S3_SECRET_KEY: "" });
  expect(result.code).toBe(0);
  expect(result.stderr.match(/local-only mode/g)?.length).toBe(1);
  expect(existsSync(join(dir, "haduck-store"))).toBe(false);
});

test("without any store configured, attach uses ./haduck-store in the working directory and says where", async () => {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("HADUCK_S3_") &&
    name !== "HADUCK_STORE")) as Record<string, string>;
  const child = Bun.spawn([process.execPath, BIN, "attach", "default.duckdb", "-c", "CREATE TABLE t AS SELECT 7 AS x",
    "-c", "CHECKPOINT"], { cwd: dir, env, stdout: "pipe", stderr: "pipe" });
  const [stderr, code] = await Promise.all([new Response(child.stderr).text(), child.exited]);
  expect({ code, stderr }).toEqual({ code: 0, stderr: expect.stringContaining(`using file://${dir}/haduck-store (./haduck-store;`) });
  expect(stderr).not.toContain("local-only mode");
  const listed = await haduck(["generations", "--store", `file://${dir}/haduck-store`, "--db-key", "default.duckdb", "--json"]);
  expect(listed.code).toBe(0);
  expect(JSON.parse(listed.stdout).length).toBeGreaterThan(0);
});

test("haduck gc is a dry run until --apply, then keeps only the newest generations", async () => {
  const storeArgs = ["--store", `file://${dir}/gc-store`, "--db-key", "gc.duckdb"];
  const statements = ["-c", "CREATE TABLE t AS SELECT * FROM range(1000) r(i)"];
  for (let step = 0; step < 3; step++) statements.push("-c", `INSERT INTO t SELECT * FROM range(${step * 10})`, "-c", "CHECKPOINT");
  expect((await haduck(["attach", "gc.duckdb", ...storeArgs, ...statements])).code).toBe(0);
  const before = JSON.parse((await haduck(["generations", ...storeArgs, "--json"])).stdout);
  // Four checkpoints; one may be carried into the next when it comes while the last still uploads (the hold).
  expect(before.length).toBeGreaterThanOrEqual(3);
  const dry = await haduck(["gc", ...storeArgs, "--keep-last", "2"]);
  expect(dry.code).toBe(0);
  expect(dry.stdout).toContain("dry run");
  expect(JSON.parse((await haduck(["generations", ...storeArgs, "--json"])).stdout).length).toBe(before.length);
  const applied = await haduck(["gc", ...storeArgs, "--keep-last", "2", "--apply", "--json"]);
  expect(applied.code).toBe(0);
  expect(JSON.parse(applied.stdout).deletedGenerations.length).toBe(before.length - 2);
  const after = JSON.parse((await haduck(["generations", ...storeArgs, "--json"])).stdout);
  expect(after.map((g: { generation: number }) => g.generation))
    .toEqual(before.slice(-2).map((g: { generation: number }) => g.generation));
  expect((await haduck(["verify", ...storeArgs])).code).toBe(0);
  const bad = await haduck(["gc", ...storeArgs, "--keep-within", "soon"]);
  expect(bad.code).toBe(2);
  expect(bad.stderr).toContain("36h");
});

test("haduck serve serves the admin endpoint until SIGTERM, then ships what is pending and exits 0", async () => {
  const token = "serve-test-token-0123456789";
  const child = Bun.spawn([process.execPath, BIN, "serve", "served.duckdb", "--store", `file://${dir}/serve-store`,
    "--admin", "127.0.0.1:0"], { cwd: dir, env: { ...process.env, HADUCK_ADMIN_TOKEN: token }, stdout: "pipe",
    stderr: "pipe" });
  const stderr = readStderr(child);
  const url = await stderr.adminUrl();
  expect(url).toBeDefined();
  expect(stderr.text()).not.toContain(token);
  const auth = { authorization: `Bearer ${token}` };
  expect((await fetch(`${url}healthz`)).status).toBe(200);
  expect((await fetch(`${url}status`)).status).toBe(401);
  const checkpoint = await (await fetch(`${url}checkpoint`, { method: "POST", headers: auth })).json();
  expect(checkpoint.lastError).toBeNull();
  const status = await (await fetch(`${url}status`, { headers: auth })).json();
  expect(status.databases[0].db).toBe("served.duckdb");
  expect(status.databases[0].lastGeneration).toBe(checkpoint.lastGeneration);
  child.kill("SIGTERM");
  expect(await child.exited).toBe(0);
  await stderr.done;
  const listed = await haduck(["generations", "--store", `file://${dir}/serve-store`, "--db-key", "served.duckdb",
    "--json"]);
  expect(JSON.parse(listed.stdout).length).toBeGreaterThan(0);
  const usage = await haduck(["serve", "served.duckdb", "--admin", "not-a-port"]);
  expect(usage.code).toBe(2);
  expect(usage.stderr).toContain("HOST:PORT");
});

test("large uploads and restores report progress off a terminal as plain lines with --progress", async () => {
  const storeArgs = ["--store", `file://${dir}/progress-store`, "--progress"];
  const attached = await haduck(["attach", "progress.duckdb", ...storeArgs,
    "-c", "CREATE TABLE t AS SELECT i, random() AS a FROM range(4000000) r(i)", "-c", "CHECKPOINT"]);
  expect(attached.code).toBe(0);
  const lines = attached.stderr.split("\n").filter((line) => line.startsWith("upload: "));
  expect(lines.length).toBeGreaterThanOrEqual(2);
  expect(lines.length).toBeLessThanOrEqual(11); // at most one line per tenth
  expect(lines[lines.length - 1]).toMatch(/^upload: 100% (\d+)\/\1 blocks, [\d.]+ MiB, [\d.]+ MiB\/s, ETA 0 s$/);
  const restored = await haduck(["restore", ...storeArgs, "--db-key", "progress.duckdb", "--to", "progress-copy.duckdb"]);
  expect(restored.code).toBe(0);
  expect(restored.stderr).toMatch(/restore: 100% (\d+)\/\1 blocks/);
  expect(await rowCount(join(dir, "progress-copy.duckdb"))).toBe(4000000);
});
