/**
 * The progress reporter's figures: the rate is the bytes over the time since the work began (the
 * first upload once printed 38820.7 MiB/s, timed from its first report), a terminal gets one line
 * redrawn in place and cut to its width, and off a terminal nothing unless --progress asked.
 */
import { afterEach, expect, test } from "bun:test";
import { progress, progressFigures, reportProgressOffTerminal, transferRateBytesPerSecond } from "./_progress.ts";

const MiB = 1048576;
afterEach(() => reportProgressOffTerminal(false));

/** A stream that records what is written; a terminal or not. */
function fakeStream(isTTY: boolean, columns = 200) {
  const writes: string[] = [];
  return { writes, stream: { isTTY, columns, write: (text: string) => writes.push(text) } };
}

test("transferRateBytesPerSecond() is bytes over the elapsed seconds, and nothing from one instant", () => {
  expect(transferRateBytesPerSecond(64 * MiB, 2000)).toBe(32 * MiB);
  expect(transferRateBytesPerSecond(5 * MiB, 500)).toBe(10 * MiB);
  expect(transferRateBytesPerSecond(64 * MiB, 0)).toBeUndefined();
  expect(transferRateBytesPerSecond(0, 1000)).toBe(0);
});

test("an upload's bar made at its first report is timed from the pass's start, not from that report", () => {
  let nowMs = 10_000;
  const { writes, stream } = fakeStream(false);
  reportProgressOffTerminal(true);
  // The pass began 2 s before its first report, which already carries a whole 64 MiB segment.
  const bar = progress("upload", { stream, startedMs: nowMs - 2000, now: () => nowMs });
  bar.update(256, 1024, 64 * MiB);
  nowMs += 6000;
  bar.update(1024, 1024, 256 * MiB);
  expect(writes).toEqual([
    "upload: 25% 256/1024 blocks, 64.0 MiB, 32.0 MiB/s, ETA 6 s\n",
    "upload: 100% 1024/1024 blocks, 256.0 MiB, 32.0 MiB/s, ETA 0 s\n",
  ]);
  // What the old bar printed: the same first report timed from itself (1 ms later) is a rate no disk has.
  expect(progressFigures(256, 1024, 1, "blocks", 64 * MiB)).toContain("64000.0 MiB/s");
});

test("a terminal gets one line redrawn in place, cut to its width, at most every 100 ms, and a newline at the end", () => {
  let nowMs = 0;
  const { writes, stream } = fakeStream(true, 40);
  const bar = progress("verify: objects", { stream, unit: "generations", now: () => nowMs });
  bar.update(1, 10);
  nowMs += 50;
  bar.update(2, 10); // too soon: not drawn
  nowMs += 100;
  bar.update(10, 10); // the last update always draws
  bar.finish();
  expect(writes.length).toBe(3);
  for (const line of writes.slice(0, 2)) {
    expect(line).toStartWith("\rverify: objects [");
    expect(line).toEndWith("\x1b[K");
    expect(line.length - "\r\x1b[K".length).toBeLessThanOrEqual(39);
    expect(line).not.toContain("\n");
  }
  expect(writes[2]).toBe("\n");
});

test("off a terminal progress is silent unless --progress asked for plain lines, one per tenth", () => {
  const silent = fakeStream(false);
  const bar = progress("restore", { stream: silent.stream });
  for (let done = 0; done <= 100; done++) bar.update(done, 100, done * MiB);
  bar.finish();
  expect(silent.writes).toEqual([]);
  reportProgressOffTerminal(true);
  const lines = fakeStream(false);
  const loud = progress("restore", { stream: lines.stream });
  for (let done = 0; done <= 100; done++) loud.update(done, 100, done * MiB);
  loud.finish();
  expect(lines.writes.length).toBe(11);
  expect(lines.writes.every((line) => /^restore: \d+% \d+\/100 blocks, /.test(line) && line.endsWith("\n"))).toBe(true);
});
