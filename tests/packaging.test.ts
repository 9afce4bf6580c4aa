/**
 * The packages as a user installs them: every package is packed (`npm pack`), the tarballs are
 * installed into empty directories outside the repository, and there, with nothing of this checkout
 * on the PATH: `npx haduck --help`, `npx haduck attach` shipping a generation to a filesystem
 * store, `npx haduck restore` (the file opens in stock DuckDB), `bunx haduck generations` (the Bun
 * the package brought), and `@haduck/s3-block-store` alone, its README example run as written under
 * Node, Bun and Deno (Deno with the permissions its README states), and a store on radosgw whose
 * keys and endpoint come from AWS_* alone, with no DuckDB and nothing else of haduck installed. Then
 * every package: each ships `dist/mod.js` and `dist/mod.d.ts`, and each README's example runs on
 * Node, Bun and Deno (Deno with exactly the permissions the README states), or, where the README
 * says a runtime is not supported, fails there with the error it names.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { queryFile } from "./harness/duckdb.ts";
import { freshBucket } from "./harness/s3.ts";

const ROOT = resolve(import.meta.dir, "..");
const work = mkdtempSync(join(tmpdir(), "haduck-packaging-"));
const tarballs = join(work, "tarballs");
// Three installs with their Bun and DuckDB binaries: removing them takes a while on a busy disk.
afterAll(() => rmSync(work, { recursive: true, force: true }), 300_000);

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
  // Every package's dist/ at once (one tsc run); each prepack below then finds its own fresh.
  const built = Bun.spawnSync([process.execPath, join(ROOT, "tools/build_packages.ts")], { cwd: ROOT, stdout: "pipe",
    stderr: "pipe" });
  if (built.exitCode !== 0) throw new Error(`tools/build_packages.ts failed: ${built.stderr}`);
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

/** The first `ts` example of a package's README, and the Deno permissions it states (`deno run FLAGS app.js`). */
function readmeOf(name: string): { example: string; denoFlags: string[] } {
  const readme = readFileSync(join(ROOT, "packages", name, "README.md"), "utf8");
  const example = /```ts\n([\s\S]*?)```/.exec(readme)?.[1] ?? "";
  const deno = /`deno run ([^`]*?)\s*app\.js`/.exec(readme.replace(/\n/g, " "));
  if (!deno) throw new Error(`packages/${name}/README.md states no Deno command (\`deno run FLAGS app.js\`)`);
  return { example, denoFlags: deno[1].split(/\s+/).filter(Boolean) };
}

const BUN = join(ROOT, "node_modules/.bin/bun");
const DENO = join(ROOT, "node_modules/.bin/deno");

/** Runs a script of `dir` on one runtime (Deno with the permissions given, and nothing more). */
function runOn(runtime: "node" | "bun" | "deno", dir: string, script: string, denoFlags: string[] = []) {
  const command = runtime === "node" ? ["node", script] : runtime === "bun" ? [BUN, script]
    : [DENO, "run", "--quiet", "--node-modules-dir=manual", ...denoFlags, script];
  const ran = run(command, dir, { NO_COLOR: "1" });
  return { runtime, ...ran };
}

test("@haduck/s3-block-store installs alone and its README example runs under Node, Bun and Deno", async () => {
  const dir = join(work, "store-alone");
  install(dir, ["@haduck/s3-block-store"]);
  // Its own dependencies (aws4fetch, the AWS credential chain) and nothing of haduck's others: no DuckDB, no Bun, no Hono.
  const modules = readdirSync(join(dir, "node_modules"));
  expect(modules).toContain("aws4fetch");
  expect(modules.filter((name) => ["@duckdb", "bun", "hono", "haduck"].includes(name))).toEqual([]);
  expect(readdirSync(join(dir, "node_modules/@haduck"))).toEqual(["s3-block-store"]);
  const { example, denoFlags } = readmeOf("s3-block-store");
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
  for (const runtime of ["node", "bun", "deno"] as const) {
    rmSync(join(dir, "haduck-example"), { recursive: true, force: true });
    const ran = runOn(runtime, dir, "example.mjs", denoFlags);
    expect({ runtime, code: ran.code, stderr: ran.stderr }).toEqual({ runtime, code: 0, stderr: "" });
    expect(ran.stdout).toContain("manifests/0001.json 2");
    expect(ran.stdout).toContain("createOnly: true");
    const chainArgs = runtime === "node" ? ["node"] : runtime === "bun" ? [BUN]
      : [DENO, "run", "--quiet", "--node-modules-dir=manual", ...denoFlags];
    const chained = run([...chainArgs, "chain.mjs", runtime], dir, aws);
    expect({ runtime, code: chained.code, stdout: chained.stdout, stderr: chained.stderr })
      .toEqual({ runtime, code: 0, stdout: "chain\n", stderr: "" });
  }
}, 600_000);

/**
 * What each package's README example prints on each runtime it claims, or, where its README says it
 * does not run, the error it must fail with there (never ERR_UNKNOWN_FILE_EXTENSION).
 */
const BRIDGE_ON_NODE = /@haduck\/duckdb-fs-bridge runs on Bun and Deno, not on Node: .*FFI/;
const EXAMPLES: Record<string, { prints: RegExp; node?: RegExp }> = {
  "admin": { prints: /^200 /m },
  "dirty-tracker": { prints: /^3 \[ 0, 1, 9 \]/m },
  "duckblock": { prints: /nothing stored yet/ },
  "duckdb-fs-bridge": { prints: /problems: \[\]/, node: BRIDGE_ON_NODE },
  "extension-linux-x64": { prints: /haduck: "0\.1\.0"|haduck: '0\.1\.0'/ },
  "lease": { prints: /leading at epoch \d+/ },
};

test("every package ships JavaScript and declarations, and its README example runs where the README says", () => {
  const dir = join(work, "every-package");
  install(dir, ["haduck", "@haduck/duckdb-fs-bridge", "@haduck/duckblock", "@haduck/s3-block-store",
    "@haduck/dirty-tracker", "@haduck/lease", "@haduck/admin", "@haduck/cluster", "@haduck/extension-linux-x64"]);
  for (const name of readdirSync(join(ROOT, "packages"))) {
    const manifest = JSON.parse(readFileSync(join(ROOT, "packages", name, "package.json"), "utf8"));
    const installed = join(dir, "node_modules", manifest.name);
    expect({ name, js: existsSync(join(installed, "dist/mod.js")), types: existsSync(join(installed, "dist/mod.d.ts")) })
      .toEqual({ name, js: true, types: true });
  }
  // The declarations type-check a user's program (TypeScript's own node16 resolution: `types`, no `bun`),
  // and they are real types, not `any`: the line marked @ts-expect-error must be an error.
  writeFileSync(join(dir, "consumer.ts"), [
    'import { Lease } from "@haduck/lease";',
    'import { openStore, type BlockStore } from "@haduck/s3-block-store";',
    'import { DirtyBitmap } from "@haduck/dirty-tracker";',
    'import { listGenerations } from "@haduck/duckblock";',
    'import { createAdminApp } from "@haduck/admin";',
    'import { EXTENSION_FILE } from "@haduck/extension-linux-x64";',
    'const store: BlockStore = openStore("file:///tmp/x");',
    'const epoch: number | undefined = new Lease(store, "k/lease.json", { holder: "a" }).epoch;',
    "// @ts-expect-error: the count is a number",
    "const count: string = new DirtyBitmap().count;",
    'export { count, createAdminApp, EXTENSION_FILE, epoch, listGenerations };',
  ].join("\n"));
  const typed = run([join(ROOT, "node_modules/.bin/tsc"), "--noEmit", "--strict", "--module", "node16", "--moduleResolution",
    "node16", "--skipLibCheck", "--typeRoots", join(ROOT, "node_modules/@types"), "--types", "node", "consumer.ts"], dir);
  expect({ code: typed.code, stdout: typed.stdout }).toEqual({ code: 0, stdout: "" });
  for (const [name, expected] of Object.entries(EXAMPLES)) {
    const { example, denoFlags } = readmeOf(name);
    writeFileSync(join(dir, `${name}.mjs`), example);
    for (const runtime of ["node", "bun", "deno"] as const) {
      for (const leftover of ["haduck-store", "haduck-bridge-example"]) rmSync(join(dir, leftover), { recursive: true, force: true });
      const ran = runOn(runtime, dir, `${name}.mjs`, denoFlags);
      if (runtime === "node" && expected.node) {
        expect({ name, runtime, code: ran.code }).toEqual({ name, runtime, code: 1 });
        expect(ran.stderr).toMatch(expected.node);
        continue;
      }
      expect({ name, runtime, code: ran.code, stderr: ran.stderr }).toEqual({ name, runtime, code: 0, stderr: "" });
      expect({ name, runtime, stdout: ran.stdout }).toEqual({ name, runtime, stdout: expect.stringMatching(expected.prints) });
    }
  }
  // The Bun-only packages, as their READMEs say: on Node the import fails with the bridge's error, on
  // Deno the CLI's main() says to run `npx haduck`; on Bun both work.
  writeFileSync(join(dir, "cluster.mjs"), "import { ClusterNode } from \"@haduck/cluster\";\nconsole.log(typeof ClusterNode);\n");
  writeFileSync(join(dir, "cli.mjs"), "import { main } from \"haduck\";\nprocess.exitCode = await main([\"--version\"]);\n");
  for (const script of ["cluster.mjs", "cli.mjs"]) {
    const onNode = runOn("node", dir, script);
    expect({ script, code: onNode.code }).toEqual({ script, code: 1 });
    expect(onNode.stderr).toMatch(BRIDGE_ON_NODE);
    expect(onNode.stderr).not.toContain("ERR_UNKNOWN_FILE_EXTENSION");
  }
  expect(runOn("bun", dir, "cluster.mjs").stdout).toBe("function\n");
  expect(runOn("bun", dir, "cli.mjs").stdout).toMatch(/^haduck 0\.1\.0 \(DuckDB /);
  const cliOnDeno = runOn("deno", dir, "cli.mjs", readmeOf("duckdb-fs-bridge").denoFlags);
  expect(cliOnDeno.code).toBe(1);
  expect(cliOnDeno.stderr).toContain("haduck's main() runs on Bun: run the command as `npx haduck`");
}, 900_000);
