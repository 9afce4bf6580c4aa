/**
 * @module
 * The SQL shell of `haduck attach`: statements end with `;`; a line that starts with `.` where a
 * statement would start is a dot-command of DuckDB's own CLI (`.tables`, `.schema`, `.mode`, `.timer`,
 * `.help`, `.quit`). On a terminal it prompts and keeps history; a script piped on stdin runs to its
 * end like `duckdb db < script.sql`.
 */
import type { DuckDBConnection, ResultReturnType } from "@duckdb/node-api";
import { createInterface } from "node:readline";
import { OUTPUT_MODES, type OutputMode, printRows } from "./_result_format.ts";

export { printRows } from "./_result_format.ts";

/**
 * An error's message as printed. DuckDB 1.4.4's `duckdb_query()` (what `@duckdb/node-api`'s `run()`
 * calls) appends a parser error's `LINE 1: ...` context to a message that already ends with it (its
 * `extract_statements` does not): the repeat is dropped here, where haduck prints DuckDB's errors.
 */
export function errorMessage(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/(\n\nLINE \d+: [^\n]*\n *\^)\1+/g, "$1");
}

/** Called after each statement, before its result is printed (`--sync`: until its commit is durable). */
export type AfterStatement = () => Promise<void>;

const HELP_TEXT = `.exit, .quit        leave the shell
.help               this list
.mode MODE          how results print: table (the default), csv, json or line
.schema [TABLE]     the CREATE statements of the tables and views (of TABLE alone when named)
.tables             the names of the tables and views
.timer on|off       print each statement's run time (Run Time: 0.012 s)`;

/**
 * `ResultReturnType.QUERY_RESULT` (the C API's DUCKDB_RESULT_TYPE_QUERY_RESULT): rows a query asked
 * for. DDL (NOTHING) and the row count of a write (CHANGED_ROWS) print nothing, as in DuckDB's CLI.
 */
const QUERY_RESULT = 3 as ResultReturnType;

/** The tables and views of the database the shell opened (and temporary ones), as DuckDB lists them. */
const CATALOG = `SELECT schema_name, table_name AS name, sql, 0 AS kind FROM duckdb_tables()
    WHERE (database_name = current_database() OR temporary) AND NOT internal
  UNION ALL SELECT schema_name, view_name, sql, 1 FROM duckdb_views()
    WHERE (database_name = current_database() OR temporary) AND NOT internal`;

/** One shell's state: the statement being typed, how results print, and whether anything failed. */
class ShellSession {
  #buffer = "";
  #mode: OutputMode = "table";
  #timer = false;
  readonly #connection: DuckDBConnection;
  readonly #after?: AfterStatement;
  /** False once a statement or a dot-command failed. */
  ok = true;

  constructor(connection: DuckDBConnection, after?: AfterStatement) {
    this.#connection = connection;
    this.#after = after;
  }

  /** Whether a statement is open (its first lines typed, no `;` yet). */
  get continuing(): boolean {
    return this.#buffer.trim() !== "";
  }

  /** Takes one line; false when the shell should end (`.quit`, `.exit`). */
  async take(line: string): Promise<boolean> {
    if (!this.continuing && line.trimStart().startsWith(".")) return await this.#dotCommand(line.trim());
    this.#buffer += `${line}\n`;
    if (line.trim().endsWith(";")) await this.#runBuffer();
    return true;
  }

  /** Runs a last statement left without its `;` at the end of the input. */
  async finish(): Promise<void> {
    if (this.continuing) await this.#runBuffer();
  }

  async #runBuffer(): Promise<void> {
    const sql = this.#buffer;
    this.#buffer = "";
    const started = performance.now();
    try {
      const reader = await this.#connection.runAndReadAll(sql);
      await this.#after?.();
      if (reader.returnType === QUERY_RESULT) printRows(reader, this.#mode);
    } catch (error) {
      this.#fail(errorMessage(error));
    }
    // The time the user waited: with --sync, until the commit is durable in the store.
    if (this.#timer) console.log(`Run Time: ${((performance.now() - started) / 1000).toFixed(3)} s`);
  }

  #fail(message: string): void {
    console.error(`Error: ${message}`);
    this.ok = false;
  }

  async #dotCommand(line: string): Promise<boolean> {
    const [command, ...args] = line.split(/\s+/);
    switch (command) {
      case ".quit":
      case ".exit":
        return false;
      case ".help":
        console.log(HELP_TEXT);
        break;
      case ".mode":
        if (args.length === 0) console.log(`current output mode: ${this.#mode}`);
        else if ((OUTPUT_MODES as readonly string[]).includes(args[0]) && args.length === 1) {
          this.#mode = args[0] as OutputMode;
        } else this.#fail(`.mode takes one of ${OUTPUT_MODES.join(", ")}, not ${JSON.stringify(args.join(" "))}`);
        break;
      case ".timer":
        if (args.length === 1 && (args[0] === "on" || args[0] === "off")) this.#timer = args[0] === "on";
        else this.#fail(`.timer takes on or off, not ${JSON.stringify(args.join(" "))}`);
        break;
      case ".tables":
        await this.#tables();
        break;
      case ".schema":
        if (args.length > 1) this.#fail(`.schema takes at most one table name, not ${JSON.stringify(args.join(" "))}`);
        else await this.#schema(args[0]);
        break;
      default:
        this.#fail(`unknown command ${JSON.stringify(command)}: run .help for the dot-commands`);
    }
    return true;
  }

  async #tables(): Promise<void> {
    const names = await this.#query(`SELECT CASE WHEN schema_name = 'main' THEN name ELSE schema_name || '.' || name
      END AS name FROM (${CATALOG}) ORDER BY name`);
    for (const [name] of names ?? []) console.log(String(name));
  }

  async #schema(table?: string): Promise<void> {
    const filter = table === undefined ? "" : `WHERE lower(name) = lower('${table.replaceAll("'", "''")}')`;
    const rows = await this.#query(`SELECT sql FROM (${CATALOG}) ${filter} ORDER BY kind, schema_name, name`);
    if (!rows) return;
    if (table !== undefined && rows.length === 0) return this.#fail(`no table or view named ${table}: .tables lists them`);
    for (const [sql] of rows) {
      const statement = String(sql).trim();
      console.log(statement.endsWith(";") ? statement : `${statement};`);
    }
  }

  /** A dot-command's own query: its rows, or undefined (said) when it failed. */
  async #query(sql: string): Promise<unknown[][] | undefined> {
    try {
      return (await this.#connection.runAndReadAll(sql)).getRowsJS() as unknown[][];
    } catch (error) {
      this.#fail(errorMessage(error));
      return undefined;
    }
  }
}

/**
 * Runs the shell on stdin: interactive on a terminal, else the piped script to its end (no prompts,
 * each result printed as soon as it exists). False when any statement or dot-command failed.
 */
export async function runShell(connection: DuckDBConnection, after?: AfterStatement): Promise<boolean> {
  const session = new ShellSession(connection, after);
  if (process.stdin.isTTY) await runInteractive(session);
  else await runScript(session);
  return session.ok;
}

async function runScript(session: ShellSession): Promise<void> {
  let pending = "";
  const decoder = new TextDecoder();
  for await (const chunk of process.stdin) {
    pending += typeof chunk === "string" ? chunk : decoder.decode(chunk, { stream: true });
    const lines = pending.split("\n");
    pending = lines.pop()!;
    for (const line of lines) if (!await session.take(line)) return;
  }
  pending += decoder.decode();
  if (pending !== "" && !await session.take(pending)) return;
  await session.finish(); // a last statement without `;`
}

async function runInteractive(session: ShellSession): Promise<void> {
  const rl = createInterface({ input: process.stdin, output: process.stdout, prompt: "haduck> ", historySize: 1000 });
  console.log('haduck SQL shell: end statements with ";", .help for the dot-commands, .quit to leave');
  rl.prompt();
  try {
    for await (const line of rl) {
      if (!await session.take(line)) break;
      rl.setPrompt(session.continuing ? "   ...> " : "haduck> ");
      rl.prompt();
    }
  } finally {
    rl.close();
  }
}
