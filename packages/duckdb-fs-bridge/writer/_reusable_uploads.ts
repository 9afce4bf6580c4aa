/**
 * @module
 * What passes that did not publish have durably uploaded, kept for the next pass. A pass can fail
 * to publish after uploading most of a large carried set: the catch-up's reads were torn by a
 * checkpoint, or staging under the hold ran out of time. Under checkpoints that never pause, every
 * pass over a whole large file ends that way, so without this a first upload of a large database
 * started while DuckDB writes (a sidecar started again, `--live`) would never converge.
 *
 * An uploaded block stays reusable without a read until DuckDB writes it again (after that, or
 * when DuckDB lost its marks, a pass reads it again and reuses the upload only if the bytes have
 * the same SHA-256). Every write DuckDB makes to the
 * file is in the dirty blocks of a later generation event, and the replicator reports those here
 * (`written`) as it takes each event in, before any pass that could reuse the block; a write made
 * while a pass was reading is reported while the pass runs, so the pass's uploads of that block
 * are never kept. A block not written since it was read holds the same bytes at every later
 * generation, and at earlier ones the header does not reference it (DuckDB writes only free blocks
 * before a newer header), so its bytes do not matter there.
 *
 * Reused entries point at segments no manifest references yet. `gc` deletes such a segment only
 * once a newer generation was published without it, so everything here is dropped at each publish.
 */
import { DirtyBitmap } from "@haduck/dirty-tracker";
import { entryOf, inSegment, type ManifestBlock } from "@haduck/duckblock";
import type { SegmentRef, Shipment } from "@haduck/duckblock";

/** One block durably in the store: its entry (segment index 0 means `segment`) and the segment. */
export interface UploadedBlock {
  block: ManifestBlock;
  segment: SegmentRef;
}

export class ReusableUploads {
  /** Blocks not written since they were read: reused without reading them again. */
  readonly #entries = new Map<number, UploadedBlock>();
  /**
   * Blocks that may have been written since (DuckDB lost its marks, or listed them as written):
   * read again, and reused when the bytes read have the same SHA-256 (an upload saved for a read).
   */
  readonly #byContent = new Map<number, UploadedBlock>();
  /** Blocks written since the pass in flight began reading: what it uploads of them is stale. */
  #writtenSincePass = new DirtyBitmap();
  #everyBlockWritten = false;

  /** Entries a pass may reuse for a block whose bytes it read have this entry's SHA-256. */
  get byContent(): ReadonlyMap<number, UploadedBlock> {
    return this.#byContent;
  }

  /** A pass starts reading. */
  beginPass(): void {
    this.#writtenSincePass = new DirtyBitmap();
    this.#everyBlockWritten = false;
  }

  /** DuckDB wrote these blocks (a generation event's dirty blocks). */
  written(blocks: Iterable<number>): void {
    for (const block of blocks) {
      const entry = this.#entries.get(block);
      if (entry) {
        this.#entries.delete(block);
        this.#byContent.set(block, entry);
      }
      this.#writtenSincePass.mark(block);
    }
  }

  /** The writes are unknown (the extension lost its marks): nothing uploaded before can be trusted. */
  writtenAll(): void {
    for (const [block, entry] of this.#entries) this.#byContent.set(block, entry);
    this.#entries.clear();
    this.#everyBlockWritten = true;
  }

  /** A pass that did not publish uploaded these: keep those not written since the pass began. */
  keep(uploaded: Iterable<UploadedBlock>): void {
    for (const entry of uploaded) {
      const { blockId } = entryOf(entry.block);
      const trusted = !this.#everyBlockWritten && !this.#writtenSincePass.has(blockId);
      (trusted ? this.#entries : this.#byContent).set(blockId, entry);
      if (trusted) this.#byContent.delete(blockId);
    }
  }

  /** Splits a pass's blocks into those to read and those already uploaded. */
  split(blocks: readonly number[]): { toRead: number[]; reused: UploadedBlock[] } {
    const toRead: number[] = [];
    const reused: UploadedBlock[] = [];
    for (const block of blocks) {
      const entry = this.#entries.get(block);
      if (entry) reused.push(entry);
      else toRead.push(block);
    }
    return { toRead, reused };
  }

  /** A generation was published: what it did not use may be deleted by `gc` from now on. */
  clear(): void {
    this.#entries.clear();
    this.#byContent.clear();
  }
}

/** The blocks of a shipment whose segment was durably uploaded (a pass that did not publish). */
export function uploadedBlocks(shipment: Pick<Shipment, "segments" | "shipped">, durable: ReadonlySet<number>):
  UploadedBlock[] {
  const uploaded: UploadedBlock[] = [];
  for (const block of shipment.shipped.values()) {
    const { segmentIndex } = entryOf(block);
    if (!durable.has(segmentIndex)) continue;
    uploaded.push({ block: inSegment(block, 0), segment: shipment.segments[segmentIndex] });
  }
  return uploaded;
}

/** A shipment with reused blocks added: their segments appended (once each), their entries renumbered. */
export function withReused(shipment: Shipment, reused: readonly UploadedBlock[]): Shipment {
  if (reused.length === 0) return shipment;
  const segments = [...shipment.segments];
  const indexOf = new Map(segments.map((segment, index) => [segment.key, index]));
  const shipped = new Map(shipment.shipped);
  for (const { block, segment } of reused) {
    const { blockId } = entryOf(block);
    if (shipped.has(blockId)) continue; // read again by this pass: its own bytes win
    let index = indexOf.get(segment.key);
    if (index === undefined) {
      index = segments.push(segment) - 1;
      indexOf.set(segment.key, index);
    }
    shipped.set(blockId, inSegment(block, index));
  }
  return { ...shipment, segments, shipped };
}
