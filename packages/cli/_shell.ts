/**
 * @module
 * Result tables and the interactive SQL shell of `haduck attach`.
 */
import type { DuckDBConnection, DuckDBMaterializedResult } from "@duckdb/node-api";
import { createInterface } from "node:readline";

export function printRows(reader: DuckDBMaterializedResult | { columnNames(): string[]; getRowsJS(): unknown[][] }): void {
  const names = reader.columnNames();
  const rows = reader.getRowsJS().map((row) => row.map((value) => value === null ? "NULL" : String(value)));
  const widths = names.map((name, i) => Math.max(name.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => `| ${cells.map((cell, i) => cell.padEnd(widths[i])).join(" | ")} |`;
  console.log(line(names));
  console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
  for (const row of rows) console.log(line(row));
}

/** A line-based SQL shell: statements end with `;`, `.exit` leaves, history lives in the session. */
export async function runShell(connection: DuckDBConnection): Promise<void> {
  const rl = createInterface({ input: process.stdin, output: process.stdout, prompt: "haduck> ", historySize: 1000 });
  let buffer = "";
  rl.prompt();
  for await (const line of rl) {
    if (buffer === "" && line.trim() === ".exit") break;
    buffer += `${line}\n`;
    if (!line.trim().endsWith(";")) {
      rl.setPrompt("   ...> ");
      rl.prompt();
      continue;
    }
    try {
      const reader = await connection.runAndReadAll(buffer);
      if (reader.columnCount > 0) printRows(reader);
    } catch (error) {
      console.error(`Error: ${(error as Error).message}`);
    }
    buffer = "";
    rl.setPrompt("haduck> ");
    rl.prompt();
  }
  rl.close();
}
