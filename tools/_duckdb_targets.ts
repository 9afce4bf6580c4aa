/**
 * @module
 * The DuckDB releases the extension is built for, and where each one's C++ headers and
 * `libduckdb.so` come from. A C++ extension binds to DuckDB's exact ABI (vtable slots, member
 * offsets), and DuckDB loads it only into the release its footer names, so every supported release
 * gets its own build from the same sources.
 *
 * Only DuckDB 1.4.4's headers ship in a package (`duckdb@1.4.4`). DuckDB 1.4.5 changes three of the
 * 384 headers the extension includes (the other 381 are byte-identical at the v1.4.4 and v1.4.5
 * tags), so its headers are the 1.4.4 ones with those three patched: {@link patchHeaders} applies
 * the v1.4.4..v1.4.5 differences to copies (never to node_modules) and checks each result against
 * the SHA-256 of the file at the v1.4.5 tag, so the patched headers are 1.4.5's, byte for byte.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

/** One insertion: `text` goes right after (or before) the one run of lines equal to `anchor`. */
interface HeaderEdit {
  anchor: string;
  place: "after" | "before";
  text: string;
}

/** A header of the 1.4.4 package changed into the same header of another release. */
export interface HeaderPatch {
  /** The path under `src/include`. */
  file: string;
  /** SHA-256 of the file in `duckdb@1.4.4` (the v1.4.4 tag): the patch applies to that text only. */
  sha256Before: string;
  /** SHA-256 of the file at the target release's tag: the patched text must be exactly this. */
  sha256After: string;
  edits: HeaderEdit[];
}

/** A DuckDB release the extension is built for. */
export interface DuckDBTarget {
  /** DuckDB's version string, as in the extension footer and `SELECT version()`: `v1.4.5`. */
  version: string;
  /** The short git hash compiled into that release's `libduckdb.so` (DuckDB's `source_id`). */
  sourceId: string;
  /** The `libduckdb.so` the build links against (and that `@duckdb/node-api` at that release loads). */
  libduckdb: string;
  /** The folder under `extension/build/` (and under the platform package) for this build; "" is the top. */
  folder: string;
  /** Preprocessor defines selecting this release's ABI in the extension's sources. */
  defines: string[];
  /** The headers that differ from `duckdb@1.4.4`'s. */
  patches: HeaderPatch[];
}

const FILE_SYSTEM: HeaderPatch = {
  file: "duckdb/common/file_system.hpp",
  sha256Before: "baea04a4138aa75a8bd6d48f9e0d441c120b6ac301d70e1317f56d929f867b9c",
  sha256After: "aac2fdb63642b208f94c221162768e06285b7c190d572fd52de083e626199699",
  edits: [
    {
      anchor: "\tDUCKDB_API static FileSystem &GetFileSystem(DatabaseInstance &db);",
      place: "after",
      text: "\tDUCKDB_API static FileSystem &GetLocal(DatabaseInstance &db);",
    },
    {
      // A new virtual: every later slot of FileSystem's vtable moves by one.
      anchor: "\tDUCKDB_API virtual bool TryRemoveFile(const string &filename, optional_ptr<FileOpener> opener = nullptr);",
      place: "after",
      text: "\t//! Remove multiple files from disk - does not error if any file does not exist\n" +
        "\tDUCKDB_API virtual void RemoveFiles(const vector<string> &filenames, optional_ptr<FileOpener> opener = nullptr);",
    },
    {
      // A second new virtual, before GetName(): its slot and every later one move again.
      anchor: "\t//! Return the name of the filesytem. Used for forming diagnosis messages.",
      place: "before",
      text: "\t//! Whether this is a LocalFileSystem instance.\n\tDUCKDB_API virtual bool IsLocalFileSystem() const;\n",
    },
  ],
};

const DATABASE: HeaderPatch = {
  file: "duckdb/main/database.hpp",
  sha256Before: "0afd791b98804c1b06c74002360bf4f4cd75db733ede985c933d8a9fa739273f",
  sha256After: "a36f57e6f196d36bf65e798c036109b80b4ead15b1d0468e887aeb0984deb4fe",
  edits: [
    { anchor: "namespace duckdb {", place: "after", text: "class LocalDatabaseFileSystem;" },
    {
      // DatabaseInstance's accessor (class DuckDB has one of the same name further down).
      anchor: "\tDUCKDB_API DatabaseManager &GetDatabaseManager();\n\tDUCKDB_API FileSystem &GetFileSystem();",
      place: "after",
      text: "\tDUCKDB_API FileSystem &GetLocalFileSystem();",
    },
    {
      // A private member: the members after it move (the extension reaches none of them directly).
      anchor: "\tunique_ptr<DatabaseFileSystem> db_file_system;",
      place: "after",
      text: "\tunique_ptr<LocalDatabaseFileSystem> local_db_file_system;",
    },
  ],
};

const DEFAULT_GENERATOR: HeaderPatch = {
  file: "duckdb/catalog/default/default_generator.hpp",
  sha256Before: "a31cd9f955762aeeadf42636525e262b6a8944041a51066ec178e999dad2b97e",
  sha256After: "2d29cad9712cc2123e9be28522126afb7f6e8e2d10a7906381ee769f510d31c6",
  edits: [
    {
      anchor: "\tvirtual vector<string> GetDefaultEntries() = 0;",
      place: "after",
      text: "\t//! Whether or not we should keep the lock while calling CreateDefaultEntry\n" +
        "\t//! If this is set to false, CreateDefaultEntry might be called multiple times in parallel also for the same entry\n" +
        "\t//! Otherwise it will be called exactly once per entry\n" +
        "\tvirtual bool LockDuringCreate() const {\n\t\treturn false;\n\t}",
    },
  ],
};

/**
 * Every release the extension is built for, the default (the one `@duckdb/node-api` in
 * package.json runs) first. `root` is the repository.
 */
export function duckdbTargets(root: string): DuckDBTarget[] {
  const bindings = "node_modules/@duckdb/node-bindings-linux-x64/libduckdb.so";
  return [
    { version: "v1.4.4", sourceId: "6ddac802ff", libduckdb: join(root, bindings), folder: "", defines: [], patches: [] },
    {
      version: "v1.4.5",
      sourceId: "f31be57c18",
      // The dev dependency `@duckdb/node-api-1.4.5` (an alias of @duckdb/node-api@1.4.5-r.1).
      libduckdb: join(root, "node_modules/@duckdb/node-api-1.4.5/node_modules", bindings.replace("node_modules/", "")),
      folder: "v1.4.5",
      defines: ["-DHADUCK_DUCKDB_1_4_5"],
      patches: [FILE_SYSTEM, DATABASE, DEFAULT_GENERATOR],
    },
  ];
}

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

/** `text` with `edit` applied; throws unless its anchor's lines occur exactly once in `text`. */
function applyEdit(text: string, edit: HeaderEdit, file: string): string {
  const lines = text.split("\n");
  const anchor = edit.anchor.split("\n");
  const at = lines.flatMap((_, index) => anchor.every((line, offset) => lines[index + offset] === line) ? [index] : []);
  if (at.length !== 1) {
    throw new Error(`Cannot patch ${file}: the lines ${JSON.stringify(edit.anchor)} occur ${at.length} times ` +
      "(expected once)");
  }
  lines.splice(edit.place === "after" ? at[0] + anchor.length : at[0], 0, ...edit.text.split("\n"));
  return lines.join("\n");
}

/** The patched text of one header, checked against the hashes on both sides. */
export function patchHeader(original: string, patch: HeaderPatch): string {
  if (sha256(original) !== patch.sha256Before) {
    throw new Error(`Cannot patch ${patch.file}: it is not DuckDB v1.4.4's (SHA-256 ${sha256(original)}, expected ` +
      `${patch.sha256Before}): reinstall duckdb@1.4.4 (\`npm ci\` at the repository root)`);
  }
  const patched = patch.edits.reduce((text, edit) => applyEdit(text, edit, patch.file), original);
  if (sha256(patched) !== patch.sha256After) {
    throw new Error(`Patching ${patch.file} gave SHA-256 ${sha256(patched)}, not the target release's ` +
      `${patch.sha256After}: the edits in tools/_duckdb_targets.ts are wrong`);
  }
  return patched;
}

/**
 * Writes `target`'s patched headers under `outDir` (which goes on the include path before the
 * 1.4.4 headers in `includeDir`) and returns `outDir`; rewrites a file only when it changed.
 */
export function patchHeaders(target: DuckDBTarget, includeDir: string, outDir: string): string {
  for (const patch of target.patches) {
    const patched = patchHeader(readFileSync(join(includeDir, patch.file), "utf8"), patch);
    const path = join(outDir, patch.file);
    if (existsSync(path) && readFileSync(path, "utf8") === patched) continue;
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(`${path}.tmp`, patched);
    renameSync(`${path}.tmp`, path);
  }
  return outDir;
}
