/**
 * @module
 * Runs one statement of `POST /sql`, bounded: judged first (`_sql_judge.ts`), then run through a
 * gate that lets `runningMax` statements run at once and queues `queuedMax` more (beyond: 503 with
 * Retry-After), interrupted at `--statement-timeout` or when the client leaves, and read as a
 * stream of chunks whose JSON may not pass `--max-result-bytes` (the statement is interrupted, the
 * answer is an error naming the flag): no answer grows the process without bound, and the event
 * loop that renews the lease converts one chunk at a time.
 */
import { type AttachedDatabase } from "@haduck/duckdb-fs-bridge";
import { NotDurableError, ReadOnlyError, type SqlAnswer, SqlError, type SqlRequest } from "@haduck/admin";
import type { BlockStore } from "@haduck/s3-block-store";
import {
  type DuckDBConnection,
  type DuckDBDataChunk,
  type DuckDBPreparedStatement,
  type DuckDBResult,
  DuckDBTypeId,
  type DuckDBValue,
  JsonDuckDBValueConverter,
  StatementType,
} from "@duckdb/node-api";
import {
  CLASS_OF_TYPE,
  explainedStatement,
  judgeAnyStatement,
  judgeReaderStatement,
  StatementRefused,
  statementToRun,
} from "./_sql_judge.ts";
import { coded, type Running, StatementGate } from "./_statement_gate.ts";

export { StatementGate } from "./_statement_gate.ts";

/** The bounds of SQL over HTTP on a node (the `serve` flags), and the gate its statements pass. */
export interface SqlLimits {
  /** `--statement-timeout`: a statement running longer is interrupted. Default 30 s. */
  statementTimeoutMs: number;
  /** `--max-result-bytes`: the JSON of an answer's rows may not exceed it. Default 64 MiB. */
  resultBytesMax: number;
  /** `--allow-files` was given: the sandbox lets statements reach those directories. */
  filesAllowed: boolean;
  /**
   * The node's own files (the database, its WAL, its temp directory), which DuckDB's sandbox lets
   * DuckDB reach: a statement that names one is refused.
   */
  ownPaths: string[];
  gate: StatementGate;
}

export const STATEMENT_TIMEOUT_MS_DEFAULT = 30_000;
export const RESULT_BYTES_MAX_DEFAULT = 64 * 1024 * 1024;

/** Limits with the defaults, or with what is given. */
export function sqlLimits(options: Partial<SqlLimits> = {}): SqlLimits {
  const limits = { statementTimeoutMs: STATEMENT_TIMEOUT_MS_DEFAULT, resultBytesMax: RESULT_BYTES_MAX_DEFAULT,
    filesAllowed: false, ownPaths: [], gate: new StatementGate(), ...options };
  // A statement waits for a slot no longer than it may run.
  limits.gate.queueWaitMaxMs = limits.statementTimeoutMs;
  return limits;
}

/** Statements that exist to read or write files: refused outright unless the owner gave --allow-files. */
const FILE_STATEMENTS = new Set([StatementType.COPY, StatementType.EXPORT]);

function filesRefused(): StatementRefused {
  return new StatementRefused("This statement reaches files, the network or extensions, which this node does not " +
    "allow over HTTP (only the database's own rows are served); its owner may allow directories of files with " +
    "`haduck serve --allow-files DIR`", 403);
}

/** DuckDB errors that say the server, not the statement, is at fault: 500 or 503, never 400. */
const SERVER_SIDE = /^(FATAL|INTERNAL|Out of Memory|IO) Error/i;
const CONFLICT = /^TransactionContext Error/i;
/** Absolute paths in a message that the statement did not name are the host's business. */
const PATH = /(^|[\s"'(=])((?:haduck:\/\/)?\/[^\s"'),]+)/g;

/** `message` without the host paths `sql` did not give. */
export function scrubPaths(message: string, sql: string): string {
  return message.replace(PATH, (whole, before: string, path: string) => sql.includes(path) ? whole : `${before}<path>`);
}

/** A DuckDB failure as the status it deserves: the statement's fault 400, a conflict 409, the server's 500. */
export function statementError(error: unknown, sql = ""): Error {
  if (error instanceof StatementRefused || (error as { code?: unknown }).code !== undefined) return error as Error;
  const message = scrubPaths((error as Error).message, sql);
  if (/^Permission Error/i.test(message)) return filesRefused();
  if (/configuration has been locked/i.test(message)) {
    return new StatementRefused("This statement changes a setting of the node, which no request may: settings are " +
      "given where the node starts", 403);
  }
  if (SERVER_SIDE.test(message)) return coded(message, "INTERNAL");
  if (CONFLICT.test(message)) return coded(`${message}; retry`, "BUSY");
  return new SqlError(message);
}

/** What DuckDB could not prepare (`error`), or a statement that writes and may not here (`write`). */
export type NotRun = { notRun: "write" } | { notRun: "unprepared"; error: Error };

/** Integer types whose JSON DuckDB gives as strings; within 2^53 they answer as numbers. */
const INTEGER_TYPES = new Set(["BIGINT", "UBIGINT", "HUGEINT", "UHUGEINT", "INTEGER", "UINTEGER", "SMALLINT",
  "USMALLINT", "TINYINT", "UTINYINT", "VARINT"]);

/**
 * Whether the prepared statement writes (or is refused): by its type, and an EXPLAIN by what it
 * wraps (EXPLAIN ANALYZE runs it). Throws StatementRefused for what is never served.
 */
async function writes(connection: DuckDBConnection, type: StatementType, sql: string, limits: SqlLimits, depth = 0):
  Promise<boolean> {
  const judged = CLASS_OF_TYPE[type] ?? CLASS_OF_TYPE[StatementType.INVALID];
  if (judged.kind === "refused") throw new StatementRefused(`This statement is not served over HTTP: ${judged.why}`, judged.status);
  if (FILE_STATEMENTS.has(type) && !limits.filesAllowed) throw filesRefused();
  if (judged.kind !== "explain") return judged.kind === "write";
  const explained = explainedStatement(sql);
  if (!explained || depth > 2) {
    throw new StatementRefused("This EXPLAIN is not served over HTTP: write EXPLAIN [ANALYZE] <statement>", 403);
  }
  const inner = await connection.prepare(explained.inner);
  return await writes(connection, inner.statementType, explained.inner, limits, depth + 1) && explained.analyze;
}

/**
 * Runs one statement of `POST /sql` on `connection`. A read runs in a READ ONLY transaction, so
 * DuckDB itself refuses what writes under a reader's type (`SELECT nextval(...)`): that one runs
 * again as a write, where `writable` (a follower's replica is not: it answers `notRun` and the
 * caller forwards the statement).
 */
export async function executeStatement(connection: DuckDBConnection, request: SqlRequest, writable: boolean,
  limits: SqlLimits): Promise<Omit<SqlAnswer, "position"> | NotRun> {
  judgeAnyStatement(request.sql, limits.ownPaths, limits.filesAllowed);
  // A parameter is text DuckDB may use as a path (read_blob($1)): never one of the node's own files.
  for (const param of request.params) {
    if (typeof param === "string" && (/haduck:/i.test(param) || limits.ownPaths.some((path) => path && param.includes(path)))) {
      throw new StatementRefused("This statement is not served over HTTP: a parameter names one of the node's own files",
        403);
    }
  }
  // What runs is what was judged: an EXPLAIN is rebuilt from the statement it wraps.
  const sql = statementToRun(request.sql);
  const entry: Running = { connection, phase: "judging" };
  // DuckDB does not look at an interrupt everywhere (constant folding while it binds runs on): a
  // statement that is not yet writing is answered at the timeout and a second, and detached from its caller; its
  // slot in the gate stays taken until DuckDB is done with it, so detached work stays bounded too.
  let giveUp!: (error: Error) => void;
  const givenUp = new Promise<never>((_, reject) => giveUp = reject);
  givenUp.catch(() => {});
  let work!: Promise<Omit<SqlAnswer, "position"> | NotRun>;
  work = limits.gate.run(request.signal, entry, async () => {
    const hardTimer = setTimeout(() => {
      if (entry.phase === "writing") return; // a write's outcome is only known once DuckDB says it
      entry.detached = true;
      entry.interrupted ??= "timeout";
      // The connection is busy until DuckDB is done: whoever owns it closes it only then (closing
      // a busy connection waits for it, on the event loop).
      giveUp(Object.assign(interruptedError(entry, limits), { settled: work.then(() => {}, () => {}) }));
    }, limits.statementTimeoutMs + 1000);
    // The clock and the client's departure cover everything from here: parse, bind (constant
    // folding runs there), and the run.
    const timer = setTimeout(() => interrupt(entry, "timeout"), limits.statementTimeoutMs);
    const left = () => interrupt(entry, "client");
    request.signal?.addEventListener("abort", left, { once: true });
    try {
      if (request.signal?.aborted) throw coded("The client left before its statement ran", "CLIENT_GONE");
      return await judgeAndRun(connection, { ...request, sql }, writable, limits, entry);
    } catch (error) {
      // Interrupted before its rows (judging, binding): what the client gets says why.
      if (entry.interrupted && entry.interrupted !== "size" && entry.phase !== "writing") {
        throw interruptedError(entry, limits);
      }
      throw error;
    } finally {
      clearTimeout(timer);
      clearTimeout(hardTimer);
      request.signal?.removeEventListener("abort", left);
    }
  }, readerOf(request));
  return await Promise.race([work, givenUp]);
}

/** The gate's wait is as long as a statement may run. */
function readerOf(request: SqlRequest): boolean {
  return request.readOnly === true;
}

async function judgeAndRun(connection: DuckDBConnection, request: SqlRequest, writable: boolean, limits: SqlLimits,
  entry: Running): Promise<Omit<SqlAnswer, "position"> | NotRun> {
  if (request.readOnly) {
    await judgeReaderStatement(connection, request.sql, request.params).catch((error) => {
      throw statementError(error, request.sql);
    });
  }
  let prepared: DuckDBPreparedStatement;
  try {
    prepared = await connection.prepare(request.sql);
    if (request.params.length > 0) prepared.bind(request.params as DuckDBValue[]);
  } catch (error) {
    const mapped = statementError(error, request.sql);
    if (mapped instanceof StatementRefused || entry.interrupted) throw mapped; // refused here, refused by the leader too
    return { notRun: "unprepared", error: mapped };
  }
  if (entry.detached) throw interruptedError(entry, limits); // its client has its answer already
  let write: boolean;
  try {
    write = await writes(connection, prepared.statementType, request.sql, limits);
  } catch (error) {
    throw statementError(error, request.sql);
  }
  if (write && request.readOnly) throw new ReadOnlyError();
  let answer: { columns: string[]; rowsJson: string[] } | undefined;
  if (!write) {
    await connection.run("BEGIN TRANSACTION READ ONLY");
    try {
      entry.phase = "reading";
      answer = await collect(prepared, entry, request, limits);
      entry.phase = "judging";
      await connection.run("COMMIT");
    } catch (error) {
      entry.phase = "judging";
      await connection.run("ROLLBACK").catch(() => {});
      if (!/read-only/i.test((error as Error).message)) throw error;
      if (request.readOnly) throw new ReadOnlyError();
      write = true; // it writes after all: run it as what it is
    }
  }
  if (write) {
    if (!writable) return { notRun: "write" };
    if (entry.detached) throw interruptedError(entry, limits);
    entry.phase = "writing";
    answer = await collect(prepared, entry, request, limits);
  }
  // Converted before any durability wait: nothing may fail between the answer and a commit the client could repeat.
  return { ...answer!, write };
}

/**
 * Streams the statement's result chunk by chunk into JSON rows, interrupting it at the timeout,
 * when the client leaves, or when the rows pass the byte bound.
 */
async function collect(prepared: DuckDBPreparedStatement, entry: Running, request: SqlRequest, limits: SqlLimits):
  Promise<{ columns: string[]; rowsJson: string[] }> {
  try {
    if (entry.interrupted) throw interruptedError(entry, limits); // interrupted while it was judged or bound
    const result: DuckDBResult = await prepared.stream();
    const integer = result.columnTypes().map((type) => INTEGER_TYPES.has(type.toString()));
    const rowsJson: string[] = [];
    let bytes = 0;
    const tooLarge = () => {
      interrupt(entry, "size");
      return coded(`The answer is larger than this node's --max-result-bytes (${limits.resultBytesMax} bytes ` +
        "of JSON rows): add a LIMIT, aggregate, or page with WHERE ... ORDER BY ... LIMIT", "RESULT_TOO_LARGE");
    };
    for (;;) {
      const chunk = await result.fetchChunk();
      if (!chunk || chunk.rowCount === 0) break;
      // Weighed before it is converted: converting runs on the event loop and cannot be interrupted,
      // and one row may hold a list of millions of values (a lease renew waited 5 s behind one).
      if (bytes + chunkWeight(chunk) > limits.resultBytesMax) throw tooLarge();
      const chunkRows = chunk.convertRows(JsonDuckDBValueConverter);
      // One string per chunk, not per row: what the answer keeps is a few large strings, which the
      // garbage collector moves cheaply, rather than millions of small ones.
      const piece: string[] = [];
      for (const row of chunkRows) {
        const converted = row.map((value, index) => {
          if (!integer[index] || typeof value !== "string") return value;
          const number = Number(value);
          return Number.isSafeInteger(number) ? number : value;
        });
        const json = JSON.stringify(converted);
        bytes += json.length + 1;
        if (bytes > limits.resultBytesMax) throw tooLarge();
        piece.push(json);
      }
      if (piece.length > 0) rowsJson.push(piece.join(","));
    }
    // An interrupted read's stream may simply end: its rows are not the answer. A write whose
    // stream ended without an error committed (auto-commit ends with the stream): that is its answer.
    if (entry.interrupted && entry.phase === "reading") throw interruptedError(entry, limits);
    return { columns: result.columnNames(), rowsJson };
  } catch (error) {
    if (entry.interrupted && entry.interrupted !== "size") throw interruptedError(entry, limits);
    throw statementError(error, request.sql);
  }
}

/**
 * Interrupts the statement for `why`. DuckDB is asked to stop only while it runs the statement
 * (reading or writing): asked while it binds, `interrupt()` waits for the bind to end, on the
 * event loop (measured: /status blocked 18 s behind a constant-folded list_reduce); there the
 * flag alone stops the statement before it runs, and the answer comes from the hard timer.
 */
function interrupt(entry: Running, why: string): void {
  entry.interrupted ??= why;
  if (entry.phase === "reading" || entry.phase === "writing") entry.connection.interrupt();
}

/**
 * At least how many bytes of JSON a chunk becomes, read off DuckDB's vectors without converting a
 * value: one per value, every element of a list, array or map, every byte of a string, every digit
 * of an integer. (The vector
 * classes of @duckdb/node-api 1.4.4-r.4, pinned exactly, keep their children and string headers in
 * the fields read here; tests/sql_abuse.test.ts fails if that changes.)
 */
export function chunkWeight(chunk: DuckDBDataChunk): number {
  let weight = 0;
  for (let column = 0; column < chunk.columnCount; column++) {
    weight += vectorWeight(chunk.getColumnVector(column), chunk.rowCount);
  }
  return weight;
}

type VectorInside = {
  childData?: { itemCount: number };
  entryVectors?: readonly unknown[];
  listVector?: unknown;
  structVector?: unknown;
  dataView?: DataView;
  items?: ArrayBufferView & { constructor: unknown };
  itemCount?: number;
  type?: { typeId?: number };
  validity?: { itemValid(index: number): boolean };
};

function vectorWeight(vector: unknown, count: number): number {
  const inside = vector as VectorInside;
  if (inside.childData) return inside.childData.itemCount + vectorWeight(inside.childData, inside.childData.itemCount);
  if (inside.listVector) return vectorWeight(inside.listVector, count);
  if (inside.structVector) return vectorWeight(inside.structVector, count);
  if (inside.entryVectors) return inside.entryVectors.reduce((sum: number, entry) => sum + vectorWeight(entry, count), 0);
  // Integers (a list's child keeps them in `items`, a typed array over DuckDB's vector).
  const items = inside.items;
  const width = items && INTEGER_ARRAYS.get(items.constructor);
  if (items && width) return integerDigits(new DataView(items.buffer, items.byteOffset, items.byteLength), count, width);
  const typeId = inside.type?.typeId;
  if (inside.dataView && (typeId === DuckDBTypeId.VARCHAR || typeId === DuckDBTypeId.BLOB)) {
    // DuckDB's string_t: 16 bytes per value, its length in the first four; a NULL's bytes are not a
    // value (they held 413 for a small CALL duckdb_settings()).
    const validity = inside.validity;
    let bytes = 0;
    for (let i = 0; i < count && (i + 1) * 16 <= inside.dataView.byteLength; i++) {
      if (validity && !validity.itemValid(i)) continue;
      bytes += inside.dataView.getUint32(i * 16, true);
    }
    return count + bytes;
  }
  return count;
}

/** Typed arrays of integer vectors: their width in bytes, negative when signed. */
const INTEGER_ARRAYS = new Map<unknown, number>([[Int8Array, -1], [Int16Array, -2], [Int32Array, -4],
  [BigInt64Array, -8], [Uint8Array, 1], [Uint16Array, 2], [Uint32Array, 4], [BigUint64Array, 8]]);

/**
 * The decimal digits (and signs) of `count` integers, plus one separator each: what their JSON takes
 * at least. Counted off the vector's bytes (3 million values in about 20 ms), where converting them
 * takes over a second: a list of millions of 7-digit numbers weighs what it will cost.
 */
function integerDigits(view: DataView, count: number, width: number): number {
  const bytes = Math.abs(width);
  let total = count;
  for (let i = 0; i < count && (i + 1) * bytes <= view.byteLength; i++) {
    const at = i * bytes;
    const value = bytes === 1 ? (width < 0 ? view.getInt8(at) : view.getUint8(at))
      : bytes === 2 ? (width < 0 ? view.getInt16(at, true) : view.getUint16(at, true))
      : bytes === 4 ? (width < 0 ? view.getInt32(at, true) : view.getUint32(at, true))
      : (width < 0 ? view.getInt32(at + 4, true) : view.getUint32(at + 4, true)) * 4294967296 + view.getUint32(at, true);
    const magnitude = Math.abs(value);
    total += (value < 0 ? 1 : 0) + (magnitude < 10 ? 1 : magnitude < 100 ? 2 : magnitude < 1000 ? 3 : magnitude < 10_000
      ? 4 : magnitude < 100_000 ? 5 : magnitude < 1_000_000 ? 6 : magnitude < 10_000_000 ? 7
      : Math.floor(Math.log10(magnitude)) + 1);
  }
  return total;
}

/** Why an interrupted statement stopped, as the error its client gets. */
function interruptedError(entry: Running, limits: SqlLimits): Error {
  if (entry.interrupted === "timeout") {
    return coded(`The statement ran longer than this node's --statement-timeout (${limits.statementTimeoutMs} ms) ` +
      "and was interrupted; nothing it did was kept", "STATEMENT_TIMEOUT");
  }
  if (entry.interrupted === "client") return coded("The client left; its statement was interrupted", "CLIENT_GONE");
  if (entry.interrupted === "size") return coded("The answer passed --max-result-bytes", "RESULT_TOO_LARGE");
  return coded(`The statement was interrupted: ${entry.interrupted}; retry`, "NO_LEADER");
}

/**
 * One statement on the attached database, on a connection of its own. A write answers once its
 * commit is durable (and, in a cluster, while this node's lease still holds: `stillLeads`); a
 * failure after the commit never invites a blind retry.
 */
export async function runSql(db: AttachedDatabase, store: BlockStore | undefined, request: SqlRequest,
  limits: SqlLimits, stillLeads: () => string | undefined = () => undefined): Promise<SqlAnswer> {
  const own = await db.instance.connect();
  let detachedUntil: Promise<void> | undefined;
  try {
    await own.run(`USE ${db.alias}`);
    const ran = await executeStatement(own, request, !request.readOnly, limits);
    if ("notRun" in ran) throw ran.notRun === "unprepared" ? ran.error : new ReadOnlyError();
    if (ran.write && request.durable) {
      let durable = false;
      let why = store ? db.replicator.status.lastError ?? "frames and the checkpoint failed" : "local-only: no store";
      try {
        durable = await db.flush();
        if (!durable) why = store ? db.replicator.status.lastError ?? why : why;
      } catch (error) {
        why = (error as Error).message;
      }
      // Durable in the store, but from a node that may no longer lead: its commit may be on a history
      // another leader fenced, so it is not acknowledged (the new leader has it if it landed first).
      const deposed = durable ? stillLeads() : undefined;
      if (deposed) {
        throw new NotDurableError(`The statement committed here, but this node stopped leading (${deposed}): ` +
          "whether the new leader has it is unknown; read it back there before you run it again");
      }
      if (!durable) {
        throw new NotDurableError(`The statement committed, but its commit is not durable in the store (${why}): ` +
          "do not run it again; it reaches the store once the store answers (GET /status), or send \"durable\": false");
      }
    }
    return { ...ran, position: db.replicator.position };
  } catch (error) {
    detachedUntil = (error as { settled?: Promise<void> }).settled;
    throw error;
  } finally {
    if (detachedUntil) void detachedUntil.then(() => own.closeSync());
    else own.closeSync();
  }
}
