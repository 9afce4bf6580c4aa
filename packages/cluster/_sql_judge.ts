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
import { oversizedCall, parameterLength, READER_BUILD_MAX, REPLACEMENT_MAX, STRUCTURE_DEPTH_MAX } from "./_sql_weigh.ts";

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
export const READER_TABLE_FUNCTIONS: ReadonlySet<string> = new Set([
  "range", "generate_series", "unnest", "repeat", "repeat_row", "json_each", "json_tree", "test_all_types",
  "duckdb_columns", "duckdb_constraints", "duckdb_dependencies", "duckdb_functions",
  "duckdb_indexes", "duckdb_keywords", "duckdb_schemas", "duckdb_sequences", "duckdb_tables", "duckdb_types",
  "duckdb_views", "duckdb_approx_database_count", "pragma_table_info", "pragma_show", "pragma_storage_info",
  "pragma_version", "pragma_metadata_info", "information_schema_columns",
]);

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
  let rest = stripLeadingComments(sql);
  const take = (expected: string[]) => {
    const word = /^[A-Za-z_]+/.exec(rest)?.[0];
    if (word === undefined || !expected.includes(word.toUpperCase())) return false;
    rest = stripLeadingComments(rest.slice(word.length));
    return true;
  };
  if (!take(["EXPLAIN"])) return undefined;
  let analyze = false;
  if (take(["ANALYZE", "ANALYSE"])) {
    analyze = true;
    take(["VERBOSE"]);
  } else if (!take(["VERBOSE"]) && rest.startsWith("(")) {
    // Options: words and quoted values up to the closing parenthesis; ANALYZE among them runs it.
    const close = /^\(([A-Za-z_,\s'"]*)\)/.exec(rest);
    if (!close) return undefined;
    analyze = /\bANALY[SZ]E\b/i.test(close[1]);
    rest = stripLeadingComments(rest.slice(close[0].length));
  }
  const inner = rest.trim();
  return inner ? { inner, analyze } : undefined;
}

/**
 * The text that runs for `sql`: an EXPLAIN is rebuilt from the statement it was judged to wrap
 * (`EXPLAIN [ANALYZE] <inner>`), so that what DuckDB runs is exactly what was judged, whatever a
 * comment or a quote makes of the prefix; anything else runs as sent.
 */
export function statementToRun(sql: string): string {
  const explained = explainedStatement(sql);
  return explained ? `EXPLAIN ${explained.analyze ? "ANALYZE " : ""}${explained.inner}` : sql;
}

/** Every function, table function and table a parsed SELECT names (DuckDB's own parse, as JSON). */
interface Named {
  functions: string[];
  tableFunctions: string[];
  tables: { schema: string; name: string }[];
}

function namedSources(node: unknown, found: Named): Named {
  if (Array.isArray(node)) {
    for (const child of node) namedSources(child, found);
    return found;
  }
  if (node === null || typeof node !== "object") return found;
  const record = node as Record<string, unknown>;
  if (record.type === "TABLE_FUNCTION") {
    const fn = record.function as { function_name?: unknown } | undefined;
    found.tableFunctions.push(String(fn?.function_name ?? "").toLowerCase());
  } else if (record.class === "FUNCTION" && typeof record.function_name === "string") {
    found.functions.push(record.function_name.toLowerCase());
  }
  if (record.type === "BASE_TABLE") {
    found.tables.push({ schema: String(record.schema_name ?? ""), name: String(record.table_name ?? "") });
  }
  for (const value of Object.values(record)) namedSources(value, found);
  return found;
}

/**
 * Scalar functions a reader may not call: they tell of the node (settings, paths), not of the rows.
 * `get_block_size` is one of DuckDB's own macros, over `pragma_database_size()`.
 */
const READER_DENIED_FUNCTIONS = /^(current_setting|getenv|haduck_\w*|get_block_size)$/;
/** System views; a reader reads only those also on `READER_TABLE_FUNCTIONS`. */
const SYSTEM_VIEW = /^(pg_|pragma_|duckdb_|sqlite_)/i;

/** A table name that is a file or an address (DuckDB would read it as one). */
const FILE_LIKE = /[/\\]|:\/\/|\.(csv|tsv|txt|json|jsonl|ndjson|parquet|duckdb|db|sqlite|xlsx|arrow|gz|zst)$/i;

/**
 * Checks, before DuckDB binds anything, that a reader's statement is a SELECT that names only
 * allowed table functions and no file; StatementRefused (403) says what is not.
 */
export async function judgeReaderStatement(connection: DuckDBConnection, sql: string, params: unknown[] = []):
  Promise<void> {
  // Without parameters the verdict depends on the text alone (a parse, nothing bound): a text seen
  // allowed is allowed. Parameters count towards what it may build, so those are judged each time.
  if (params.length === 0 && READER_ALLOWED.has(sql)) return;
  await judgeReaderText(connection, sql, params);
  // Short texts only: the cache may not keep megabytes of a client's text alive.
  if (params.length > 0 || sql.length > READER_ALLOWED_TEXT_MAX) return;
  if (READER_ALLOWED.size >= READER_ALLOWED_MAX) READER_ALLOWED.delete(READER_ALLOWED.values().next().value!);
  READER_ALLOWED.add(sql);
}

/** Texts a reader was allowed to run, oldest first: the judge parses each text once. */
const READER_ALLOWED = new Set<string>();
const READER_ALLOWED_MAX = 1024;
const READER_ALLOWED_TEXT_MAX = 4096;

async function judgeReaderText(connection: DuckDBConnection, sql: string, params: unknown[]): Promise<void> {
  const refuse = (why: string) => new StatementRefused(`This token (HADUCK_READ_TOKEN) may only run reads: ${why}`, 403);
  const explained = explainedStatement(sql);
  const statement = explained ? explained.inner : sql;
  // Not a regular expression over the comments: one over a run of them backtracks for minutes.
  if (!explained && /^explain\b/i.test(stripLeadingComments(sql))) {
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
  const { functions, tableFunctions, tables } = namedSources(parsed.statements,
    { functions: [], tableFunctions: [], tables: [] });
  for (const name of tableFunctions) {
    if (!READER_TABLE_FUNCTIONS.has(name)) {
      throw refuse(`the table function ${name}() is not among those a reader may call (files, settings and ` +
        "state are the admin's)");
    }
  }
  for (const name of functions) {
    if (READER_DENIED_FUNCTIONS.test(name)) throw refuse(`${name}() tells of the node, not of the database`);
  }
  const oversized = oversizedCall(parsed.statements, params.reduce((sum: number, param) => sum + parameterLength(param), 0));
  if (oversized) {
    throw refuse(`${oversized} may build values (or recurse) past what the node bounds: sizes, widths, string ` +
      `constants and parameters of at most ${READER_BUILD_MAX} characters in all, sizes outside lambdas and other ` +
      `such calls, repeat() of a constant, replacements of at most ${REPLACEMENT_MAX}, a fold's accumulator used ` +
      `once, json_contains/json_merge_patch/json_structure of constants, JSON structures at most ` +
      `${STRUCTURE_DEPTH_MAX} deep (or use the table function, FROM range(n), which streams)`);
  }
  for (const { schema, name } of tables) {
    if (FILE_LIKE.test(name)) throw refuse(`${JSON.stringify(name)} names a file, not a table`);
    // The system's views of settings, files and state (pg_settings, pragma_database_list, ...).
    if (/^pg_catalog$/i.test(schema) || (SYSTEM_VIEW.test(name) && !READER_TABLE_FUNCTIONS.has(name.toLowerCase()))) {
      throw refuse(`${name} is a view of the node's settings or state, not of the database`);
    }
  }
}

/**
 * Text no token may send: functions that change the instance from inside a statement, SQL built
 * from strings (`query()`, `query_table()`: the judge cannot see what they run), the extension's
 * own controls (`haduck_*()`, which steer replication), and the node's own files (`haduck:` paths,
 * the database file, its WAL and temp directory, which DuckDB's sandbox lets DuckDB itself reach).
 */
const FORBIDDEN_TEXT: [RegExp, string][] = [
  [/\b(enable_logging|disable_logging|truncate_duckdb_logs|enable_profiling|disable_profiling|enable_profile|disable_profile|enable_checkpoint_on_shutdown|disable_checkpoint_on_shutdown|enable_object_cache|disable_object_cache|install_extension|load_extension|create_secret|drop_secret)\b/i,
    "changes the whole instance; set it where the node starts"],
  [/\b(query|query_table|json_execute_serialized_sql)"?\s*\(/i,
    "runs SQL built from strings, which cannot be judged: send the statement itself"],
  [/\bjson_execute_serialized_sql\b/i, "runs SQL built from strings, which cannot be judged: send the statement itself"],
  // It rebuilds a statement from JSON recursively: 9,507 nested nodes overflowed a thread's stack.
  [/\bjson_deserialize_sql\b/i, "rebuilds SQL from JSON, which cannot be judged: send the statement itself"],
  [/haduck_\w*/i, "steers haduck's replication, which is the node's own business"],
  [/haduck(-snapshot)?:/i, "names one of the node's own files"],
  // Escaped identifiers and strings (U&"\0071uery") could spell any name past the checks above.
  [/\bU&['"]/i, "spells a name in escapes; write it plainly"],
];

/**
 * DuckDB's functions that read files or the network, refused for every token unless the owner gave
 * `--allow-files`: DuckDB's sandbox lets the node's own files through (the database is attached
 * from them), and a path built from pieces or passed as a parameter would reach them.
 */
const FILE_FUNCTIONS = /\b(read_\w+|glob|parquet_\w+|sniff_csv|csv_scan|parquet_scan|json_scan|sqlite_scan|sqlite_attach|iceberg_\w+|delta_scan|duckdb_temporary_files)"?\s*\(/i;

/** PRAGMAs the admin may run: they read. Any other PRAGMA (settings, switches) is refused. */
const READ_PRAGMAS = /^\s*PRAGMA\s+(table_info|storage_info|database_size|version|show_tables|show_tables_expanded|show|platform|metadata_info|functions|collations|user_agent)\b/i;

/** Refuses, for every token, what no statement may do (see `FORBIDDEN_TEXT`), and the node's own paths. */
export function judgeAnyStatement(sql: string, ownPaths: string[] = [], filesAllowed = false): void {
  // What DuckDB reads as one string may be written as several ('hadu'<newline>'ck:...'), and a
  // comment may stand between a name and its parenthesis (query/**/(...)): the checks see the
  // text, the text with every comment a blank, and every string and quoted name as DuckDB joins it.
  const code = withoutComments(sql);
  const seen = [sql, code, ...quotedTexts(sql)];
  for (const [pattern, why] of FORBIDDEN_TEXT) {
    const found = seen.map((text) => pattern.exec(text)).find(Boolean);
    if (found) {
      throw new StatementRefused(`This statement is not served over HTTP: ${found[0].replace(/"?\s*\($/, "()")} ${why}`,
        403);
    }
  }
  if (!filesAllowed && (/^IMPORT\b/i.test(stripLeadingComments(sql)) || FILE_FUNCTIONS.test(code))) {
    throw new StatementRefused("This statement reaches files, which this node does not allow over HTTP; its owner " +
      "may allow directories of files with `haduck serve --allow-files DIR`", 403);
  }
  for (const path of ownPaths) {
    if (path && seen.some((text) => text.includes(path))) {
      throw new StatementRefused("This statement is not served over HTTP: it names one of the node's own files", 403);
    }
  }
  // A secret is the instance's, and a persistent one is a file wherever its name points (outside
  // the sandbox: DuckDB's secret directory is not a path a statement names).
  const statement = stripLeadingComments(explainedStatement(sql)?.inner ?? code);
  if (/^(CREATE|DROP)\s+(OR\s+REPLACE\s+)?((PERSISTENT|TEMPORARY|TEMP)\s+)?SECRET\b/i.test(statement)) {
    throw new StatementRefused("This statement is not served over HTTP: secrets are the node's; configure them " +
      "where the node starts", 403);
  }
  if (/^\s*PRAGMA\b/i.test(stripLeadingComments(sql)) && !READ_PRAGMAS.test(stripLeadingComments(sql))) {
    throw new StatementRefused("This PRAGMA is not served over HTTP: settings are the node's; read with the " +
      "pragma_* table functions (e.g. SELECT * FROM pragma_table_info('t'))", 403);
  }
}

/**
 * The strings and quoted names of `sql` as DuckDB reads them: '' and "" escapes, E'' strings,
 * dollar quotes, and adjacent string constants separated by a newline (and comments) joined into one.
 */
export function quotedTexts(sql: string): string[] {
  const out: string[] = [];
  let joinable = false; // the last token was a string, and only blanks and comments followed it
  let sawNewline = false;
  for (let i = 0; i < sql.length;) {
    const rest = sql.slice(i);
    const blank = /^[ \t\n\r\f\v]+/.exec(rest);
    if (blank) {
      if (/[\n\r]/.test(blank[0])) sawNewline = true;
      i += blank[0].length;
      continue;
    }
    if (rest.startsWith("--")) {
      const end = rest.search(/[\n\r]/);
      i = end < 0 ? sql.length : i + end;
      continue;
    }
    if (rest.startsWith("/*")) {
      const stripped = stripLeadingComments(rest);
      i = sql.length - stripped.length;
      continue;
    }
    const dollar = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(rest);
    const quote = rest[0] === "'" || ((rest[0] === "E" || rest[0] === "e") && rest[1] === "'") ? "'" : rest[0] === '"' ? '"' : "";
    if (dollar) {
      const end = rest.indexOf(dollar[0], dollar[0].length);
      const text = end < 0 ? rest.slice(dollar[0].length) : rest.slice(dollar[0].length, end);
      out.push(text);
      i += end < 0 ? rest.length : end + dollar[0].length;
      joinable = false;
      continue;
    }
    if (quote) {
      const escapes = rest[0] !== quote; // E'...'
      let j = escapes ? 2 : 1;
      let text = "";
      while (j < rest.length) {
        if (escapes && rest[j] === "\\") {
          text += rest[j + 1] ?? "";
          j += 2;
        } else if (rest[j] === quote && rest[j + 1] === quote) {
          text += quote;
          j += 2;
        } else if (rest[j] === quote) {
          j++;
          break;
        } else text += rest[j++];
      }
      if (quote === "'" && joinable && sawNewline) out[out.length - 1] += text;
      else out.push(text);
      joinable = quote === "'";
      sawNewline = false;
      i += j;
      continue;
    }
    joinable = false;
    sawNewline = false;
    i++;
  }
  return out;
}

/**
 * `sql` with every comment a blank, strings and quoted names untouched, read as DuckDB's scanner
 * reads them (block comments nest; '' and "" escapes, E'' strings, dollar quotes). One pass.
 */
export function withoutComments(sql: string): string {
  let out = "";
  let from = 0; // the start of the text not yet copied
  let i = 0;
  const skipTo = (end: number) => {
    out += sql.slice(from, i) + " ";
    i = from = end;
  };
  while (i < sql.length) {
    const c = sql[i];
    if (c === "-" && sql[i + 1] === "-") {
      let end = i + 2;
      while (end < sql.length && sql[end] !== "\n" && sql[end] !== "\r") end++;
      skipTo(end);
    } else if (c === "/" && sql[i + 1] === "*") {
      let depth = 0;
      let end = i;
      do {
        if (sql.startsWith("/*", end)) (depth++, end += 2);
        else if (sql.startsWith("*/", end)) (depth--, end += 2);
        else if (end >= sql.length) break;
        else end++;
      } while (depth > 0);
      skipTo(Math.min(end, sql.length));
    } else if (c === "'" || c === '"') {
      const escapes = c === "'" && (sql[i - 1] === "E" || sql[i - 1] === "e") && !/[A-Za-z0-9_]/.test(sql[i - 2] ?? "");
      let end = i + 1;
      while (end < sql.length) {
        if (escapes && sql[end] === "\\") end += 2;
        else if (sql[end] === c && sql[end + 1] === c) end += 2;
        else if (sql[end] === c) {
          end++;
          break;
        } else end++;
      }
      i = end;
    } else if (c === "$") {
      const tag = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i, i + 256))?.[0];
      if (tag && !/[A-Za-z0-9_]/.test(sql[i - 1] ?? "")) {
        const end = sql.indexOf(tag, i + tag.length);
        i = end < 0 ? sql.length : end + tag.length;
      } else i++;
    } else i++;
  }
  return out + sql.slice(from);
}

/**
 * `sql` without the comments and blanks before its first word, read as DuckDB's scanner
 * (postgres' scan.l) reads them: block comments nest, a line comment ends at \n or \r. An
 * unterminated comment leaves nothing.
 */
function stripLeadingComments(sql: string): string {
  let rest = sql;
  for (;;) {
    const trimmed = rest.replace(/^[ \t\n\r\f\v]+/, "");
    if (trimmed.startsWith("--")) {
      const end = trimmed.search(/[\n\r]/);
      rest = end < 0 ? "" : trimmed.slice(end + 1);
    } else if (trimmed.startsWith("/*")) {
      let depth = 0;
      let i = 0;
      do {
        if (trimmed.startsWith("/*", i)) (depth++, i += 2);
        else if (trimmed.startsWith("*/", i)) (depth--, i += 2);
        else if (i >= trimmed.length) return "";
        else i++;
      } while (depth > 0);
      rest = trimmed.slice(i);
    } else return trimmed;
  }
}
