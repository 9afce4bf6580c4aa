/** The TypeScript view of the shared ring must match the C header, constant for constant. */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { RING_LAYOUT } from "../packages/duckdb-fs-bridge/native/_ring_layout.ts";

test("_ring_layout.ts matches every #define of haduck_ring.h", () => {
  const header = readFileSync(resolve(import.meta.dir, "../extension/src/haduck_ring.h"), "utf8");
  const defines = new Map<string, number>();
  for (const match of header.matchAll(/^#define (HADUCK_[A-Z0-9_]+) (.+?)(?:\s*\/\*.*)?$/gm)) {
    const expression = match[2].replace(/u\b/g, "").trim();
    if (/^[0-9x+*() a-fA-F]+$/.test(expression)) defines.set(match[1], Function(`return (${expression})`)());
  }
  expect(defines.size).toBeGreaterThan(30);
  expect(Object.fromEntries(defines)).toEqual(RING_LAYOUT);
});
