/**
 * @module
 * `haduck aside [PATH ...] [--apply] [--json]`: the databases haduck moved aside (a node that took
 * over or stepped down renames its local file to `<db>.haduck-aside-epoch<E>-<time>`, with its WAL
 * and identity beside it, and never deletes it: `packages/cluster/_takeover.ts`). Lists them with
 * their size and age; `--apply` (or `--delete`) removes them. Nothing else is ever touched: only
 * regular files whose name has `.haduck-aside-` after a database's name.
 */
import { lstatSync, readdirSync, rmSync, statSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { HELP } from "./_help.ts";
import { EXIT, mib, parse } from "./_command.ts";

/** What a moved-aside file's name holds: the database, the takeover's epoch and time, a companion suffix. */
const ASIDE_NAME = /^(?<db>.+)\.haduck-aside-(?<tag>.+?)(?<companion>\.wal|\.haduck-identity)?$/;
/** The tag a takeover writes: `epoch<E>-<ISO time without ':' and '.'>`. */
const TAG = /^epoch(?<epoch>\d+)-(?<y>\d{4})-(?<mo>\d{2})-(?<d>\d{2})T(?<h>\d{2})(?<mi>\d{2})(?<s>\d{2})(?<ms>\d{3})Z$/;

/** One moved-aside database: its file and companions (WAL, identity), their size, when it was moved. */
export interface AsideDatabase {
  /** The moved-aside database file (or, when only companions are left, their common name). */
  path: string;
  /** The database it was, by path. */
  database: string;
  /** Every file of it that is there: the database file, its `.wal`, its `.haduck-identity`. */
  files: string[];
  sizeBytes: number;
  /** When it was moved aside (from its name; else the file's modification time), ISO 8601. */
  movedAt: string;
  ageMs: number;
  /** The lease epoch of the takeover that moved it, when its name says. */
  epoch: number | null;
}

/** The moved-aside databases in `dir`, of the database `only` (a file name) or of any. */
export function findAside(dir: string, only?: string, nowMs = Date.now()): AsideDatabase[] {
  const found = new Map<string, AsideDatabase>();
  for (const name of readdirSync(dir).sort()) {
    const match = ASIDE_NAME.exec(name);
    if (!match?.groups || (only !== undefined && match.groups.db !== only)) continue;
    const path = join(dir, name);
    const stat = lstatSync(path);
    if (!stat.isFile()) continue; // never a directory, a link or a device, whatever its name
    const base = join(dir, `${match.groups.db}.haduck-aside-${match.groups.tag}`);
    let entry = found.get(base);
    if (!entry) {
      const tag = TAG.exec(match.groups.tag)?.groups;
      const movedMs = tag
        ? Date.UTC(+tag.y, +tag.mo - 1, +tag.d, +tag.h, +tag.mi, +tag.s, +tag.ms)
        : stat.mtimeMs;
      entry = { path: base, database: join(dir, match.groups.db), files: [], sizeBytes: 0,
        movedAt: new Date(movedMs).toISOString(), ageMs: Math.max(0, nowMs - movedMs),
        epoch: tag ? Number(tag.epoch) : null };
      found.set(base, entry);
    }
    entry.files.push(path);
    entry.sizeBytes += stat.size;
  }
  return [...found.values()];
}

/** `3 d`, `5 h`, `12 min`, `40 s`: an age at a glance. */
export function formatAge(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 172_800) return `${Math.floor(seconds / 3600)} h`;
  return `${Math.floor(seconds / 86_400)} d`;
}

/** Where to look for PATH: a directory (every database in it), or a database's path (its own). */
function placesOf(paths: string[]): { dir: string; only?: string }[] {
  return (paths.length === 0 ? ["."] : paths).map((path) => {
    const full = resolve(path);
    if (statSync(full, { throwIfNoEntry: false })?.isDirectory()) return { dir: full };
    const dir = dirname(full);
    if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory()) {
      throw new TypeError(`haduck aside ${path}: ${dir} is not a directory; give a directory or a database's path`);
    }
    return { dir, only: basename(full) };
  });
}

export async function commandAside(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { apply: { type: "boolean" }, delete: { type: "boolean" },
    json: { type: "boolean" } });
  if (values.help) return (console.log(HELP.aside), EXIT.ok);
  const apply = values.apply === true || values.delete === true;
  const asides = placesOf(positionals).flatMap(({ dir, only }) => findAside(dir, only));
  if (apply) {
    // Only the files listed: each a regular file with an aside name, checked again just before.
    for (const aside of asides) {
      for (const file of aside.files) {
        if (lstatSync(file, { throwIfNoEntry: false })?.isFile()) rmSync(file);
      }
    }
  }
  const totalBytes = asides.reduce((sum, aside) => sum + aside.sizeBytes, 0);
  if (values.json) {
    console.log(JSON.stringify({ applied: apply, sizeBytes: totalBytes, asides }, null, 2));
    return EXIT.ok;
  }
  if (asides.length === 0) {
    console.log(`no moved-aside databases in ${placesOf(positionals).map(({ dir, only }) =>
      only ? join(dir, only) : dir).join(", ")}`);
    return EXIT.ok;
  }
  for (const aside of asides) {
    const companions = aside.files.filter((file) => file !== aside.path).map((file) => file.slice(aside.path.length));
    console.log(`${aside.path}  ${mib(aside.sizeBytes)}  moved ${formatAge(aside.ageMs)} ago (${aside.movedAt}` +
      `${aside.epoch === null ? "" : `, lease epoch ${aside.epoch}`})` +
      (companions.length > 0 ? `  with ${companions.join(", ")}` : ""));
  }
  const what = `${asides.length} moved-aside databases, ${mib(totalBytes)}`;
  console.log(apply ? `deleted ${what}` : `${what}: dry run; pass --apply (or --delete) to delete them`);
  return EXIT.ok;
}
