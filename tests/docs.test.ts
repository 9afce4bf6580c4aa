/**
 * The docs runner: every shell block and TypeScript example in README.md, docs/*.md and
 * packages/<name>/README.md runs as shown, so a doc that drifts from the code fails here.
 *
 * Each markdown file runs in a fresh temporary directory standing for the user's checkout after the
 * README's install (`npm install`): its `node_modules` links to this checkout's dependencies and
 * packages (so `npx haduck`, `bunx haduck` and `$PWD/node_modules/.bin/haduck` are this checkout's
 * CLI, as in the quick start), and
 * the PATH holds the system's tools, Node and npm, and Bun and Deno (the README's "with Bun
 * installed"), but nothing of haduck. No HADUCK_* variable is set. The blocks of a file run in
 * order, one `bash -e -o pipefail` each, like commands typed into one terminal: variables a block
 * exports and the directory it ends in carry over to the next. A TypeScript example runs with Bun
 * in the same directory (tests/packaging.test.ts runs the package examples on Node and Deno too,
 * from the packed tarballs). Each block runs in a process group of its own, which is killed when
 * the block ends, so servers a block starts in the background stop with it.
 *
 * The files run at the same time, each in its own directory (the README's blocks use fixed ports,
 * which no other file does).
 *
 * A block that cannot run in a test carries `<!-- docs-runner: skip (reason) -->` on the line before
 * its fence; the runner prints how many it skipped and why.
 */
import { afterAll, expect, test } from "bun:test";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { type DocBlock, docBlocks, parseDocBlocks } from "./harness/doc_blocks.ts";

const ROOT = resolve(import.meta.dir, "..");
const work = mkdtempSync(join(tmpdir(), "haduck-docs-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Bun and Deno (the user's own installs) and Node with npm, then the system's tools. */
const tools = join(work, "tools");
mkdirSync(tools);
for (const name of ["bun", "deno"]) symlinkSync(join(ROOT, "node_modules/.bin", name), join(tools, name));
const PATH = [tools, dirname(Bun.which("node")!), "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin",
  "/bin"].filter((dir, index, all) => all.indexOf(dir) === index).join(":");
/** A user's environment: no HADUCK_* (nor the test harness's S3 settings), no NODE_OPTIONS of the test run. */
const ENV = Object.fromEntries(Object.entries({ ...process.env, PATH, NO_COLOR: "1" })
  .filter(([name]) => !name.startsWith("HADUCK_") && !name.startsWith("BUN_") && name !== "NODE_OPTIONS" &&
    !name.startsWith("npm_"))) as Record<string, string>;

/** Longest a block may run: its servers are stopped and it fails after this. */
const BLOCK_TIMEOUT_MS = 90_000;
/** After SIGTERM to a block's process group, how long its processes get before SIGKILL. */
const STOP_GRACE_MS = 10_000;

interface BlockRun {
  code: number | null;
  output: string;
  timedOut: boolean;
}

const groupAlive = (pid: number) => {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Runs one command in a process group of its own and, once it exits, stops whatever it left running. */
async function runInGroup(command: string[], cwd: string): Promise<BlockRun> {
  const child = spawn(command[0], command.slice(1), { cwd, env: ENV, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (chunk) => output += chunk);
  child.stderr.on("data", (chunk) => output += chunk);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      process.kill(-child.pid!, "SIGTERM");
    } catch { /* already gone */ }
  }, BLOCK_TIMEOUT_MS);
  const code = await new Promise<number | null>((done) => child.on("exit", (exitCode) => done(exitCode)));
  clearTimeout(timer);
  // The block's background processes (servers started with `&`) share its process group: stop them
  // as Ctrl-C or a SIGTERM would, and kill what is still there after the grace period.
  if (groupAlive(child.pid!)) {
    process.kill(-child.pid!, "SIGTERM");
    const deadline = Date.now() + STOP_GRACE_MS;
    while (groupAlive(child.pid!) && Date.now() < deadline) await Bun.sleep(100);
    if (groupAlive(child.pid!)) process.kill(-child.pid!, "SIGKILL");
  }
  return { code, output, timedOut };
}

const blocksByFile = docBlocks(ROOT);
const skipped = [...blocksByFile.values()].flat().filter((block) => block.skip);
console.log(`docs runner: ${[...blocksByFile.values()].flat().length} blocks in ${blocksByFile.size} files, ` +
  `${skipped.length} skipped:\n` + skipped.map((block) => `  ${block.file}:${block.line}: ${block.skip}`).join("\n"));

test("the docs runner's extractor reads sh, bash, console and ts blocks, and skip comments need a reason", () => {
  const markdown = ["# x", "```sh", "echo one", "```", "<!-- docs-runner: skip (needs real AWS credentials) -->", "",
    "```bash", "aws s3 ls", "```", "```console", "$ echo two", "two", "```", "```sql", "SELECT 1;", "```", "```ts",
    "console.log(3);", "```"].join("\n");
  expect(parseDocBlocks("x.md", markdown)).toEqual([
    { file: "x.md", line: 2, kind: "sh", code: "echo one\n", skip: undefined },
    { file: "x.md", line: 7, kind: "sh", code: "aws s3 ls\n", skip: "needs real AWS credentials" },
    { file: "x.md", line: 10, kind: "sh", code: "echo two\n", skip: undefined },
    { file: "x.md", line: 17, kind: "ts", code: "console.log(3);\n", skip: undefined },
  ]);
  expect(() => parseDocBlocks("x.md", "<!-- docs-runner: skip -->\n```sh\nfalse\n```\n")).toThrow(/needs a reason/);
});

/**
 * node_modules as `npm install` in this checkout makes it: every dependency, the workspace packages
 * by their names (`haduck` is packages/cli, `@haduck/<name>` packages/<name>) and `.bin/haduck`, all
 * pointing into this checkout (so `npx haduck` runs this checkout's CLI even where the checkout's own
 * node_modules is shared with another tree).
 */
function checkoutNodeModules(into: string): void {
  const modules = join(into, "node_modules");
  mkdirSync(join(modules, ".bin"), { recursive: true });
  mkdirSync(join(modules, "@haduck"));
  const workspace = new Map(readdirSync(join(ROOT, "packages")).map((name) =>
    [JSON.parse(readFileSync(join(ROOT, "packages", name, "package.json"), "utf8")).name as string, name]));
  for (const entry of readdirSync(join(ROOT, "node_modules"))) {
    if (entry === ".bin" || entry === "@haduck" || workspace.has(entry)) continue;
    symlinkSync(join(ROOT, "node_modules", entry), join(modules, entry));
  }
  for (const [name, folder] of workspace) symlinkSync(join(ROOT, "packages", folder), join(modules, name));
  symlinkSync("../haduck/bin/haduck.mjs", join(modules, ".bin/haduck"));
}

interface BlockResult {
  where: string;
  code: number | null;
  timedOut: boolean;
  output: string;
}

/** Runs one file's blocks in order in a fresh directory, up to the first that fails. */
async function runFile(file: string, blocks: DocBlock[]): Promise<BlockResult[]> {
  const home = mkdtempSync(join(work, `${file.replaceAll("/", "-")}-`));
  checkoutNodeModules(home);
  const state = join(work, `${file.replaceAll("/", "-")}.state`);
  mkdirSync(state);
  writeFileSync(join(state, "env.sh"), "");
  writeFileSync(join(state, "cwd"), home);
  const results: BlockResult[] = [];
  for (const [index, block] of blocks.entries()) {
    const where = `${file}:${block.line}`;
    let command: string[];
    if (block.kind === "ts") {
      // In the user's directory, where its imports resolve (node_modules), as the user would save it.
      const cwd = readFileSync(join(state, "cwd"), "utf8").trim();
      const script = join(cwd, `docs-example-${index}.ts`);
      writeFileSync(script, block.code);
      command = ["bash", "-c", `cd '${cwd}' && exec bun '${script}'`];
    } else {
      const script = join(state, `block-${index}.sh`);
      // One terminal: the previous block's exported variables and directory, this block, then save both.
      writeFileSync(script, `set -e -o pipefail\nsource '${state}/env.sh'\ncd "$(cat '${state}/cwd')"\n` +
        `${block.code}\nexport -p | grep -v -E '^declare -x (OLDPWD|PWD|SHLVL|_)=' > '${state}/env.sh'\n` +
        `pwd > '${state}/cwd'\n`);
      command = ["bash", script];
    }
    const started = performance.now();
    const ran = await runInGroup(command, home);
    console.log(`docs runner: ${where} (${block.kind}) exit ${ran.code} in ` +
      `${((performance.now() - started) / 1000).toFixed(1)} s`);
    results.push({ where, code: ran.code, timedOut: ran.timedOut, output: ran.output });
    if (ran.code !== 0) break; // the blocks after it build on it
  }
  return results;
}

// Every file runs at once (each in its own directory), so the run takes as long as the longest file.
let runs: Map<string, Promise<BlockResult[]>> | undefined;
const runsOf = () => runs ??= new Map([...blocksByFile].map(([file, blocks]) =>
  [file, runFile(file, blocks.filter((block) => !block.skip))]));

for (const [file, blocks] of blocksByFile) {
  const runnable = blocks.filter((block) => !block.skip);
  if (runnable.length === 0) continue;
  test(`${file}: every command runs as shown (${runnable.length} blocks, ${blocks.length - runnable.length} skipped)`,
    async () => {
      const results = await runsOf().get(file)!;
      expect(results.length).toBe(runnable.length);
      for (const result of results) {
        expect(result).toEqual({ where: result.where, code: 0, timedOut: false, output: expect.any(String) });
      }
    }, 600_000);
}

test("the runner stops what a block left running, fails a block that fails, and runs nothing after it", async () => {
  const pidFile = join(work, "background.pid");
  const block = (line: number, code: string): DocBlock => ({ file: "runner-check.md", line, kind: "sh", code });
  const results = await runFile("runner-check.md", [
    block(1, `export GREETING=hello\nmkdir -p sub && cd sub\nsleep 300 &\necho $! > '${pidFile}'\n`),
    block(5, `test "$GREETING" = hello\ntest "$(basename "$PWD")" = sub\n`), // one terminal: exports and cwd carry over
    block(7, "false\n"),
    block(9, "echo never\n"),
  ]);
  expect(results.map((result) => [result.where, result.code]))
    .toEqual([["runner-check.md:1", 0], ["runner-check.md:5", 0], ["runner-check.md:7", 1]]);
  const pid = Number(readFileSync(pidFile, "utf8"));
  expect(() => process.kill(pid, 0)).toThrow(); // the block's `sleep 300 &` was stopped with its process group
});

test("every skipped block says why", () => {
  for (const block of skipped) expect(block.skip!.length).toBeGreaterThan(5);
  // The quick start's install is the one step the runner takes as done (it runs in a checkout after it).
  expect(readFileSync(join(ROOT, "README.md"), "utf8")).toContain("<!-- docs-runner: skip (");
});
