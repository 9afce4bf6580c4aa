/**
 * @module
 * How a result prints: `table` (the default, and what `-c` prints), `csv`, `json` or `line`, the
 * modes of DuckDB's own CLI that the shell's `.mode` takes.
 */

/** The shell's output modes (`.mode`). */
export const OUTPUT_MODES = ["table", "csv", "json", "line"] as const;
export type OutputMode = typeof OUTPUT_MODES[number];

/** A result as `printRows` reads it: `@duckdb/node-api`'s reader, or anything with the same two methods. */
export interface Rows {
  columnNames(): string[];
  getRowsJS(): unknown[][];
}

/** Prints a result in `mode` on stdout. */
export function printRows(reader: Rows, mode: OutputMode = "table"): void {
  const names = reader.columnNames();
  const rows = reader.getRowsJS() as unknown[][];
  const lines = mode === "csv" ? csvLines(names, rows)
    : mode === "json" ? jsonLines(names, rows)
    : mode === "line" ? lineLines(names, rows)
    : tableLines(names, rows);
  if (lines.length > 0) console.log(lines.join("\n"));
}

const text = (value: unknown): string => value === null ? "NULL" : String(value);

function tableLines(names: string[], raw: unknown[][]): string[] {
  const rows = raw.map((row) => row.map(text));
  const widths = names.map((name, i) => Math.max(name.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => `| ${cells.map((cell, i) => cell.padEnd(widths[i])).join(" | ")} |`;
  return [line(names), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.map(line)];
}

/** RFC 4180: a header line, a cell quoted when it holds a comma, a quote or a line break; NULL is empty. */
function csvLines(names: string[], rows: unknown[][]): string[] {
  const cell = (value: unknown) => {
    const shown = value === null ? "" : String(value);
    return /[",\r\n]/.test(shown) ? `"${shown.replaceAll('"', '""')}"` : shown;
  };
  return [names.map(cell).join(","), ...rows.map((row) => row.map(cell).join(","))];
}

/** An array of one object per row, one row a line, as DuckDB's CLI prints it. */
function jsonLines(names: string[], rows: unknown[][]): string[] {
  if (rows.length === 0) return ["[]"];
  const objects = rows.map((row) => JSON.stringify(Object.fromEntries(names.map((name, i) => [name, row[i]])), jsonValue));
  return objects.map((object, i) => `${i === 0 ? "[" : ""}${object}${i === objects.length - 1 ? "]" : ","}`);
}

/** JSON has no 64-bit integers or bytes: a BIGINT is a number while it is exact, else a string. */
function jsonValue(_key: string, value: unknown): unknown {
  if (typeof value === "bigint") return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
  if (value instanceof Uint8Array) return String(value);
  return value;
}

/** One `name = value` line per column, names aligned right, a blank line between rows. */
function lineLines(names: string[], rows: unknown[][]): string[] {
  const width = Math.max(0, ...names.map((name) => name.length));
  return rows.flatMap((row, r) => [...(r > 0 ? [""] : []),
    ...names.map((name, i) => `${name.padStart(width)} = ${text(row[i])}`)]);
}
