/**
 * @module
 * Result tables and the interactive SQL shell of `haduck attach`.
 */
import type { DuckDBConnection, DuckDBMaterializedResult } from "@duckdb/node-api";
import { createInterface } from "node:readline";

export function printRows(reader: DuckDBMaterializedResult | { columnNames(): string[]; getRowsJS(): unknown[][] }): void {
  const names = reader.columnNames();
  const raw = reader.getRowsJS() as unknown[][];
  const rows = raw.map((row: unknown[]) => row.map((value: unknown) => value === null ? "NULL" : String(value)));
  const widths = names.map((name, i) => Math.max(name.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => `| ${cells.map((cell, i) => cell.padEnd(widths[i])).join(" | ")} |`;
  console.log(line(names));
  console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
  for (const row of rows) console.log(line(row));
}

/** Called after each statement, before its result is printed (`--sync`: until its commit is durable). */
export type AfterStatement = () => Promise<void>;

/** Runs one statement (or several separated by `;`) and prints the last result; false when it failed. */
async function runStatement(connection: DuckDBConnection, sql: string, after?: AfterStatement): Promise<boolean> {
  try {
    const reader = await connection.runAndReadAll(sql);
    await after?.();
    if (reader.columnCount > 0) printRows(reader);
    return true;
  } catch (error) {
    console.error(`Error: ${(error as Error).message}`);
    return false;
  }
}

/**
 * A line-based SQL shell: statements end with `;`, `.exit` leaves. On a terminal it prompts and
 * keeps history; a script piped on stdin runs to its end like `duckdb db < script.sql`: no prompts,
 * each result printed as soon as it exists, and false returned when any statement failed.
 */
export async function runShell(connection: DuckDBConnection, after?: AfterStatement): Promise<boolean> {
  return process.stdin.isTTY ? await runInteractive(connection, after) : await runScript(connection, after);
}

async function runScript(connection: DuckDBConnection, after?: AfterStatement): Promise<boolean> {
  let ok = true;
  let buffer = "";
  let pending = "";
  const decoder = new TextDecoder();
  const take = async (line: string) => {
    if (buffer === "" && line.trim() === ".exit") return false;
    buffer += `${line}\n`;
    if (line.trim().endsWith(";")) {
      ok = await runStatement(connection, buffer, after) && ok;
      buffer = "";
    }
    return true;
  };
  for await (const chunk of process.stdin) {
    pending += typeof chunk === "string" ? chunk : decoder.decode(chunk, { stream: true });
    const lines = pending.split("\n");
    pending = lines.pop()!;
    for (const line of lines) if (!await take(line)) return ok;
  }
  pending += decoder.decode();
  if (pending !== "" && !await take(pending)) return ok;
  if (buffer.trim() !== "") ok = await runStatement(connection, buffer, after) && ok; // a last statement without `;`
  return ok;
}

async function runInteractive(connection: DuckDBConnection, after?: AfterStatement): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stdout, prompt: "haduck> ", historySize: 1000 });
  let buffer = "";
  let ok = true;
  rl.prompt();
  for await (const line of rl) {
    if (buffer === "" && line.trim() === ".exit") break;
    buffer += `${line}\n`;
    if (!line.trim().endsWith(";")) {
      rl.setPrompt("   ...> ");
      rl.prompt();
      continue;
    }
    ok = await runStatement(connection, buffer, after) && ok;
    buffer = "";
    rl.setPrompt("haduck> ");
    rl.prompt();
  }
  rl.close();
  return ok;
}
