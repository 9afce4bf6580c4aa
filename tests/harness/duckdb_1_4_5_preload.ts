/**
 * @module
 * A Bun preload that makes this process run DuckDB 1.4.5: every import of `@duckdb/node-api` (the
 * toolkit's, the tests', the harness's) gets the dev dependency `@duckdb/node-api-1.4.5` (an alias
 * of `@duckdb/node-api@1.4.5-r.1`, with its own libduckdb.so) instead of 1.4.4-r.4, so the haduck
 * toolkit runs unchanged on 1.4.5 and loads the extension build for it. Only one DuckDB is ever loaded:
 * 1.4.4's module is replaced before it runs. Use it through `DUCKDB_1_4_5_ENV` (tests/harness/duckdb_1_4_5.ts),
 * which child processes inherit.
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

plugin({
  name: "haduck-test-duckdb-1.4.5",
  setup(build) {
    build.onLoad({ filter: /[\\/]@duckdb[\\/]node-api[\\/]lib[\\/]index\.js$/ }, () => ({ contents, loader: "js" }));
  },
});
