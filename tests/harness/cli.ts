/**
 * @module
 * The `haduck` command as a user runs it: spawned with Bun from the repository's bin, in `cwd`,
 * with `env` on top of this process's, and `options.stdin` piped in (else no stdin); resolves with
 * its output and exit code.
 */
import { resolve } from "node:path";

export const HADUCK_BIN = resolve(import.meta.dir, "../../packages/cli/bin/haduck.ts");

export async function runHaduck(cwd: string, args: string[], env: Record<string, string> = {},
  options: { stdin?: string } = {}): Promise<{ stdout: string; stderr: string; code: number }> {
  const child = Bun.spawn([process.execPath, HADUCK_BIN, ...args], { cwd, env: { ...process.env, ...env },
    stdin: options.stdin === undefined ? "ignore" : new Blob([options.stdin]), stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(),
    new Response(child.stderr).text(), child.exited]);
  return { stdout, stderr, code };
}

/**
 * A spawned haduck's stderr, read as it comes: `text()` is what it said so far, `done` settles when
 * the stream ends, `adminUrl()` waits until it says "admin on URL" (undefined when it exits first or
 * after `timeoutMs`).
 */
export function readStderr(child: { stderr: ReadableStream<Uint8Array>; exitCode: number | null }) {
  let text = "";
  const done = (async () => {
    for await (const chunk of child.stderr) text += new TextDecoder().decode(chunk);
  })();
  return {
    text: () => text,
    done,
    async adminUrl(timeoutMs = 60_000): Promise<string | undefined> {
      const deadline = Date.now() + timeoutMs;
      while (!/admin on (\S+)/.test(text) && Date.now() < deadline && child.exitCode === null) await Bun.sleep(20);
      return /admin on (\S+)/.exec(text)?.[1];
    },
  };
}
