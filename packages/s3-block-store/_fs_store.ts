/**
 * @module
 * `FsBlockStore`: the `BlockStore` contract over a local directory, the embedded default for
 * trying haduck without S3. Writes are crash-safe: a temp file is written and fsynced, then
 * renamed (or hard-linked, for create-only, which fails atomically if the key exists), then the
 * directory is fsynced. No partial object is ever visible under its key.
 */
import { constants, readFileSync } from "node:fs";
import process from "node:process";
import * as fs from "node:fs/promises";
import { dirname, join, relative, resolve, sep } from "node:path";
import { ChecksumMismatchError, BlockNotFoundError, PreconditionFailedError, StoreConfigError } from "./_errors.ts";
import { sha256Hex } from "./_digest.ts";
import { probeCapabilities } from "./_probe.ts";
import { assertValidKey } from "./_types.ts";
import type {
  BlockStore, GetOptions, ListOptions, ObjectInfo, PutOptions, PutResult, StoreCapabilities,
} from "./_types.ts";

const TEMP_MARK = ".haduck-tmp-";
const LOCK_SUFFIX = ".haduck-lock";
/** A lock whose holder never wrote its pid is stale after this long (a critical section takes milliseconds). */
const LOCK_STALE_MS = 5_000;

/** Whether a process with this pid runs (a stopped one does; a zombie counts as gone, it holds nothing). */
function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return isCode(error, "EPERM");
  }
  try {
    return !/^\d+ \(.*\) Z/s.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return true; // no /proc here: trust kill()
  }
}

function isCode(error: unknown, code: string): boolean {
  return typeof error === "object" && error !== null && (error as { code?: string }).code === code;
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, constants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * A block store in a local directory.
 *
 * @example
 * ```ts
 * import { FsBlockStore } from "@haduck/s3-block-store";
 * const store = new FsBlockStore("/tmp/haduck-store");
 * await store.put("hello", new TextEncoder().encode("world"));
 * ```
 */
export class FsBlockStore implements BlockStore {
  readonly root: string;

  constructor(root: string) {
    if (typeof root !== "string" || !root.startsWith("/")) {
      throw new StoreConfigError(`Invalid store directory ${JSON.stringify(root)}: use an absolute path`);
    }
    this.root = resolve(root);
  }

  get url(): string {
    return `file://${this.root}`;
  }

  toString(): string {
    return `FsBlockStore(${this.url})`;
  }

  #path(key: string): string {
    assertValidKey(key);
    if (key.includes(TEMP_MARK) || key.endsWith(LOCK_SUFFIX)) {
      throw new TypeError(`Invalid object key ${JSON.stringify(key)}: reserved by the filesystem store`);
    }
    return join(this.root, ...key.split("/"));
  }

  async #etagOf(path: string): Promise<string | undefined> {
    try {
      return sha256Hex(await fs.readFile(path));
    } catch (error) {
      if (isCode(error, "ENOENT") || isCode(error, "ENOTDIR")) return undefined;
      throw error;
    }
  }

  async #writeTemp(path: string, body: Uint8Array): Promise<string> {
    await fs.mkdir(dirname(path), { recursive: true });
    const temp = `${path}${TEMP_MARK}${crypto.randomUUID()}`;
    const handle = await fs.open(temp, "wx");
    try {
      await handle.writeFile(body);
      await handle.sync();
    } finally {
      await handle.close();
    }
    return temp;
  }

  /** Serializes compare-and-swap on one key across processes with an atomic mkdir. */
  async #withLock<T>(path: string, task: () => Promise<T>): Promise<T> {
    const lock = `${path}${LOCK_SUFFIX}`;
    await fs.mkdir(dirname(path), { recursive: true });
    for (let delayMs = 1;; delayMs = Math.min(delayMs * 2, 50)) {
      try {
        await fs.mkdir(lock);
        await fs.writeFile(join(lock, "pid"), String(process.pid));
        break;
      } catch (error) {
        if (!isCode(error, "EEXIST")) throw error;
        // A holder killed inside its critical section leaves the lock: gone with its process (its pid
        // no longer runs), or, if it died before writing its pid, once the lock is old.
        const owner = Number(await fs.readFile(join(lock, "pid"), "utf8").catch(() => ""));
        const stat = await fs.stat(lock).catch(() => undefined);
        const dead = owner > 0 ? !processRuns(owner) : stat !== undefined && Date.now() - stat.mtimeMs > LOCK_STALE_MS;
        if (dead) await fs.rm(lock, { recursive: true, force: true }).catch(() => {});
        await new Promise((wake) => setTimeout(wake, delayMs));
      }
    }
    try {
      return await task();
    } finally {
      await fs.rm(lock, { recursive: true, force: true }).catch(() => {});
    }
  }

  async put(key: string, body: Uint8Array, options: PutOptions = {}): Promise<PutResult> {
    const path = this.#path(key);
    if (!(body instanceof Uint8Array)) throw new TypeError("put() needs the body as a Uint8Array");
    const etag = sha256Hex(body);
    const temp = await this.#writeTemp(path, body);
    try {
      if (options.ifNoneMatch) {
        try {
          await fs.link(temp, path); // atomic create-only: fails with EEXIST if the key exists
        } catch (error) {
          if (isCode(error, "EEXIST")) throw new PreconditionFailedError(key, this.url, "it already exists");
          throw error;
        }
      } else if (options.ifMatch !== undefined) {
        await this.#withLock(path, async () => {
          const current = await this.#etagOf(path);
          if (current !== options.ifMatch) {
            throw new PreconditionFailedError(key, this.url, "it changed or disappeared since the ETag was read");
          }
          await fs.rename(temp, path);
        });
      } else {
        await fs.rename(temp, path);
      }
      await fsyncDir(dirname(path));
      return { etag };
    } finally {
      await fs.rm(temp, { force: true });
    }
  }

  async get(key: string, options: GetOptions = {}): Promise<Uint8Array> {
    const path = this.#path(key);
    let handle: fs.FileHandle;
    try {
      handle = await fs.open(path, "r");
    } catch (error) {
      if (isCode(error, "ENOENT") || isCode(error, "ENOTDIR") || isCode(error, "EISDIR")) {
        throw new BlockNotFoundError(key, this.url);
      }
      throw error;
    }
    let bytes: Uint8Array;
    try {
      const stat = await handle.stat();
      if (!stat.isFile()) throw new BlockNotFoundError(key, this.url);
      const range = options.range;
      if (range) {
        if (!(range.offsetBytes >= 0) || !(range.lengthBytes >= 1)) {
          throw new RangeError(`Invalid range for ${key}: offset >= 0 and length >= 1 are required`);
        }
        bytes = new Uint8Array(range.lengthBytes);
        const { bytesRead } = await handle.read(bytes, 0, range.lengthBytes, range.offsetBytes);
        if (bytesRead !== range.lengthBytes) {
          throw new ChecksumMismatchError(key, `asked for ${range.lengthBytes} bytes at ${range.offsetBytes}, ` +
            `the object has ${stat.size} bytes`);
        }
      } else {
        bytes = new Uint8Array(await handle.readFile());
      }
    } finally {
      await handle.close();
    }
    if (options.sha256 !== undefined) {
      const actual = sha256Hex(bytes);
      if (actual !== options.sha256) {
        throw new ChecksumMismatchError(key, `expected sha256 ${options.sha256}, read ${actual}`);
      }
    }
    return bytes;
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const path = this.#path(key);
    const stat = await fs.stat(path).catch((error) => {
      if (isCode(error, "ENOENT") || isCode(error, "ENOTDIR")) return undefined;
      throw error;
    });
    if (!stat || !stat.isFile()) return undefined;
    const etag = await this.#etagOf(path);
    if (etag === undefined) return undefined;
    return { key, sizeBytes: stat.size, etag, lastModified: stat.mtime };
  }

  async #walk(dir: string, out: string[]): Promise<void> {
    const entries = await fs.readdir(dir, { withFileTypes: true }).catch((error) => {
      if (isCode(error, "ENOENT") || isCode(error, "ENOTDIR")) return [];
      throw error;
    });
    for (const entry of entries) {
      const path = join(dir, entry.name);
      if (entry.isDirectory() && !entry.name.endsWith(LOCK_SUFFIX)) await this.#walk(path, out);
      else if (entry.isFile() && !entry.name.includes(TEMP_MARK)) out.push(relative(this.root, path).split(sep).join("/"));
    }
  }

  async *list(prefix: string, options: ListOptions = {}): AsyncIterable<ObjectInfo> {
    // Walk only the deepest directory the prefix names; the rest of the prefix filters names.
    const slash = prefix.lastIndexOf("/");
    const base = slash >= 0 ? join(this.root, ...prefix.slice(0, slash).split("/")) : this.root;
    const keys: string[] = [];
    await this.#walk(base, keys);
    keys.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (const key of keys) {
      if (!key.startsWith(prefix)) continue;
      if (options.startAfter !== undefined && key <= options.startAfter) continue;
      const info = await this.head(key);
      if (info) yield info;
    }
  }

  async delete(key: string): Promise<void> {
    const path = this.#path(key);
    await fs.rm(path, { force: true });
  }

  async deleteMany(keys: string[]): Promise<void> {
    for (const key of keys) await this.delete(key);
  }

  probeCapabilities(): Promise<StoreCapabilities> {
    return probeCapabilities(this);
  }
}
