import { expect, test } from "bun:test";
import { openFiles, openFilesLimit } from "./_open_files.ts";

test("the open-files guard reads the limit Bun runs with (its soft limit raised to the hard one) and the count", async () => {
  // A soft limit of 1,024 (a common default) under a hard one of 4,096: Bun starts with 4,096.
  const script = `import { openFiles, openFilesLimit } from ${JSON.stringify(`${import.meta.dir}/_open_files.ts`)};
    console.log(JSON.stringify({ limit: openFilesLimit(), open: openFiles() }));`;
  const child = Bun.spawn(["sh", "-c", `ulimit -Sn 1024 && ulimit -Hn 4096 && exec "$0" -e "$1"`, process.execPath,
    script], { stdout: "pipe", stderr: "pipe" });
  const [out, err] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text()]);
  expect(await child.exited, err).toBe(0);
  const { limit, open } = JSON.parse(out);
  expect(limit).toBe(4096);
  expect(open).toBeGreaterThan(2);
  expect(open).toBeLessThan(200);
  expect(openFiles()!).toBeLessThan(openFilesLimit()!);
});
