/** The S3 test server is real: SigV4 is checked, conditional writes are enforced. */
import { expect, test } from "bun:test";
import { AwsClient } from "aws4fetch";
import { testS3 } from "./harness/s3.ts";

test("radosgw harness: PUT, GET and LIST with aws4fetch work", async () => {
  const s3 = await testS3();
  const client = new AwsClient({ accessKeyId: s3.accessKey, secretAccessKey: s3.secretKey, service: "s3",
    region: s3.region, retries: 0 });
  const bucket = `harness-${crypto.randomUUID().slice(0, 8)}`;
  expect((await client.fetch(`${s3.endpoint}/${bucket}`, { method: "PUT" })).status).toBe(200);
  expect((await client.fetch(`${s3.endpoint}/${bucket}/a/key`, { method: "PUT", body: "hello" })).status).toBe(200);
  expect(await (await client.fetch(`${s3.endpoint}/${bucket}/a/key`)).text()).toBe("hello");
  const listing = await (await client.fetch(`${s3.endpoint}/${bucket}?list-type=2&prefix=a/`)).text();
  expect(listing).toContain("<Key>a/key</Key>");
});

test("radosgw harness: a wrong secret gets 403", async () => {
  const s3 = await testS3();
  const client = new AwsClient({ accessKeyId: s3.accessKey, secretAccessKey: "not-the-secret", service: "s3",
    region: s3.region, retries: 0 });
  expect((await client.fetch(`${s3.endpoint}/`)).status).toBe(403);
});

test("radosgw harness: If-None-Match: * on an existing key gets 412", async () => {
  const s3 = await testS3();
  const client = new AwsClient({ accessKeyId: s3.accessKey, secretAccessKey: s3.secretKey, service: "s3",
    region: s3.region, retries: 0 });
  const bucket = `harness-${crypto.randomUUID().slice(0, 8)}`;
  await client.fetch(`${s3.endpoint}/${bucket}`, { method: "PUT" });
  const put = () => client.fetch(`${s3.endpoint}/${bucket}/once`, { method: "PUT", body: "x",
    headers: { "If-None-Match": "*" } });
  expect((await put()).status).toBe(200);
  expect((await put()).status).toBe(412);
});
