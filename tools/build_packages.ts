/**
 * Builds what a package needs beyond its TypeScript sources: `@haduck/s3-block-store`'s JavaScript
 * build (`dist/mod.js`) for Node, and for Deno from npm (Deno strips no types under node_modules).
 * Bun runs the sources. Run by `npm install` (postinstall) and by `npm pack` (prepack).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "..");

export async function buildPackages(): Promise<void> {
  const dir = join(ROOT, "packages/s3-block-store");
  const result = await Bun.build({ entrypoints: [join(dir, "mod.ts")], target: "node", format: "esm",
    // Its dependencies stay packages of their own: aws4fetch, and the AWS SDK's credential chain
    // (imported on first use only, by stores without fixed keys).
    external: ["aws4fetch", "@aws-sdk/credential-provider-node"], minify: false });
  if (!result.success) throw new AggregateError(result.logs, "build_packages: @haduck/s3-block-store failed");
  const code = await result.outputs[0].text();
  const out = join(dir, "dist/mod.js");
  mkdirSync(join(dir, "dist"), { recursive: true });
  if (!existsSync(out) || readFileSync(out, "utf8") !== code) writeFileSync(out, code);
}

if (import.meta.main) await buildPackages();
