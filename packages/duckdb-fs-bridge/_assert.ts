/**
 * @module
 * An always-on assertion for the state machines' invariants (TIGER_STYLE): a broken invariant is a
 * bug in haduck, never a condition a caller handles, so it throws a plain Error naming it.
 */

/** Throws `Error("haduck invariant: <what>")` unless `condition` holds. */
export function assert(condition: unknown, what: string): asserts condition {
  if (!condition) throw new Error(`haduck invariant: ${what}`);
}
