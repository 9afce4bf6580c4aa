/**
 * @module
 * The replicator's start and end against what the local file holds: reconcile (the file with the
 * store's last generation, before DuckDB opens it or while a restarted sidecar's DuckDB writes),
 * the WAL a crashed process left, the lost WAL marks a live start rebuilds, and the commits a
 * quiescent file's WAL holds at stop that were never announced.
 */
import { statSync } from "node:fs";
import { ReplicationError, walkFrames } from "@haduck/duckblock";
import { readFileInfo } from "../local/_block_source.ts";
import { newIdentity, readIdentity, writeIdentity } from "../local/_identity.ts";
import { agreeWithStore } from "./_reconcile.ts";
import { leftoverWal, type OrphanPolicy, shipLeftoverWal, storedFramesMatchWal } from "./_wal_leftover.ts";
import { allBlocks, catchUp } from "./_generation_pass.ts";
import type { ReplicatorCore } from "./_replicator_core.ts";

/**
 * Reconciles a quiescent local file (before DuckDB opens it) with the store's last generation:
 * the same generation is consistent by construction (blocks the committed header references are
 * never rewritten while it is active); a newer local generation, or a database the store has no
 * generation of yet, ships every block whose bytes differ as a new generation; an older one or
 * another database is refused. `live`: DuckDB writes the file meanwhile (a sidecar started again);
 * what differs is carried and shipped by the replicator's own passes, and this returns at once.
 */
export async function reconcile(core: ReplicatorCore,
  options: { live?: boolean } = {}): Promise<{ shippedGeneration: number | null }> {
  core.live = options.live ?? false;
  const store = core.options.store;
  const previous = core.ledger.published?.manifest;
  const local = readFileInfo(core.options.dbPath);
  const sidecar = await readIdentity(core.options.dbPath);
  if (!store) return { shippedGeneration: null }; // local-only: nothing to agree with
  if (!previous) {
    core.identity = (sidecar ?? await writeIdentity(core.options.dbPath, newIdentity())).identity;
    if (!local) {
      core.reconciled = true;
      return { shippedGeneration: null };
    }
    // A file new to the store may have a WAL too (a crash before haduck knew it, or local-only use):
    // its optimistic blocks lie past the header's block count, which the first generation stops at.
    const shipped = await shipWhole(core, local.generation);
    await reconcileLeftoverWal(core);
    return shipped;
  }
  core.identity = await agreeWithStore({ dbPath: core.options.dbPath, dbKey: core.options.dbKey, store,
    previous, local, sidecarIdentity: sidecar?.identity });
  if (local!.generation === previous.generation) {
    core.reconciled = true;
    if (core.live) await rebuildLostMarks(core);
    else {
      await reconcileLeftoverWal(core);
      await continueStoredChain(core);
    }
    return { shippedGeneration: null };
  }
  const shipped = await shipWhole(core, local!.generation);
  await reconcileLeftoverWal(core);
  return shipped;
}

/** At stop, with the file quiescent: commits in the WAL that no frame holds (never announced) ship as at a restart. */
export async function shipUnannouncedWal(core: ReplicatorCore): Promise<void> {
  const published = core.ledger.published;
  const chain = core.wal?.chain;
  if (!published || !chain || chain.generation !== published.manifest.generation) return;
  const wal = statSync(`${core.options.dbPath}.wal`, { throwIfNoEntry: false });
  if (!wal || wal.size <= chain.walShipped) return;
  const leftover = leftoverWal(core.options.dbPath, published);
  if (!leftover) return;
  // Frames of ours may still be in flight: nothing is removed here.
  const problem = await shipLeftoverWal({ dbPath: core.options.dbPath, store: core.options.store!,
    dbKey: core.options.dbKey, published, shipper: core.wal!, leftover,
    orphans: { ...orphanPolicy(core), mayWrite: () => false } });
  if (problem) core.fail(problem);
}

/**
 * A WAL an earlier process left beside the quiescent file (a crash, or an exit without checkpoint):
 * its commits reference blocks DuckDB wrote after the published header, which this process never
 * saw written. They are found by comparing the file with the manifest; the next generation carries
 * them (without that it would inherit the manifest's old bytes for blocks its header needs), and
 * the WAL's commits beyond the stored frames ship as frames, before DuckDB replays them. Not while
 * DuckDB writes (`live`): then the extension's own bitmap still has every mark since the header.
 */
async function reconcileLeftoverWal(core: ReplicatorCore): Promise<void> {
  const published = core.ledger.published;
  if (core.live || !published) return;
  const leftover = leftoverWal(core.options.dbPath, published);
  if (!leftover) return;
  if (!leftover.differing) {
    throw new ReplicationError("INTEGRITY", `Cannot compare ${core.options.dbPath} with generation ` +
      `${published.manifest.generation} of ${core.options.dbKey}: ${leftover.readError}; check the file's permissions`);
  }
  core.ledger.frame(leftover.differing);
  if (!core.wal) return;
  const problem = await shipLeftoverWal({ dbPath: core.options.dbPath, store: core.options.store!,
    dbKey: core.options.dbKey, published, shipper: core.wal, leftover, orphans: orphanPolicy(core) });
  if (problem) core.fail(problem);
}

/** At a start: orphans past the stored chain may go while this writer may write (see OrphanPolicy). */
function orphanPolicy(core: ReplicatorCore): OrphanPolicy {
  const fence = core.options.fence;
  return { epoch: fence?.epoch ?? 0, mayWrite: () => !fence || fence.mayWrite() };
}

/**
 * Started while DuckDB writes (the last replicator died), at the published generation's own
 * generation: the WAL marks the dead one was told died with it, so without this frames would stop
 * until the next checkpoint, and the next generation would lack the blocks only frames hold. The
 * file is compared with the manifest (a block being written meanwhile reads as differing, or is
 * marked again by the extension after this started: nothing drains those marks until we are
 * ready); those blocks are carried into the next generation and ride in the next frame. Then
 * `ready rebuilt <generation>` tells the extension the marks are whole (`marksRebuilt`).
 */
async function rebuildLostMarks(core: ReplicatorCore): Promise<void> {
  const published = core.ledger.published!;
  const generation = published.manifest.generation;
  const manifestSha256 = Buffer.from(published.sha256, "hex");
  const wal = statSync(`${core.options.dbPath}.wal`, { throwIfNoEntry: false });
  if (!wal?.size) {
    // No commit since the header: the extension drains WAL marks only at a WAL sync, so none were
    // lost; frames start from the manifest.
    core.wal?.resumeChain(generation, undefined, manifestSha256, []);
    core.marksRebuilt = core.wal ? generation : undefined;
    return;
  }
  const leftover = leftoverWal(core.options.dbPath, published);
  if (!leftover?.differing) return; // unreadable now: frames wait for the next header
  core.ledger.frame(leftover.differing);
  if (!core.wal) return;
  try {
    const walk = await storedFramesMatchWal({ dbPath: core.options.dbPath, store: core.options.store!,
      dbKey: core.options.dbKey, published, orphans: orphanPolicy(core) });
    if ("problem" in walk) throw new Error(walk.problem);
    core.wal.resumeChain(generation, walk.last, manifestSha256, leftover.differing);
    core.marksRebuilt = generation;
  } catch (error) {
    core.fail(`WAL frames of generation ${published.manifest.generation} of ${core.options.dbKey} wait for the ` +
      `next checkpoint: ${(error as Error).message}`);
  }
}

/**
 * The file is the published generation with no WAL (a promoted node's restore of a generation
 * whose frames hold no commits: a new leader's fence, frames of blocks only): frames go on after
 * the stored ones instead of colliding with them. Frames that hold commits the file lacks are
 * left alone: the next frame collides with them, and the next checkpoint carries on.
 */
async function continueStoredChain(core: ReplicatorCore): Promise<void> {
  const published = core.ledger.published;
  const chain = core.wal?.chain;
  if (!published || !chain || chain.generation !== published.manifest.generation || chain.walShipped > 0) return;
  if (statSync(`${core.options.dbPath}.wal`, { throwIfNoEntry: false })?.size) return;
  const walk = await walkFrames({ store: core.options.store!, dbKey: core.options.dbKey,
    generation: published.manifest.generation, manifestSha256: published.sha256 });
  if (walk.last && walk.last.walEnd === 0) {
    core.wal!.resumeChain(published.manifest.generation, walk.last, Buffer.from(published.sha256, "hex"), []);
  }
}

/** Ships every block of the quiescent file that differs from the last manifest; throws when it cannot. */
async function shipWhole(core: ReplicatorCore, generation: number): Promise<{ shippedGeneration: number | null }> {
  if (core.live) {
    // DuckDB writes meanwhile: the pass must be one of the replicator's own, one at a time with
    // the generations' passes (ReusableUploads and the hold rely on it), so it is queued, not run here.
    const local = readFileInfo(core.options.dbPath);
    core.ledger.carry(allBlocks(local?.blockCount ?? 0), local?.generation ?? generation);
    core.reconciled = true;
    const at = local?.generation ?? generation;
    if (!core.loop.working() && core.loop.queued() === 0) core.loop.run(() => catchUp(core, at, { everyBlock: true }));
    else core.loop.scheduleCatchUp();
    return { shippedGeneration: null };
  }
  await catchUp(core, generation, { everyBlock: true });
  if (core.ledger.published?.manifest.generation !== generation) {
    throw new ReplicationError("INTEGRITY", core.status.lastError ?? `Cannot ship generation ${generation} of ` +
      `${core.options.dbKey}: the file changed while it was read; retry`);
  }
  core.loop.cancelCatchUp();
  core.reconciled = true;
  return { shippedGeneration: generation };
}
