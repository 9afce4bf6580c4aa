/**
 * @module
 * Reading an S3 answer's body with a bound: a hostile or broken server cannot make the store
 * buffer without limit, by its Content-Length or by a body without one.
 */
import { InvalidResponseError } from "./_errors.ts";

/** Default cap on an answer's body: 1 GiB (a manifest of millions of blocks fits; an endless body does not). */
export const RESPONSE_BYTES_MAX = 1024 * 1024 * 1024;
/** Room for an S3 error document when an answer's size is otherwise known. */
export const ERROR_BODY_BYTES_MAX = 64 * 1024;
/** Empty, truncated ListObjectsV2 pages in a row that are taken for a server that never ends its listing. */
export const LIST_EMPTY_PAGES_MAX = 100;

/**
 * Reads an answer's body, refusing one larger than `bytesMax` before (by its Content-Length) or
 * while (counting a body without one) it arrives, so a hostile or broken server cannot make the
 * store buffer without bound.
 */
export async function readBody(response: Response, bytesMax: number): Promise<Uint8Array> {
  const declared = response.headers.get("content-length");
  const tooLarge = (size: number | string) => new InvalidResponseError(`the server's answer is ${size} bytes, more than ` +
    `the ${bytesMax} expected (HTTP ${response.status})`);
  if (declared !== null && Number(declared) > bytesMax) {
    await response.body?.cancel().catch(() => {});
    throw tooLarge(declared);
  }
  if (declared !== null || !response.body) return new Uint8Array(await response.arrayBuffer());
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    total += chunk.byteLength;
    if (total > bytesMax) {
      await response.body.cancel().catch(() => {});
      throw tooLarge(`over ${total}`);
    }
    chunks.push(chunk);
  }
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  return bytes;
}
