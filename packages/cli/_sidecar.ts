/**
 * @module
 * `haduck sidecar <db-path> [--live]`: the replicator a DuckDB host's extension starts for a
 * database it opened through haduck:// (extension/src/sidecar.hpp), when the store is configured in
 * the environment (`HADUCK_STORE`, or `HADUCK_S3_*`; `HADUCK_DB_KEY` overrides the key;
 * `HADUCK_REPLICA_STORES` names replica stores, commas or spaces between their URLs). Its stdin
 * and stdout are the host's socket; it writes nothing else there (messages go to stderr). It
 * reconciles the file with the store (the first upload of an existing database), says `ready`,
 * ships every generation the host commits, reports status every second, and when the host is gone
 * (end of input: exit, crash or kill -9) ships what the file holds and exits. `--live`: started
 * again while the host writes (the last replicator died); reconcile then never fails on a file that
 * keeps changing.
 */
import { resolve } from "node:path";
import { defaultDbKey, Native, openDuckDB, PipeConsumer, Replicator } from "@haduck/duckdb-fs-bridge";
import { MirroredStore } from "@haduck/duckblock";
import { mirroredStore, REPLICA_DRAIN_MS, replicaStoresFromFlags, storeFromFlags } from "./_store_flags.ts";

export async function runSidecar(args: string[], exitCodeOf: (error: unknown) => number): Promise<number> {
  // Once the host is gone its socket refuses writes (EPIPE): those lines have nobody to read them.
  let hostGone = false;
  process.stdout.on("error", () => hostGone = true);
  const write = (line: string) => {
    if (!hostGone) process.stdout.write(`${line.replaceAll("\n", " ")}\n`);
  };
  write(`hello ${process.pid}`);
  const dbPath = resolve(args.find((arg) => !arg.startsWith("--")) ?? "");
  const live = args.includes("--live");
  let replicator: Replicator;
  let consumer: PipeConsumer;
  let mirror: MirroredStore | undefined;
  try {
    const primary = storeFromFlags({}, process.env);
    if (!primary) throw new TypeError("no store configured: set HADUCK_STORE, or HADUCK_S3_BUCKET, HADUCK_S3_ENDPOINT, " +
      "HADUCK_S3_ACCESS_KEY and HADUCK_S3_SECRET_KEY (or AWS's variables for the endpoint, region and keys)");
    await openDuckDB(); // this process's own copy of the extension, for DuckDB's block checksum
    const native = new Native();
    consumer = new PipeConsumer({ input: process.stdin, write, dbPath,
      blockChecksumOk: (block) => native.blockChecksumOk(block) });
    const dbKey = process.env.HADUCK_DB_KEY || defaultDbKey(dbPath);
    // HADUCK_REPLICA_STORES: every object the primary accepts is copied on to each (see _mirror.ts).
    const store = mirroredStore(primary, replicaStoresFromFlags({}, process.env), dbKey,
      (message) => console.error(`haduck sidecar: ${message}`))!;
    mirror = store instanceof MirroredStore ? store : undefined;
    replicator = new Replicator({ native: consumer, dbPath, store, dbKey,
      onGeneration: (event) => {
        report();
        console.error(`haduck sidecar: generation ${event.generation} of ${dbKey}: ${event.blocksShipped} blocks shipped`);
      } });
    await replicator.start();
    await replicator.reconcile({ live });
  } catch (error) {
    const message = (error as Error).message;
    console.error(`haduck sidecar: ${message}`);
    write(`error ${message}`);
    await mirror?.close();
    return exitCodeOf(error);
  }
  function report() {
    const status = replicator.status;
    write(`status ${status.lastGeneration ?? -1} ${Math.round(status.lagMs)} ${status.blocksCarried} ` +
      `${status.generationsCommitted} ${Math.round(status.walLagMs)} ${status.framesShipped} ${status.lastError ?? ""}`);
  }
  report();
  const rebuilt = replicator.marksRebuilt;
  write(rebuilt === undefined ? "ready" : `ready rebuilt ${rebuilt}`);
  const timer = setInterval(report, 1000);
  await consumer.closed; // the host exited, crashed, or was killed
  hostGone = true;
  clearInterval(timer);
  await replicator.stop({ quiescent: true }); // the host is gone: nobody writes the file any more
  if (mirror && !await mirror.drained(REPLICA_DRAIN_MS)) {
    for (const replica of mirror.replicaStatus().filter((status) => status.objectsBehind > 0)) {
      console.error(`haduck sidecar: replica store ${replica.url} is ${replica.objectsBehind} objects behind at exit: ` +
        "the next start copies them (its reconcile pass)");
    }
  }
  await mirror?.close();
  const error = replicator.status.lastError;
  if (error) console.error(`haduck sidecar: ${error}`);
  return error ? 4 : 0;
}
