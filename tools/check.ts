/**
 * @module
 * Static checks of the tree, run as a suite by `npm test`:
 *  - every package declares its public surface once: package.json `exports["."]` is `./mod.ts` for
 *    Bun and its build in dist/ for types, Node and Deno (shipped, built by prepack), and mod.ts only
 *    re-exports (no logic hides in it);
 *  - the packages that run under Deno type-check there (`deno check` of their mod.ts);
 *  - the dependency rule (tools/_dependency_rule.ts);
 *  - no source file over 500 lines.
 * Prints `(pass)`/`(fail)` lines and a totals line like the other suites.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { EXTENSION_PATH, extensionFooter, ROOT } from "./build_extension.ts";
import { dependencyProblems } from "./_dependency_rule.ts";

/** Packages that must type-check under Deno (the CLI is Bun-only: it serves with Bun.serve). */
const DENO_CHECKED = ["s3-block-store", "dirty-tracker", "lease", "duckblock", "duckdb-fs-bridge", "admin"];
/** The one version of every package (tools/version.ts sets it everywhere). */
const ROOT_VERSION = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version;
let passed = 0;
let failed = 0;
const report = (ok: boolean, name: string, detail = "") => {
  ok ? passed++ : failed++;
  console.log(`(${ok ? "pass" : "fail"}) ${name}${ok || !detail ? "" : `\n${detail}`}`);
};

for (const name of readdirSync(join(ROOT, "packages")).sort()) {
  const dir = join(ROOT, "packages", name);
  const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  // Bun runs ./mod.ts; Node and Deno, which strip no types under node_modules, get its JavaScript
  // build and TypeScript its declarations (tools/build_packages.ts writes both into dist/, shipped).
  const entry = manifest.exports?.["."];
  const expected = { bun: "./mod.ts", types: "./dist/mod.d.ts", import: "./dist/mod.js", default: "./dist/mod.js" };
  report(JSON.stringify(entry) === JSON.stringify(expected) && existsSync(join(dir, "mod.ts")) &&
    manifest.files?.includes("dist/") && /build_packages\.ts/.test(manifest.scripts?.prepack ?? ""),
    `${manifest.name} declares ./mod.ts as its public surface and ships its JavaScript build and declarations`,
    `exports["."] is ${JSON.stringify(entry)} (expected ${JSON.stringify(expected)}), files ` +
    `${JSON.stringify(manifest.files)} (must include "dist/"), prepack ${JSON.stringify(manifest.scripts?.prepack)} ` +
    "(must run tools/build_packages.ts)");
  // One version for every package, and every dependency on another haduck package pins exactly it.
  const jsr = existsSync(join(dir, "jsr.json")) ? JSON.parse(readFileSync(join(dir, "jsr.json"), "utf8")) : undefined;
  const pins = Object.entries({ ...manifest.dependencies, ...manifest.optionalDependencies })
    .filter(([dependency]) => dependency.startsWith("@haduck/") || dependency === "haduck");
  report(manifest.version === ROOT_VERSION && jsr?.version === ROOT_VERSION &&
    pins.every(([, version]) => version === ROOT_VERSION),
    `${manifest.name} is at the one version ${ROOT_VERSION} (package.json, jsr.json, its haduck dependencies)`,
    `package.json ${manifest.version}, jsr.json ${jsr?.version}, pins ${JSON.stringify(pins)}: run tools/version.ts`);
  const code = readFileSync(join(dir, "mod.ts"), "utf8")
    .replace(/\/\*[\s\S]*?\*\//g, "").split("\n").map((line) => line.trim()).filter((line) => line && !line.startsWith("//"));
  const logic = code.filter((line) => !/^(export|import|type |[A-Za-z_$][\w$]*,?$|}|\w+ as \w+,?$)/.test(line) &&
    !/^(type\s+)?[A-Za-z_$][\w$]*( as [\w$]+)?,?$/.test(line) && !/^} from /.test(line));
  report(logic.length === 0, `${manifest.name}'s mod.ts only re-exports`, logic.slice(0, 3).join("\n"));
  if (jsr) {
    const published = Bun.spawnSync([join(ROOT, "node_modules/.bin/deno"), "publish", "--dry-run", "--allow-dirty",
      "--quiet"], { cwd: dir, stdout: "pipe", stderr: "pipe" });
    report(published.exitCode === 0, `${manifest.name} passes deno publish --dry-run (jsr.json)`,
      published.stderr.toString().replace(/\x1b\[[0-9;]*m/g, "").split("\n").slice(0, 12).join("\n"));
  }
  if (DENO_CHECKED.includes(name)) {
    const child = Bun.spawnSync([join(ROOT, "node_modules/.bin/deno"), "check", "--quiet", join(dir, "mod.ts")],
      { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
    report(child.exitCode === 0, `${manifest.name} type-checks under Deno`,
      child.stderr.toString().replace(/\x1b\[[0-9;]*m/g, "").split("\n").slice(0, 12).join("\n"));
  }
}
// haduck_version() reports the version stamped into the extension's footer (its fifth 32-byte field,
// after the 22-byte prefix): a build left from before tools/version.ts ran reports the old one.
if (existsSync(EXTENSION_PATH)) {
  const binary = readFileSync(EXTENSION_PATH);
  const at = binary.length - extensionFooter("", "").length + 22 + 4 * 32;
  const field = binary.subarray(at, at + 32);
  const stamped = field.subarray(0, field.indexOf(0) < 0 ? field.length : field.indexOf(0)).toString("utf8");
  report(stamped === ROOT_VERSION, `the built extension is stamped with the one version ${ROOT_VERSION}`,
    `${EXTENSION_PATH} says ${stamped}: run bun tools/build_extension.ts`);
}
// Deno in this checkout (deno check above, the Deno suites) reads every package from its sources:
// through node_modules it would take the built declarations in dist/, whose `./x.js` imports only a
// reader of npm packages resolves.
const denoImports = JSON.parse(readFileSync(join(ROOT, "deno.json"), "utf8")).imports ?? {};
const packageSources = Object.fromEntries(readdirSync(join(ROOT, "packages")).sort().map((name) =>
  [JSON.parse(readFileSync(join(ROOT, "packages", name, "package.json"), "utf8")).name, `./packages/${name}/mod.ts`]));
report(JSON.stringify(Object.entries(denoImports).sort()) === JSON.stringify(Object.entries(packageSources).sort()),
  "deno.json maps every package to its mod.ts (imports)", `expected ${JSON.stringify(packageSources)}`);
const problems = dependencyProblems(ROOT);
report(problems.length === 0, "the dependency rule holds (tools/_dependency_rule.ts: public faces, declared " +
  "dependencies, no tests/ in package code, the bridge's rooms one way)", problems.join("\n"));
// No source file over 500 lines (issue 33): a file is read whole by whoever follows the data through it.
const LINES_MAX = 500;
const sourceFiles = (dir: string): string[] => readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
  entry.isDirectory() ? (["node_modules", "dist", "build", "fixtures"].includes(entry.name) ? []
    : sourceFiles(join(dir, entry.name)))
    : /\.(ts|cpp|hpp|h)$/.test(entry.name) ? [join(dir, entry.name)] : []);
const long = ["packages", "extension/src", "tools"].flatMap((dir) => sourceFiles(join(ROOT, dir)))
  .map((file) => ({ file, lines: readFileSync(file, "utf8").split("\n").length - 1 }))
  .filter(({ lines }) => lines > LINES_MAX);
report(long.length === 0, `no source file in packages/, extension/src/ or tools/ is over ${LINES_MAX} lines`,
  long.map(({ file, lines }) => `${file.slice(ROOT.length + 1)}: ${lines} lines`).join("\n"));
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
