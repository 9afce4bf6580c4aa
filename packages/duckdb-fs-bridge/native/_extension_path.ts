/**
 * @module
 * Which extension file this process loads. The extension is C++ bound to one DuckDB release's ABI,
 * so there is one build per supported release, and the one that matches the DuckDB this process
 * runs (`@duckdb/node-api`'s) is the only one that may be loaded: another release's build would call
 * the wrong vtable slots. A DuckDB without a build, or `HADUCK_EXTENSION_PATH` naming a build for
 * another release, gets {@link DuckDBVersionError} before anything is loaded.
 */
import { version } from "@duckdb/node-api";
import { closeSync, existsSync, fstatSync, openSync, readSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), "../../..");

/**
 * The DuckDB releases haduck has an extension build for, oldest first, each with the folder its
 * build is in, in the platform package and in a checkout's `extension/build/` ("": the top).
 * tools/_duckdb_targets.ts builds them; tests/duckdb_145.test.ts checks the three lists agree.
 */
const BUILD_FOLDERS: Readonly<Record<string, string>> = { "v1.4.4": "", "v1.4.5": "v1.4.5" };
/** The DuckDB releases haduck has an extension build for (`v1.4.4`, `v1.4.5`). */
export const SUPPORTED_DUCKDB_VERSIONS: readonly string[] = Object.freeze(Object.keys(BUILD_FOLDERS));
/** The platform package that carries the built extension, per `${process.platform}-${process.arch}`. */
const PLATFORM_PACKAGES: Record<string, string> = { "linux-x64": "@haduck/extension-linux-x64" };

/** The DuckDB release this process runs, as `SELECT version()` says it: `v1.4.4`. */
export function hostDuckDBVersion(): string {
  return version();
}

const listed = (versions: readonly string[]) =>
  versions.length < 2 ? versions.join("") : `${versions.slice(0, -1).join(", ")} and ${versions.at(-1)}`;

/** The extension does not fit the DuckDB this process runs: nothing was loaded. */
export class DuckDBVersionError extends Error {
  readonly code = "DUCKDB_VERSION_UNSUPPORTED";
  /** The DuckDB release this process runs. */
  readonly duckdbVersion: string;
  /** The releases haduck has a build for. */
  readonly supportedVersions: readonly string[] = SUPPORTED_DUCKDB_VERSIONS;

  constructor(message: string, duckdbVersion: string) {
    super(message);
    this.name = "DuckDBVersionError";
    this.duckdbVersion = duckdbVersion;
  }
}

/**
 * The DuckDB release named in the metadata footer of the extension file at `path` (`v1.4.4`), or
 * undefined when it has none (then DuckDB itself refuses the file).
 */
export function extensionDuckDBVersion(path: string): string | undefined {
  // DuckDB's footer is the last 512 bytes: eight 32-byte NUL-padded fields (the fourth the ABI,
  // `CPP`; the sixth the DuckDB release), then 256 signature bytes (tools/build_extension.ts).
  const FOOTER_BYTES = 512;
  const field = (footer: Buffer, index: number) => {
    const bytes = footer.subarray(index * 32, (index + 1) * 32);
    const end = bytes.indexOf(0);
    return bytes.subarray(0, end < 0 ? bytes.length : end).toString("utf8");
  };
  const fd = openSync(path, "r");
  try {
    const size = fstatSync(fd).size;
    if (size < FOOTER_BYTES) return undefined;
    const footer = Buffer.alloc(FOOTER_BYTES);
    readSync(fd, footer, 0, FOOTER_BYTES, size - FOOTER_BYTES);
    return field(footer, 3) === "CPP" ? field(footer, 5) : undefined;
  } finally {
    closeSync(fd);
  }
}

function unsupported(duckdbVersion: string): DuckDBVersionError {
  return new DuckDBVersionError(`haduck has no extension build for DuckDB ${duckdbVersion}, which this process runs: ` +
    `it supports DuckDB ${listed(SUPPORTED_DUCKDB_VERSIONS)}. Install a supported @duckdb/node-api ` +
    "(1.4.5-r.1 or 1.4.4-r.4), or build the extension for this DuckDB and set HADUCK_EXTENSION_PATH to it", duckdbVersion);
}

/** `HADUCK_EXTENSION_PATH`, checked: it exists and is a build for `duckdbVersion`. */
function overridePath(override: string, duckdbVersion: string): string {
  if (!existsSync(override)) {
    throw new Error(`HADUCK_EXTENSION_PATH points at ${override}, which does not exist: build the extension ` +
      "(`bun tools/build_extension.ts` in a haduck checkout) or unset the variable");
  }
  const builtFor = extensionDuckDBVersion(override);
  if (builtFor !== undefined && builtFor !== duckdbVersion) {
    const ours = SUPPORTED_DUCKDB_VERSIONS.includes(duckdbVersion)
      ? `unset it (haduck then loads its own build for ${duckdbVersion})`
      : `haduck ships builds for DuckDB ${listed(SUPPORTED_DUCKDB_VERSIONS)} only`;
    throw new DuckDBVersionError(`HADUCK_EXTENSION_PATH points at ${override}, a haduck build for DuckDB ${builtFor}, ` +
      `but this process runs DuckDB ${duckdbVersion} (an extension loads only into the release it was built for): ` +
      `point it at a build for ${duckdbVersion}, or ${ours}`, duckdbVersion);
  }
  return override;
}

/**
 * Where the extension build for `duckdbVersion` (by default the DuckDB this process runs) is:
 * `HADUCK_EXTENSION_PATH` (which must be a build for that release), else this platform's package
 * (`@haduck/extension-linux-x64`, an optional dependency found by module resolution), else this
 * repository's build folder. Throws {@link DuckDBVersionError} naming the supported releases when
 * there is no build for it, and an error naming the platform, or the fix, when none is installed.
 *
 * @example
 * ```ts
 * import { extensionPath } from "@haduck/duckdb-fs-bridge";
 * console.log(extensionPath()); // .../haduck.duckdb_extension, the build for this DuckDB
 * ```
 */
export function extensionPath(duckdbVersion: string = hostDuckDBVersion()): string {
  const override = process.env.HADUCK_EXTENSION_PATH;
  if (override) return overridePath(override, duckdbVersion);
  const folder = BUILD_FOLDERS[duckdbVersion];
  if (folder === undefined) throw unsupported(duckdbVersion);
  const platform = `${process.platform}-${process.arch}`;
  const name = PLATFORM_PACKAGES[platform];
  const candidates: string[] = [];
  if (name) {
    try {
      const manifest = createRequire(import.meta.url).resolve(`${name}/package.json`);
      candidates.push(join(dirname(manifest), folder, "haduck.duckdb_extension"));
    } catch {
      // Not installed (another platform's install, or optional dependencies skipped): try the build folder.
    }
  }
  candidates.push(join(ROOT, "extension/build", folder, "haduck.duckdb_extension"));
  const found = candidates.find((path) => existsSync(path));
  if (found) return found;
  if (!name) {
    throw new Error(`haduck ships its DuckDB extension for ${Object.keys(PLATFORM_PACKAGES).join(", ")} only; this is ` +
      `${platform}: build it from source (\`bun tools/build_extension.ts\` in a haduck checkout) and set ` +
      "HADUCK_EXTENSION_PATH to the built haduck.duckdb_extension");
  }
  throw new Error(`The haduck extension for DuckDB ${duckdbVersion} is not installed (${name} is missing or has no ` +
    `build for it, and ${candidates.at(-1)} too): reinstall haduck without --omit=optional, or run \`npm install\` ` +
    "at the repository root");
}
