/**
 * @module
 * A Bun preload that makes this process run DuckDB 1.4.5: every import of `@duckdb/node-api` (the
 * toolkit's, the tests', the harness's) gets the dev dependency `@duckdb/node-api-1.4.5` (an alias
 * of `@duckdb/node-api@1.4.5-r.1`, with its own libduckdb.so) instead of 1.4.4-r.4, so the haduck
 * toolkit runs unchanged on 1.4.5 and loads the extension build for it. Only one DuckDB is ever loaded:
 * 1.4.4's module is replaced before it runs. It hands itself on to this process's Bun children
 * through `BUN_OPTIONS`. Run a test file on 1.4.5 with
 * `bun test --preload ./tests/harness/duckdb_1_4_5_preload.ts tests/<file>.test.ts` (the flag after
 * `test`: Bun reads `bun --preload X test` as `bun run test`, the whole suite), and a script's
 * children with `DUCKDB_1_4_5_ENV` (tests/harness/duckdb_1_4_5.ts).
 */
import { plugin } from "bun";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const target = require.resolve("@duckdb/node-api-1.4.5");
// Bun's runtime plugins rewrite what a module loads, not where a name resolves (onResolve is not
// called for packages at runtime): 1.4.4's entry point is replaced by a module that re-exports
// 1.4.5's, name by name (an ES module has to name what it exports).
const names = Object.keys(require(target)).filter((name) => /^[A-Za-z_$][\w$]*$/.test(name) && name !== "default");
const contents = `import * as duckdb from ${JSON.stringify(target)};\n` +
  names.map((name) => `export const ${name} = duckdb.${name};`).join("\n") + "\nexport default duckdb;\n";

// The children this process starts (the CLI's sidecar, the open check) run DuckDB 1.4.5 too.
const self = new URL(import.meta.url).pathname;
if (!(process.env.BUN_OPTIONS ?? "").includes(self)) {
  process.env.BUN_OPTIONS = `${process.env.BUN_OPTIONS ?? ""} --preload ${self}`.trim();
}

plugin({
  name: "haduck-test-duckdb-1.4.5",
  setup(build) {
    build.onLoad({ filter: /[\\/]@duckdb[\\/]node-api[\\/]lib[\\/]index\.js$/ }, () => ({ contents, loader: "js" }));
  },
});
