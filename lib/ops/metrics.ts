// A tiny Prometheus registry: counters, gauges and histograms rendered as text
// exposition format 0.0.4, plus a parser for tests. It knows no metric names of
// foreman and no HTTP; the ops route decides what to register and serve.

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Seconds, from 5 ms to 5 min: covers an embed call up to a cold 70B load. */
export const DEFAULT_SECONDS_BUCKETS: readonly number[] = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300,
];

export type Labels = Readonly<Record<string, string | number>>;
export type Sample = readonly [labels: Labels, value: number];

export interface Counter {
  inc(labels?: Labels | number, by?: number): void;
}
export interface Gauge {
  set(labels: Labels | number, value?: number): void;
  inc(labels?: Labels | number, by?: number): void;
  dec(labels?: Labels | number, by?: number): void;
}
export interface Histogram {
  observe(labels: Labels | number, value?: number): void;
}
export interface Registry {
  counter(name: string, help: string, labelNames?: readonly string[], collect?: () => Iterable<Sample>): Counter;
  gauge(name: string, help: string, labelNames?: readonly string[], collect?: () => Iterable<Sample>): Gauge;
  histogram(name: string, help: string, labelNames?: readonly string[], buckets?: readonly number[]): Histogram;
  render(): string;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

interface Family {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  lines(): string[];
}

interface HistogramSeries {
  pairs: Pair[];
  labels: string;
  buckets: number[];
  sum: number;
  count: number;
}

export function createRegistry(): Registry {
  const families = new Map<string, Family>();

  const register = (family: Family) => {
    if (!NAME.test(family.name)) throw new Error(`metrics: invalid metric name '${family.name}'`);
    if (families.has(family.name)) throw new Error(`metrics: '${family.name}' is already registered`);
    families.set(family.name, family);
  };

  // Counters and gauges share storage: a map from rendered label set to value.
  const scalar = (name: string, help: string, type: 'counter' | 'gauge', labelNames: readonly string[],
    collect: (() => Iterable<Sample>) | undefined) => {
    checkLabelNames(name, labelNames, false);
    const values = new Map<string, number>();
    if (labelNames.length === 0 && !collect) values.set('', 0);
    register({
      name, help, type,
      lines() {
        const current = collect ? collected(name, labelNames, collect) : values;
        return [...current].sort(byKey).map(([labels, value]) => `${name}${labels} ${formatValue(value)}`);
      },
    });
    const add = (labels: Labels | number | undefined, by: number | undefined, sign: 1 | -1) => {
      const [set, amount] = split(labels, by, 1);
      if (type === 'counter' && !(amount >= 0)) throw new Error(`metrics: ${name} can only increase, got ${amount}`);
      const key = labelKey(name, labelNames, set);
      values.set(key, (values.get(key) ?? 0) + sign * amount);
    };
    return {
      values,
      add,
      set(labels: Labels | number, value?: number) {
        if (typeof labels !== 'number' && value === undefined) throw new Error(`metrics: ${name}.set needs a value`);
        const [set, amount] = split(labels, value, NaN);
        values.set(labelKey(name, labelNames, set), amount);
      },
    };
  };

  return {
    counter(name, help, labelNames = [], collect) {
      const s = scalar(name, help, 'counter', labelNames, collect);
      return { inc: (labels, by) => s.add(labels, by, 1) };
    },
    gauge(name, help, labelNames = [], collect) {
      const s = scalar(name, help, 'gauge', labelNames, collect);
      return { set: s.set, inc: (labels, by) => s.add(labels, by, 1), dec: (labels, by) => s.add(labels, by, -1) };
    },
    histogram(name, help, labelNames = [], buckets = DEFAULT_SECONDS_BUCKETS) {
      checkLabelNames(name, labelNames, true);
      const bounds = [...buckets];
      if (bounds.length === 0 || bounds.some((b, i) => !Number.isFinite(b) || (i > 0 && b <= bounds[i - 1]!))) {
        throw new Error(`metrics: ${name} buckets must be finite and strictly increasing`);
      }
      const series = new Map<string, HistogramSeries>();
      const get = (pairs: Pair[]) => {
        const labels = renderLabels(pairs);
        let s = series.get(labels);
        if (!s) series.set(labels, (s = { pairs, labels, buckets: bounds.map(() => 0), sum: 0, count: 0 }));
        return s;
      };
      if (labelNames.length === 0) get([]);
      register({
        name, help, type: 'histogram',
        lines() {
          const out: string[] = [];
          for (const s of [...series.values()].sort((a, b) => compare(a.labels, b.labels))) {
            // Buckets are stored per interval and made cumulative only here.
            let running = 0;
            bounds.forEach((le, i) => {
              running += s.buckets[i]!;
              out.push(`${name}_bucket${withLe(s.pairs, formatValue(le))} ${running}`);
            });
            out.push(`${name}_bucket${withLe(s.pairs, '+Inf')} ${s.count}`);
            out.push(`${name}_sum${s.labels} ${formatValue(s.sum)}`);
            out.push(`${name}_count${s.labels} ${s.count}`);
          }
          return out;
        },
      });
      return {
        observe(labels, value) {
          const [set, v] = split(labels, value, NaN);
          if (Number.isNaN(v)) throw new Error(`metrics: ${name} observed NaN`);
          const s = get(labelPairs(name, labelNames, set));
          const i = bounds.findIndex((le) => v <= le);
          if (i >= 0) s.buckets[i]! += 1;
          s.sum += v;
          s.count += 1;
        },
      };
    },
    render() {
      let text = '';
      for (const f of families.values()) {
        text += `# HELP ${f.name} ${f.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}\n`;
        text += `# TYPE ${f.name} ${f.type}\n`;
        for (const line of f.lines()) text += line + '\n';
      }
      return text;
    },
  };
}

/** `name{sorted labels}` -> value, for every sample line; throws on a malformed line. */
export function parsePrometheusText(text: string): Map<string, number> {
  const out = new Map<string, number>();
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const fail = (why: string): never => {
      throw new Error(`metrics: line ${index + 1}: ${why}: ${raw}`);
    };
    const name = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)?.[0] ?? fail('expected a metric name');
    let pos = name.length;
    const labels: Pair[] = [];
    if (line[pos] === '{') {
      pos += 1;
      for (;;) {
        while (line[pos] === ' ' || line[pos] === ',') pos += 1;
        if (line[pos] === '}') break;
        const label = /^[a-zA-Z_][a-zA-Z0-9_]*="/.exec(line.slice(pos))?.[0] ?? fail('expected label="value"');
        pos += label.length;
        let value = '';
        for (; pos < line.length && line[pos] !== '"'; pos += 1) {
          if (line[pos] !== '\\') value += line[pos];
          else {
            pos += 1;
            value += line[pos] === 'n' ? '\n' : line[pos] ?? fail('unfinished escape');
          }
        }
        if (line[pos] !== '"') fail('unterminated label value');
        pos += 1;
        labels.push([label.slice(0, -2), value]);
      }
      pos += 1;
    }
    const [valueText] = line.slice(pos).trim().split(/\s+/);
    const value = parseValue(valueText ?? '');
    if (value === undefined) fail('expected a value');
    const key = name + renderLabels(labels.sort((a, b) => compare(a[0], b[0])));
    out.set(key, value!);
  });
  return out;
}

function parseValue(text: string): number | undefined {
  if (text === '+Inf' || text === 'Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  if (text === 'NaN') return NaN;
  const n = Number(text);
  return text !== '' && !Number.isNaN(n) ? n : undefined;
}

function formatValue(n: number): string {
  if (n === Infinity) return '+Inf';
  if (n === -Infinity) return '-Inf';
  return Number.isNaN(n) ? 'NaN' : String(n);
}

function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function renderLabels(pairs: readonly Pair[]): string {
  if (pairs.length === 0) return '';
  return `{${pairs.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(',')}}`;
}

type Pair = readonly [name: string, value: string];

/** Each family's label names, sorted once (a family's list never changes). */
const sortedNames = new WeakMap<readonly string[], readonly string[]>();

/** Labels are always rendered sorted by name, so the rendered text is the parse key. */
function labelPairs(name: string, labelNames: readonly string[], labels: Labels): Pair[] {
  let sorted = sortedNames.get(labelNames);
  if (!sorted) sortedNames.set(labelNames, (sorted = [...labelNames].sort(compare)));
  // Counted, then looked up: on every observation, so no arrays are built unless it is wrong.
  let given = 0;
  for (const _ in labels) given++;
  if (given !== sorted.length || sorted.some((k) => !Object.hasOwn(labels, k))) {
    throw new Error(`metrics: ${name} takes labels [${labelNames.join(',')}], got [${Object.keys(labels).join(',')}]`);
  }
  return sorted.map((k) => [k, String(labels[k])] as const);
}

function labelKey(name: string, labelNames: readonly string[], labels: Labels): string {
  return renderLabels(labelPairs(name, labelNames, labels));
}

/** `le` sorts among the other label names like any other, matching parse keys. */
function withLe(pairs: readonly Pair[], le: string): string {
  return renderLabels([...pairs, ['le', le] as const].sort((a, b) => compare(a[0], b[0])));
}

function collected(name: string, labelNames: readonly string[], collect: () => Iterable<Sample>): Map<string, number> {
  const m = new Map<string, number>();
  for (const [labels, value] of collect()) m.set(labelKey(name, labelNames, labels), value);
  return m;
}

function checkLabelNames(name: string, labelNames: readonly string[], histogram: boolean): void {
  for (const l of labelNames) {
    if (!LABEL.test(l) || l.startsWith('__') || (histogram && l === 'le')) {
      throw new Error(`metrics: ${name} has invalid label name '${l}'`);
    }
  }
  if (new Set(labelNames).size !== labelNames.length) throw new Error(`metrics: ${name} repeats a label name`);
}

function split(labels: Labels | number | undefined, value: number | undefined, fallback: number): [Labels, number] {
  if (typeof labels === 'number') return [{}, labels];
  return [labels ?? {}, value ?? fallback];
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function byKey(a: [string, number], b: [string, number]): number {
  return compare(a[0], b[0]);
}
