/**
 * @module
 * Builds what every published package ships beside its TypeScript sources: `dist/mod.js`, a
 * JavaScript build of its `mod.ts` for Node and for Deno (neither strips types under
 * node_modules), and `dist/*.d.ts`, its type declarations. Bun runs the sources (the `bun`
 * condition of each package's `exports`). Run by `npm install` (postinstall) and by `npm pack`
 * (prepack); `dist/` is build output and never committed.
 *
 * JavaScript: `Bun.build` per package, one ES module, with the other haduck packages, the npm
 * dependencies and Bun's own modules left as imports. Declarations: one `tsc` run over every
 * package (TypeScript 5.9, `--emitDeclarationOnly`, `allowImportingTsExtensions` for the sources'
 * `.ts` imports), copied into each package with those imports as `.js`, which resolves to the `.d.ts`.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "..");
const PACKAGES = join(ROOT, "packages");

/** Entry points beyond mod.ts that a package starts as a process of its own (they sit beside mod.js). */
const EXTRA_ENTRIES: Record<string, string[]> = {
  "duckdb-fs-bridge": ["reader/_open_check_child.ts"],
};

/** Every package folder, sorted. */
export function packageNames(): string[] {
  return readdirSync(PACKAGES).filter((name) => existsSync(join(PACKAGES, name, "package.json"))).sort();
}

/** Writes a file only when its bytes change (a rebuild of an unchanged tree touches nothing). */
function writeIfChanged(path: string, text: string): void {
  if (!existsSync(path) || readFileSync(path, "utf8") !== text) writeFileSync(path, text);
}

/** `dist/mod.js` (and any extra entry) of one package. */
async function buildJavaScript(name: string): Promise<void> {
  const dir = join(PACKAGES, name);
  const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  const dependencies = Object.keys({ ...manifest.dependencies, ...manifest.optionalDependencies,
    ...manifest.peerDependencies });
  const entrypoints = [join(dir, "mod.ts"), ...(EXTRA_ENTRIES[name] ?? []).map((entry) => join(dir, entry))];
  const result = await Bun.build({ entrypoints, target: "node", format: "esm", minify: false, naming: "[name].[ext]",
    external: [...dependencies, "@haduck/*", "haduck", "bun", "bun:*"] });
  if (!result.success) throw new AggregateError(result.logs, `build_packages: ${manifest.name} failed to build`);
  mkdirSync(join(dir, "dist"), { recursive: true });
  for (const output of result.outputs) {
    writeIfChanged(join(dir, "dist", output.path.replace(/^\.\//, "")), await output.text());
  }
}

/** `dist/**.d.ts` of every package, from one tsc run. */
function buildDeclarations(names: string[]): void {
  const out = mkdtempSync(join(tmpdir(), "haduck-declarations-"));
  try {
    const tsc = join(ROOT, "node_modules/.bin/tsc");
    const files = names.map((name) => join(PACKAGES, name, "mod.ts"));
    const child = Bun.spawnSync([tsc, "--declaration", "--emitDeclarationOnly", "--outDir", out, "--rootDir", PACKAGES,
      "--target", "es2022", "--module", "esnext", "--moduleResolution", "bundler", "--customConditions", "bun",
      "--allowImportingTsExtensions", "--rewriteRelativeImportExtensions", "--skipLibCheck", "--strict", "false",
      "--types", "bun", "--noEmitOnError", "false", ...files], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
    for (const name of names) {
      if (!existsSync(join(out, name, "mod.d.ts"))) {
        throw new Error(`build_packages: tsc wrote no declarations for packages/${name} (exit ${child.exitCode}):\n` +
          `${child.stdout.toString()}${child.stderr.toString()}`.slice(0, 4000));
      }
      copyDeclarations(join(out, name), join(PACKAGES, name, "dist"));
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

/** Copies the declarations of one package into its dist/, keeping the folders of its sources. */
function copyDeclarations(from: string, to: string): void {
  for (const entry of readdirSync(from, { withFileTypes: true })) {
    const source = join(from, entry.name);
    if (entry.isDirectory()) copyDeclarations(source, join(to, entry.name));
    else if (entry.name.endsWith(".d.ts")) {
      mkdirSync(to, { recursive: true });
      // tsc keeps the sources' `./x.ts` specifiers in declarations; `./x.js` is what every reader of
      // declarations resolves to `./x.d.ts` (TypeScript's node16 and bundler modes, Deno's npm types).
      const text = readFileSync(source, "utf8")
        .replace(/((?:from|import)\s*\(?\s*["'])(\.{1,2}\/[^"']+)\.ts(["'])/g, "$1$2.js$3");
      writeIfChanged(join(to, entry.name), text);
    }
  }
}

/** The newest modification time of a package's TypeScript sources (its tests and dist/ aside), ms. */
function newestSourceMs(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    const path = join(entry.parentPath, entry.name);
    if (!entry.isFile() || !entry.name.endsWith(".ts") || /\.(test|deno)\.ts$/.test(entry.name) ||
      path.includes("/dist/") || path.includes("/node_modules/")) continue;
    newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

/**
 * Whether a package's dist/ is older than its sources, its package.json or this build script (a
 * package's JavaScript and declarations come from its own sources only: the other haduck packages
 * stay imports). A fresh one is not rebuilt, so `npm pack` of every package after `npm install`
 * builds nothing again.
 */
function isStale(name: string): boolean {
  const dir = join(PACKAGES, name);
  const outputs = ["dist/mod.js", "dist/mod.d.ts"].map((path) => join(dir, path));
  if (!outputs.every((path) => existsSync(path))) return true;
  const built = Math.min(...outputs.map((path) => statSync(path).mtimeMs));
  const inputs = Math.max(newestSourceMs(dir), statSync(join(dir, "package.json")).mtimeMs,
    statSync(import.meta.path).mtimeMs);
  return inputs > built;
}

/** Builds the named packages (default: every package) whose dist/ is missing or older than their sources. */
export async function buildPackages(names = packageNames(), options: { force?: boolean } = {}): Promise<void> {
  const stale = names.filter((name) => options.force || isStale(name));
  if (stale.length === 0) return;
  for (const name of stale) await buildJavaScript(name);
  buildDeclarations(stale);
  // Touch what was rebuilt even where the bytes did not change, so that it reads as fresh next time.
  const now = new Date();
  for (const name of stale) {
    for (const path of ["dist/mod.js", "dist/mod.d.ts"]) utimesSync(join(PACKAGES, name, path), now, now);
  }
}

// `bun tools/build_packages.ts [--force] [name...]`: every package, or the named ones (a package's
// prepack names itself); --force rebuilds fresh ones too.
if (import.meta.main) {
  const args = process.argv.slice(2);
  const names = args.filter((arg) => arg !== "--force");
  const unknown = names.filter((name) => !packageNames().includes(name));
  if (unknown.length > 0) throw new Error(`build_packages: no package ${unknown.join(", ")} under packages/`);
  await buildPackages(names.length > 0 ? names : undefined, { force: args.includes("--force") });
}
