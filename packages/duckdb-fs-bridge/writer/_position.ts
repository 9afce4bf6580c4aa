/**
 * @module
 * `Position`: where one replicator stands against the store, as one value with named transitions
 * (as Litestream keeps one `Pos`). Every path that ships (a generation under the hold, the
 * catch-up, reconcile, the final flush at stop) moves it only through these methods, so the
 * invariant is kept in one place:
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

export class Position {
  /** The newest manifest known to be in the store: what the next one chains to and inherits from. */
  published: Published | undefined;
  /** Blocks changed since `published` that no queued generation or attempt in flight holds. */
  carried = new DirtyBitmap();
  /** The newest DuckDB iteration whose blocks are carried. */
  carriedIteration: number | undefined;
  /**
   * Blocks of the file that differ from `published`'s manifest at its own iteration, found by
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

  /** The iteration the blocks of the attempt in flight were carried at (attempts run one at a time). */
  #takenIteration: number | undefined;

  /** Blocks to ship with a generation: the carried ones (taken) plus its own. */
  take(own: Iterable<number>): DirtyBitmap {
    const taken = this.carried;
    this.#takenIteration = this.carriedIteration;
    this.carried = new DirtyBitmap();
    this.carriedIteration = undefined;
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

  /** An attempt that did not publish gives back everything it took, at the newest iteration among them. */
  giveBack(blocks: Iterable<number>, iteration: number): void {
    this.carry(blocks, Math.max(iteration, this.#takenIteration ?? -1));
    this.#takenIteration = undefined;
  }

  /** Gives blocks back (an attempt that did not publish, or a generation released unread). */
  carry(blocks: Iterable<number>, iteration: number): void {
    // A manifest is the whole file at its iteration: what changed at or before it is in it already.
    if (this.published && iteration <= this.published.manifest.generation) return;
    for (const block of blocks) this.carried.mark(block);
    this.carriedIteration = Math.max(this.carriedIteration ?? -1, iteration);
  }

  /** A manifest is in the store (written, or found after a lost answer). */
  publish(published: Published): void {
    if (this.published && published.manifest.generation < this.published.manifest.generation) {
      throw new Error(`Position cannot go back from generation ${this.published.manifest.generation} to ` +
        `${published.manifest.generation}`);
    }
    this.published = published;
    this.#takenIteration = undefined;
    // A manifest is the whole file at its iteration: blocks carried at that iteration or before are in it.
    if (this.carriedIteration !== undefined && this.carriedIteration <= published.manifest.generation) {
      this.carried = new DirtyBitmap();
      this.carriedIteration = undefined;
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
