/**
 * @module
 * The dashboard's charts as inline SVG text: a time axis with readable clock times, a value axis
 * whose ticks carry their unit (ms, MiB, frames), one marker per sample, and an empty state that
 * says what is missing instead of drawing a shape. Pure string building, no DOM: the same function
 * runs in the browser (the dashboard embeds its source) and in tests.
 */

/** One sample: when (milliseconds since the epoch) and its value in the chart's unit. */
export interface ChartPoint {
  t: number;
  v: number;
}

export interface ChartOptions {
  /** Names the chart in the DOM (`data-chart`). */
  id: string;
  /** The caption above the chart, e.g. "WAL lag". */
  title: string;
  /** Written after every value tick, e.g. "ms". */
  unit: string;
  /** Shown instead of a chart while there is no sample, e.g. "no generations yet". */
  empty: string;
  /** `line`: samples of a quantity joined in time; `stem`: separate events, each a marker on a stem. */
  kind?: "line" | "stem";
  /** Values are counts: ticks only at whole numbers. Default false. */
  integer?: boolean;
  /** The line and marker colour (CSS). Default a blue. */
  color?: string;
  /** The time axis spans at least this much, so that one sample is not a full-width shape. Default 60 s. */
  spanMinMs?: number;
  /** The value axis reaches at least this, so that all-zero samples sit on a readable scale. Default 1. */
  valueMin?: number;
}

/**
 * Renders a chart of `points` (any order) as a `<figure>` holding an `<svg>`.
 *
 * @example
 * ```ts
 * import { lineChart } from "./_chart.ts";
 * const svg = lineChart([{ t: Date.now() - 1000, v: 12 }, { t: Date.now(), v: 30 }],
 *   { id: "walLag", title: "WAL lag", unit: "ms", empty: "no samples yet" });
 * console.log(svg.includes("ms</text>")); // true
 * ```
 */
export function lineChart(points: ChartPoint[], options: ChartOptions): string {
  // Everything the function needs is declared inside it: the dashboard embeds its source text.
  const width = 560, height = 200, left = 66, right = 14, top = 12, bottom = 34;
  const plotWidth = width - left - right, plotHeight = height - top - bottom;
  const color = options.color ?? "#2f6fde";
  const escape = (value: string) => value.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;",
    '"': "&quot;" })[c]!);
  const caption = `<figcaption>${escape(options.title)} <span class="unit">(${escape(options.unit)})</span></figcaption>`;
  const open = `<figure class="chart" data-chart="${escape(options.id)}" data-points="${points.length}">${caption}`;
  if (points.length === 0) {
    return `${open}<div class="empty" data-empty="${escape(options.id)}">${escape(options.empty)}</div></figure>`;
  }
  const sorted = points.filter((p) => Number.isFinite(p.t) && Number.isFinite(p.v)).sort((a, b) => a.t - b.t);
  const pad = (n: number) => String(n).padStart(2, "0");
  const clock = (t: number, seconds: boolean) => {
    const d = new Date(t);
    return `${pad(d.getHours())}:${pad(d.getMinutes())}${seconds ? ":" + pad(d.getSeconds()) : ""}`;
  };

  // The value axis: from 0 to a round number at or above the largest value, 4-5 ticks.
  const largest = Math.max(0, ...sorted.map((p) => p.v));
  const niceStep = (raw: number) => {
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((f) => f * power).find((s) => s >= raw) ?? 10 * power;
    return options.integer ? Math.max(1, Math.ceil(step)) : step;
  };
  const vStep = niceStep(Math.max(largest, options.valueMin ?? 1) / 4);
  const vMax = Math.max(vStep, Math.ceil(Math.max(largest, options.valueMin ?? 1) / vStep - 1e-9) * vStep);
  const decimals = Math.max(0, Math.min(4, -Math.floor(Math.log10(vStep) + 1e-9) + (vStep / Math.pow(10,
    Math.floor(Math.log10(vStep))) === 2.5 ? 1 : 0)));
  const y = (v: number) => top + plotHeight - (plotHeight * v) / vMax;

  // The time axis: at least spanMinMs wide, the newest sample at its right end, ticks on round clock times.
  const spanMinMs = options.spanMinMs ?? 60_000;
  const tLast = sorted[sorted.length - 1].t;
  const tFirst = Math.min(sorted[0].t, tLast - spanMinMs);
  const tEnd = sorted.length === 1 ? tLast + spanMinMs / 10 : tLast;
  const tSpan = Math.max(1, tEnd - tFirst);
  const x = (t: number) => left + (plotWidth * (t - tFirst)) / tSpan;
  const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400].map((s) => s * 1000);
  const tStep = steps.find((s) => tSpan / s <= 5) ?? steps[steps.length - 1];
  const seconds = tStep < 60_000;

  const parts: string[] = [];
  // Grid lines and value ticks: "250 ms", "0.50 MiB", "3 frames".
  for (let i = 0; i * vStep <= vMax + vStep / 1000; i++) {
    const v = i * vStep, at = y(v).toFixed(1);
    parts.push(`<line class="grid" x1="${left}" x2="${width - right}" y1="${at}" y2="${at}" stroke="#e3e7ec"/>`);
    parts.push(`<text class="tick y-tick" x="${left - 6}" y="${at}" text-anchor="end" dominant-baseline="middle">` +
      `${Number(v.toFixed(decimals))} ${escape(options.unit)}</text>`);
  }
  // Time ticks on whole multiples of the step in local time (a timezone offset of whole minutes).
  const offsetMs = new Date(tEnd).getTimezoneOffset() * 60_000;
  for (let t = Math.ceil((tFirst - offsetMs) / tStep) * tStep + offsetMs; t <= tEnd; t += tStep) {
    const at = x(t).toFixed(1);
    parts.push(`<line class="x-tickmark" x1="${at}" x2="${at}" y1="${top + plotHeight}" y2="${top + plotHeight + 4}" ` +
      `stroke="#66727f"/>`);
    // A label centred on a tick at the right edge would be cut off by the chart's border.
    if (x(t) > width - 24) continue;
    parts.push(`<text class="tick x-tick" x="${at}" y="${top + plotHeight + 16}" text-anchor="middle">` +
      `${clock(t, seconds)}</text>`);
  }
  // The axes themselves, and what each measures.
  parts.push(`<line class="axis x-axis" x1="${left}" x2="${width - right}" y1="${top + plotHeight}" ` +
    `y2="${top + plotHeight}" stroke="#66727f"/>`);
  parts.push(`<line class="axis y-axis" x1="${left}" x2="${left}" y1="${top}" y2="${top + plotHeight}" stroke="#66727f"/>`);
  parts.push(`<text class="axis-label" x="${width - right}" y="${height - 2}" text-anchor="end">time (local)</text>`);

  const dots = sorted.map((p) => {
    const cx = x(p.t).toFixed(1), cy = y(p.v).toFixed(1);
    const label = `${clock(p.t, true)}: ${Number(p.v.toPrecision(3))} ${options.unit}`;
    const stem = options.kind === "stem"
      ? `<line class="stem" x1="${cx}" x2="${cx}" y1="${y(0).toFixed(1)}" y2="${cy}" stroke="${color}" stroke-width="2"/>`
      : "";
    return `${stem}<circle class="point" cx="${cx}" cy="${cy}" r="3.5" fill="${color}"><title>${escape(label)}</title>` +
      "</circle>";
  });
  if (options.kind !== "stem" && sorted.length > 1) {
    const path = sorted.map((p, i) => `${i === 0 ? "M" : "L"}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(" ");
    parts.push(`<path class="line" d="${path}" fill="none" stroke="${color}" stroke-width="1.5"/>`);
  }
  parts.push(...dots);
  return `${open}<svg viewBox="0 0 ${width} ${height}" role="img" aria-label="${escape(options.title)} in ` +
    `${escape(options.unit)} over time">${parts.join("")}</svg></figure>`;
}
