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
export const READER_TABLE_FUNCTIONS: ReadonlySet<string> = new Set([
  "range", "generate_series", "unnest", "repeat", "repeat_row", "json_each", "json_tree", "test_all_types",
  "duckdb_columns", "duckdb_constraints", "duckdb_dependencies", "duckdb_functions",
  "duckdb_indexes", "duckdb_keywords", "duckdb_schemas", "duckdb_sequences", "duckdb_tables", "duckdb_types",
  "duckdb_views", "duckdb_approx_database_count", "pragma_table_info", "pragma_show", "pragma_storage_info",
  "pragma_version", "pragma_metadata_info", "information_schema_columns",
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

/**
 * Scalar functions that build a value whose size an argument gives (a list of n elements, a string
 * of n characters), and which of their arguments are sizes (undefined: all). DuckDB builds these
 * values outside its memory limit, and while it binds (constant folding) it does not look at an
 * interrupt: a reader gives them constant sizes. `repeat`'s size is its count times its string's
 * length (`UNKNOWN_LENGTH` when the string is not a constant: refused).
 */
const SIZE_FUNCTIONS: Record<string, number[] | undefined> = {
  range: undefined, generate_series: undefined, repeat: [1], list_resize: [1], array_resize: [1], lpad: [1],
  rpad: [1],
};
/**
 * What a string that is not a constant counts for where it is multiplied: anything (an aggregate
 * builds a value of hundreds of MB; `repeat` of one, 15 times, built 3.9 GB).
 */
const UNKNOWN_LENGTH = Infinity;
/**
 * Functions whose first argument is a format whose fields give widths (`printf('%1000000d', x)`,
 * `format('{:>1000000}', x)`): a reader's must be a constant, its widths count as sizes, and a width
 * taken from an argument (`%*d`, `{:>{}}`) is refused.
 */
const FORMAT_FUNCTIONS = new Set(["printf", "format"]);
/**
 * Functions that replace each match with a text (`replace`, `regexp_replace` and its
 * back-references): the output is the input times the replacement. A reader's replacement is a
 * constant of at most `REPLACEMENT_MAX` characters.
 */
const REPLACE_FUNCTIONS: Record<string, number> = { replace: 2, regexp_replace: 2 };
const REPLACEMENT_MAX = 64;
/**
 * JSON functions that recurse once per level of their input: a reader gives them constants only
 * (then `READER_BUILD_MAX` bounds the depth). Built by an aggregate, a text 33,647 levels deep
 * overflowed a thread's stack in `json_contains` and the process died (attack of 2026-12-07).
 */
const DEEP_INPUT_FUNCTIONS = new Set(["json_contains", "json_merge_patch", "json_structure"]);
/**
 * Functions that recurse once per level of a structure argument (its position): a reader's is a
 * constant at most `STRUCTURE_DEPTH_MAX` deep (`json_transform` died at 2,687 levels).
 */
const STRUCTURE_FUNCTIONS: Record<string, number> = { json_transform: 1, from_json: 1, json_transform_strict: 1,
  from_json_strict: 1 };
const STRUCTURE_DEPTH_MAX = 256;

/** Calls that build a string of constants alone, whose size the budget already weighs. */
const CONSTANT_BUILDERS = new Set(["repeat", "||", "concat", "lpad", "rpad"]);

/** Whether `node` is a constant, or one of `CONSTANT_BUILDERS` over such (no column, subquery or aggregate). */
function builtOfConstants(node: unknown): boolean {
  if (constantOf(node) !== undefined) return true;
  const call = node as { class?: string; function_name?: string; children?: unknown[] } | undefined;
  return call?.class === "FUNCTION" && CONSTANT_BUILDERS.has(String(call.function_name).toLowerCase()) &&
    Array.isArray(call.children) && call.children.every(builtOfConstants);
}

/** The deepest nesting of brackets and braces in `text`. */
function nesting(text: string): number {
  let depth = 0;
  let deepest = 0;
  for (const c of text) {
    if (c === "[" || c === "{") deepest = Math.max(deepest, ++depth);
    else if (c === "]" || c === "}") depth--;
  }
  return deepest;
}

/** Functions that fold a list through a lambda: an accumulator used twice doubles at every element. */
const REDUCE_FUNCTIONS = new Set(["list_reduce", "reduce", "array_reduce"]);
/**
 * What a reader's statement may build in all: the sizes of its sized calls, the widths of its
 * formats, and the length of its string constants and parameters, together. A call runs once per
 * row unless its arguments are all constants, and DuckDB runs 2,048 rows at a time on each thread:
 * at 32,768 a vector of such values stays near 64 MiB (at 1,000,000 one statement grew the process
 * past 5 GB, beyond a 2 GB `memory_limit`). It bounds nesting too: a JSON text 65,536 levels deep
 * overflowed a thread's stack in `json_structure()` and the process died; 16,384 levels are safe.
 */
const READER_BUILD_MAX = 32_768;

/** The widths of a constant format (printf's `%10.3f`, fmt's `{:>10}`); undefined when one is an argument's. */
function formatWidths(format: string): number[] | undefined {
  const widths: number[] = [];
  for (const spec of format.matchAll(/%[-+ #0']*(\*|\d+)?(?:\.(\*|\d*))?|\{([^{}]*)(\{?)/g)) {
    if (spec[0].startsWith("%")) {
      if (spec[1] === "*" || spec[2] === "*") return undefined;
      widths.push(Number(spec[1] ?? 0), Number(spec[2] || 0));
    } else {
      if (spec[4]) return undefined; // a field inside a field: {:>{}}
      for (const digits of (spec[3] ?? "").match(/\d+/g) ?? []) widths.push(Number(digits));
    }
  }
  return widths;
}

/** The value of a constant node of DuckDB's parse, or undefined. */
function constantOf(node: unknown): unknown {
  const child = node as { class?: string; value?: { value?: unknown } } | undefined;
  return child?.class === "CONSTANT" ? child.value?.value : undefined;
}

/** The characters of a request's parameters (strings, and strings inside lists and objects). */
function parameterLength(value: unknown, depth = 0): number {
  if (typeof value === "string") return value.length;
  if (depth > 64 || value === null || typeof value !== "object") return depth > 64 ? Infinity : 8;
  return Object.values(value).reduce((sum: number, child) => sum + parameterLength(child, depth + 1), 0);
}

/** How often a lambda's body names its parameter `name` (the lambda's first, a fold's accumulator). */
function uses(node: unknown, name: string): number {
  if (Array.isArray(node)) return node.reduce((sum: number, child) => sum + uses(child, name), 0);
  if (node === null || typeof node !== "object") return 0;
  const record = node as { class?: string; column_names?: unknown[] };
  if (record.class === "COLUMN_REF" && record.column_names?.length === 1 && record.column_names[0] === name) return 1;
  return Object.values(record).reduce((sum: number, child) => sum + uses(child, name), 0);
}

/**
 * What in a reader's parsed statement may build too much, said as `name()` or as what it is, or
 * undefined. Refused: a sized call whose size is not a constant, or which sits inside a lambda (run
 * once per element) or inside another such call's arguments (sizes multiply); a format that is
 * not a constant or takes a width from an argument; a replacement that is not a short constant; a
 * fold whose lambda uses its accumulator twice; and everything built (sizes, widths, string
 * constants, the parameters' `initial` characters) past `READER_BUILD_MAX` in all.
 */
function oversizedCall(node: unknown, initial = 0): string | undefined {
  let total = initial;
  const add = (size: number) => {
    total += Math.abs(size);
    return total <= READER_BUILD_MAX;
  };
  if (!add(0)) return "its parameters";
  const visit = (value: unknown, nested: boolean): string | undefined => {
    if (Array.isArray(value)) {
      for (const child of value) {
        const found = visit(child, nested);
        if (found) return found;
      }
      return undefined;
    }
    if (value === null || typeof value !== "object") return undefined;
    const record = value as Record<string, unknown>;
    const name = typeof record.function_name === "string" ? record.function_name.toLowerCase() : undefined;
    // A table function's call (FROM range(n)) streams: only its arguments are weighed.
    if (record.type === "TABLE_FUNCTION") {
      const fn = record.function as { children?: unknown } | undefined;
      return visit(fn?.children, nested);
    }
    const constant = constantOf(record);
    if (typeof constant === "string" && !add(constant.length)) return "its string constants";
    if (record.class === "LAMBDA") return visit(Object.values(record), true);
    const children = Array.isArray(record.children) ? record.children : [];
    if (record.class === "FUNCTION" && name !== undefined && REDUCE_FUNCTIONS.has(name)) {
      const lambda = children.find((child) => (child as { class?: string })?.class === "LAMBDA") as
        { lhs?: { class?: string; column_names?: string[]; children?: { column_names?: string[] }[] }; expr?: unknown }
        | undefined;
      const first = lambda?.lhs?.class === "COLUMN_REF" ? lambda.lhs.column_names?.[0]
        : lambda?.lhs?.children?.[0]?.column_names?.[0];
      if (lambda && first !== undefined && uses(lambda.expr, first) > 1) return `${name}() with an accumulator used twice`;
    }
    if (record.class === "FUNCTION" && name !== undefined && DEEP_INPUT_FUNCTIONS.has(name) &&
      !children.every(builtOfConstants)) return `${name}() of what is not a constant`;
    if (record.class === "FUNCTION" && name !== undefined && name in STRUCTURE_FUNCTIONS) {
      const structure = constantOf(children[STRUCTURE_FUNCTIONS[name]]);
      if (typeof structure !== "string" || nesting(structure) > STRUCTURE_DEPTH_MAX) return `${name}()`;
    }
    if (record.class === "FUNCTION" && name !== undefined && name in REPLACE_FUNCTIONS) {
      const replacement = constantOf(children[REPLACE_FUNCTIONS[name]]);
      if (typeof replacement !== "string" || replacement.length > REPLACEMENT_MAX) return `${name}()`;
    }
    if (record.class === "FUNCTION" && name !== undefined && FORMAT_FUNCTIONS.has(name)) {
      const format = constantOf(children[0]);
      const widths = typeof format === "string" ? formatWidths(format) : undefined;
      if (nested || widths === undefined || !widths.every(add)) return `${name}()`;
      return visit(children, true);
    }
    if (record.class === "FUNCTION" && name !== undefined && name in SIZE_FUNCTIONS) {
      if (nested) return `${name}()`;
      const positions = SIZE_FUNCTIONS[name] ?? children.map((_, index) => index);
      for (const position of positions) {
        if (children[position] === undefined) continue;
        const constant = constantOf(children[position]);
        const number = typeof constant === "number" ? constant
          : typeof constant === "string" && /^-?\d+$/.test(constant) ? Number(constant) : NaN;
        const text = name === "repeat" ? constantOf(children[0]) : undefined;
        const each = name !== "repeat" ? 1 : typeof text === "string" ? Math.max(1, text.length) : UNKNOWN_LENGTH;
        if (!add(number * each)) return `${name}()`;
      }
      return visit(children, true);
    }
    for (const child of Object.values(record)) {
      const found = visit(child, nested);
      if (found) return found;
    }
    return undefined;
  };
  return visit(node, false);
}

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
