/**
 * @module
 * The commands that read the store and change nothing: `databases` (the keys in a store),
 * `generations`, `status` and `verify` (one database). A key the store holds nothing for fails by
 * name (exit 1) rather than printing an empty answer.
 */
import type { BlockStore } from "@haduck/s3-block-store";
import { shellQuote } from "@haduck/duckblock";
import {
  extensionPath,
  latestManifest,
  listDatabases,
  ReplicationError,
  summarizeGenerations,
  verify,
} from "@haduck/duckdb-fs-bridge";
import { HELP } from "./_help.ts";
import { checkMemory, EXIT, mib, needStore, needStoreOnly, parse, UsageError } from "./_command.ts";
import { steppedProgress } from "./_progress.ts";

/** The error of a key the store holds no generation of (`main()` adds where to find the keys). */
function noGenerations(store: BlockStore, dbKey: string, consequence: string): ReplicationError {
  return new ReplicationError("NO_GENERATIONS", `No generations of ${dbKey} in ${store.url}: ${consequence} ` +
    "(check --store and --db-key)");
}

/** `haduck databases` (`ls`): every database key in the store, its last generation, its time and size. */
export async function commandDatabases(args: string[]): Promise<number> {
  const { values } = parse(args, { json: { type: "boolean" } });
  if (values.help) return (console.log(HELP.databases), EXIT.ok);
  const store = needStoreOnly(values);
  const databases = await listDatabases(store);
  if (values.json) console.log(JSON.stringify(databases, null, 2));
  else if (databases.length === 0) {
    console.log(`no databases in ${store.url} (a database appears with its first generation: haduck attach ` +
      `<db-path> --store ${shellQuote(store.url)})`);
  } else {
    const width = Math.max(...databases.map((db) => db.dbKey.length));
    for (const db of databases) {
      console.log(`${db.dbKey.padEnd(width)}  generation ${String(db.lastGeneration).padEnd(6)}  ` +
        `${db.lastGenerationTime}  ${db.sizeBytes} bytes (${mib(db.sizeBytes)})`);
    }
    const nested = databases.find((db) => db.dbKey.includes("/"));
    if (nested) {
      // A key is one name: the part before its last `/` is a prefix the database was written under.
      const cut = nested.dbKey.lastIndexOf("/");
      console.error(`haduck: ${nested.dbKey} lies under the prefix ${nested.dbKey.slice(0, cut)}: open it with ` +
        `--store ${shellQuote(`${store.url}/${nested.dbKey.slice(0, cut)}`)} --db-key ` +
        shellQuote(nested.dbKey.slice(cut + 1)));
    }
  }
  return EXIT.ok;
}

export async function commandGenerations(args: string[]): Promise<number> {
  const { values } = parse(args, { json: { type: "boolean" } });
  if (values.help) return (console.log(HELP.generations), EXIT.ok);
  const { store, dbKey } = needStore(values);
  const generations = await summarizeGenerations(store, dbKey);
  if (generations.length === 0) throw noGenerations(store, dbKey, "nothing to list");
  if (values.json) console.log(JSON.stringify(generations, null, 2));
  else {
    console.log("generation  time                      blocks  bytes        shipped                 frames  last commit");
    for (const g of generations) {
      console.log(`${String(g.generation).padEnd(10)}  ${g.time.padEnd(24)}  ${String(g.blocks).padEnd(6)}  ` +
        `${mib(g.bytes).padEnd(11)}  ${`${g.blocksShipped} blocks, ${mib(g.bytesShipped)}`.padEnd(22)}  ` +
        `${String(g.frames).padEnd(6)}  ${g.lastCommit ?? "-"}`);
    }
  }
  return EXIT.ok;
}

export async function commandVerify(args: string[]): Promise<number> {
  const { values } = parse(args, { drill: { type: "boolean" }, "no-drill": { type: "boolean" } });
  if (values.help) return (console.log(HELP.verify), EXIT.ok);
  if (values.drill && values["no-drill"]) throw new UsageError("--drill and --no-drill contradict each other: give one");
  const { store, dbKey } = needStore(values);
  const bars = steppedProgress();
  let report;
  try {
    report = await verify(store, dbKey, { drill: values.drill ? "all" : values["no-drill"] ? "none" : "latest",
      checkMemoryMaxMb: checkMemory(), onProgress: (event) => event.step === "objects"
        ? bars.update("verify: objects", "generations", event.done, event.total)
        : bars.update(`verify: drill ${event.generation === "latest" ? "the latest commit" : `generation ${event.generation}`}`,
          "blocks", event.done, event.total, event.bytes) });
  } finally {
    bars.finish();
  }
  const { drilled } = report;
  const parts = [
    drilled.generations > 0 ? `${drilled.generations} generations` : "",
    drilled.latestCommit ? `the latest commit (${drilled.latestFrames} WAL frames replayed)` : "",
  ].filter(Boolean);
  for (const problem of report.problems) console.error(`haduck: ${problem}`);
  for (const skipped of report.skipped) console.error(`haduck: skipped (not a problem): ${skipped}`);
  // A few short lines, not one long one: the counts, then the drill, then the lease epochs.
  console.log(`verified ${report.generations} generations, ${report.segments} segments, ${report.blocks} blocks, ` +
    `${report.frames} WAL frames: ${report.problems.length} problems` +
    `${report.skipped.length > 0 ? `, ${report.skipped.length} skipped` : ""}`);
  if (parts.length > 0) console.log(`drill: ${parts.join(" and ")} restored and opened in DuckDB`);
  else if (values["no-drill"]) console.log("drill: none (--no-drill)");
  if (report.epochs.length > 1) console.log(`one history over lease epochs ${report.epochs.join(", ")}`);
  return report.problems.length > 0 ? EXIT.integrity : EXIT.ok;
}

/** The extension's path, or null: `status` reads the store only, and runs without the extension. */
function extensionOrNull(): string | null {
  try {
    return extensionPath();
  } catch {
    return null;
  }
}

export async function commandStatus(args: string[]): Promise<number> {
  const { values } = parse(args, { json: { type: "boolean" } });
  if (values.help) return (console.log(HELP.status), EXIT.ok);
  const { store, dbKey } = needStore(values);
  const latest = await latestManifest(store, dbKey);
  if (!latest) throw noGenerations(store, dbKey, "no status to show");
  const frames = (await summarizeGenerations(store, dbKey)).at(-1);
  const lastDurableCommit = frames?.lastCommit ?? null;
  const status = {
    store: store.url,
    dbKey,
    // The extension is not needed to read the store: where it is, or null when it is not found.
    extension: extensionOrNull(),
    lastGeneration: latest.manifest.generation,
    lastGenerationTime: latest.manifest.createdAt,
    fileSizeBytes: latest.manifest.fileSizeBytes,
    walFrames: frames?.frames ?? 0,
    lastDurableCommit,
    // The store alone cannot tell what the writer has not shipped: its lag is in the writer's status
    // (the admin endpoint's walLagMs, haduck_status()). What the store tells: how old its newest commit is.
    newestCommitAgeMs: Date.now() - Date.parse(lastDurableCommit ?? latest.manifest.createdAt),
  };
  if (values.json) console.log(JSON.stringify(status, null, 2));
  else for (const [key, value] of Object.entries(status)) console.log(`${key}: ${value}`);
  return EXIT.ok;
}
