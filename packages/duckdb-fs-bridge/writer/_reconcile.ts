/**
 * @module
 * Whether a local file may continue a store's history of `dbKey`, decided before anything is
 * shipped: the file must exist, be the same database (haduck's identity beside it, DuckDB's
 * identifier), and not be older than the store's last generation. Each refusal names the way back.
 */
import type { DuckDBFileInfo } from "@haduck/duckblock";
import { ReplicationError, suggestCommand } from "@haduck/duckblock";
import type { BlockStore } from "@haduck/s3-block-store";
import type { Manifest } from "@haduck/duckblock";
import { identityPath, newIdentity, writeIdentity } from "../local/_identity.ts";

/** Returns the database's haduck identity (written beside the file when a store predates identities). */
export async function agreeWithStore(options: { dbPath: string; dbKey: string; store: BlockStore; previous: Manifest;
  local: DuckDBFileInfo | undefined; sidecarIdentity: string | undefined }): Promise<string> {
  const { dbPath, dbKey, store, previous, local, sidecarIdentity } = options;
  const storeUrl = store.url;
  // The restore that brings the stored database here, complete as printed.
  const restoreCommand = (...args: string[]) => suggestCommand("restore", { store, dbKey, args: [...args, "--to", dbPath] });
  if (!local) {
    throw new ReplicationError("NO_LOCAL_FILE", `${dbPath} does not exist, but ${storeUrl} holds generations of ` +
      `${dbKey} up to ${previous.generation}: run ${restoreCommand()} first, or use another --db-key ` +
      "for a new database");
  }
  const stored = previous.database.haduckIdentity;
  if (stored !== undefined && sidecarIdentity !== stored) {
    throw new ReplicationError("FOREIGN_DATABASE", `${dbPath} is not the database ${dbKey} in ${storeUrl}: ` +
      (sidecarIdentity
        ? `its haduck identity ${sidecarIdentity} differs from the store's ${stored}`
        : `it has no haduck identity (${identityPath(dbPath)})`) +
      `; use another --db-key, or get the stored one with ${restoreCommand("--force")}`);
  }
  // A store written before identities existed: adopt the local file, and record it from now on.
  const identity = sidecarIdentity ?? (await writeIdentity(dbPath, newIdentity())).identity;
  if (local.dbIdentifier !== previous.database.dbIdentifier) {
    throw new ReplicationError("FOREIGN_DATABASE", `${dbPath} is another database than ${dbKey} in ${storeUrl} ` +
      `(identifier ${local.dbIdentifier}, store has ${previous.database.dbIdentifier}): use another --db-key, or ` +
      `get the stored one with ${restoreCommand("--force")}`);
  }
  if (local.generation < previous.generation) {
    throw new ReplicationError("DIVERGED", `${dbPath} is at generation ${local.generation}, older than generation ` +
      `${previous.generation} in ${storeUrl}: run ${restoreCommand("--force")} to bring it up to date`);
  }
  return identity;
}
