/**
 * @module
 * A strict reader of the Prometheus text format (0.0.4), for tests and for anyone scraping haduck
 * without a Prometheus server: every sample must belong to a family declared by HELP and TYPE.
 */

export interface MetricFamily {
  help: string;
  type: string;
  samples: { labels: Record<string, string>; value: number }[];
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)/y;

/** Parses the text; throws SyntaxError naming the first line that is not valid. */
export function parsePrometheusText(text: string): Map<string, MetricFamily> {
  const families = new Map<string, MetricFamily>();
  for (const [index, line] of text.split("\n").entries()) {
    if (line === "") continue;
    const fail = (why: string) => new SyntaxError(`line ${index + 1} (${JSON.stringify(line)}): ${why}`);
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (meta) {
      const family = families.get(meta[2]) ?? { help: "", type: "", samples: [] };
      if (meta[1] === "HELP") family.help = meta[3];
      else if (!["counter", "gauge", "histogram", "summary", "untyped"].includes(meta[3])) throw fail("unknown type");
      else family.type = meta[3];
      families.set(meta[2], family);
      continue;
    }
    const sample = SAMPLE.exec(line);
    if (!sample) throw fail("not a sample");
    const family = families.get(sample[1]);
    if (!family?.type || !family.help) throw fail("sample before its HELP and TYPE");
    const labels: Record<string, string> = {};
    LABEL.lastIndex = 0;
    const raw = sample[2] ?? "";
    while (LABEL.lastIndex < raw.length) {
      const match = LABEL.exec(raw);
      if (!match) throw fail("malformed labels");
      labels[match[1]] = match[2].replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    }
    const value = Number(sample[3]);
    if (Number.isNaN(value)) throw fail("value is not a number");
    family.samples.push({ labels, value });
  }
  return families;
}
