/**
 * @module
 * The encryption keys a process holds, read from the environment: `HADUCK_ENCRYPTION_KEY` (one key,
 * or several separated by commas or spaces) or `HADUCK_ENCRYPTION_KEY_FILE` (a file with one key per
 * line; blank lines and `#` comments skipped). A key is 32 bytes written as 64 hex digits or in base64.
 * The first key is the current one: every new object is sealed with it; the others only open what
 * they sealed (rotation: put the new key first, run `haduck rekey`, then drop the old one). A key's id
 * is derived from the key (`keyIdOf`), so ids need no bookkeeping and a wrong key never shares an id
 * with the right one. Key material never appears in a message.
 */
import { readFileSync } from "node:fs";
import { StoreConfigError } from "./_errors.ts";
import { type SealKey, sealKey } from "./_seal_format.ts";

/** The environment variables of encryption, by name. */
export const ENCRYPTION_ENV = {
  key: "HADUCK_ENCRYPTION_KEY",
  keyFile: "HADUCK_ENCRYPTION_KEY_FILE",
  acceptPlain: "HADUCK_ENCRYPTION_ACCEPT_PLAIN",
} as const;

/** The keys of one process: the current one (which seals) first, then the ones that only open. */
export class Keyring {
  readonly current: SealKey | undefined;
  readonly #byId = new Map<string, SealKey>();

  constructor(keys: Uint8Array[]) {
    for (const bytes of keys) {
      const key = sealKey(bytes);
      if (!this.#byId.has(key.id)) this.#byId.set(key.id, key);
    }
    this.current = this.#byId.values().next().value;
  }

  /** The key with this id, or undefined. */
  get(id: string): SealKey | undefined {
    return this.#byId.get(id);
  }

  /** Every key's id, the current one first. */
  get ids(): string[] {
    return [...this.#byId.keys()];
  }

  /**
   * The keys configured in `env` (an empty keyring when none is). A malformed key, an unreadable file
   * or both variables set is `StoreConfigError` naming the variable and the fix.
   *
   * @example
   * ```ts
   * import { Keyring } from "./_keyring.ts";
   * const keyring = Keyring.fromEnv({ HADUCK_ENCRYPTION_KEY: "00".repeat(32) });
   * console.log(keyring.current?.id);
   * ```
   */
  static fromEnv(env: Record<string, string | undefined>): Keyring {
    const inline = env[ENCRYPTION_ENV.key] || undefined;
    const file = env[ENCRYPTION_ENV.keyFile] || undefined;
    if (inline && file) {
      throw new StoreConfigError(`Cannot configure encryption: both ${ENCRYPTION_ENV.key} and ` +
        `${ENCRYPTION_ENV.keyFile} are set; set one (a key file may hold several keys, the current one first)`);
    }
    if (file) {
      let text: string;
      try {
        text = readFileSync(file, "utf8");
      } catch (error) {
        throw new StoreConfigError(`Cannot read ${ENCRYPTION_ENV.keyFile} ${file}: ${(error as NodeJS.ErrnoException)
          .code ?? (error as Error).message}; give the path of a file with one key per line`);
      }
      const lines = text.split("\n").map((line) => line.replace(/#.*$/, "").trim());
      const keys = lines.flatMap((line, index) => line ? [parseKey(line, `line ${index + 1} of ${file}`)] : []);
      if (keys.length === 0) throw new StoreConfigError(`${ENCRYPTION_ENV.keyFile} ${file} holds no key: write one ` +
        "key per line (64 hex digits or base64 of 32 bytes), the current one first");
      return new Keyring(keys);
    }
    if (inline) {
      return new Keyring(inline.split(/[\s,]+/).filter(Boolean).map((text, index) =>
        parseKey(text, `${ENCRYPTION_ENV.key} (key ${index + 1})`)));
    }
    return new Keyring([]);
  }
}

/** 32 bytes from 64 hex digits or base64 (standard or URL-safe, padded or not). */
export function parseKey(text: string, where: string): Uint8Array {
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Uint8Array.from(text.match(/../g)!, (pair) => parseInt(pair, 16));
  if (/^[A-Za-z0-9+/_-]{43}=?$/.test(text)) {
    const binary = atob(text.slice(0, 43).replaceAll("-", "+").replaceAll("_", "/") + "=");
    if (binary.length === 32) return Uint8Array.from(binary, (char) => char.charCodeAt(0));
  }
  throw new StoreConfigError(`Invalid encryption key in ${where}: a key is 32 bytes written as 64 hex digits or ` +
    `in base64 (44 characters), not ${text.length} characters; generate one with \`openssl rand -hex 32\``);
}
