/**
 * @module
 * Static checks of the tree, run as a suite by `npm test`:
 *  - every package declares its public surface once: package.json `exports["."]` is `./mod.ts`,
 *    and mod.ts only re-exports (no logic hides in it);
 *  - the packages that run under Deno type-check there (`deno check` of their mod.ts).
 * Prints `(pass)`/`(fail)` lines and a totals line like the other suites.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./build_extension.ts";

/** Packages that must type-check under Deno (the CLI is Bun-only: it serves with Bun.serve). */
const DENO_CHECKED = ["s3-block-store", "dirty-tracker", "duckdb-fs-bridge", "admin"];
let passed = 0;
let failed = 0;
const report = (ok: boolean, name: string, detail = "") => {
  ok ? passed++ : failed++;
  console.log(`(${ok ? "pass" : "fail"}) ${name}${ok || !detail ? "" : `\n${detail}`}`);
};

for (const name of readdirSync(join(ROOT, "packages")).sort()) {
  const dir = join(ROOT, "packages", name);
  const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  const entry = manifest.exports?.["."];
  report(entry === "./mod.ts" && existsSync(join(dir, "mod.ts")),
    `${manifest.name} declares ./mod.ts as its public surface`, `exports["."] is ${JSON.stringify(entry)}`);
  const code = readFileSync(join(dir, "mod.ts"), "utf8")
    .replace(/\/\*[\s\S]*?\*\//g, "").split("\n").map((line) => line.trim()).filter((line) => line && !line.startsWith("//"));
  const logic = code.filter((line) => !/^(export|import|type |[A-Za-z_$][\w$]*,?$|}|\w+ as \w+,?$)/.test(line) &&
    !/^(type\s+)?[A-Za-z_$][\w$]*( as [\w$]+)?,?$/.test(line) && !/^} from /.test(line));
  report(logic.length === 0, `${manifest.name}'s mod.ts only re-exports`, logic.slice(0, 3).join("\n"));
  if (DENO_CHECKED.includes(name)) {
    const child = Bun.spawnSync([join(ROOT, "node_modules/.bin/deno"), "check", "--quiet", join(dir, "mod.ts")],
      { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
    report(child.exitCode === 0, `${manifest.name} type-checks under Deno`,
      child.stderr.toString().replace(/\x1b\[[0-9;]*m/g, "").split("\n").slice(0, 12).join("\n"));
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
