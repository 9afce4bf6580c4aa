#!/usr/bin/env node
// The `haduck` command. The CLI is TypeScript run by Bun; under Bun (`bunx haduck`) this file runs
// it in-process, and under Node (`npx haduck`) it starts the Bun binary this package pins (the
// npm package `bun`, exact version) with the same arguments, standard streams and exit code.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const entry = fileURLToPath(new URL("./haduck.ts", import.meta.url));

if (typeof globalThis.Bun !== "undefined") {
  const { main } = await import("../_main.ts");
  process.exit(await main(process.argv.slice(2)));
}

/** The Bun binary of the pinned `bun` package: moved into bun/bin by its install script, or still in its platform package. */
function bunBinary() {
  const require = createRequire(import.meta.url);
  const candidates = [];
  try {
    const bunPackage = dirname(require.resolve("bun/package.json"));
    candidates.push(join(bunPackage, "bin", "bun.exe"));
    const platform = `@oven/bun-${process.platform}-${process.arch}`;
    for (const variant of [platform, `${platform}-baseline`]) {
      try {
        candidates.push(join(dirname(createRequire(join(bunPackage, "package.json")).resolve(`${variant}/package.json`)),
          "bin", "bun"));
      } catch {
        // This variant is not installed.
      }
    }
  } catch {
    // No `bun` package: fall through to the error below.
  }
  const found = candidates.find((path) => existsSync(path));
  if (!found) {
    console.error("haduck: cannot find the Bun runtime it runs on (the npm package `bun`, a dependency of haduck): " +
      "reinstall haduck, or install Bun and run `bunx haduck`");
    process.exit(1);
  }
  return found;
}

const child = spawn(bunBinary(), [entry, ...process.argv.slice(2)], { stdio: "inherit" });
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, () => child.kill(signal));
if (process.argv[2] === "sidecar") {
  // A DuckDB host's socket is our stdin and stdout: only the replicator may hold it, so that the
  // host sees the replicator's end the moment it comes, whatever happens to this wrapper.
  const { closeSync } = await import("node:fs");
  closeSync(0);
  closeSync(1);
}
child.on("exit", (code, signal) => {
  if (signal) process.kill(process.pid, signal);
  else process.exit(code ?? 1);
});
