/**
 * @module
 * What every command shares: exit codes, the usage error, flag parsing (with the store flags, --help
 * and --debug), the store and key a command needs, and opening a database from the flags for `attach`
 * and `serve`.
 */
import { parseArgs } from "node:util";
import { assertValidDbKey, attach, checkMemoryMaxMb, defaultDbKey, type WriterFence } from "@haduck/duckdb-fs-bridge";
import { MirroredStore, suggestCommand } from "@haduck/duckblock";
import type { BlockStore, SealedStore } from "@haduck/s3-block-store";
import {
  mirroredStore,
  NO_STORE_HINT,
  REPLICA_DRAIN_MS,
  replicaStoresFromFlags,
  STORE_OPTIONS,
  storeFromFlags,
} from "./_store_flags.ts";
import { type Progress, progress } from "./_progress.ts";

/** Exit codes, documented in `haduck --help`. */
export const EXIT = { ok: 0, failure: 1, usage: 2, config: 3, store: 4, integrity: 5, conflict: 6, unchecked: 7 } as const;

/** A bad command line: exit 2, the message says what to give instead. */
export class UsageError extends Error {}

/** A node of a cluster that did not answer at all (exit 4, as a store that cannot be reached). */
export class NodeUnreachableError extends Error {
  readonly code = "NODE_UNREACHABLE";
  constructor(url: string, cause: unknown) {
    const code = (cause as { code?: string }).code;
    const reason = code === "ConnectionRefused" || code === "ECONNREFUSED" ? "connection refused"
      : (cause as Error).message ?? String(cause);
    super(`cannot reach the node at ${url}: is it running? (${reason})`, { cause });
  }
}


/** A node that answered over TLS with a certificate this command cannot check: the fix is --tls-ca (exit 3). */
export class NodeUntrustedError extends Error {
  readonly code = "NODE_UNTRUSTED";
  constructor(url: string, cause: unknown) {
    super(`cannot trust the certificate of the node at ${url} (${(cause as Error).message}): give --tls-ca the PEM ` +
      "file of the CA that signed the nodes' certificates (the one the nodes' own --tls-ca names)", { cause });
  }
}

/** Whether a fetch failed on the server's certificate (Bun and Node name these errors by OpenSSL's codes). */
export function isCertificateError(error: unknown): boolean {
  const code = String((error as { code?: unknown }).code ?? "");
  return /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/i.test(code) ||
    /certificate/i.test((error as Error).message ?? "");
}

export type OptionSpec = { type: "string" | "boolean"; multiple?: boolean; short?: string };

export function parse<const T extends Record<string, OptionSpec>>(args: string[], options: T) {
  try {
    // --progress (every command; main() reads it): progress as plain lines when stderr is not a terminal.
    const all = { ...STORE_OPTIONS, ...options, help: { type: "boolean", short: "h" }, debug: { type: "boolean" },
      progress: { type: "boolean" } } as const;
    return parseArgs({ args, options: all, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(`${(error as Error).message}; see --help`);
  }
}

/** The command that lists the keys in `store`, complete as printed (the store's URL, its endpoint). */
export function listKeysCommand(store: BlockStore): string {
  return suggestCommand("databases", { store });
}

/** The store the running command opened, for the hints `main()` adds to its errors. */
let storeInUse: BlockStore | undefined;
export const currentStore = (): BlockStore | undefined => storeInUse;

/** The store from the flags (or the variables), or a usage error saying how to give one. */
export function needStoreOnly(values: { store?: string; endpoint?: string }): SealedStore {
  const store = storeFromFlags(values, process.env);
  if (!store) throw new UsageError(NO_STORE_HINT);
  storeInUse = store;
  return store;
}

/** The store and the database key, both required, the key checked. */
export function needStore(values: Record<string, unknown>): { store: BlockStore; dbKey: string } {
  const store = needStoreOnly(values as { store?: string; endpoint?: string });
  const dbKey = values["db-key"] as string | undefined;
  if (!dbKey) throw new UsageError(`--db-key is required: run ${listKeysCommand(store)} to list the keys in the store`);
  try {
    assertValidDbKey(dbKey);
  } catch (error) {
    // The key's rules name `haduck databases`: here, with this store, as a command to run.
    throw new UsageError((error as Error).message.replace("`haduck databases`", listKeysCommand(store)));
  }
  return { store, dbKey };
}

/** The open check's memory ceiling (`HADUCK_CHECK_MEMORY_MB`), checked before anything is downloaded. */
export function checkMemory(): number {
  try {
    return checkMemoryMaxMb(process.env);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

export const mib = (bytes: number): string => `${(bytes / 1048576).toFixed(2)} MiB`;

/** Generations of at least this many blocks (16 MiB at DuckDB's default block size) get a progress bar. */
const PROGRESS_BLOCKS_MIN = 64;

/**
 * Opens a database for `attach` and `serve`: the store from the flags (or local-only, said once),
 * mirrored to the replica stores (`--replica-store`) when there are any; closing the database
 * waits a while (`REPLICA_DRAIN_MS`) for them and stops the mirror. `named`: a node that serves
 * several databases names the database in each line it prints.
 */
export async function attachFromFlags(dbPath: string, values: { store?: string; endpoint?: string; "db-key"?: string;
  alias?: string; "replica-store"?: string[] }, cluster?: { fence: WriterFence; store: BlockStore;
  onShipped?: () => void }, named = false) {
  const primary = cluster?.store ?? storeFromFlags(values, process.env);
  const fence = cluster?.fence;
  const dbKey = values["db-key"];
  const which = named && dbKey ? `${dbKey}: ` : "";
  if (!primary) {
    console.error(`haduck: ${which}local-only mode (no store configured): tracking changes, uploading nothing`);
  }
  const store = mirroredStore(primary, replicaStoresFromFlags(values, process.env), dbKey ?? defaultDbKey(dbPath),
    (message) => console.error(`haduck: ${which}${message}`));
  const mirror = store instanceof MirroredStore ? store : undefined;
  // A bar for generations large enough to take a while (the first upload of a big database).
  let bar: { generation: number; progress: Progress } | undefined;
  const db = await attach({
    onUploadProgress: (event) => {
      if (event.blocksTotal < PROGRESS_BLOCKS_MIN) return;
      if (bar?.generation !== event.generation) {
        // Made at the pass's first report, timed from the pass's start (see ProgressOptions.startedMs).
        bar = { generation: event.generation, progress: progress(`${which}upload`,
          { startedMs: performance.now() - event.elapsedMs }) };
      }
      bar.progress.update(event.blocksDone, event.blocksTotal, event.bytesSent);
    },
    dbPath,
    store,
    dbKey,
    alias: values.alias,
    fence,
    onFrame: cluster?.onShipped && (() => cluster.onShipped!()),
    onGeneration: (event) => {
      cluster?.onShipped?.();
      if (bar?.generation === event.generation) bar.progress.finish();
      console.error(`haduck: ${which}generation ${event.generation}: ${event.blocks} blocks, ` +
        `${event.blocksShipped} shipped (${mib(event.bytesShipped)}) in ${event.durationMs.toFixed(0)} ms`);
    },
  }).catch(async (error) => {
    await mirror?.close();
    throw error;
  });
  if (mirror) {
    const close = db.close.bind(db);
    db.close = async () => {
      try {
        await close();
      } finally {
        await closeMirror(mirror);
      }
    };
  }
  return { db, store: primary };
}

/** Gives the replicas `REPLICA_DRAIN_MS` to catch up, says what is left for the next start, and stops copying. */
async function closeMirror(mirror: MirroredStore): Promise<void> {
  if (!await mirror.drained(REPLICA_DRAIN_MS)) {
    for (const replica of mirror.replicaStatus().filter((status) => status.objectsBehind > 0)) {
      console.error(`haduck: replica store ${replica.url} is ${replica.objectsBehind} objects behind ` +
        `(${mib(replica.bytesBehind)}) at exit${replica.lastError ? ` (${replica.lastError})` : ""}: the next ` +
        "start copies them (its reconcile pass)");
    }
  }
  await mirror.close();
}
