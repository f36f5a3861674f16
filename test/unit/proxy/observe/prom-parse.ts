// A strict reader of the Prometheus text exposition format 0.0.4, for tests: it follows the
// format's rules (https://prometheus.io/docs/instrumenting/exposition_formats/) and throws on
// anything a scraper would reject, so a rendering bug fails the test instead of being "parsed".

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Family {
  readonly name: string;
  readonly type: string;
  readonly samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function familyOf(sampleName: string, families: Map<string, Family>): Family | undefined {
  const direct = families.get(sampleName);
  if (direct) return direct;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (sampleName.endsWith(suffix)) {
      const f = families.get(sampleName.slice(0, -suffix.length));
      if (f && (f.type === 'histogram' || f.type === 'summary')) return f;
    }
  }
  return undefined;
}

function parseLabels(text: string, line: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let i = 0;
  while (i < text.length) {
    const eq = text.indexOf('=', i);
    if (eq < 0) throw new Error(`bad labels in: ${line}`);
    const name = text.slice(i, eq);
    if (!LABEL_NAME.test(name)) throw new Error(`bad label name "${name}" in: ${line}`);
    if (text[eq + 1] !== '"') throw new Error(`label value not quoted in: ${line}`);
    let j = eq + 2;
    let value = '';
    for (;;) {
      if (j >= text.length) throw new Error(`unterminated label value in: ${line}`);
      const c = text[j]!;
      if (c === '\\') {
        const n = text[j + 1];
        if (n === '\\') value += '\\';
        else if (n === '"') value += '"';
        else if (n === 'n') value += '\n';
        else throw new Error(`bad escape in: ${line}`);
        j += 2;
        continue;
      }
      if (c === '"') break;
      if (c === '\n') throw new Error(`raw newline in label value: ${line}`);
      value += c;
      j++;
    }
    if (name in labels) throw new Error(`duplicate label "${name}" in: ${line}`);
    labels[name] = value;
    j++;
    if (j < text.length) {
      if (text[j] !== ',') throw new Error(`expected "," between labels in: ${line}`);
      j++;
    }
    i = j;
  }
  return labels;
}

function parseValue(v: string, line: string): number {
  if (v === '+Inf') return Infinity;
  if (v === '-Inf') return -Infinity;
  if (v === 'NaN') return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(v)) throw new Error(`bad value "${v}" in: ${line}`);
  return Number(v);
}

/** Families in exposition order. Throws on any violation of the format. */
export function parsePrometheus(text: string): Family[] {
  const families = new Map<string, Family>();
  const order: Family[] = [];
  let current: Family | null = null;
  const seenSeries = new Set<string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      const m = /^# (TYPE|HELP) (\S+)(?: (.*))?$/.exec(line);
      if (!m) continue; // other comments are allowed
      const [, kind, name, rest] = m;
      if (!METRIC_NAME.test(name!)) throw new Error(`bad metric name in: ${line}`);
      if (kind === 'TYPE') {
        if (families.has(name!)) throw new Error(`second TYPE line for ${name}`);
        if (!TYPES.has(rest ?? '')) throw new Error(`bad type in: ${line}`);
        current = { name: name!, type: rest!, samples: [] };
        families.set(name!, current);
        order.push(current);
      }
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: (-?\d+))?$/.exec(line);
    if (!m) throw new Error(`bad sample line: ${line}`);
    const [, name, labelText, value] = m;
    const family = familyOf(name!, families);
    if (!family) throw new Error(`sample before its TYPE line: ${line}`);
    if (family !== current) throw new Error(`samples of ${family.name} are not contiguous: ${line}`);
    const labels = labelText === undefined ? {} : parseLabels(labelText, line);
    const series = name + JSON.stringify(Object.entries(labels).sort());
    if (seenSeries.has(series)) throw new Error(`duplicate series: ${line}`);
    seenSeries.add(series);
    family.samples.push({ name: name!, labels, value: parseValue(value!, line) });
  }
  return order;
}
