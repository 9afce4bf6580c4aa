import { plugin } from "bun";
import { createRequire } from "node:module";
const require = createRequire(import.meta.url);
const target = require.resolve("@duckdb/node-api-1.4.5");
const names = Object.keys(require(target)).filter((n) => /^[A-Za-z_$][\w$]*$/.test(n) && n !== "default");
const contents = `import * as m from ${JSON.stringify(target)};\n` +
  names.map((n) => `export const ${n} = m.${n};`).join("\n") + "\nexport default m;\n";
plugin({ name: "duckdb-1.4.5", setup(build) {
  build.onLoad({ filter: /\/@duckdb\/node-api\/lib\/index\.js$/ }, () => ({ contents, loader: "js" }));
} });
