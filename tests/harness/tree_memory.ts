/**
 * @module
 * The resident memory of a whole process tree: a command and every process it starts (restore's
 * DuckDB child, say), sampled from /proc every few milliseconds. Each sample sums the proportional
 * set size (Pss, /proc/<pid>/smaps_rollup) over the tree as it stands; the peak is the largest sum.
 * Pss, not RSS: a parent and its child map the same Bun binary and libduckdb.so, and RSS would count
 * those shared pages once per process; Pss splits them, so the sum is what the tree costs the
 * machine. (A child's own peak, VmHWM, is gone once it exits, and adding peaks of processes that
 * never ran at once would overstate the tree.) The RSS sum is reported too.
 */
import { readdirSync, readFileSync } from "node:fs";

const SAMPLE_MS = 5;

function children(pid: number): number[] {
  const out: number[] = [];
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const task of tasks) {
    try {
      const text = readFileSync(`/proc/${pid}/task/${task}/children`, "utf8").trim();
      if (text) out.push(...text.split(/\s+/).map(Number));
    } catch {
      // the task ended between the listing and the read
    }
  }
  return out;
}

function memoryKiB(pid: number): { pss: number; rss: number } {
  try {
    const text = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
    return { pss: Number(/^Pss:\s+(\d+) kB/m.exec(text)?.[1] ?? 0), rss: Number(/^Rss:\s+(\d+) kB/m.exec(text)?.[1] ?? 0) };
  } catch {
    return { pss: 0, rss: 0 };
  }
}

/** Every descendant of `pid` now (children first). */
export function descendants(pid: number): number[] {
  const out: number[] = [];
  const pending = children(pid);
  while (pending.length > 0) {
    const next = pending.shift()!;
    out.push(next);
    pending.push(...children(next));
  }
  return out;
}

/** Sums of Pss and RSS over `pid` and its descendants now, in MiB. */
export function treeMemoryMiB(pid: number): { pss: number; rss: number } {
  const sum = { pss: 0, rss: 0 };
  const pending = [pid];
  while (pending.length > 0) {
    const next = pending.pop()!;
    const { pss, rss } = memoryKiB(next);
    sum.pss += pss / 1024;
    sum.rss += rss / 1024;
    pending.push(...children(next));
  }
  return sum;
}

/** Runs `command` to its end, sampling its tree; resolves with its exit code, output and the tree's peak. */
export async function runMeasured(command: string[], options: { env?: Record<string, string | undefined> } = {}):
  Promise<{ code: number; stdout: string; stderr: string; peakTreeMiB: number; peakTreeRssMiB: number;
    processes: number }> {
  const child = Bun.spawn(command, { env: options.env ?? process.env, stdout: "pipe", stderr: "pipe" });
  let peak = 0;
  let peakRss = 0;
  const seen = new Set<number>();
  const timer = setInterval(() => {
    const now = treeMemoryMiB(child.pid);
    peak = Math.max(peak, now.pss);
    peakRss = Math.max(peakRss, now.rss);
    for (const pid of children(child.pid)) seen.add(pid);
  }, SAMPLE_MS);
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(),
    new Response(child.stderr).text(), child.exited]);
  clearInterval(timer);
  return { code, stdout, stderr, peakTreeMiB: peak, peakTreeRssMiB: peakRss, processes: 1 + seen.size };
}
