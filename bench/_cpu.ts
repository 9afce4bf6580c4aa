/**
 * @module
 * CPU seconds spent by this process and by the S3 server's processes (radosgw and its Ceph
 * daemons, read from /proc), so a benchmark can say where the time of a phase went.
 */
import { readdirSync, readFileSync } from "node:fs";

const SERVER_COMMANDS = new Set(["radosgw", "ceph-osd", "ceph-mon"]);
const TICKS_PER_SECOND = 100;

function readStat(pid: string): { command: string; ticks: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { command: stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")),
      ticks: Number(fields[11]) + Number(fields[12]) }; // utime, stime
  } catch {
    return undefined; // the process ended
  }
}

/** The server's processes, found once per measurement (scanning /proc costs more than the reads). */
function serverPids(): string[] {
  return readdirSync("/proc").filter((pid) => /^\d+$/.test(pid) && SERVER_COMMANDS.has(readStat(pid)?.command ?? ""));
}

function serverSeconds(pids: string[]): number {
  return pids.reduce((ticks, pid) => ticks + (readStat(pid)?.ticks ?? 0), 0) / TICKS_PER_SECOND;
}

export interface CpuSample { wallSeconds: number; selfCpuSeconds: number; serverCpuSeconds: number }

/** Starts a measurement; call the returned function at the end of the phase. */
export function cpuMeter(): () => CpuSample {
  const pids = serverPids();
  const wall = performance.now();
  const self = process.cpuUsage();
  const server = serverSeconds(pids);
  return () => {
    const used = process.cpuUsage(self);
    return { wallSeconds: (performance.now() - wall) / 1000, selfCpuSeconds: (used.user + used.system) / 1e6,
      serverCpuSeconds: serverSeconds(pids) - server };
  };
}
