/**
 * @module
 * `haduck`: the command line (`bunx haduck <command>`). `main()` runs it with an argv.
 *
 * @example
 * ```ts
 * import { main } from "haduck";
 * const code = await main(["--help"]);
 * ```
 */
export { EXIT, exitCodeOf, main } from "./_main.ts";
