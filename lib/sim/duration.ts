// keep_alive as Ollama's api.Duration decodes it: a number of seconds or a Go
// duration string; anything negative means "forever". Errors carry Go's text.

import { badRequest } from './wire.js';

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  'µs': 1e-3,
  'μs': 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** Ollama's OLLAMA_KEEP_ALIVE default. */
export const DEFAULT_KEEP_ALIVE_MS = 5 * 60_000;

/** time.ParseDuration, in ms. Throws a 400 SimError with Go's message. */
export function parseGoDuration(text: string): number {
  const quoted = JSON.stringify(text);
  let rest = text;
  let sign = 1;
  if (rest[0] === '-' || rest[0] === '+') {
    sign = rest[0] === '-' ? -1 : 1;
    rest = rest.slice(1);
  }
  if (rest === '0') return 0;
  if (rest === '') throw badRequest(`time: invalid duration ${quoted}`);
  let total = 0;
  while (rest !== '') {
    const num = /^(\d*)(?:\.(\d*))?/.exec(rest);
    const whole = num?.[1] ?? '';
    const frac = num?.[2];
    if (whole === '' && (frac === undefined || frac === '')) throw badRequest(`time: invalid duration ${quoted}`);
    rest = rest.slice(num?.[0].length ?? 0);
    const unit = /^[^\d.]*/.exec(rest)?.[0] ?? '';
    if (unit === '') throw badRequest(`time: missing unit in duration ${quoted}`);
    const scale = UNIT_MS[unit];
    if (scale === undefined) throw badRequest(`time: unknown unit ${JSON.stringify(unit)} in duration ${quoted}`);
    rest = rest.slice(unit.length);
    total += Number(`${whole || '0'}.${frac ?? '0'}`) * scale;
  }
  return sign * total;
}

/**
 * keep_alive in ms: undefined when absent (the caller's default applies),
 * Infinity for negative values. A unitless negative string such as "-1" is
 * accepted as forever (Go would reject it; scripts commonly send it).
 */
export function parseKeepAlive(value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw badRequest(`Unsupported type: 'float64'`);
    return value < 0 ? Infinity : value * 1000;
  }
  if (typeof value === 'string') {
    if (/^-\d+(\.\d*)?$/.test(value)) return Infinity;
    const ms = parseGoDuration(value);
    return ms < 0 ? Infinity : ms;
  }
  const goType = typeof value === 'boolean' ? 'bool' : Array.isArray(value) ? '[]interface {}' : 'map[string]interface {}';
  throw badRequest(`Unsupported type: '${goType}'`);
}
