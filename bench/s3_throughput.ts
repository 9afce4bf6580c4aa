/**
 * 256 KiB PUT and GET throughput of `S3BlockStore` against radosgw at concurrency 1, 8 and 32, next
 * to a bare aws4fetch loop doing the same requests in the same run (alternating rounds; the figure
 * that matters is the ratio, since the machine is shared). Goal: the store at least 0.9x the bare
 * loop, although it also hashes every payload (SHA-256 signed, Content-MD5) and bounds what is in
 * flight. Writes bench/results/s3_throughput.json. Run: `bun bench/s3_throughput.ts [objects]`.
 */
import { AwsClient } from "aws4fetch";
import { S3BlockStore } from "@haduck/s3-block-store";
import { startRadosgw } from "../tests/harness/radosgw.ts";
import { median, writeResult } from "./_report.ts";

const OBJECTS = Number(process.argv[2] ?? 128);
const OBJECT_BYTES = 256 * 1024;
const ROUNDS = 3;
const CONCURRENCIES = [1, 8, 32];

const cluster = await startRadosgw();
try {
  const client = new AwsClient({ accessKeyId: cluster.accessKey, secretAccessKey: cluster.secretKey, service: "s3",
    region: cluster.region, retries: 0 });
  const bucket = `bench-${crypto.randomUUID().slice(0, 8)}`;
  const created = await client.fetch(`${cluster.endpoint}/${bucket}`, { method: "PUT" });
  if (created.status !== 200) throw new Error(`Cannot create bench bucket: ${created.status}`);
  const store = new S3BlockStore({ ...cluster, bucket, prefix: "store", requestsInFlightMax: 64 });
  const body = new Uint8Array(OBJECT_BYTES);
  crypto.getRandomValues(body.subarray(0, 65536));

  /** Runs `operation(i)` for every object index with `concurrency` workers; returns MiB/s. */
  const drive = async (concurrency: number, operation: (index: number) => Promise<void>) => {
    let next = 0;
    const started = performance.now();
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (next < OBJECTS) await operation(next++);
    }));
    const seconds = (performance.now() - started) / 1000;
    return (OBJECTS * OBJECT_BYTES) / 1048576 / seconds;
  };
  const bareUrl = (round: number, index: number) => `${cluster.endpoint}/${bucket}/bare/${round}/${index}`;
  const bare = {
    put: (round: number) => async (index: number) => {
      const response = await client.fetch(bareUrl(round, index), { method: "PUT", body });
      await response.arrayBuffer();
      if (response.status !== 200) throw new Error(`bare PUT: ${response.status}`);
    },
    get: (round: number) => async (index: number) => {
      const response = await client.fetch(bareUrl(round, index));
      if ((await response.arrayBuffer()).byteLength !== OBJECT_BYTES) throw new Error("bare GET: short body");
    },
  };
  const ours = {
    put: (round: number) => async (index: number) => void await store.put(`${round}/${index}`, body),
    get: (round: number) => async (index: number) => void await store.get(`${round}/${index}`),
  };

  const results: Record<string, unknown>[] = [];
  for (const concurrency of CONCURRENCIES) {
    const mibPerSecond = { barePut: [] as number[], storePut: [] as number[], bareGet: [] as number[],
      storeGet: [] as number[] };
    for (let round = 0; round < ROUNDS; round++) {
      const tag = concurrency * 100 + round;
      mibPerSecond.barePut.push(await drive(concurrency, bare.put(tag)));
      mibPerSecond.storePut.push(await drive(concurrency, ours.put(tag)));
      mibPerSecond.bareGet.push(await drive(concurrency, bare.get(tag)));
      mibPerSecond.storeGet.push(await drive(concurrency, ours.get(tag)));
    }
    const row = {
      concurrency,
      medianMiBPerSecond: Object.fromEntries(Object.entries(mibPerSecond).map(([k, v]) => [k, median(v)])),
      putRatio: median(mibPerSecond.storePut) / median(mibPerSecond.barePut),
      getRatio: median(mibPerSecond.storeGet) / median(mibPerSecond.bareGet),
    };
    results.push(row);
    console.log(JSON.stringify(row));
  }
  writeResult("s3_throughput", { objects: OBJECTS, objectBytes: OBJECT_BYTES, rounds: ROUNDS, goalRatio: 0.9, results });
} finally {
  await cluster.stop();
}
