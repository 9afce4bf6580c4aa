/**
 * @module
 * haduck's identity of a database file, kept beside it in `<db>.haduck-identity`.
 *
 * DuckDB 1.4 writes a random `db_identifier` only into encrypted databases; every unencrypted
 * file carries zeros there, so two different databases look alike from their bytes. haduck needs
 * to tell them apart before it appends a local file to a store's history (or a stranger's history
 * to it): the identity is a random id made when haduck first sees the database, recorded in every
 * manifest (`database.haduckIdentity`), and written beside every file `restore` produces.
 */
import * as fs from "node:fs/promises";
import { dirname } from "node:path";

export interface DatabaseIdentity {
  format: "haduck-identity";
  version: 1;
  identity: string;
  createdAt: string;
}

export const identityPath = (dbPath: string) => `${dbPath}.haduck-identity`;

/** The identity beside `dbPath`, or undefined when there is none (or it is unreadable). */
export async function readIdentity(dbPath: string): Promise<DatabaseIdentity | undefined> {
  try {
    const parsed = JSON.parse(await fs.readFile(identityPath(dbPath), "utf8"));
    if (parsed?.format === "haduck-identity" && parsed.version === 1 && typeof parsed.identity === "string") {
      return parsed;
    }
  } catch {
    // missing or damaged: treated as absent, which reconcile refuses when the store has history
  }
  return undefined;
}

/** Writes the identity beside `dbPath` crash-safely (temp file, fsync, rename, fsync of the directory). */
export async function writeIdentity(dbPath: string, identity: string): Promise<DatabaseIdentity> {
  const record: DatabaseIdentity = { format: "haduck-identity", version: 1, identity,
    createdAt: new Date().toISOString() };
  const temp = `${identityPath(dbPath)}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  const handle = await fs.open(temp, "w");
  try {
    await handle.writeFile(JSON.stringify(record) + "\n");
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fs.rename(temp, identityPath(dbPath));
  const directory = await fs.open(dirname(dbPath), "r");
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
  return record;
}

export const newIdentity = () => crypto.randomUUID();
