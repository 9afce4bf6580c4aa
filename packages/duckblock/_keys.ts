/**
 * @module
 * Every object key of a database in the store, built here and nowhere else (layout: docs/FORMAT.md).
 * Numbers are zero-padded so that keys sort by number in a LIST.
 *
 * | key | what |
 * |---|---|
 * | `{db}/manifests/{generation:20}.json` | a generation's manifest, create-only |
 * | `{db}/segments/{generation:20}-{attempt}-{sequence:4}.dblk` | a segment of blocks |
 * | `{db}/blockmaps/{generation:20}-{attempt}-{page:6}.json` | a page of a manifest's block map |
 * | `{db}/frames/{generation:20}-{number:8}.hwal` | a WAL frame after a generation, create-only |
 * | `{db}/latest.json` | a hint: the newest generation (overwritten) |
 * | `{db}/lease.json` | the cluster's lease (who writes, at which epoch) |
 * | `{db}/forks/{fork key, URI-encoded}.json` | a fork that may reference this database's objects (gc keeps them) |
 */

export const pad = (n: number | bigint): string => n.toString().padStart(20, "0");
/** Frame numbers are zero-padded to this many digits in keys (so keys sort by number). */
const FRAME_NUMBER_DIGITS = 8;

export const manifestsPrefix = (dbKey: string): string => `${dbKey}/manifests/`;
export const manifestKey = (dbKey: string, generation: number): string =>
  `${manifestsPrefix(dbKey)}${pad(generation)}.json`;
const MANIFEST_KEY = /\/manifests\/(\d{20})\.json$/;
/** The generation a manifest key names, or undefined for any other key. */
export function parseManifestKey(key: string): number | undefined {
  const match = MANIFEST_KEY.exec(key);
  return match ? Number(match[1]) : undefined;
}

const DATABASE_MANIFEST_KEY = /^(.+)\/manifests\/(\d{20})\.json$/;
/** The folders under a database's key: nothing in them is a database of its own. */
const DATABASE_FOLDERS = new Set(["manifests", "segments", "blockmaps", "frames", "forks"]);
/**
 * The database and generation a manifest key names, when the key is read from the store's root (a
 * listing of the whole store): `team/a.duckdb` for a database written to the store's prefix `team`.
 * Undefined for any other key, and for a manifest inside another database's folders (a fork's marker
 * lives under `forks/` and is no database).
 */
export function parseManifestPath(key: string): { dbKey: string; generation: number } | undefined {
  const match = DATABASE_MANIFEST_KEY.exec(key);
  if (!match || match[1].split("/").slice(1).some((part) => DATABASE_FOLDERS.has(part))) return undefined;
  return { dbKey: match[1], generation: Number(match[2]) };
}

export const segmentsPrefix = (dbKey: string): string => `${dbKey}/segments/`;
/**
 * A segment's key carries the upload attempt: a crash between segments and manifest leaves orphans
 * under the same generation, and the retry (after restart) must not collide with them.
 */
export const segmentKey = (dbKey: string, generation: number, attempt: string, sequence: number): string =>
  `${segmentsPrefix(dbKey)}${pad(generation)}-${attempt}-${sequence.toString().padStart(4, "0")}.dblk`;

export const pagesPrefix = (dbKey: string): string => `${dbKey}/blockmaps/`;
export const pageKey = (dbKey: string, generation: number, attempt: string, page: number): string =>
  `${pagesPrefix(dbKey)}${pad(generation)}-${attempt}-${page.toString().padStart(6, "0")}.json`;

export function frameKey(dbKey: string, generation: number, number: number): string {
  return `${dbKey}/frames/${pad(generation)}-${String(number).padStart(FRAME_NUMBER_DIGITS, "0")}.hwal`;
}

export function framesPrefix(dbKey: string, generation?: number): string {
  return generation === undefined ? `${dbKey}/frames/` : `${dbKey}/frames/${pad(generation)}-`;
}

const FRAME_KEY = /\/frames\/(\d{20})-(\d{8})\.hwal$/;
/** The generation and number a frame key names, or undefined for any other key. */
export function parseFrameKey(key: string): { generation: number; number: number } | undefined {
  const match = FRAME_KEY.exec(key);
  return match ? { generation: Number(match[1]), number: Number(match[2]) } : undefined;
}

export const latestKey = (dbKey: string): string => `${dbKey}/latest.json`;
export const forksPrefix = (dbKey: string): string => `${dbKey}/forks/`;
/** The marker of `fork` under a database whose segments and pages it references. */
export const forkMarkerKey = (dbKey: string, fork: string): string => `${forksPrefix(dbKey)}${encodeURIComponent(fork)}.json`;
/** The fork a marker key names, or undefined for any other key. */
export function parseForkMarkerKey(key: string): string | undefined {
  const match = /\/forks\/([^/]+)\.json$/.exec(key);
  if (!match) return undefined;
  try {
    return decodeURIComponent(match[1]);
  } catch {
    return undefined;
  }
}
export const leaseKey = (dbKey: string): string => `${dbKey}/lease.json`;
/** A group's change object: which of its databases shipped, rewritten by the group's leader. */
export const groupChangesKey = (group: string): string => `${group}/changes.json`;

/** The body of `latest.json`, a hint to the newest generation (never read to restore). */
export interface LatestHint {
  generation: number;
  manifestSha256: string;
}

export function encodeLatestHint(hint: LatestHint): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ generation: hint.generation, manifestSha256: hint.manifestSha256 }));
}

/** The generation a `latest.json` body names, or undefined for anything else (a hint is only a hint). */
export function decodeLatestHint(bytes: Uint8Array): LatestHint | undefined {
  try {
    const hint = JSON.parse(new TextDecoder().decode(bytes));
    return Number.isSafeInteger(hint?.generation)
      ? { generation: hint.generation, manifestSha256: typeof hint.manifestSha256 === "string" ? hint.manifestSha256 : "" }
      : undefined;
  } catch {
    return undefined;
  }
}
