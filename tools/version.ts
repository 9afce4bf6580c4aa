/**
 * Sets one version on every package: `bun tools/version.ts 0.2.0` writes it into the root
 * package.json, each packages/<name>/package.json and jsr.json, and every dependency one haduck
 * package has on another (exact pins: the extension's ABI leaves no room for ranges). The extension
 * (`haduck_version().extension`, its footer) takes the root package.json's version when it is built
 * (tools/build_extension.ts), so this builds it again. The static checks (tools/check.ts) fail when
 * any of them drifts, the built extension included.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "..");
const version = process.argv[2];
if (!version || !/^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/.test(version)) {
  console.error("usage: bun tools/version.ts <major.minor.patch[-pre]>, e.g. 0.2.0");
  process.exit(2);
}

function rewrite(path: string, edit: (json: Record<string, any>) => void): void {
  const json = JSON.parse(readFileSync(path, "utf8"));
  edit(json);
  writeFileSync(path, JSON.stringify(json, null, 2) + "\n");
  console.log(`version: ${path.slice(ROOT.length + 1)} -> ${version}`);
}

rewrite(join(ROOT, "package.json"), (json) => json.version = version);
for (const name of readdirSync(join(ROOT, "packages"))) {
  const dir = join(ROOT, "packages", name);
  if (!existsSync(join(dir, "package.json"))) continue;
  rewrite(join(dir, "package.json"), (json) => {
    json.version = version;
    for (const field of ["dependencies", "optionalDependencies"]) {
      for (const dependency of Object.keys(json[field] ?? {})) {
        if (dependency.startsWith("@haduck/") || dependency === "haduck") json[field][dependency] = version;
      }
    }
  });
  if (existsSync(join(dir, "jsr.json"))) rewrite(join(dir, "jsr.json"), (json) => json.version = version);
}
// The extension is stamped with the version at build time: build it again now, or haduck_version()
// answers the old one until the next build.
const built = Bun.spawnSync([process.execPath, join(ROOT, "tools/build_extension.ts")], { stdout: "inherit",
  stderr: "inherit" });
if (built.exitCode !== 0) {
  console.error("version: the extension did not build; run `bun tools/build_extension.ts` before packing");
  process.exit(1);
}
