/**
 * @module
 * The code blocks of haduck's documentation, as the docs runner (tests/docs.test.ts) executes them:
 * the shell blocks (```sh, ```bash, ```console) and the TypeScript examples (```ts) of README.md,
 * docs/*.md and packages/<name>/README.md, in document order. A block that cannot run in a test says
 * so in the markdown, on the line before its fence (blank lines between are allowed), with an HTML
 * comment that the rendered page does not show and that must give a reason:
 *
 *     <!-- docs-runner: skip (needs real AWS credentials) -->
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

export interface DocBlock {
  /** The markdown file, relative to the repository. */
  file: string;
  /** The line of the opening fence, 1-based. */
  line: number;
  kind: "sh" | "ts";
  code: string;
  /** Why the runner does not run it, from the block's skip comment. */
  skip?: string;
}

const KINDS: Record<string, DocBlock["kind"]> = { sh: "sh", bash: "sh", shell: "sh", console: "sh", ts: "ts",
  typescript: "ts" };
const SKIP = /^<!--\s*docs-runner:\s*skip\b(.*?)-->$/;

/** The documentation files the runner reads, relative to `root`: README.md, docs/*.md, packages/*\/README.md. */
export function docFiles(root: string): string[] {
  const docs = existsSync(join(root, "docs"))
    ? readdirSync(join(root, "docs")).filter((name) => name.endsWith(".md")).sort().map((name) => `docs/${name}`)
    : [];
  const packages = readdirSync(join(root, "packages")).sort().map((name) => `packages/${name}/README.md`)
    .filter((path) => existsSync(join(root, path)));
  return ["README.md", ...docs, ...packages];
}

/** The runnable blocks of one markdown text, in order. A skip comment without a reason is an error. */
export function parseDocBlocks(file: string, markdown: string): DocBlock[] {
  const lines = markdown.split("\n");
  const blocks: DocBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const fence = /^(```+|~~~+)\s*([\w-]*)/.exec(lines[i]);
    if (!fence) continue;
    const end = lines.findIndex((line, j) => j > i && line.startsWith(fence[1]));
    if (end === -1) throw new Error(`${file}:${i + 1}: a code block is never closed`);
    const kind = KINDS[fence[2].toLowerCase()];
    if (kind) {
      let body = lines.slice(i + 1, end);
      // A console block shows a session: its commands are the lines after "$ ", the rest is output.
      if (fence[2].toLowerCase() === "console") {
        body = body.filter((line) => line.startsWith("$ ")).map((line) => line.slice(2));
      }
      let previous = i - 1;
      while (previous >= 0 && lines[previous].trim() === "") previous--;
      const marker = previous >= 0 ? SKIP.exec(lines[previous].trim()) : null;
      let skip: string | undefined;
      if (marker) {
        skip = /^\s*\((.+)\)\s*$/.exec(marker[1])?.[1].trim();
        if (!skip) {
          throw new Error(`${file}:${previous + 1}: a docs-runner skip needs a reason: ` +
            "<!-- docs-runner: skip (why this block cannot run in a test) -->");
        }
      }
      blocks.push({ file, line: i + 1, kind, code: body.join("\n") + "\n", skip });
    }
    i = end;
  }
  return blocks;
}

/** Every runnable block of the documentation under `root`, file by file. */
export function docBlocks(root: string): Map<string, DocBlock[]> {
  return new Map(docFiles(root).map((file) => [file, parseDocBlocks(file, readFileSync(join(root, file), "utf8"))]));
}
