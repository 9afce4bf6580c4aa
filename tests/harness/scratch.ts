/**
 * @module
 * A cluster test file's scratch: a temp directory, and the nodes and fault proxies it starts. After
 * the file's last test every node is killed (-9), every proxy closed and the directory removed.
 */
import { afterAll } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ClusterNodeProcess } from "./cluster.ts";
import type { FaultProxy } from "./fault_proxy.ts";

export function clusterScratch(name: string): { dir: string; running: ClusterNodeProcess[]; proxies: FaultProxy[] } {
  const scratch = { dir: mkdtempSync(join(tmpdir(), `haduck-${name}-`)), running: [] as ClusterNodeProcess[],
    proxies: [] as FaultProxy[] };
  afterAll(async () => {
    for (const node of scratch.running) node.process.kill(9);
    for (const proxy of scratch.proxies) await proxy.close();
    rmSync(scratch.dir, { recursive: true, force: true });
  });
  return scratch;
}
