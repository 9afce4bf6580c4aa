/**
 * @module
 * How a manifest is stored (docs/FORMAT.md, manifests version 2): the block map in pages of
 * `PAGE_BLOCKS` block ids, each an object of its own with the segments its entries name, and a
 * small manifest naming the pages with their SHA-256. A generation writes only the pages whose
 * entries changed and names its predecessor's for the rest, so what a small change publishes no
 * longer grows with the database (one manifest of a 5.4 GB database was 2.5 MB of JSON, written
 * at every checkpoint). The manifest's own SHA-256 still covers everything: it names each page's.
 *
 * In memory a manifest stays whole (`Manifest`: every segment and block); `pages` records which
 * stored pages hold it, so the next generation can tell which it may name again.
 */
import { suggestCommand } from "./_suggest.ts";
import { BlockNotFoundError, type BlockStore } from "@haduck/s3-block-store";
import { ReplicationError } from "./_errors.ts";
import { hex, type Manifest, type ManifestBlock, pad, sha256, validateManifest } from "./_format.ts";
import { entryOf, inSegment } from "./_manifest_entry.ts";
import { pageKey, pagesPrefix } from "./_keys.ts";

/** Block ids per page: a one-row update rewrites one or two pages of about 60 KB. */
export const PAGE_BLOCKS = 512;
/** The largest page a reader accepts (512 entries of at most ~200 bytes, and their segments). */
const PAGE_BYTES_MAX = 1 << 20;
/** Pages fetched or written at once. */
const PAGE_REQUESTS = 8;

type SegmentRef = Manifest["segments"][number];

/** A page as the manifest names it. */
export interface PageRef {
  key: string;
  sizeBytes: number;
  sha256: string;
  /** The first block id the page covers (a multiple of PAGE_BLOCKS); it covers PAGE_BLOCKS ids. */
  firstBlock: number;
  /** How many entries it holds (blocks of its range in the generation). */
  blocks: number;
}

/** A page as stored: its entries' segment indexes refer to its own `segments`. */
interface StoredPage {
  format: "haduck-blockmap";
  version: 1;
  dbKey: string;
  firstBlock: number;
  segments: SegmentRef[];
  blocks: ManifestBlock[];
}

/** The stored manifest: the whole one without `segments` and `blocks`; the header's segment inline. */
export type StoredManifest = Omit<Manifest, "segments" | "blocks" | "pages" | "version"> & {
  version: 2;
  headerSegment: SegmentRef;
  pages: PageRef[];
};

export { pageKey };

export interface EncodedManifest {
  bytes: Uint8Array;
  /** Every page the manifest names, and the ones to write before it (the rest are stored already). */
  pages: PageRef[];
  newPages: { key: string; bytes: Uint8Array }[];
}

/** Where the run of `blocks` (sorted by id) that starts at `start` and stays below block id `limit` ends. */
function pageEnd(blocks: ManifestBlock[], start: number, limit: number): number {
  let end = start;
  while (end < blocks.length && blocks[end][0] < limit) end++;
  return end;
}

/** Same block, same segment, same place, same bytes. */
function sameEntry(a: ManifestBlock, aSegments: SegmentRef[], b: ManifestBlock, bSegments: SegmentRef[]): boolean {
  const [x, y] = [entryOf(a), entryOf(b)];
  return x.blockId === y.blockId && x.offsetBytes === y.offsetBytes && x.sha256 === y.sha256 &&
    aSegments[x.segmentIndex].key === bSegments[y.segmentIndex].key;
}

/**
 * Splits `manifest` into pages; a page whose entries equal `previous`'s (as stored) is named again,
 * the others are new objects under `attempt` (a fresh one per publish: a retry never collides with
 * what an earlier attempt left behind).
 */
export function encodeManifest(manifest: Manifest, previous: Manifest | undefined, attempt: string): EncodedManifest {
  const previousPages = new Map((previous?.pages ?? []).map((ref) => [ref.firstBlock, ref]));
  const pages: PageRef[] = [];
  const newPages: EncodedManifest["newPages"] = [];
  let start = 0;
  let previousStart = 0;
  const previousBlocks = previous?.blocks ?? [];
  while (start < manifest.blocks.length) {
    const firstBlock = Math.floor(manifest.blocks[start][0] / PAGE_BLOCKS) * PAGE_BLOCKS;
    const end = pageEnd(manifest.blocks, start, firstBlock + PAGE_BLOCKS);
    while (previousStart < previousBlocks.length && previousBlocks[previousStart][0] < firstBlock) previousStart++;
    const previousEnd = pageEnd(previousBlocks, previousStart, firstBlock + PAGE_BLOCKS);
    const before = previousPages.get(firstBlock);
    let same = before !== undefined && previousEnd - previousStart === end - start;
    for (let i = 0; same && i < end - start; i++) {
      same = sameEntry(manifest.blocks[start + i], manifest.segments, previousBlocks[previousStart + i],
        previous!.segments);
    }
    if (same) {
      pages.push(before!);
    } else {
      const segments: SegmentRef[] = [];
      const local = new Map<string, number>();
      const blocks = manifest.blocks.slice(start, end).map((block) => {
        const segment = manifest.segments[entryOf(block).segmentIndex];
        let index = local.get(segment.key);
        if (index === undefined) {
          index = segments.length;
          segments.push(segment);
          local.set(segment.key, index);
        }
        return inSegment(block, index);
      });
      const page: StoredPage = { format: "haduck-blockmap", version: 1, dbKey: manifest.dbKey, firstBlock, segments,
        blocks };
      const bytes = new TextEncoder().encode(JSON.stringify(page));
      const key = pageKey(manifest.dbKey, manifest.generation, attempt, firstBlock / PAGE_BLOCKS);
      pages.push({ key, sizeBytes: bytes.byteLength, sha256: hex(sha256(bytes)), firstBlock, blocks: end - start });
      newPages.push({ key, bytes });
    }
    start = end;
    previousStart = previousEnd;
  }
  const { segments: _segments, blocks: _blocks, pages: _pages, version: _version, header, ...head } = manifest;
  const stored: StoredManifest = { ...head, version: 2, headerSegment: manifest.segments[entryOf(header).segmentIndex],
    header: inSegment(header, 0), pages };
  return { bytes: new TextEncoder().encode(JSON.stringify(stored)), pages, newPages };
}

/** Runs `work` on every item, `PAGE_REQUESTS` at a time; the first failure stops the rest and is thrown. */
async function eachPage<T>(items: T[], work: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  await Promise.all(Array.from({ length: Math.min(PAGE_REQUESTS, items.length) }, async () => {
    while (next < items.length && !failed) {
      const index = next++;
      try {
        await work(items[index], index);
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  }));
}

/** Writes new pages create-only, `PAGE_REQUESTS` at a time; the first failure stops the rest. */
export async function writePages(store: BlockStore, pages: EncodedManifest["newPages"], signal?: AbortSignal):
  Promise<void> {
  await eachPage(pages, async (page) => {
    await store.put(page.key, page.bytes, { ifNoneMatch: "*", signal });
  });
}

const HEX_DIGEST = /^[0-9a-f]{64}$/;
/** The databases whose pages a manifest may name: its own, and a fork's sources. */
const owners = (stored: StoredManifest): string[] =>
  Array.isArray(stored.sources) ? [stored.dbKey, ...stored.sources] : [stored.dbKey];
const whole = (value: unknown, max = Number.MAX_SAFE_INTEGER): value is number =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= 0 && value <= max;

/**
 * Checks a stored manifest's own fields and its page list before any page is fetched: pages lie
 * under the database's key, ascend, and each is small. Throws RangeError naming what is off.
 */
export function checkStoredManifest(stored: StoredManifest, where: string): void {
  const fail = (what: string): never => {
    throw new RangeError(`${where} is not a valid haduck manifest: ${what}`);
  };
  if (!Array.isArray(stored.pages) || !Array.isArray(stored.header) || typeof stored.headerSegment !== "object" ||
    stored.headerSegment === null || typeof stored.dbKey !== "string") {
    fail("its pages, header or database key are missing");
  }
  let next = 0;
  let total = 0;
  for (const ref of stored.pages) {
    if (typeof ref?.key !== "string" || !owners(stored).some((owner) => ref.key.startsWith(pagesPrefix(owner))) ||
      !whole(ref.sizeBytes, PAGE_BYTES_MAX) || !HEX_DIGEST.test(ref.sha256) || !whole(ref.blocks, PAGE_BLOCKS) ||
      !whole(ref.firstBlock) || ref.firstBlock % PAGE_BLOCKS !== 0 || ref.firstBlock < next) {
      fail(`page ${JSON.stringify(ref?.key)} has a malformed key, size, digest or range, or is out of order`);
    }
    next = ref.firstBlock + PAGE_BLOCKS;
    total += ref.blocks;
  }
  if (!whole(stored.blockCount) || total > stored.blockCount) fail(`its pages hold ${total} blocks`);
  if (stored.header[1] !== 0) fail("the header names a segment other than its own");
  // Its own fields (block size, counts, file size, the header's entry) as any manifest's.
  const { headerSegment, pages: _pages, version: _version, ...fields } = stored;
  validateManifest({ ...fields, version: 2, segments: [headerSegment], blocks: [] }, where);
}

/** Fetches one page and checks it against the manifest's reference. */
async function fetchPage(store: BlockStore, ref: PageRef, stored: StoredManifest): Promise<StoredPage> {
  const label = `Block map ${ref.key} of generation ${stored.generation}`;
  let bytes: Uint8Array;
  try {
    bytes = await store.get(ref.key);
  } catch (error) {
    if (error instanceof BlockNotFoundError) {
      throw new ReplicationError("INTEGRITY", `${label} is missing from ${store.url}: the generation cannot be ` +
        `read (run ${suggestCommand("verify", { store, dbKey: stored.dbKey })}; restore an older generation with ` +
        "--generation)");
    }
    throw error;
  }
  const corrupt = (what: string): never => {
    throw new ReplicationError("INTEGRITY", `${label} is corrupt: ${what}; nothing was written`);
  };
  if (bytes.byteLength !== ref.sizeBytes || hex(sha256(bytes)) !== ref.sha256) {
    corrupt("its SHA-256 or size does not match the manifest's");
  }
  let page: StoredPage;
  try {
    page = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return corrupt("not JSON");
  }
  if (page?.format !== "haduck-blockmap" || page.version !== 1 || !owners(stored).includes(page.dbKey) ||
    page.firstBlock !== ref.firstBlock || !Array.isArray(page.segments) || !Array.isArray(page.blocks) ||
    page.blocks.length !== ref.blocks) {
    corrupt("its format, database, range or entry count is not what the manifest names");
  }
  for (const block of page.blocks) {
    if (!Array.isArray(block) || !whole(block[0]) || block[0] < ref.firstBlock || block[0] >= ref.firstBlock + PAGE_BLOCKS ||
      !whole(block[1], page.segments.length - 1)) {
      corrupt(`an entry lies outside its range or names no segment`);
    }
  }
  return page;
}

/** The header region's segment and entry, its index into a one-segment list. */
export function headerOf(head: Manifest | StoredManifest): { segment: SegmentRef; header: ManifestBlock } {
  if ("headerSegment" in head) return { segment: head.headerSegment, header: head.header };
  return { segment: head.segments[entryOf(head.header).segmentIndex], header: inSegment(head.header, 0) };
}

/** How many blocks a manifest lists, from its own object. */
export function blockTotal(head: Manifest | StoredManifest): number {
  return "blocks" in head ? head.blocks.length : head.pages.reduce((sum, page) => sum + page.blocks, 0);
}

/**
 * A manifest a page at a time, for readers that need not hold every block at once (restore): each
 * part is a manifest of one page's blocks and segments, validated as any manifest, fetched only
 * when the previous part is taken. A version 1 manifest is one part.
 */
export async function* manifestParts(store: BlockStore, head: Manifest | StoredManifest, where: string):
  AsyncGenerator<Manifest> {
  if (!("headerSegment" in head)) {
    yield head;
    return;
  }
  const { headerSegment, pages, version: _version, header, ...fields } = head;
  for (const ref of pages) {
    const page = await fetchPage(store, ref, head);
    const part: Manifest = { ...fields, version: 2, segments: [headerSegment, ...page.segments], header,
      blocks: page.blocks.map((block) => inSegment(block, entryOf(block).segmentIndex + 1)) };
    try {
      validateManifest(part, where);
    } catch (error) {
      throw new ReplicationError("INTEGRITY", `Manifest ${where} is corrupt: ${(error as Error).message}`);
    }
    yield part;
  }
}

/**
 * Adds the key of every segment and page `head` names to `into`, fetching (and checking) only the
 * pages not in it already: what gc keeps, without holding any manifest whole.
 */
export async function addReferences(store: BlockStore, head: Manifest | StoredManifest, into: Set<string>):
  Promise<void> {
  if (!("headerSegment" in head)) {
    for (const segment of head.segments) into.add(segment.key);
    return;
  }
  into.add(head.headerSegment.key);
  for (const ref of head.pages) {
    if (into.has(ref.key)) continue;
    const page = await fetchPage(store, ref, head);
    for (const segment of page.segments) into.add(segment.key);
    into.add(ref.key);
  }
}

/**
 * Makes the whole manifest from a stored one: fetches its pages (`PAGE_REQUESTS` at a time), checks
 * each against its SHA-256, renumbers segments, and validates the result as any manifest.
 */
export async function assembleManifest(store: BlockStore, stored: StoredManifest, where: string):
  Promise<Manifest> {
  const pages: StoredPage[] = new Array(stored.pages.length);
  await eachPage(stored.pages, async (ref, index) => {
    pages[index] = await fetchPage(store, ref, stored);
  });
  const segments: SegmentRef[] = [];
  const indexOf = new Map<string, number>();
  const global = (segment: SegmentRef) => {
    let index = indexOf.get(segment?.key);
    if (index === undefined) {
      index = segments.length;
      segments.push(segment);
      indexOf.set(segment?.key, index);
    }
    return index;
  };
  const header = inSegment(stored.header, global(stored.headerSegment));
  const blocks: ManifestBlock[] = [];
  for (const page of pages) {
    const map = page.segments.map(global);
    for (const block of page.blocks) blocks.push(inSegment(block, map[entryOf(block).segmentIndex]));
  }
  const { headerSegment: _segment, pages: _pages, version: _version, header: _header, ...head } = stored;
  const manifest: Manifest = { ...head, version: 2, segments, header, blocks, pages: stored.pages };
  validateManifest(manifest, where);
  return manifest;
}
