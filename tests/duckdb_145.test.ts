/**
 * DuckDB 1.4.5: the extension's second build (the 1.4.4 headers patched to 1.4.5's, stamped
 * v1.4.5) loads into DuckDB 1.4.5 and replicates there; the 1.4.4 build is refused by 1.4.5 with
 * an error, never a crash (DuckDB's own message on a raw LOAD, haduck's own where the toolkit or
 * the CLI loads it); and a DuckDB haduck has no build for gets an error naming the ones it has.
 * The DuckDB 1.4.5 parts run in child processes (tests/fixtures/duckdb_145_host.ts and the CLI)
 * whose `@duckdb/node-api` is 1.4.5-r.1 (tests/harness/duckdb_1_4_5_preload.ts): one process never
 * loads two DuckDB releases.
 */
import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { DUCKDB_TARGETS, extensionBuildPath, extensionFooter, platformPackagePath } from "../tools/build_extension.ts";
import { patchHeader } from "../tools/_duckdb_targets.ts";
import { DUCKDB_VERSIONS, EXTENSION_FILES } from "@haduck/extension-linux-x64";
import {
  DuckDBVersionError,
  extensionDuckDBVersion,
  extensionPath,
  listGenerations,
  restore,
  SUPPORTED_DUCKDB_VERSIONS,
  verify,
} from "@haduck/duckdb-fs-bridge";
import { openStore } from "@haduck/s3-block-store";
import { DUCKDB_1_4_5_ENV } from "./harness/duckdb_1_4_5.ts";
import { queryFile } from "./harness/duckdb.ts";
import { digest } from "./harness/workload.ts";
import { runHaduck } from "./harness/cli.ts";
import { freshBucket } from "./harness/s3.ts";

const dir = mkdtempSync(join(tmpdir(), "haduck-duckdb145-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const BUILD_145 = extensionBuildPath("v1.4.5");
const BUILD_144 = extensionBuildPath("v1.4.4");
const HOST = resolve(import.meta.dir, "fixtures/duckdb_145_host.ts");

/** Runs a scenario of the DuckDB 1.4.5 host; it must exit 0 (no crash, no signal) with one JSON line. */
async function on145(args: string[], env: Record<string, string> = {}): Promise<Record<string, any>> {
  const child = Bun.spawn([process.execPath, HOST, ...args], { env: { ...process.env, ...DUCKDB_1_4_5_ENV, ...env },
    stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(),
    new Response(child.stderr).text(), child.exited]);
  expect({ code, signal: child.signalCode, stderr: code === 0 ? "" : stderr }).toEqual({ code: 0, signal: null,
    stderr: "" });
  return JSON.parse(stdout.trim().split("\n").at(-1)!);
}

test("each build's footer names its DuckDB release, and the platform package carries both", () => {
  expect(DUCKDB_TARGETS.map((target) => target.version)).toEqual(["v1.4.4", "v1.4.5"]);
  expect(extensionDuckDBVersion(BUILD_144)).toBe("v1.4.4");
  expect(extensionDuckDBVersion(BUILD_145)).toBe("v1.4.5");
  const footer = extensionFooter("0.1.0", "v1.4.5");
  expect(readFileSync(BUILD_145).subarray(-footer.length)).toEqual(Buffer.from(footer));
  // The three lists of releases agree: what the build makes, what the package ships, what the bridge loads.
  expect([...DUCKDB_VERSIONS]).toEqual(DUCKDB_TARGETS.map((target) => target.version));
  expect([...SUPPORTED_DUCKDB_VERSIONS]).toEqual([...DUCKDB_VERSIONS]);
  for (const target of DUCKDB_TARGETS) {
    expect(EXTENSION_FILES[target.version]).toBe(platformPackagePath(target));
    expect(readFileSync(EXTENSION_FILES[target.version])).toEqual(readFileSync(extensionBuildPath(target.version)));
  }
});

test("the header patch refuses headers that are not DuckDB 1.4.4's, naming the file and the fix", () => {
  const patch = DUCKDB_TARGETS[1].patches[0];
  const original = readFileSync(join(import.meta.dir, "../node_modules/duckdb/src/duckdb/src/include", patch.file), "utf8");
  expect(patchHeader(original, patch)).toContain("virtual void RemoveFiles(const vector<string> &filenames");
  expect(() => patchHeader(`${original}\n// changed`, patch)).toThrow(`Cannot patch ${patch.file}: it is not DuckDB`);
});

test("DuckDB 1.4.5 loads the 1.4.5 build by hand, ATTACHes haduck://, and refuses the 1.4.4 build without crashing",
  async () => {
    const result = await on145(["raw", dir, BUILD_145, BUILD_144]);
    expect(result.version).toBe("v1.4.5");
    expect(result.loaded).toEqual({ duckdb: "v1.4.5", extension: "0.1.0" });
    expect(result.written.n).toBe(100000);
    expect(result.reopened).toEqual(result.written); // stock DuckDB 1.4.5 reads what haduck:// wrote
    // OVERWRITE removed the three old partitions' files through haduck's RemoveFiles; the new one is left.
    expect(result.partitions).toEqual(["k=7"]);
    // DuckDB's own check of the footer...
    expect(result.refusedMessage).toContain("built specifically for DuckDB version 'v1.4.4'");
    expect(result.refusedMessage).toContain("'v1.4.5'");
    // ...and, with that check turned off, haduck's entry point, before any call into DuckDB's vtables.
    expect(result.forcedMessage).toContain("This haduck build is for DuckDB v1.4.4 and cannot run in DuckDB v1.4.5");
    expect(result.after).toEqual({ answer: 42 });
  });

test("the toolkit on DuckDB 1.4.5 loads its build, ships generations and a WAL frame to radosgw, and restores equal",
  async () => {
    const { bucket, s3 } = await freshBucket("duckdb-145");
    const result = await on145(["toolkit", dir, bucket], { HADUCK_TEST_S3_ENDPOINT: s3.endpoint,
      HADUCK_TEST_S3_ACCESS_KEY: s3.accessKey, HADUCK_TEST_S3_SECRET_KEY: s3.secretKey });
    expect(result.version).toBe("v1.4.5");
    expect(result.duckdbVersion).toBe("1.4.5");
    expect(result.extension).toBe(EXTENSION_FILES["v1.4.5"]);
    expect(result.flushed).toBe(true);
    expect(result.ffiOverlaysOpen).toBe(0);
    expect(result.lastError).toBeNull();
    expect(result.generations).toBeGreaterThanOrEqual(2);
    expect(result.expected.n).toBe(200001);
    expect(result.restored).toEqual(result.expected);
    expect(result.problems).toEqual([]);
  });

test("a DuckDB 1.4.5 host that knows haduck only by SQL replicates through the sidecar it starts", async () => {
  const storeDir = join(dir, "sidecar-store");
  const dbPath = join(dir, "sidecar.duckdb");
  const result = await on145(["sql", BUILD_145, dbPath,
    "CREATE TABLE mydb.t AS SELECT i, md5(i::VARCHAR) AS s FROM range(200000) r(i)", "CHECKPOINT mydb",
    "UPDATE mydb.t SET s = 'u' WHERE i % 7 = 0", "CHECKPOINT mydb",
    "SELECT mode, last_error FROM haduck_status() WHERE path LIKE '%sidecar.duckdb'"],
  { HADUCK_STORE: `file://${storeDir}`, HADUCK_BIN: resolve(import.meta.dir, "../packages/cli/bin/haduck.mjs") });
  expect(result.version).toBe("v1.4.5");
  expect(result.rows).toEqual([{ mode: "sidecar", last_error: null }]);
  // The replicator ships what the file holds once the host is gone: wait (bounded) until the store has it.
  const store = openStore(`file://${storeDir}`);
  const content = (path: string) => digest((sql) => queryFile(path, sql) as Promise<Record<string, unknown>[]>);
  const to = join(dir, "sidecar-restored.duckdb");
  const deadline = Date.now() + 60_000;
  for (;;) {
    if ((await listGenerations(store, "sidecar.duckdb")).length > 0) {
      await restore({ store, dbKey: "sidecar.duckdb", to, force: true });
      if (await content(to) === await content(dbPath)) break;
    }
    if (Date.now() > deadline) throw new Error(`the store never caught up with ${dbPath}`);
    await Bun.sleep(100);
  }
  expect(await content(to)).toContain("t:200000:");
  expect((await verify(store, "sidecar.duckdb")).problems).toEqual([]);
});

test("the toolkit on DuckDB 1.4.5 refuses HADUCK_EXTENSION_PATH at the 1.4.4 build with haduck's own error", async () => {
  const result = await on145(["refuse"], { HADUCK_EXTENSION_PATH: BUILD_144 });
  expect(result.version).toBe("v1.4.5");
  expect(result.name).toBe("DuckDBVersionError");
  expect(result.code).toBe("DUCKDB_VERSION_UNSUPPORTED");
  expect(result.message).toBe(`HADUCK_EXTENSION_PATH points at ${BUILD_144}, a haduck build for DuckDB v1.4.4, but ` +
    "this process runs DuckDB v1.4.5 (an extension loads only into the release it was built for): point it at a " +
    "build for v1.4.5, or unset it (haduck then loads its own build for v1.4.5)");
  expect(result.after).toEqual({ answer: 42 });
});

test("the CLI on DuckDB 1.4.5 says so, ships and restores; pointed at the 1.4.4 build it exits 3 with haduck's error",
  async () => {
    const env = { ...DUCKDB_1_4_5_ENV, HADUCK_STORE: "", HADUCK_EXTENSION_PATH: "" };
    const version = await runHaduck(dir, ["--version"], env);
    expect(version.stdout).toMatch(/^haduck \S+ \(DuckDB 1\.4\.5\)\n$/);
    const store = `file://${join(dir, "cli-store")}`;
    const attached = await runHaduck(dir, ["attach", "cli.duckdb", "--store", store, "-c",
      "CREATE TABLE t AS SELECT i FROM range(5000) r(i)", "-c", "CHECKPOINT"], env);
    expect({ code: attached.code, stderr: attached.stderr }).toEqual({ code: 0,
      stderr: expect.stringMatching(/generation \d+/) });
    const to = join(dir, "cli-restored.duckdb");
    const restored = await runHaduck(dir, ["restore", "--store", store, "--db-key", "cli.duckdb", "--to", to], env);
    expect({ code: restored.code, stderr: restored.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
    expect(existsSync(to)).toBe(true);
    const refused = await runHaduck(dir, ["attach", "other.duckdb", "--store", store, "-c", "SELECT 1"],
      { ...env, HADUCK_EXTENSION_PATH: BUILD_144 });
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain("a haduck build for DuckDB v1.4.4, but this process runs DuckDB v1.4.5");
  });

test("a DuckDB haduck has no build for gets an error naming the supported releases", () => {
  const error = (() => {
    try {
      return extensionPath("v1.5.0");
    } catch (e) {
      return e;
    }
  })();
  expect(error).toBeInstanceOf(DuckDBVersionError);
  expect((error as DuckDBVersionError).duckdbVersion).toBe("v1.5.0");
  expect((error as Error).message).toContain("haduck has no extension build for DuckDB v1.5.0");
  expect((error as Error).message).toContain("it supports DuckDB v1.4.4 and v1.4.5");
  // The 1.4.5 build named by HADUCK_EXTENSION_PATH is refused by a 1.4.4 process the same way.
  const saved = process.env.HADUCK_EXTENSION_PATH;
  process.env.HADUCK_EXTENSION_PATH = BUILD_145;
  try {
    expect(() => extensionPath("v1.4.4")).toThrow("a haduck build for DuckDB v1.4.5, but this process runs DuckDB v1.4.4");
    expect(extensionPath("v1.4.5")).toBe(BUILD_145);
  } finally {
    if (saved === undefined) delete process.env.HADUCK_EXTENSION_PATH;
    else process.env.HADUCK_EXTENSION_PATH = saved;
  }
});
