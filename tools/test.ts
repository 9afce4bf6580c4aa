/**
 * @module
 * The one test command (`bun run test`): builds the extension, starts one radosgw for the run,
 * then runs every suite — the C++ unit tests, `bun test`, and the runtime-neutral packages under
 * Deno — and ends with one line of totals across all of them: `N passed, N failed`.
 * The S3 server is stopped when the run ends, also on failure or Ctrl-C.
 */
import { buildExtension, ROOT, UNIT_TESTS_PATH } from "./build_extension.ts";
import { startRadosgw } from "../tests/harness/radosgw.ts";
import { join } from "node:path";

interface SuiteResult {
  name: string;
  passed: number;
  failed: number;
  exitCode: number;
}

async function runSuite(name: string, args: string[], env: Record<string, string>,
  parse: (output: string) => { passed: number; failed: number }): Promise<SuiteResult> {
  console.log(`\n=== ${name}: ${args.join(" ")}`);
  const child = Bun.spawn(args, { cwd: ROOT, env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe" });
  let output = "";
  const pump = async (stream: ReadableStream<Uint8Array>, sink: NodeJS.WriteStream) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      const text = decoder.decode(chunk, { stream: true });
      output += text;
      sink.write(text);
    }
  };
  await Promise.all([pump(child.stdout, process.stdout), pump(child.stderr, process.stderr)]);
  const exitCode = await child.exited;
  const counts = parse(output.replace(/\x1b\[[0-9;]*m/g, ""));
  // A suite that crashed or exited non-zero without reporting a failure still counts as one.
  const failed = exitCode !== 0 && counts.failed === 0 ? 1 : counts.failed;
  return { name, passed: counts.passed, failed, exitCode };
}

const lastNumber = (output: string, pattern: RegExp) => {
  const matches = [...output.matchAll(pattern)];
  return matches.length > 0 ? Number(matches[matches.length - 1][1]) : 0;
};

async function main(): Promise<number> {
  await buildExtension();
  const cluster = await startRadosgw();
  const stop = async () => {
    await cluster.stop();
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, async () => {
      await stop();
      process.exit(130);
    });
  }
  const env = {
    HADUCK_TEST_S3_ENDPOINT: cluster.endpoint,
    HADUCK_TEST_S3_ACCESS_KEY: cluster.accessKey,
    HADUCK_TEST_S3_SECRET_KEY: cluster.secretKey,
    HADUCK_TEST_S3_CEPH_CONF: cluster.conf, // extra users and keys (tests/harness/s3.ts's createTestKeys)
  };
  const results: SuiteResult[] = [];
  try {
    results.push(await runSuite("static checks", [process.execPath, join(ROOT, "tools/check.ts")], env, (output) => ({
      passed: lastNumber(output, /^(\d+) passed, \d+ failed$/gm),
      failed: lastNumber(output, /^\d+ passed, (\d+) failed$/gm),
    })));
    results.push(await runSuite("C++ unit tests", [UNIT_TESTS_PATH], env, (output) => ({
      passed: lastNumber(output, /^(\d+) passed, \d+ failed$/gm),
      failed: lastNumber(output, /^\d+ passed, (\d+) failed$/gm),
    })));
    results.push(await runSuite("bun test", [process.execPath, "test", "--timeout", "300000", ...process.argv.slice(2)],
      env, (output) => ({
        passed: lastNumber(output, /^\s*(\d+) pass$/gm),
        failed: lastNumber(output, /^\s*(\d+) fail$/gm),
      })));
    results.push(await runSuite("deno test", [join(ROOT, "node_modules/.bin/deno"), "test", "-A", "--quiet",
      "packages/s3-block-store/deno/contract.deno.ts", "packages/dirty-tracker/dirty_bitmap.deno.ts",
      "packages/duckdb-fs-bridge/deno/replication.deno.ts"], env, (output) => ({
        passed: lastNumber(output, /ok \| (\d+) passed/g) + lastNumber(output, /FAILED \| (\d+) passed/g),
        failed: lastNumber(output, /\| (\d+) failed/g),
      })));
  } finally {
    await stop();
  }
  console.log("");
  for (const result of results) {
    console.log(`${result.name}: ${result.passed} passed, ${result.failed} failed (exit ${result.exitCode})`);
  }
  const passed = results.reduce((sum, result) => sum + result.passed, 0);
  const failed = results.reduce((sum, result) => sum + result.failed, 0);
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 && passed > 0 ? 0 : 1;
}

process.exit(await main());
