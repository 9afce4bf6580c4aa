/**
 * A hostile or broken server (a small Bun.serve on 127.0.0.1 that answers what each case needs;
 * radosgw cannot be made to misbehave like this): listings that never end, malformed XML and keys,
 * bodies larger than expected. Each is a typed InvalidResponseError naming the problem, after a
 * bounded number of requests and bytes; never a raw RangeError or URIError, never a hang.
 */
import { afterEach, expect, test } from "bun:test";
import { InvalidResponseError, S3BlockStore } from "@haduck/s3-block-store";

let server: ReturnType<typeof Bun.serve> | undefined;
afterEach(() => server?.stop(true));

function hostile(answer: (url: URL, requests: number) => Response) {
  let requests = 0;
  server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (request) => answer(new URL(request.url), ++requests) });
  const store = new S3BlockStore({ endpoint: `http://127.0.0.1:${server.port}`, bucket: "b", accessKey: "AKIAHOSTILE0000000",
    secretKey: "hostile-secret", region: "us-east-1", prefix: "p", retry: { attemptsMax: 2, delayBaseMs: 1 },
    responseBytesMax: 1024 * 1024 });
  return { store, requests: () => requests };
}

const page = (contents: string, token?: string) => new Response(`<?xml version="1.0"?><ListBucketResult>` +
  `<EncodingType>url</EncodingType>${contents}<IsTruncated>${token ? "true" : "false"}</IsTruncated>` +
  (token ? `<NextContinuationToken>${token}</NextContinuationToken>` : "") + "</ListBucketResult>");
const entry = (key: string) => `<Contents><Key>${key}</Key><Size>1</Size><ETag>"e"</ETag></Contents>`;

async function listAll(store: S3BlockStore) {
  const keys: string[] = [];
  for await (const object of store.list("db/")) keys.push(object.key);
  return keys;
}

test("a listing whose server repeats its continuation token ends with InvalidResponseError", async () => {
  const { store, requests } = hostile(() => page(entry("p/db/a"), "same-token"));
  const error = await listAll(store).catch((e) => e);
  expect(error).toBeInstanceOf(InvalidResponseError);
  expect(error.message).toContain("repeated a continuation token");
  expect(requests()).toBe(2);
});

test("a listing of endless empty pages ends with InvalidResponseError", async () => {
  const { store, requests } = hostile((_, n) => page("", `token-${n}`));
  const error = await listAll(store).catch((e) => e);
  expect(error).toBeInstanceOf(InvalidResponseError);
  expect(error.message).toContain("empty pages");
  expect(requests()).toBeLessThan(110);
});

test("malformed XML character references and keys are InvalidResponseError, not RangeError or URIError", async () => {
  const badReference = hostile(() => page(entry("p/db/&#99999999;")));
  const reference = await listAll(badReference.store).catch((e) => e);
  expect(reference).toBeInstanceOf(InvalidResponseError);
  expect(reference.message).toContain("malformed XML");
  server?.stop(true);
  const badKey = hostile(() => page(entry("p/db/%E0%A4%A")));
  const key = await listAll(badKey.store).catch((e) => e);
  expect(key).toBeInstanceOf(InvalidResponseError);
  expect(key.message).toContain("not URL-encoded");
});

test("a body larger than expected is refused, never buffered whole", async () => {
  const declared = hostile(() => new Response("x".repeat(2 * 1024 * 1024)));
  const error = await declared.store.get("db/object").catch((e) => e);
  expect(error).toBeInstanceOf(InvalidResponseError);
  expect(error.message).toContain("more than the 1048576 expected");
  server?.stop(true);
  // No Content-Length: a stream that would go on for 64 MiB is cut at the cap.
  let sent = 0;
  const streamed = hostile(() => new Response(new ReadableStream({
    pull(controller) {
      if (sent >= 64 * 1024 * 1024) return controller.close();
      sent += 65536;
      controller.enqueue(new Uint8Array(65536));
    },
  })));
  const cut = await streamed.store.get("db/object").catch((e) => e);
  expect(cut).toBeInstanceOf(InvalidResponseError);
  expect(sent).toBeLessThan(16 * 1024 * 1024);
  server?.stop(true);
  // A ranged GET answered with the whole object (a server that ignores Range) is refused too.
  const ranged = hostile(() => new Response(new Uint8Array(512 * 1024)));
  const whole = await ranged.store.get("db/object", { range: { offsetBytes: 0, lengthBytes: 100 } }).catch((e) => e);
  expect(whole).toBeInstanceOf(InvalidResponseError);
});
