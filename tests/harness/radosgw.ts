/**
 * @module
 * A throwaway single-node Ceph cluster (one ceph-mon, one ceph-osd on a sparse bluestore file, one
 * radosgw) bound to 127.0.0.1 in a temp dir: the real S3 server the tests run against.
 *
 * Every daemon runs in the foreground under a watchdog shell that kills it when the process that
 * started the cluster goes away, even by `kill -9`, so no daemon outlives a test run. See
 * ../../../shared/DESIGN.md ("The S3 server in tests") for why each setting is there.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer } from "node:net";

export interface RadosgwCluster {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  region: string;
  dir: string;
  /** The cluster's ceph.conf, for `radosgw-admin` (extra users and keys: `s3.ts`'s `createTestKeys`). */
  conf: string;
  stop(): Promise<void>;
  /** kill -9 the S3 gateway (radosgw) alone; the cluster behind it keeps running. */
  killGateway(): Promise<void>;
  /** Starts the gateway again on the same port; resolves once it answers. */
  startGateway(): Promise<void>;
}

const DAEMONS = ["ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "monmaptool"];

export const RADOSGW_INSTALL_HINT = "the S3 test server (Ceph radosgw) is not installed: run " +
  "`apt-get install -y --no-install-recommends radosgw ceph-mon ceph-osd ceph-common` (as .ci/run does)";

/** Finds a free TCP port on 127.0.0.1 (the mon's address must be known before it starts). */
export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

function which(command: string): boolean {
  return Bun.spawnSync(["sh", "-c", `command -v ${command}`]).exitCode === 0;
}

function cephConf(dir: string, fsid: string, monPort: number, rgwPort: number): string {
  return `[global]
fsid = ${fsid}
mon host = v2:127.0.0.1:${monPort}
mon initial members = a
public addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = true
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
run dir = ${dir}/run
admin socket = ${dir}/run/$name.$pid.asok
log file = ${dir}/log/$name.log
paxos propose interval = 0.05
ms bind ipv6 = false
ms mon client mode = crc secure
[mon.a]
mon data = ${dir}/mon
[osd.0]
osd data = ${dir}/osd
osd objectstore = bluestore
bluestore block path = ${dir}/osd-block
bluestore block create = true
bluestore block size = 17179869184
bluestore fsck on mkfs = false
osd memory target = 536870912
bluestore cache size = 134217728
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:${rgwPort} tcp_nodelay=1
rgw data = ${dir}/rgw
rgw dns name = localhost
rgw lc debug interval = 10
`;
}

/**
 * Runs `args` in the foreground under a watchdog: when `ownerPid` dies, the daemon gets SIGKILL.
 * Returns the watchdog's process (killing it with SIGTERM also kills the daemon).
 */
function spawnWatched(args: string[], ownerPid: number, logPath: string) {
  const quoted = args.map((arg) => `'${arg.replaceAll("'", "'\\''")}'`).join(" ");
  const script = `${quoted} >>'${logPath}' 2>&1 & child=$!
trap 'kill -9 $child 2>/dev/null; wait $child 2>/dev/null; exit 0' TERM INT
while kill -0 ${ownerPid} 2>/dev/null && kill -0 $child 2>/dev/null; do sleep 0.5; done
kill -9 $child 2>/dev/null; wait $child 2>/dev/null; exit 0`;
  return Bun.spawn(["bash", "-c", script], { stdout: "ignore", stderr: "ignore", stdin: "ignore" });
}

/** Runs `radosgw-admin` against the cluster of `conf` (users and keys); throws with its stderr on failure. */
export function radosgwAdmin(conf: string, args: string[]): string {
  return runOrThrow(["radosgw-admin", "-c", conf, "-n", "client.rgw.a", ...args], `radosgw-admin ${args.slice(0, 2).join(" ")}`);
}

/**
 * The ceph.conf of a running cluster this harness started, found by its gateway's endpoint: a
 * server shared by a test run (tools/test.ts, or `--serve` in another shell) passes its path in
 * HADUCK_TEST_S3_CEPH_CONF, and one started by hand is found among the temp dirs by its port.
 */
export function findCephConf(endpoint: string): string | undefined {
  const fromEnv = process.env.HADUCK_TEST_S3_CEPH_CONF;
  if (fromEnv) return fromEnv;
  const port = new URL(endpoint).port;
  for (const name of readdirSync(tmpdir()).filter((entry) => entry.startsWith("haduck-radosgw-"))) {
    const conf = join(tmpdir(), name, "ceph.conf");
    try {
      if (!readFileSync(conf, "utf8").includes(`endpoint=127.0.0.1:${port} `)) continue;
      // A dead cluster's dir may name the same port: only a gateway still running counts.
      const pids = readdirSync(join(tmpdir(), name, "run")).map((file) => /^client\.rgw\.a\.(\d+)\.asok$/.exec(file)?.[1])
        .filter((pid): pid is string => pid !== undefined);
      if (pids.some((pid) => existsSync(`/proc/${pid}`))) return conf;
    } catch {
      // not a cluster dir (or one being removed)
    }
  }
  return undefined;
}

function runOrThrow(args: string[], what: string): string {
  const result = Bun.spawnSync(args, { stdout: "pipe", stderr: "pipe" });
  if (result.exitCode !== 0) {
    throw new Error(`Cannot start the S3 test server: ${what} failed (exit ${result.exitCode}): ` +
      `${result.stderr.toString().trim().split("\n").slice(-3).join(" | ")}`);
  }
  return result.stdout.toString();
}

async function waitFor(what: string, timeoutMs: number, probe: () => Promise<boolean> | boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let delayMs = 20;
  while (Date.now() < deadline) {
    if (await probe()) return;
    await Bun.sleep(delayMs);
    delayMs = Math.min(delayMs * 2, 250);
  }
  throw new Error(`Cannot start the S3 test server: ${what} did not come up within ${timeoutMs} ms`);
}

/** Starts the cluster; resolves once radosgw answers S3 requests and the test user exists. */
export async function startRadosgw(options: { ownerPid?: number } = {}): Promise<RadosgwCluster> {
  const missing = DAEMONS.filter((command) => !which(command));
  if (missing.length > 0) throw new Error(`${RADOSGW_INSTALL_HINT} (missing: ${missing.join(", ")})`);
  const ownerPid = options.ownerPid ?? process.pid;
  const dir = mkdtempSync(join(tmpdir(), "haduck-radosgw-"));
  for (const sub of ["mon", "osd", "run", "log", "rgw"]) mkdirSync(join(dir, sub));
  const fsid = crypto.randomUUID();
  const [monPort, rgwPort] = [await freePort(), await freePort()];
  const conf = join(dir, "ceph.conf");
  writeFileSync(conf, cephConf(dir, fsid, monPort, rgwPort));
  const watchers: ReturnType<typeof spawnWatched>[] = [];
  const stop = async () => {
    for (const watcher of watchers.reverse()) watcher.kill("SIGTERM");
    await Promise.all(watchers.map((watcher) => watcher.exited));
    if (!process.env.HADUCK_KEEP_RADOSGW_DIR) rmSync(dir, { recursive: true, force: true });
  };
  try {
    runOrThrow(["monmaptool", "--create", "--addv", "a", `[v2:127.0.0.1:${monPort}]`, "--fsid", fsid,
      join(dir, "monmap")], "monmaptool");
    runOrThrow(["ceph-mon", "--mkfs", "-i", "a", "--monmap", join(dir, "monmap"), "-c", conf], "ceph-mon --mkfs");
    watchers.push(spawnWatched(["ceph-mon", "-f", "-i", "a", "-c", conf], ownerPid, join(dir, "log/mon.out")));
    await waitFor("ceph-mon", 20_000, () =>
      Bun.spawnSync(["ceph", "-c", conf, "--connect-timeout", "2", "osd", "create"]).exitCode === 0);
    runOrThrow(["ceph-osd", "-i", "0", "--mkfs", "-c", conf], "ceph-osd --mkfs");
    watchers.push(spawnWatched(["ceph-osd", "-f", "-i", "0", "-c", conf], ownerPid, join(dir, "log/osd.out")));
    // radosgw creates its pools itself; starting it while the OSD boots overlaps the two waits.
    const startGatewayProcess = () => {
      const watcher = spawnWatched(["radosgw", "-f", "-n", "client.rgw.a", "-c", conf], ownerPid,
        join(dir, "log/rgw.out"));
      watchers.push(watcher);
      return watcher;
    };
    let gateway = startGatewayProcess();
    const endpoint = `http://127.0.0.1:${rgwPort}`;
    const gatewayUp = () => waitFor("radosgw", 60_000, async () => {
      try {
        return (await fetch(endpoint, { signal: AbortSignal.timeout(1000) })).status === 200;
      } catch {
        return false;
      }
    });
    await gatewayUp();
    const accessKey = "HADUCKTESTACCESSKEY0";
    const secretKey = `haduck-test-secret-${crypto.randomUUID()}`;
    runOrThrow(["radosgw-admin", "-c", conf, "-n", "client.rgw.a", "user", "create", "--uid", "haduck-test",
      "--display-name", "haduck test", "--access-key", accessKey, "--secret", secretKey], "radosgw-admin user create");
    return {
      endpoint, accessKey, secretKey, region: "us-east-1", dir, conf, stop,
      async killGateway() {
        gateway.kill("SIGTERM"); // the watchdog answers TERM with kill -9 of radosgw
        await gateway.exited;
        watchers.splice(watchers.indexOf(gateway), 1);
      },
      async startGateway() {
        gateway = startGatewayProcess();
        await gatewayUp();
      },
    };
  } catch (error) {
    const logs = ["mon.out", "osd.out", "rgw.out", "client.rgw.a.log"].map((name) => {
      try {
        return `${name}: ${readFileSync(join(dir, "log", name), "utf8").trim().split("\n").slice(-4).join(" | ")}`;
      } catch {
        return `${name}: (none)`;
      }
    });
    await stop();
    throw new Error(`${(error as Error).message}\n  ${logs.join("\n  ")}`, { cause: error });
  }
}

// `bun tests/harness/radosgw.ts` measures the start; with `--serve` it prints the HADUCK_TEST_S3_*
// variables for other shells (tests and benchmarks then reuse this server) and runs until Ctrl-C.
if (import.meta.main) {
  const started = performance.now();
  const cluster = await startRadosgw();
  console.log(JSON.stringify({ endpoint: cluster.endpoint, startMs: Math.round(performance.now() - started) }));
  if (process.argv.includes("--serve")) {
    console.log(`export HADUCK_TEST_S3_ENDPOINT=${cluster.endpoint} HADUCK_TEST_S3_ACCESS_KEY=${cluster.accessKey} ` +
      `HADUCK_TEST_S3_SECRET_KEY=${cluster.secretKey} HADUCK_TEST_S3_CEPH_CONF=${cluster.conf}`);
    await new Promise<void>((resolve) => process.once("SIGINT", resolve).once("SIGTERM", resolve));
  }
  await cluster.stop();
}
