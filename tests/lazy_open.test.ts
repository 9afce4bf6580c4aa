/**
 * Lazy open (issue 34): a follower on an empty disk answers before its base is local. The store is
 * the real file store behind a delay per request (latency plus a per-request transfer rate, as an
 * object store's connections behave), so that fetching the whole database takes seconds.
 *  - a point query is answered before a tenth of the file is local; scans during hydration equal the
 *    leader's; the base ends whole and equal to a restore;
 *  - a block corrupted in the store is refused by name during a lazy read (the query fails, naming
 *    the block and its segment), never answered with zeros;
 *  - a follower killed (kill -9) during hydration and started again fetches only what was not local.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { attach, follow, latestManifest, restore } from "@haduck/duckdb-fs-bridge";
import { type BlockStore, openStore } from "@haduck/s3-block-store";

const dir = mkdtempSync(join(tmpdir(), "haduck-lazy-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** `inner` with every GET delayed by `latencyMs` plus its bytes at `bytesPerSecond`; counts what was fetched. */
function slowStore(inner: BlockStore, latencyMs: number, bytesPerSecond: number) {
  const counted = { gets: 0, bytes: 0 };
  const store = new Proxy(inner, {
    get(target, name, receiver) {
      if (name === "get") {
        return async (key: string, options?: Parameters<BlockStore["get"]>[1]) => {
          const bytes = await target.get(key, options);
          counted.gets++;
          counted.bytes += bytes.byteLength;
          await Bun.sleep(latencyMs + (bytes.byteLength / bytesPerSecond) * 1000);
          return bytes;
        };
      }
      const value = Reflect.get(target, name, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { store, counted };
}

const storeDir = join(dir, "store");
let fileBytes = 0;
let leaderSum = 0;

test("setup: a writer ships a 160 MiB database", async () => {
  const store = openStore(`file://${storeDir}`);
  const writer = await attach({ dbPath: join(dir, "primary.duckdb"), store, dbKey: "lazy.duckdb" });
  await writer.connection.run("CREATE TABLE db.big AS SELECT i, random() AS a, random() AS b, random() AS c " +
    "FROM range(8000000) r(i)");
  await writer.connection.run("CREATE TABLE db.small AS SELECT 42 AS answer");
  await writer.checkpoint();
  leaderSum = Number((await writer.connection.runAndReadAll("SELECT sum(a) AS s FROM db.big")).getRowObjectsJS()[0].s);
  await writer.close();
  fileBytes = (await latestManifest(store, "lazy.duckdb"))!.manifest.fileSizeBytes;
  expect(fileBytes).toBeGreaterThan(150 * 1024 * 1024);
}, 120_000);

test("a follower on an empty disk answers a point query before a tenth of the file is local; scans agree", async () => {
  const { store, counted } = slowStore(openStore(`file://${storeDir}`), 20, 8_000_000);
  const started = performance.now();
  const replica = await follow({ store, dbKey: "lazy.duckdb", dir: join(dir, "cold"), pollMs: 50 });
  try {
    const [row] = await replica.query("SELECT answer FROM small");
    const [point] = await replica.query("SELECT a FROM big WHERE i = 4321");
    const answeredMs = performance.now() - started;
    const atAnswer = { ...replica.hydration! };
    console.log(`first answers in ${answeredMs.toFixed(0)} ms with ${atAnswer.blocksLocal} of ` +
      `${atAnswer.blocksTotal} blocks local (${(counted.bytes / 1048576).toFixed(1)} MiB fetched)`);
    expect(Number(row.answer)).toBe(42);
    expect(typeof point.a).toBe("number");
    expect(atAnswer.blocksLocal).toBeLessThan(atAnswer.blocksTotal / 10);
    // A scan during hydration reads every block: it waits for those not local, and equals the leader's.
    const [scan] = await replica.query("SELECT sum(a) AS s, count(*) AS n FROM big");
    expect(Number(scan.n)).toBe(8_000_000);
    expect(Number(scan.s)).toBeCloseTo(leaderSum, 3);
    const deadline = Date.now() + 120_000;
    while (!replica.hydration?.done) {
      if (Date.now() > deadline) throw new Error(`not hydrated: ${JSON.stringify(replica.hydration)}`);
      await Bun.sleep(50);
    }
    // Whole now, byte for byte what a restore writes for every block the generation lists.
    const restored = join(dir, "restored.duckdb");
    await restore({ store: openStore(`file://${storeDir}`), dbKey: "lazy.duckdb", to: restored, openCheck: false });
    const base = readFileSync(join(dir, "cold", "base.duckdb"));
    const whole = readFileSync(restored);
    expect(base.byteLength).toBe(whole.byteLength);
    expect(Buffer.compare(base, whole)).toBe(0);
    // Each block came once: what was fetched is about the file, not more.
    expect(counted.bytes).toBeLessThan(fileBytes * 1.2);
  } finally {
    await replica.close();
  }
}, 300_000);

test("a block corrupted in the store is refused by name during a lazy read", async () => {
  const corruptDir = join(dir, "corrupt-store");
  const copy = Bun.spawnSync(["cp", "-r", storeDir, corruptDir]);
  expect(copy.exitCode).toBe(0);
  const store = openStore(`file://${corruptDir}`);
  const { manifest } = (await latestManifest(store, "lazy.duckdb"))!;
  // A block in the middle: a column segment of big (the catalog's metadata is written last).
  const victim = manifest.blocks[Math.floor(manifest.blocks.length / 2)];
  const segmentKey = manifest.segments[victim[1]].key;
  const segmentPath = resolve(corruptDir, segmentKey);
  const segment = readFileSync(segmentPath);
  segment[victim[2] + Math.floor(victim[3] / 2)] ^= 0xff;
  writeFileSync(segmentPath, segment);
  const replica = await follow({ store, dbKey: "lazy.duckdb", dir: join(dir, "corrupt"), pollMs: 50 });
  try {
    expect(Number((await replica.query("SELECT answer FROM small"))[0].answer)).toBe(42);
    const failed = await replica.query("SELECT sum(a) + sum(b) + sum(c) AS s FROM big").then(() => undefined,
      (error: Error) => error);
    expect(failed).toBeInstanceOf(Error);
    expect(failed!.message).toMatch(new RegExp(`block ${victim[0]}\\b`, "i"));
    expect(failed!.message).toContain(segmentKey);
  } finally {
    await replica.close();
  }
}, 300_000);

test("a follower killed during hydration and started again fetches only what was not local", async () => {
  const followerDir = join(dir, "resume");
  // A child process follows with a slow store and is killed with SIGKILL part way.
  const child = Bun.spawn([process.execPath, resolve(import.meta.dir, "fixtures/lazy_follow_child.ts"),
    `file://${storeDir}`, "lazy.duckdb", followerDir], { stdout: "pipe", stderr: "pipe" });
  let lastLine = "";
  const reader = (async () => {
    for await (const chunk of child.stdout) {
      const lines = new TextDecoder().decode(chunk).trim().split("\n");
      lastLine = lines.at(-1) ?? lastLine;
    }
  })();
  const deadline = Date.now() + 120_000;
  for (;;) {
    const shown = lastLine ? JSON.parse(lastLine) : undefined;
    if (shown && shown.blocksLocal > shown.blocksTotal / 3) break;
    if (Date.now() > deadline || child.exitCode !== null) {
      throw new Error(`the child never got a third local: ${lastLine} ${await new Response(child.stderr).text()}`);
    }
    await Bun.sleep(20);
  }
  child.kill(9);
  await child.exited;
  await reader;
  const before = JSON.parse(lastLine);
  const { store, counted } = slowStore(openStore(`file://${storeDir}`), 0, 1e12);
  const replica = await follow({ store, dbKey: "lazy.duckdb", dir: followerDir, pollMs: 50 });
  try {
    const end = Date.now() + 120_000;
    while (!replica.hydration?.done) {
      if (Date.now() > end) throw new Error(`not hydrated: ${JSON.stringify(replica.hydration)}`);
      await Bun.sleep(50);
    }
    const after = replica.hydration!;
    console.log(`killed with ${before.blocksLocal} of ${before.blocksTotal} local; the restart reused ` +
      `${after.blocksReused} and fetched ${after.blocksFetched}`);
    expect(after.blocksReused).toBeGreaterThanOrEqual(before.blocksLocal - 64); // writes in flight at the kill
    expect(after.blocksFetched).toBeLessThanOrEqual(after.blocksTotal - before.blocksLocal + 64);
    expect(counted.bytes).toBeLessThan(fileBytes * (1 - before.blocksLocal / before.blocksTotal) + 32 * 1048576);
    const [scan] = await replica.query("SELECT sum(a) AS s FROM big");
    expect(Number(scan.s)).toBeCloseTo(leaderSum, 3);
  } finally {
    await replica.close();
  }
}, 300_000);
