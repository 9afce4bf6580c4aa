/**
 * A newcomer's first hour with the CLI (issue 35), driven as a user runs it against a filesystem
 * store: `--version`, the store from HADUCK_STORE, `databases` to find the keys, errors that name
 * the next command when a key is missing or unknown, the SQL shell's dot-commands on a piped script,
 * and `handoff` pointed at a bad or dead node.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { DUCKDB_VERSION } from "@haduck/extension-linux-x64";
import { runHaduck } from "./harness/cli.ts";

const ROOT = resolve(import.meta.dir, "..");
const dir = mkdtempSync(join(tmpdir(), "haduck-first-hour-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const haduck = (args: string[], env: Record<string, string> = {}, stdin?: string) =>
  runHaduck(dir, args, { HADUCK_STORE: "", ...env }, { stdin });

test("haduck --version and haduck version print haduck's and DuckDB's versions without loading the extension", async () => {
  const { version } = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
  for (const args of [["--version"], ["version"]]) {
    const ran = await haduck(args, { HADUCK_EXTENSION_PATH: join(dir, "no-such-extension") });
    expect({ args, code: ran.code, stdout: ran.stdout, stderr: ran.stderr }).toEqual({ args, code: 0,
      stdout: `haduck ${version} (DuckDB ${DUCKDB_VERSION.replace(/^v/, "")})\n`, stderr: "" });
  }
});
