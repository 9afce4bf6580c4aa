/**
 * @module
 * The dependency rule of the tree, checked by tools/check.ts:
 *  - a package imports another only through its public name (`@haduck/x`, never a deep path or a
 *    relative path into it), and only one it declares in package.json;
 *  - no package code imports `tests/` (its `*.test.ts` files may: they are not published);
 *  - inside `@haduck/duckdb-fs-bridge`, the rooms point one way along the data path:
 *    `writer -> wal -> native, local`; `reader -> local, native`; `native` and `local` import no
 *    room; every room may use the package's root helpers (`_assert.ts`).
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";

/** Which bridge room may import which (a room always imports itself and the root). */
export const BRIDGE_ROOMS: Record<string, string[]> = {
  native: [],
  local: [],
  wal: ["native", "local"],
  writer: ["wal", "native", "local"],
  reader: ["local", "native"],
};

const IMPORT = /^\s*(?:import|export)\b[^"'`]*?\bfrom\s*["']([^"']+)["']|^\s*import\s*["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']\s*\)|^\s*}\s*from\s*["']([^"']+)["']/;

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (name === "node_modules" || name === "dist" || name === "deno") continue;
    if (statSync(path).isDirectory()) out.push(...sources(path));
    else if (/\.(ts|mjs)$/.test(name) && !/\.test\.ts$|\.deno\.ts$/.test(name)) out.push(path);
  }
  return out;
}

/** The specifiers a file imports (static, re-exports and dynamic), outside comments. */
export function importsOf(text: string): string[] {
  const specifiers: string[] = [];
  for (const line of text.split("\n")) {
    if (/^\s*(\*|\/\/|\/\*)/.test(line)) continue;
    const match = IMPORT.exec(line);
    const specifier = match?.[1] ?? match?.[2] ?? match?.[3] ?? match?.[4];
    if (specifier) specifiers.push(specifier);
  }
  return specifiers;
}

/** Every breach of the rule in the packages under `root`, as one line each (none: the rule holds). */
export function dependencyProblems(root: string): string[] {
  const problems: string[] = [];
  const packagesDir = join(root, "packages");
  for (const name of readdirSync(packagesDir).sort()) {
    const dir = join(packagesDir, name);
    const manifestPath = join(dir, "package.json");
    if (!existsSync(manifestPath)) continue;
    const manifest = JSON.parse(readFileSync(manifestPath, "utf8"));
    const declared = new Set(Object.keys({ ...manifest.dependencies, ...manifest.optionalDependencies,
      ...manifest.peerDependencies }));
    for (const file of sources(dir)) {
      const shown = relative(root, file);
      for (const specifier of importsOf(readFileSync(file, "utf8"))) {
        if (specifier.startsWith("@haduck/") || specifier === "haduck" || specifier.startsWith("haduck/")) {
          const [scope, pkg, ...deep] = specifier.split("/");
          const target = specifier.startsWith("@haduck/") ? `${scope}/${pkg}` : "haduck";
          if (target === manifest.name) problems.push(`${shown} imports its own package by name (${specifier})`);
          else if (!declared.has(target)) problems.push(`${shown} imports ${target}, which ${manifest.name} does not declare`);
          if (specifier.startsWith("@haduck/") && deep.length > 0) {
            problems.push(`${shown} imports ${specifier}: use the package's public face (${target})`);
          }
          continue;
        }
        if (!specifier.startsWith(".")) continue;
        const target = resolve(dirname(file), specifier);
        if (target.split(sep).includes("tests")) problems.push(`${shown} imports ${specifier} (tests/ is not package code)`);
        else if (!target.startsWith(dir + sep)) problems.push(`${shown} imports ${specifier}, outside its package`);
        else if (name === "duckdb-fs-bridge") {
          const from = roomOf(relative(dir, file));
          const to = roomOf(relative(dir, target));
          if (from !== "root" && to !== "root" && to !== from && !BRIDGE_ROOMS[from]?.includes(to)) {
            problems.push(`${shown} (${from}) imports ${specifier} (${to}): the rooms point writer -> wal -> ` +
              "native, local and reader -> local, native");
          }
        }
      }
    }
  }
  return problems;
}

function roomOf(path: string): string {
  const first = path.split(sep)[0];
  return first in BRIDGE_ROOMS ? first : "root";
}
