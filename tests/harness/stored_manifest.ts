/**
 * Reads and rewrites a stored manifest in a file store's directory as a whole (every segment and
 * block), the way docs/FORMAT.md describes it, without haduck's own code: tests that damage a
 * manifest edit the whole and write it back as a manifest with freshly written block map pages.
 */
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";

const PAGE_BLOCKS = 512;
const pad = (n: number) => String(n).padStart(20, "0");
export const manifestPath = (generation: number) => `manifests/${pad(generation)}.json`;

/** `path` maps a key under the database (`manifests/...`) to its file; `dbKey` prefixes stored keys. */
export function readWhole(path: (key: string) => string, dbKey: string, generation: number): any {
  const stored = JSON.parse(readFileSync(path(manifestPath(generation)), "utf8"));
  if (stored.version !== 2) return stored;
  const segments = [stored.headerSegment];
  const blocks: any[] = [];
  for (const ref of stored.pages) {
    const page = JSON.parse(readFileSync(path(ref.key.slice(dbKey.length + 1)), "utf8"));
    const base = segments.length;
    segments.push(...page.segments);
    for (const block of page.blocks) blocks.push([block[0], block[1] + base, ...block.slice(2)]);
  }
  const { pages: _pages, headerSegment: _segment, ...head } = stored;
  return { ...head, segments, blocks };
}

/** Writes `whole` back as generation `generation`'s manifest, its blocks in new pages (every segment in each). */
export function writeWhole(path: (key: string) => string, dbKey: string, generation: number, whole: any): void {
  const { segments, blocks, header, ...head } = whole;
  const pages: any[] = [];
  const byPage = new Map<number, any[]>();
  for (const block of blocks) {
    const first = Array.isArray(block) && Number.isInteger(block[0]) ? Math.floor(block[0] / PAGE_BLOCKS) * PAGE_BLOCKS : 0;
    if (!byPage.has(first)) byPage.set(first, []);
    byPage.get(first)!.push(block);
  }
  for (const [firstBlock, entries] of [...byPage].sort((a, b) => a[0] - b[0])) {
    const bytes = Buffer.from(JSON.stringify({ format: "haduck-blockmap", version: 1, dbKey, firstBlock, segments,
      blocks: entries }));
    const key = `${dbKey}/blockmaps/${pad(generation)}-edited00-${String(firstBlock / PAGE_BLOCKS).padStart(6, "0")}.json`;
    writeFileSync(path(key.slice(dbKey.length + 1)), bytes);
    pages.push({ key, sizeBytes: bytes.byteLength, sha256: createHash("sha256").update(bytes).digest("hex"), firstBlock,
      blocks: entries.length });
  }
  const stored = { ...head, headerSegment: segments[header[1]], header: [header[0], 0, ...header.slice(2)], pages };
  writeFileSync(path(manifestPath(generation)), JSON.stringify(stored));
}

/** Edits generation `generation`'s manifest as a whole and writes it back. */
export function editWhole(path: (key: string) => string, dbKey: string, generation: number,
  edit: (manifest: any) => void): void {
  const whole = readWhole(path, dbKey, generation);
  edit(whole);
  writeWhole(path, dbKey, generation, whole);
}
