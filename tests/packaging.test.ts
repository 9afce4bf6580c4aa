/**
 * The packages as a user installs them: every package is packed (`npm pack`), the tarballs are
 * installed into empty directories outside the repository, and there, with nothing of this checkout
 * on the PATH: `npx haduck --help`, `npx haduck attach` shipping a generation to a filesystem
 * store, `npx haduck restore` (the file opens in stock DuckDB), `bunx haduck generations` (the Bun
 * the package brought), and `@haduck/s3-block-store` alone, its README example run as written under
 * Node, Bun and Deno (Deno with the permissions its README states), and a store on radosgw whose
 * keys and endpoint come from AWS_* alone, with no DuckDB and nothing else of haduck installed.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { queryFile } from "./harness/duckdb.ts";
import { freshBucket } from "./harness/s3.ts";

const ROOT = resolve(import.meta.dir, "..");
const work = mkdtempSync(join(tmpdir(), "haduck-packaging-"));
const tarballs = join(work, "tarballs");
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** PATH with node and npm (and the system's tools) but nothing of this checkout: no bun, no deno. */
const PATH = [dirname(Bun.which("node")!), "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
  .filter((dir, index, all) => all.indexOf(dir) === index).join(":");
const ENV = { PATH, HOME: process.env.HOME ?? "/root", npm_config_cache: process.env.npm_config_cache ?? "" };

function run(command: string[], cwd: string, env: Record<string, string> = {}) {
  const child = Bun.spawnSync(command, { cwd, env: Object.fromEntries(Object.entries({ ...ENV, ...env })
    .filter(([, value]) => value !== "")), stdout: "pipe", stderr: "pipe" });
  return { code: child.exitCode, stdout: child.stdout.toString(), stderr: child.stderr.toString() };
}

function install(dir: string, packages: string[]) {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "user-project", private: true, type: "module" }));
  // npm names a tarball after the package: @haduck/s3-block-store 0.1.0 is haduck-s3-block-store-0.1.0.tgz.
  const version = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version;
  const files = packages.map((name) => join(tarballs, `${name.replace("@", "").replace("/", "-")}-${version}.tgz`));
  const installed = run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", ...files], dir);
  expect({ code: installed.code, stderr: installed.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
}

beforeAll(() => {
  mkdirSync(tarballs);
  for (const name of readdirSync(join(ROOT, "packages"))) {
    // npm's own PATH for scripts adds the repository's node_modules/.bin (the prepack builds run on its Bun).
    const packed = Bun.spawnSync(["npm", "pack", "--pack-destination", tarballs, "--loglevel=error"],
      { cwd: join(ROOT, "packages", name), stdout: "pipe", stderr: "pipe" });
    if (packed.exitCode !== 0) throw new Error(`npm pack of ${name} failed: ${packed.stderr}`);
  }
}, 300_000);

test("npx haduck works with only Node and npm: --help, attach ships a generation, restore opens in DuckDB", () => {
  const dir = join(work, "cli");
  install(dir, ["haduck", "@haduck/duckdb-fs-bridge", "@haduck/duckblock", "@haduck/s3-block-store",
    "@haduck/dirty-tracker", "@haduck/lease", "@haduck/admin", "@haduck/cluster", "@haduck/extension-linux-x64"]);
  expect(Bun.which("bun", { PATH })).toBeNull();
  const help = run(["npx", "--no-install", "haduck", "--help"], dir);
  expect({ code: help.code, stderr: help.stderr }).toEqual({ code: 0, stderr: "" });
  expect(help.stdout).toContain("restore");
  const store = `file://${join(dir, "store")}`;
  const attached = run(["npx", "--no-install", "haduck", "attach", "user.duckdb", "--store", store,
    "-c", "CREATE TABLE t AS SELECT i, md5(i::VARCHAR) AS s FROM range(50000) r(i)", "-c", "CHECKPOINT"], dir);
  expect({ code: attached.code, stderr: attached.stderr }).toEqual({ code: 0, stderr: expect.stringMatching(/generation \d+/) });
  const to = join(dir, "restored.duckdb");
  const restored = run(["npx", "--no-install", "haduck", "restore", "--store", store, "--db-key", "user.duckdb",
    "--to", to], dir);
  expect(restored.code).toBe(0);
  return queryFile(to, "SELECT count(*)::INT AS n FROM t").then((rows) => expect(rows[0].n).toBe(50000)).then(() => {
    // The same command with Bun: the Bun binary the package brought, as `bunx`.
    const bun = [join(dir, "node_modules/bun/bin/bun.exe"), join(dir, "node_modules/@oven/bun-linux-x64/bin/bun")]
      .find((path) => existsSync(path))!;
    const listed = run([bun, "x", "haduck", "generations", "--store", store, "--db-key", "user.duckdb", "--json"], dir);
    expect(listed.code).toBe(0);
    expect(JSON.parse(listed.stdout).length).toBeGreaterThan(0);
    const usage = run([bun, "x", "haduck", "restore"], dir);
    expect(usage.code).toBe(2); // the same exit codes either way
    expect(run(["npx", "--no-install", "haduck", "restore"], dir).code).toBe(2);
  });
}, 600_000);

test("@haduck/s3-block-store installs alone and its README example runs under Node, Bun and Deno", async () => {
  const dir = join(work, "store-alone");
  install(dir, ["@haduck/s3-block-store"]);
  const modules = readdirSync(join(dir, "node_modules")).filter((name) => !name.startsWith("."));
  // Its own dependencies (aws4fetch, the AWS SDK's credential chain and what that needs), nothing of DuckDB.
  expect(modules).toEqual(expect.arrayContaining(["@haduck", "aws4fetch", "@aws-sdk"]));
  expect(modules.filter((name) => /duckdb|^bun$|^@oven$/.test(name))).toEqual([]);
  expect(readdirSync(join(dir, "node_modules/@haduck"))).toEqual(["s3-block-store"]);
  const readme = readFileSync(join(ROOT, "packages/s3-block-store/README.md"), "utf8");
  const example = /```ts\n([\s\S]*?)```/.exec(readme)![1];
  writeFileSync(join(dir, "example.mjs"), example);
  // The AWS credential chain from the installed package: keys and endpoint from AWS_* alone.
  const { bucket, s3 } = await freshBucket("packaged-chain");
  writeFileSync(join(dir, "chain.mjs"), `import { openStore } from "@haduck/s3-block-store";
const store = openStore("s3://${bucket}/" + process.argv.at(-1), process.env);
await store.put("k", new TextEncoder().encode("chain"));
console.log(new TextDecoder().decode(await store.get("k")));
`);
  const aws = { AWS_ACCESS_KEY_ID: s3.accessKey, AWS_SECRET_ACCESS_KEY: s3.secretKey, AWS_ENDPOINT_URL_S3: s3.endpoint,
    AWS_EC2_METADATA_DISABLED: "true" };
  const bun = join(ROOT, "node_modules/.bin/bun");
  const deno = join(ROOT, "node_modules/.bin/deno");
  // Deno with exactly the permissions the package's README states.
  const denoRun = [deno, "run", "--allow-net", "--allow-env", "--allow-read", "--allow-write", "--node-modules-dir=manual"];
  for (const runtime of [["node"], [bun], denoRun]) {
    rmSync("/tmp/haduck-example", { recursive: true, force: true });
    const ran = run([...runtime, "example.mjs"], dir);
    expect({ runtime: runtime[0], code: ran.code, stderr: ran.stderr }).toEqual({ runtime: runtime[0], code: 0,
      stderr: "" });
    expect(ran.stdout).toContain("manifests/0001.json 2");
    expect(ran.stdout).toContain("createOnly: true");
    const chained = run([...runtime, "chain.mjs", basename(runtime[0])], dir, aws);
    expect({ runtime: runtime[0], code: chained.code, stdout: chained.stdout, stderr: chained.stderr })
      .toEqual({ runtime: runtime[0], code: 0, stdout: "chain\n", stderr: "" });
  }
}, 600_000);
