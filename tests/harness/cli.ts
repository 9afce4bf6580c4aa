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
