/**
 * @module
 * How much a reader's statement may build (issue 31, and the attacks of 2026-12-07): DuckDB builds
 * the values of scalar functions outside its memory limit, runs a call once per row, and recurses
 * once per level in some JSON functions on a thread whose stack a deep enough input overflows. The
 * judge (`_sql_judge.ts`) weighs a reader's parsed statement here before anything binds.
 */

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
export const REPLACEMENT_MAX = 64;
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
export const STRUCTURE_DEPTH_MAX = 256;

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
export const READER_BUILD_MAX = 32_768;

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
export function parameterLength(value: unknown, depth = 0): number {
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
export function oversizedCall(node: unknown, initial = 0): string | undefined {
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
