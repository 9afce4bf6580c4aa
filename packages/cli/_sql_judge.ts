/**
 * @module
 * Judges a statement of `POST /sql` by what it does, not by its outer type (issue 31). DuckDB's
 * sandbox (`sandbox()` in the bridge) is the wall: no file, network, extension or setting is
 * reachable from any statement. This is the door in front of it:
 *
 * - every statement type DuckDB 1.4.4 has is classified (`CLASS_OF_TYPE`): a read, a write, or
 *   refused for every token (settings, extensions, attachments, transactions across requests,
 *   statements that live on a connection);
 * - `EXPLAIN` and `EXPLAIN ANALYZE` are judged by the statement they wrap (ANALYZE runs it);
 * - a reader (the read token) runs reads only, from an allow-list: the statement must parse as a
 *   SELECT (DuckDB's own parser, `json_serialize_sql`, before anything binds: binding a file
 *   function already opens the file), every table function it names must be on
 *   `READER_TABLE_FUNCTIONS`, and no table may be a file path (`FROM '/etc/passwd'`);
 * - functions that change the instance from inside a statement (`enable_logging()`, ...) are
 *   refused for every token; checkpoint functions are the admin's (not on a reader's list).
 */
import { type DuckDBConnection, StatementType } from "@duckdb/node-api";

/** What a statement type is: it reads, it writes the database, or it is not served over HTTP. */
export type StatementClass = { kind: "read" } | { kind: "write" } | { kind: "explain" } | {
  kind: "refused";
  why: string;
  status: 400 | 403;
};

/** Every statement type of DuckDB 1.4.4 (`StatementType` of @duckdb/node-api), classified. */
export const CLASS_OF_TYPE: Record<StatementType, StatementClass> = {
  [StatementType.INVALID]: { kind: "refused", status: 400, why: "DuckDB does not know what this statement is" },
  [StatementType.SELECT]: { kind: "read" },
  [StatementType.EXPLAIN]: { kind: "explain" },
  [StatementType.INSERT]: { kind: "write" },
  [StatementType.UPDATE]: { kind: "write" },
  [StatementType.DELETE]: { kind: "write" },
  [StatementType.CREATE]: { kind: "write" },
  [StatementType.ALTER]: { kind: "write" },
  [StatementType.DROP]: { kind: "write" },
  [StatementType.CREATE_FUNC]: { kind: "write" },
  // ANALYZE and VACUUM rewrite statistics; COPY reads files into a table or writes them (the
  // sandbox allows only --allow-files directories); CALL runs a table function (CHECKPOINT is one).
  [StatementType.ANALYZE]: { kind: "write" },
  [StatementType.VACUUM]: { kind: "write" },
  [StatementType.COPY]: { kind: "write" },
  [StatementType.EXPORT]: { kind: "write" },
  [StatementType.CALL]: { kind: "write" },
  // PRAGMA is parsed into a SELECT (table_info, version) or a setting (refused by the locked configuration).
  [StatementType.PRAGMA]: { kind: "write" },
  [StatementType.TRANSACTION]: { kind: "refused", status: 400,
    why: "each request is its own transaction: send one statement that does the whole change" },
  [StatementType.PREPARE]: { kind: "refused", status: 400,
    why: "a prepared statement lives on a connection, and each request has its own: send \"params\" instead" },
  [StatementType.EXECUTE]: { kind: "refused", status: 400,
    why: "a prepared statement lives on a connection, and each request has its own: send \"params\" instead" },
  [StatementType.RELATION]: { kind: "refused", status: 400, why: "relations are not statements of SQL over HTTP" },
  [StatementType.LOGICAL_PLAN]: { kind: "refused", status: 400, why: "logical plans are not statements of SQL over HTTP" },
  [StatementType.MULTI]: { kind: "refused", status: 400, why: "one statement per request" },
  [StatementType.ATTACH]: { kind: "refused", status: 403,
    why: "the served database is attached already; other databases are not replicated" },
  [StatementType.DETACH]: { kind: "refused", status: 403, why: "the served database stays attached while it is served" },
  [StatementType.LOAD]: { kind: "refused", status: 403, why: "extensions are loaded only when the node starts" },
  [StatementType.EXTENSION]: { kind: "refused", status: 403, why: "extensions are not installed over HTTP" },
  [StatementType.VARIABLE_SET]: { kind: "refused", status: 403,
    why: "variables would outlive the request on a shared connection" },
  [StatementType.SET]: { kind: "refused", status: 403,
    why: "settings are the node's: they would change every connection of the serving process" },
};

/** Table functions a reader may name: pure generators and the catalog's own views. Anything else: 403. */
export const READER_TABLE_FUNCTIONS = new Set([
  "range", "generate_series", "unnest", "repeat", "repeat_row", "json_each", "json_tree", "test_all_types",
  "duckdb_columns", "duckdb_constraints", "duckdb_databases", "duckdb_dependencies", "duckdb_functions",
  "duckdb_indexes", "duckdb_keywords", "duckdb_schemas", "duckdb_sequences", "duckdb_tables", "duckdb_types",
  "duckdb_views", "duckdb_approx_database_count", "pragma_table_info", "pragma_show", "pragma_storage_info",
  "pragma_database_size", "pragma_version", "pragma_metadata_info", "information_schema_columns",
]);

/** Functions that change the instance from inside a statement: refused for every token. */
const INSTANCE_FUNCTIONS = /\b(enable_logging|disable_logging|truncate_duckdb_logs|enable_profiling|disable_profiling|enable_checkpoint_on_shutdown|disable_checkpoint_on_shutdown|enable_object_cache|disable_object_cache|install_extension|load_extension|create_secret|drop_secret)\b/i;
export class StatementRefused extends Error {
  readonly code: string;
  readonly status: 400 | 403;
  constructor(message: string, status: 400 | 403) {
    super(message);
    this.name = "StatementRefused";
    this.status = status;
    this.code = status === 403 ? "FORBIDDEN" : "SQL_ERROR";
  }
}

/**
 * The statement an `EXPLAIN` wraps: what follows `EXPLAIN`, `EXPLAIN ANALYZE [VERBOSE]`,
 * `EXPLAIN VERBOSE` or `EXPLAIN (options)`, past comments; undefined when `sql` is not such a
 * wrapper in a form this reads (then it is refused, never guessed).
 */
export function explainedStatement(sql: string): { inner: string; analyze: boolean } | undefined {
  let at = 0;
  const skip = () => {
    for (;;) {
      const rest = sql.slice(at);
      const space = /^\s+/.exec(rest);
      if (space) at += space[0].length;
      else if (rest.startsWith("--")) at = rest.includes("\n") ? at + rest.indexOf("\n") + 1 : sql.length;
      else if (rest.startsWith("/*")) {
        const end = rest.indexOf("*/");
        if (end < 0) return false;
        at += end + 2;
      } else return true;
    }
  };
  const word = () => {
    if (!skip()) return undefined;
    const match = /^[A-Za-z_]+/.exec(sql.slice(at));
    return match ? match[0].toUpperCase() : undefined;
  };
  const take = (expected: string[]) => {
    const next = word();
    if (next === undefined || !expected.includes(next)) return undefined;
    at += next.length;
    return next;
  };
  if (!take(["EXPLAIN"])) return undefined;
  let analyze = false;
  if (take(["ANALYZE", "ANALYSE"])) {
    analyze = true;
    take(["VERBOSE"]);
  } else if (!take(["VERBOSE"])) {
    if (!skip()) return undefined;
    if (sql[at] === "(") {
      // Options: words and quoted values up to the closing parenthesis; ANALYZE among them runs it.
      const close = /^\(([A-Za-z_,\s'"]*)\)/.exec(sql.slice(at));
      if (!close) return undefined;
      analyze = /\bANALY[SZ]E\b/i.test(close[1]);
      at += close[0].length;
    }
  }
  const inner = sql.slice(at).trim();
  return inner ? { inner, analyze } : undefined;
}

/** Every table function and every table a parsed SELECT names (DuckDB's own parse, as JSON). */
function namedSources(node: unknown, found: { functions: string[]; tables: string[] }) {
  if (Array.isArray(node)) {
    for (const child of node) namedSources(child, found);
    return found;
  }
  if (node === null || typeof node !== "object") return found;
  const record = node as Record<string, unknown>;
  if (record.type === "TABLE_FUNCTION") {
    const fn = record.function as { function_name?: unknown } | undefined;
    found.functions.push(String(fn?.function_name ?? "").toLowerCase());
  }
  if (record.type === "BASE_TABLE") found.tables.push(String(record.table_name ?? ""));
  for (const value of Object.values(record)) namedSources(value, found);
  return found;
}

/** A table name that is a file or an address (DuckDB would read it as one). */
const FILE_LIKE = /[/\\]|:\/\/|\.(csv|tsv|txt|json|jsonl|ndjson|parquet|duckdb|db|sqlite|xlsx|arrow|gz|zst)$/i;

/**
 * Checks, before DuckDB binds anything, that a reader's statement is a SELECT that names only
 * allowed table functions and no file; StatementRefused (403) says what is not.
 */
export async function judgeReaderStatement(connection: DuckDBConnection, sql: string): Promise<void> {
  // The verdict depends on the text alone (a parse, nothing bound): a text seen allowed is allowed.
  if (READER_ALLOWED.has(sql)) return;
  await judgeReaderText(connection, sql);
  if (READER_ALLOWED.size >= READER_ALLOWED_MAX) READER_ALLOWED.delete(READER_ALLOWED.values().next().value!);
  READER_ALLOWED.add(sql);
}

/** Texts a reader was allowed to run, oldest first: the judge parses each text once. */
const READER_ALLOWED = new Set<string>();
const READER_ALLOWED_MAX = 1024;

async function judgeReaderText(connection: DuckDBConnection, sql: string): Promise<void> {
  const refuse = (why: string) => new StatementRefused(`This token (HADUCK_READ_TOKEN) may only run reads: ${why}`, 403);
  const explained = explainedStatement(sql);
  const statement = explained ? explained.inner : sql;
  if (!explained && /^\s*(--[^\n]*\n\s*|\/\*[\s\S]*?\*\/\s*)*explain\b/i.test(sql)) {
    throw refuse("write EXPLAIN [ANALYZE] followed by a SELECT");
  }
  const reader = await connection.runAndReadAll("SELECT json_serialize_sql($1::VARCHAR)", [statement]);
  let parsed: { error?: boolean; error_message?: string; statements?: unknown[] };
  try {
    parsed = JSON.parse(String(reader.getRowsJS()[0][0]));
  } catch {
    throw refuse("the statement could not be read as a SELECT");
  }
  if (parsed.error) {
    const message = String(parsed.error_message ?? "");
    if (/Only SELECT statements/i.test(message)) throw refuse("only SELECT (or EXPLAIN of one) is served to it");
    throw new StatementRefused(message || "the statement does not parse", 400);
  }
  if ((parsed.statements ?? []).length !== 1) throw new StatementRefused("one statement per request", 400);
  const { functions, tables } = namedSources(parsed.statements, { functions: [], tables: [] });
  for (const name of functions) {
    if (!READER_TABLE_FUNCTIONS.has(name)) {
      throw refuse(`the table function ${name}() is not among those a reader may call (files, settings and ` +
        "state are the admin's)");
    }
  }
  for (const name of tables) {
    if (FILE_LIKE.test(name)) throw refuse(`${JSON.stringify(name)} names a file, not a table`);
  }
}

/** Refuses, for every token, a statement that changes the instance from inside (a logging or profiling switch). */
export function judgeAnyStatement(sql: string): void {
  const instance = INSTANCE_FUNCTIONS.exec(sql);
  if (instance) {
    throw new StatementRefused(`This statement is not served over HTTP: ${instance[1]}() changes the whole ` +
      "instance; set it where the node starts", 403);
  }
}
