/**
 * @module
 * The haduck commands that errors suggest, complete as printed: the store (with its S3 endpoint),
 * the database key and every path, shell-quoted, so that a user can paste the command and run it.
 */
import type { BlockStore } from "@haduck/s3-block-store";

/** One shell word: left alone when it is plain, else in single quotes (a `'` inside as `'\''`). */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * `haduck <command> --store URL [--endpoint URL] --db-key KEY <args>`, quoted, in backticks.
 *
 * @example
 * ```ts
 * import { openStore } from "@haduck/s3-block-store";
 * import { suggestCommand } from "@haduck/duckblock";
 * const store = openStore("file:///tmp/haduck-store");
 * console.log(suggestCommand("restore", { store, dbKey: "demo.duckdb", args: ["--force", "--to", "/tmp/my db"] }));
 * // `haduck restore --store file:///tmp/haduck-store --db-key demo.duckdb --force --to '/tmp/my db'`
 * ```
 */
export function suggestCommand(command: string, options: { store?: BlockStore; dbKey?: string; args?: string[] } = {}):
  string {
  const words = ["haduck", ...command.split(" ")];
  if (options.store) {
    words.push("--store", options.store.url);
    // An S3 store's endpoint may have come from a flag: the command names it (its keys stay in the environment).
    const endpoint = (options.store as { endpoint?: unknown }).endpoint;
    if (typeof endpoint === "string") words.push("--endpoint", endpoint);
  }
  if (options.dbKey !== undefined) words.push("--db-key", options.dbKey);
  words.push(...options.args ?? []);
  return `\`${words.map(shellQuote).join(" ")}\``;
}
