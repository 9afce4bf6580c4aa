/**
 * The BlockStore contract under Deno: the filesystem store always, and the S3 store against the
 * run's radosgw (tools/test.ts passes it in HADUCK_TEST_S3_*; without it this test fails loudly).
 */
import { AwsClient } from "aws4fetch";
import { blockStoreContract } from "../_contract.ts";
import { FsBlockStore, S3BlockStore } from "../mod.ts";

const root = Deno.makeTempDirSync({ prefix: "haduck-deno-fs-" });
blockStoreContract("FsBlockStore under Deno", (name, fn) => Deno.test(name, fn), async () =>
  new FsBlockStore(`${root}/${crypto.randomUUID()}`));

const endpoint = Deno.env.get("HADUCK_TEST_S3_ENDPOINT");
if (!endpoint) {
  Deno.test("S3BlockStore under Deno needs the run's radosgw", () => {
    throw new Error("HADUCK_TEST_S3_ENDPOINT is not set: run the suite with `bun run test`, which starts radosgw");
  });
} else {
  const accessKey = Deno.env.get("HADUCK_TEST_S3_ACCESS_KEY")!;
  const secretKey = Deno.env.get("HADUCK_TEST_S3_SECRET_KEY")!;
  const client = new AwsClient({ accessKeyId: accessKey, secretAccessKey: secretKey, service: "s3", retries: 0 });
  blockStoreContract("S3BlockStore under Deno", (name, fn) => Deno.test({ name, fn, sanitizeResources: false,
    sanitizeOps: false }), async () => {
    const bucket = `deno-${crypto.randomUUID().slice(0, 8)}`;
    const response = await client.fetch(`${endpoint}/${bucket}`, { method: "PUT" });
    await response.body?.cancel();
    if (response.status !== 200) throw new Error(`Cannot create bucket ${bucket}: ${response.status}`);
    return new S3BlockStore({ bucket, endpoint, accessKey, secretKey, listPageSize: 2,
      multipartThresholdBytes: 5 * 1024 * 1024, multipartPartSizeBytes: 5 * 1024 * 1024 });
  });
}
