/**
 * The rest of a newcomer's first hour with the CLI (issue 35), driven as a user runs it: `haduck
 * aside` lists what takeovers moved aside and deletes only that; a fix suggestion pasted into a
 * shell runs as printed; `status` runs without the extension; progress shows on a terminal (a
 * pseudo-terminal from `script`) and nowhere else; verify prints short lines; the S3 settings
 * error names where keys come from; handoff to an HTTPS node names --tls-ca; a node serving two
 * databases names the database in its lines, and says what its stop waits for.
 */
import { afterAll, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync,
  writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HADUCK_BIN, runHaduck } from "./harness/cli.ts";
import { queryFile } from "./harness/duckdb.ts";

const dir = mkdtempSync(join(tmpdir(), "haduck-leftovers-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const haduck = (args: string[], env: Record<string, string> = {}, cwd = dir) =>
  runHaduck(cwd, args, { HADUCK_STORE: "", HADUCK_S3_BUCKET: "", HADUCK_S3_ENDPOINT: "", HADUCK_S3_ACCESS_KEY: "",
    HADUCK_S3_SECRET_KEY: "", ...env });

/** A file of `bytes` bytes. */
const fill = (path: string, bytes: number) => writeFileSync(path, new Uint8Array(bytes).fill(7));

/** The name a takeover gives a moved-aside database (packages/cluster/_takeover.ts, moveAside). */
const asideName = (dbPath: string, epoch: number, at: Date) =>
  `${dbPath}.haduck-aside-epoch${epoch}-${at.toISOString().replace(/[:.]/g, "")}`;

test("haduck aside lists moved-aside databases with size and age, removes nothing; --delete removes only them", async () => {
  const data = join(dir, "aside-data");
  mkdirSync(data);
  const db = join(data, "node.duckdb");
  fill(db, 1000);
  fill(`${db}.haduck-identity`, 10);
  fill(`${db}.wal`, 20);
  const old = asideName(db, 3, new Date(Date.now() - 3 * 86_400_000));
  fill(old, 4096);
  fill(`${old}.wal`, 100);
  fill(`${old}.haduck-identity`, 10);
  const recent = asideName(db, 5, new Date(Date.now() - 10 * 60_000));
  fill(recent, 2048);
  const otherDb = asideName(join(data, "other.duckdb"), 1, new Date());
  fill(otherDb, 512);
  // Look-alikes that are not moved-aside files: a directory and a link with the pattern in their names.
  mkdirSync(join(data, "dir.duckdb.haduck-aside-epoch1-x"));
  symlinkSync(db, join(data, "link.duckdb.haduck-aside-epoch1-y"));
  const before = readdirSync(data).sort();

  const listed = await haduck(["aside", data]);
  expect(listed.code).toBe(0);
  const lines = listed.stdout.trimEnd().split("\n");
  expect(lines).toHaveLength(4);
  expect(lines[0]).toStartWith(`${old}  `);
  expect(lines[0]).toContain("moved 3 d ago");
  expect(lines[0]).toContain("lease epoch 3");
  expect(lines[0]).toContain("with .haduck-identity, .wal");
  expect(lines[1]).toStartWith(`${recent}  `);
  expect(lines[1]).toContain("moved 10 min ago");
  expect(lines[2]).toStartWith(`${otherDb}  `);
  expect(lines[3]).toBe("3 moved-aside databases, 0.01 MiB: dry run; pass --apply (or --delete) to delete them");
  expect(readdirSync(data).sort()).toEqual(before); // a dry run removes nothing

  const json = JSON.parse((await haduck(["aside", db, "--json"])).stdout); // a database's path: its own only
  expect(json.applied).toBe(false);
  expect(json.asides.map((aside: { path: string }) => aside.path)).toEqual([old, recent]);
  expect(json.asides[0]).toEqual({ path: old, database: db, files: [old, `${old}.haduck-identity`, `${old}.wal`],
    sizeBytes: 4096 + 10 + 100, movedAt: expect.any(String), ageMs: expect.any(Number), epoch: 3 });
  expect(json.asides[0].ageMs).toBeGreaterThanOrEqual(3 * 86_400_000);
  expect(json.sizeBytes).toBe(4096 + 10 + 100 + 2048);

  const deleted = await haduck(["aside", db, "--delete"]);
  expect(deleted.code).toBe(0);
  expect(deleted.stdout).toContain("deleted 2 moved-aside databases");
  const left = readdirSync(data).sort();
  expect(left).toEqual(before.filter((name) => !name.startsWith("node.duckdb.haduck-aside-")));
  expect(left).toContain("node.duckdb"); // the database, its WAL and identity stay
  expect(left).toContain("node.duckdb.wal");
  expect(left).toContain("node.duckdb.haduck-identity");
  expect(left).toContain("other.duckdb.haduck-aside-" + otherDb.split(".haduck-aside-")[1]); // another database's
  // --apply (gc's word) does the same for the whole directory; look-alikes stay.
  expect((await haduck(["aside", data, "--apply"])).stdout).toContain("deleted 1 moved-aside databases");
  expect(readdirSync(data).sort()).toEqual(["dir.duckdb.haduck-aside-epoch1-x", "link.duckdb.haduck-aside-epoch1-y",
    "node.duckdb", "node.duckdb.haduck-identity", "node.duckdb.wal"]);
  expect((await haduck(["aside", data])).stdout).toBe(`no moved-aside databases in ${data}\n`);
  const bad = await haduck(["aside", join(dir, "no-such-dir", "x.duckdb")]);
  expect(bad.code).toBe(2);
  expect(bad.stderr).toContain("give a directory or a database's path");
}, 30_000);

test("a fix suggestion is a complete command: pasted into a shell as printed, it runs and fixes the problem", async () => {
  // A directory and a store with spaces: the suggestion must quote them.
  const work = join(dir, "my work");
  mkdirSync(work);
  const store = `file://${join(dir, "my store")}`;
  const db = join(work, "app.duckdb");
  const attach = (...sql: string[]) => haduck(["attach", db, "--store", store, ...sql.flatMap((s) => ["-c", s])], {},
    work);
  expect((await attach("CREATE TABLE t AS SELECT 1 AS x", "CHECKPOINT")).code).toBe(0);
  copyFileSync(db, join(dir, "app-old.duckdb"));
  expect((await attach("INSERT INTO t VALUES (2)", "CHECKPOINT")).code).toBe(0);
  copyFileSync(join(dir, "app-old.duckdb"), db); // the file goes back in time: the store is ahead of it
  rmSync(`${db}.wal`, { force: true });
  const refused = await attach("SELECT 1");
  expect(refused.code).toBe(6);
  const suggestion = /run `(haduck restore [^`]+)`/.exec(refused.stderr)?.[1];
  expect(suggestion).toBe(`haduck restore --store '${store}' --db-key app.duckdb --force --to '${db}'`);
  // Pasted into a shell from another directory, `haduck` being this checkout's command.
  const pasted = Bun.spawnSync(["sh", "-c", `haduck() { "${process.execPath}" "${HADUCK_BIN}" "$@"; }; ${suggestion}`],
    { cwd: tmpdir(), stdout: "pipe", stderr: "pipe", env: { ...process.env, HADUCK_STORE: "" } });
  expect({ code: pasted.exitCode, stderr: pasted.stderr.toString() }).toEqual({ code: 0, stderr: expect.any(String) });
  expect(pasted.stdout.toString()).toContain("restored generation");
  expect((await queryFile(db, "SELECT x FROM t ORDER BY x")).map((row) => Number(row.x))).toEqual([1, 2]);
  expect((await attach("INSERT INTO t VALUES (3)")).code).toBe(0); // the database continues the store's history

  // A missing --db-key names the command that lists the keys, with this store, runnable as printed.
  const noKey = await haduck(["generations", "--store", store]);
  const list = /run `(haduck databases [^`]+)`/.exec(noKey.stderr)?.[1];
  expect(list).toBe(`haduck databases --store '${store}'`);
  const listed = Bun.spawnSync(["sh", "-c", `haduck() { "${process.execPath}" "${HADUCK_BIN}" "$@"; }; ${list}`],
    { stdout: "pipe", stderr: "pipe", env: { ...process.env, HADUCK_STORE: "" } });
  expect(listed.exitCode).toBe(0);
  expect(listed.stdout.toString()).toStartWith("app.duckdb ");
}, 60_000);

test("status reads the store without the extension: HADUCK_EXTENSION_PATH pointing at nothing", async () => {
  const store = `file://${dir}/status-store`;
  expect((await haduck(["attach", "status.duckdb", "--store", store, "-c", "CREATE TABLE t AS SELECT 1 AS x",
    "-c", "CHECKPOINT"])).code).toBe(0);
  const env = { HADUCK_EXTENSION_PATH: join(dir, "no-such-extension") };
  const json = await haduck(["status", "--store", store, "--db-key", "status.duckdb", "--json"], env);
  expect({ code: json.code, stderr: json.stderr }).toEqual({ code: 0, stderr: "" });
  const status = JSON.parse(json.stdout);
  expect(status.extension).toBeNull();
  expect(status.lastGeneration).toBeGreaterThan(0);
  const text = await haduck(["status", "--store", store, "--db-key", "status.duckdb"], env);
  expect(text.code).toBe(0);
  expect(text.stdout).toContain(`lastGeneration: ${status.lastGeneration}`);
  // What needs the extension still says so.
  const attached = await haduck(["attach", "status.duckdb", "--store", store, "-c", "SELECT 1"], env);
  expect(attached.code).toBe(1);
  expect(attached.stderr).toContain("HADUCK_EXTENSION_PATH points at");
}, 30_000);

/** Runs haduck under a pseudo-terminal (`script`), its output as the terminal shows it. */
function onTerminal(args: string[]): { code: number; output: string } {
  const command = [process.execPath, HADUCK_BIN, ...args].map((word) => `'${word.replaceAll("'", `'\\''`)}'`).join(" ");
  const ran = Bun.spawnSync(["script", "-qec", `stty cols 120; ${command}`, "/dev/null"], { cwd: dir, stdout: "pipe",
    stderr: "pipe", env: { ...process.env, HADUCK_STORE: "" } });
  return { code: ran.exitCode ?? -1, output: ran.stdout.toString() };
}

test("uploads, verify and gc show progress on a terminal, none off one, and verify prints short lines", async () => {
  const store = `file://${dir}/progress-store`;
  const key = ["--store", store, "--db-key", "p.duckdb"];
  // The first upload of a database of some 20 MiB, on a terminal: a bar with a rate timed from the
  // pass's start (a bar timed from its first report once printed 38820.7 MiB/s).
  const uploaded = onTerminal(["attach", "p.duckdb", "--store", store, "-c",
    "CREATE TABLE t AS SELECT range AS i, random() AS a FROM range(2500000)", "-c", "CHECKPOINT"]);
  expect(uploaded.code).toBe(0);
  const rates = [...uploaded.output.matchAll(/\rupload \[[# ]+\] \d+% \d+\/\d+ blocks, [\d.]+ MiB, ([\d.]+) MiB\/s/g)]
    .map((match) => Number(match[1]));
  expect(rates.length).toBeGreaterThan(0);
  expect(Math.max(...rates)).toBeLessThan(10_000);
  expect(uploaded.output).toMatch(/\rupload \[#+\] 100% (\d+)\/\1 blocks/);
  for (let i = 0; i < 2; i++) {
    expect((await haduck(["attach", "p.duckdb", "--store", store, "-c", `INSERT INTO t VALUES (${i}, 0)`, "-c",
      "CHECKPOINT"])).code).toBe(0);
  }
  const plain = await haduck(["verify", "--drill", ...key]);
  expect({ code: plain.code, stderr: plain.stderr }).toEqual({ code: 0, stderr: "" }); // no progress off a terminal
  const lines = plain.stdout.trimEnd().split("\n");
  expect(lines[0]).toMatch(/^verified \d+ generations, \d+ segments, \d+ blocks, \d+ WAL frames: 0 problems$/);
  expect(lines[1]).toMatch(/^drill: \d+ generations and the latest commit \(\d+ WAL frames replayed\) restored and opened/);
  expect(Math.max(...lines.map((line) => line.length))).toBeLessThanOrEqual(100);
  const gcPlain = await haduck(["gc", ...key, "--keep-last", "1", "--json"]);
  expect({ code: gcPlain.code, stderr: gcPlain.stderr }).toEqual({ code: 0, stderr: "" });
  expect(JSON.parse(gcPlain.stdout).kept.length).toBe(1);

  const verified = onTerminal(["verify", "--drill", ...key]);
  expect(verified.code).toBe(0);
  expect(verified.output).toContain("\rverify: objects [");
  expect(verified.output).toMatch(/\rverify: drill generation \d+ \[#+ *\] \d+% \d+\/\d+ blocks/);
  expect(verified.output).toContain("\rverify: drill the latest commit [");
  expect(verified.output).toContain("verified ");
  // Each redraw fits the terminal's 120 columns.
  for (const draw of verified.output.split("\r").filter((part) => part.startsWith("verify:"))) {
    expect(draw.replace(/\x1b\[K[\s\S]*$/, "").length).toBeLessThan(120);
  }
  const collected = onTerminal(["gc", ...key, "--keep-last", "1", "--apply"]);
  expect(collected.code).toBe(0);
  expect(collected.output).toMatch(/\rgc: read manifests \[#+\] 100% (\d+)\/\1 generations/);
  expect(collected.output).toMatch(/\rgc: delete \[#+\] 100% (\d+)\/\1 objects/);
  expect(collected.output).toContain("kept 1 generations");
}, 120_000);

test("gc says why it kept what it kept: --keep-within adds to the --keep-last floor", async () => {
  const store = `file://${dir}/gc-store`;
  for (let i = 0; i < 3; i++) {
    expect((await haduck(["attach", "g.duckdb", "--store", store, "-c", `CREATE OR REPLACE TABLE t AS SELECT ${i}`,
      "-c", "CHECKPOINT"])).code).toBe(0);
  }
  const alone = await haduck(["gc", "--store", store, "--db-key", "g.duckdb", "--keep-within", "1s"]);
  expect(alone.stdout).toMatch(/^kept \d+ generations \([\d, ]+\): the newest 10 \(--keep-last default\) and every one younger than 1s\n/);
  const help = await haduck(["gc", "--help"]);
  expect(help.stdout).toContain("--keep-within adds to --keep-last");
}, 60_000);

test("the S3 settings error names what is missing and that keys come only from the environment", async () => {
  // No keys anywhere: the AWS credential chain is asked, finds none, and the error lists where it looked.
  const ran = await haduck(["status", "--store", "s3://some-bucket/prefix", "--endpoint", "http://127.0.0.1:9",
    "--db-key", "x.duckdb"], { AWS_EC2_METADATA_DISABLED: "true" });
  expect(ran.code).toBe(3);
  expect(ran.stderr).toContain("HADUCK_S3_ACCESS_KEY and HADUCK_S3_SECRET_KEY are not set");
  expect(ran.stderr).toContain("the AWS credential chain found none");
  expect(ran.stderr).not.toMatch(/--(access|secret)-key/); // no flag for a secret: it would show in the process list
  // One key without the other is refused before anything is asked, naming the missing one.
  const half = await haduck(["status", "--store", "s3://some-bucket/prefix", "--endpoint", "http://127.0.0.1:9",
    "--db-key", "x.duckdb"], { HADUCK_S3_ACCESS_KEY: "a" });
  expect(half.code).toBe(3);
  expect(half.stderr).toContain("HADUCK_S3_SECRET_KEY is not set (HADUCK_S3_ACCESS_KEY is: set both");
  expect(half.stderr).toContain("read from the environment only");
  expect(half.stderr).not.toContain("give --endpoint"); // given already: not suggested again
});

test("handoff to an HTTPS node whose certificate it cannot check names --tls-ca (exit 3)", async () => {
  const tls = join(dir, "tls");
  mkdirSync(tls);
  const made = Bun.spawnSync(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", join(tls, "node.key"), "-out",
    join(tls, "node.pem")], { stdout: "pipe", stderr: "pipe" });
  expect(made.exitCode).toBe(0);
  const server = Bun.serve({ port: 0, hostname: "127.0.0.1", tls: { cert: readFileSync(join(tls, "node.pem"), "utf8"),
    key: readFileSync(join(tls, "node.key"), "utf8") }, fetch: () => Response.json({ error: "not a node" }, { status: 404 }) });
  try {
    const url = `https://127.0.0.1:${server.port}`;
    const env = { HADUCK_ADMIN_TOKEN: "t".repeat(32) };
    const untrusted = await haduck(["handoff", "--node", url], env);
    expect(untrusted.code).toBe(3);
    expect(untrusted.stderr).toContain(`cannot trust the certificate of the node at ${url}`);
    expect(untrusted.stderr).toContain("give --tls-ca the PEM file of the CA");
    const trusted = await haduck(["handoff", "--node", url, "--tls-ca", join(tls, "node.pem")], env);
    expect(trusted.stderr).not.toContain("certificate");
    expect(trusted.stderr).toContain("answered 404");
    const missing = await haduck(["handoff", "--node", url, "--tls-ca", join(tls, "none.pem")], env);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("--tls-ca");
  } finally {
    server.stop(true);
  }
}, 30_000);

test("a node serving two databases names the database in its lines, and says at once what its stop waits for", async () => {
  const store = `file://${dir}/multi-store`;
  const child = Bun.spawn([process.execPath, HADUCK_BIN, "serve", "--db", "a.duckdb=a.duckdb", "--db", "b.duckdb=b.duckdb",
    "--store", store, "--listen", "127.0.0.1:0"], { cwd: dir, stdout: "pipe", stderr: "pipe",
    env: { ...process.env, HADUCK_STORE: "", HADUCK_ADMIN_TOKEN: "t".repeat(32) } });
  let log = "";
  const reader = (async () => {
    for await (const chunk of child.stderr) log += new TextDecoder().decode(chunk);
  })();
  try {
    const deadline = Date.now() + 30_000;
    while (!(log.includes("a.duckdb: leader (lease") && log.includes("b.duckdb: leader (lease")) && Date.now() < deadline) {
      await Bun.sleep(50);
    }
    expect(log).toContain("b.duckdb: leader (lease");
    for (const line of log.split("\n").filter((line) => line.includes("generation ") && line.includes("shipped"))) {
      expect(line).toMatch(/^haduck: [ab]\.duckdb: generation \d+: /);
    }
    expect(log).toMatch(/^haduck: a\.duckdb: generation \d+: /m);
    expect(log).toMatch(/^haduck: b\.duckdb: generation \d+: /m);
    const stopping = Date.now();
    child.kill("SIGINT");
    expect(await child.exited).toBe(0);
    await reader;
    expect(log).toContain("haduck: stopping: running statements finish");
    expect(log).toContain("a.duckdb: released the lease");
    expect(Date.now() - stopping).toBeLessThan(5000); // a lone leader waits for no successor (the TTL is 5 s)
  } finally {
    child.kill("SIGKILL");
  }
  expect(existsSync(join(dir, "a.duckdb"))).toBe(true);
}, 60_000);
