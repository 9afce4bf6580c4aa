/**
 * @module
 * `Ledger`: what one replicator has in the store (the published manifest) and what it still owes
 * the store (the carried blocks), as one value with named transitions, as Litestream keeps one
 * `Pos`. Not to be confused with the commit position an answer carries (duckblock's
 * `CommitPosition`). Every path that ships (a generation under the hold, the catch-up, reconcile,
 * the final flush at stop) moves it only through these methods, so the invariant is kept in one
 * place:
 *
 *   every block changed since `published` is in `carried`, in a queued generation, or in the
 *   attempt now in flight (which takes them out of `carried` and gives them back unless it publishes).
 */
import { DirtyBitmap } from "@haduck/dirty-tracker";
import type { Manifest } from "@haduck/duckblock";
import { assert } from "../_assert.ts";

export interface Published {
  manifest: Manifest;
  sha256: string;
}

export class Ledger {
  /** The newest manifest known to be in the store: what the next one chains to and inherits from. */
  published: Published | undefined;
  /** Blocks changed since `published` that no queued generation or attempt in flight holds. */
  carried = new DirtyBitmap();
  /** The newest DuckDB generation whose blocks are carried. */
  carriedGeneration: number | undefined;
  /**
   * Blocks of the file that differ from `published`'s manifest at its own generation, found by
   * reconcile after a restart: DuckDB wrote them after that header for commits in its WAL (optimistic
   * writes), so only WAL frames hold them, and this process never saw the writes. The next generation
   * must carry them (its header may reference them); they are no reason for a catch-up, since the
   * file's header still is `published`.
   */
  framed = new DirtyBitmap();
  /**
   * A manifest written whose answer was lost: it may be in the store. Resolved (adopted or
   * dropped) before the next pass decides which blocks are unchanged.
   */
  uncertainGeneration: number | undefined;
  /** The last attempt failed at the store: generations are carried and only the catch-up tries it. */
  storeFailing = false;

  constructor(published?: Published) {
    this.published = published;
  }

  /** The generation the blocks of the attempt in flight were carried at (attempts run one at a time). */
  #takenGeneration: number | undefined;

  /** Blocks to ship with a generation: the carried ones (taken) plus its own. */
  take(own: Iterable<number>): DirtyBitmap {
    const taken = this.carried;
    this.#takenGeneration = this.carriedGeneration;
    this.carried = new DirtyBitmap();
    this.carriedGeneration = undefined;
    taken.union(own);
    taken.union(this.framed);
    this.framed = new DirtyBitmap();
    return taken;
  }

  /** Blocks that only frames of `published` hold (see `framed`): the next generation takes them. */
  frame(blocks: Iterable<number>): void {
    assert(this.published !== undefined, "framed blocks need a published generation");
    this.framed.union(blocks);
  }

  /** An attempt that did not publish gives back everything it took, at the newest generation among them. */
  giveBack(blocks: Iterable<number>, generation: number): void {
    this.carry(blocks, Math.max(generation, this.#takenGeneration ?? -1));
    this.#takenGeneration = undefined;
  }

  /** Gives blocks back (an attempt that did not publish, or a generation released unread). */
  carry(blocks: Iterable<number>, generation: number): void {
    // A manifest is the whole file at its generation: what changed at or before it is in it already.
    if (this.published && generation <= this.published.manifest.generation) return;
    for (const block of blocks) this.carried.mark(block);
    this.carriedGeneration = Math.max(this.carriedGeneration ?? -1, generation);
  }

  /** A manifest is in the store (written, or found after a lost answer). */
  publish(published: Published): void {
    if (this.published && published.manifest.generation < this.published.manifest.generation) {
      throw new Error(`The ledger cannot go back from generation ${this.published.manifest.generation} to ` +
        `${published.manifest.generation}`);
    }
    this.published = published;
    this.#takenGeneration = undefined;
    // A manifest is the whole file at its generation: blocks carried at that generation or before are in it.
    if (this.carriedGeneration !== undefined && this.carriedGeneration <= published.manifest.generation) {
      this.carried = new DirtyBitmap();
      this.carriedGeneration = undefined;
    }
    if (this.uncertainGeneration !== undefined && this.uncertainGeneration <= published.manifest.generation) {
      this.uncertainGeneration = undefined;
    }
    this.storeFailing = false;
  }

  /** Something is waiting to be shipped. */
  get behind(): boolean {
    return this.carried.count > 0;
  }
}
