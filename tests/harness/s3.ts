/**
 * @module
 * The S3 server of a test run. `tools/test.ts` starts one radosgw for the whole run and passes it
 * in `HADUCK_TEST_S3_*`; a test file run on its own starts one for its process. Either way a test
 * that needs S3 gets it or fails loudly with the install hint: it never skips.
 */
import { setDefaultTimeout } from "bun:test";
import { S3BlockStore, type S3BlockStoreOptions } from "@haduck/s3-block-store";
import { findCephConf, radosgwAdmin, type RadosgwCluster, startRadosgw } from "./radosgw.ts";

export interface TestS3 {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  region: string;
}

// Starting the cluster takes about 7 s, and S3 tests on a shared 2-core machine are not quick.
setDefaultTimeout(120_000);

let started: Promise<TestS3> | undefined;
let owned: RadosgwCluster | undefined;

/** The run's S3 server: from the environment, or started now for this process. */
export function testS3(): Promise<TestS3> {
  if (!started) {
    const endpoint = process.env.HADUCK_TEST_S3_ENDPOINT;
    if (endpoint) {
      started = Promise.resolve({
        endpoint,
        accessKey: process.env.HADUCK_TEST_S3_ACCESS_KEY!,
        secretKey: process.env.HADUCK_TEST_S3_SECRET_KEY!,
        region: "us-east-1",
      });
    } else {
      started = startRadosgw().then((cluster) => {
        owned = cluster;
        process.once("beforeExit", () => void cluster.stop());
        return cluster;
      });
    }
  }
  return started;
}

/** Stops the server this process started, if any. */
export async function stopOwnedS3(): Promise<void> {
  await owned?.stop();
}

/** Creates a fresh bucket and returns a store on it (prefix `haduck` unless given). */
export async function freshBucket(
  label: string,
  options: Partial<S3BlockStoreOptions> = {},
): Promise<{ store: S3BlockStore; bucket: string; s3: TestS3 }> {
  const s3 = await testS3();
  const bucket = `${label.toLowerCase().replace(/[^a-z0-9-]/g, "-").slice(0, 40)}-${
    crypto.randomUUID().slice(0, 8)
  }`;
  const store = new S3BlockStore({ ...s3, bucket, prefix: "haduck", ...options });
  // Creating a bucket is no part of the store's contract; sign it with the same client setup.
  const { AwsClient } = await import("aws4fetch");
  const client = new AwsClient({ accessKeyId: s3.accessKey, secretAccessKey: s3.secretKey, service: "s3",
    region: s3.region, retries: 0 });
  const response = await client.fetch(`${s3.endpoint}/${bucket}`, { method: "PUT" });
  if (response.status !== 200) throw new Error(`Cannot create test bucket ${bucket}: ${response.status}`);
  return { store, bucket, s3 };
}

export interface TestKey {
  accessKey: string;
  secretKey: string;
}

/**
 * A new radosgw user with `count` keys of its own (a user per call, so tests never touch the shared
 * test user's keys): for credentials that rotate. `removeKey` makes the server refuse a key at once;
 * it runs radosgw-admin without blocking the event loop (fakes in the same process keep answering).
 */
export async function createTestKeys(count: number): Promise<{ uid: string; keys: TestKey[];
  removeKey(accessKey: string): Promise<void> }> {
  const s3 = await testS3();
  const conf = owned?.conf ?? findCephConf(s3.endpoint);
  if (!conf) {
    throw new Error(`Cannot create S3 keys: the ceph.conf of the radosgw at ${s3.endpoint} is unknown; set ` +
      "HADUCK_TEST_S3_CEPH_CONF (tools/test.ts and `bun tests/harness/radosgw.ts --serve` print it)");
  }
  const uid = `haduck-keys-${crypto.randomUUID().slice(0, 8)}`;
  const keys = Array.from({ length: count }, (_, index) => ({
    accessKey: `HDK${uid.slice(-8).toUpperCase()}${String(index).padStart(4, "0")}`.padEnd(20, "X"),
    secretKey: `haduck-rotating-${crypto.randomUUID()}`,
  }));
  radosgwAdmin(conf, ["user", "create", "--uid", uid, "--display-name", uid, "--access-key", keys[0].accessKey,
    "--secret", keys[0].secretKey]);
  for (const key of keys.slice(1)) {
    radosgwAdmin(conf, ["key", "create", "--uid", uid, "--access-key", key.accessKey, "--secret", key.secretKey]);
  }
  return { uid, keys, async removeKey(accessKey) {
    const child = Bun.spawn(["radosgw-admin", "-c", conf, "-n", "client.rgw.a", "key", "rm", "--uid", uid,
      "--access-key", accessKey], { stdout: "ignore", stderr: "pipe" });
    const [stderr, code] = await Promise.all([new Response(child.stderr).text(), child.exited]);
    if (code !== 0) throw new Error(`radosgw-admin key rm ${accessKey} failed (exit ${code}): ${stderr.trim()}`);
  } };
}

/** Creates `bucket` signed with `key` (the bucket's owner is the key's user). */
export async function createBucketAs(bucket: string, key: TestKey): Promise<void> {
  const s3 = await testS3();
  const { AwsClient } = await import("aws4fetch");
  const client = new AwsClient({ accessKeyId: key.accessKey, secretAccessKey: key.secretKey, service: "s3",
    region: s3.region, retries: 0 });
  const response = await client.fetch(`${s3.endpoint}/${bucket}`, { method: "PUT" });
  if (response.status !== 200) throw new Error(`Cannot create test bucket ${bucket}: ${response.status}`);
}
