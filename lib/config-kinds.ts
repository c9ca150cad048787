// The kinds a configuration key can be: each turns the text of a flag, variable or
// default into a typed value, or names what it expected. config.ts declares every
// key with one of these; the key's type in Config is what its parser returns.

import { homedir } from 'node:os';
import { join } from 'node:path';
import { normalizeBaseUrl } from './hosts/specs.js';

/** How one key is read. `bad(expected, got?)` records a problem; the value returned then is never used. */
export interface KeyDecl<T> {
  readonly help: string;
  /** the default as text (what --help shows); undefined: unset unless given */
  readonly default: string | undefined;
  /** the flag and variable name when it is not the Config field (retention_ms <- --retention) */
  readonly name?: string;
  /** a bare `--flag` with no value means true */
  readonly bare?: boolean;
  parse(text: string | undefined, bad: (expected: string, got?: string) => void): T;
}

/** The Config field type a declaration yields. */
export type ValueOf<D> = D extends KeyDecl<infer T> ? T : never;

interface Opts {
  name?: string;
}

const SIZE_UNITS: Record<string, number> = {
  '': 1, b: 1, k: 1e3, kb: 1e3, kib: 1024, m: 1e6, mb: 1e6, mib: 1024 ** 2, g: 1e9, gb: 1e9, gib: 1024 ** 3,
};
const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 };

export function parseSize(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) return undefined;
  const value = Math.floor(Number(m[1]) * unit);
  return Number.isSafeInteger(value) ? value : undefined;
}

export function parseDuration(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/i.exec(text.trim());
  if (!m) return undefined;
  return Math.floor(Number(m[1]) * DURATION_UNITS[m[2]!.toLowerCase()]!);
}

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}

export function parseListen(text: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(text.trim()) ?? /^()()(\d{1,5})$/.exec(text.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  return { host: m[1] || m[2] || '127.0.0.1', port };
}

export const commaList = (text: string | undefined): string[] =>
  (text ?? '').split(',').map((x) => x.trim()).filter(Boolean);

/** Free text, unset unless given; `pattern` refuses text that does not match. */
export const text = (help: string, check?: { pattern: RegExp; expected: string }): KeyDecl<string | undefined> => ({
  help, default: undefined,
  parse: (t, bad) => {
    if (t !== undefined && check && !check.pattern.test(t)) bad(check.expected);
    return t;
  },
});

/** A directory; a leading ~ is the home directory. */
export const path = (def: string, help: string): KeyDecl<string> => ({
  help, default: def,
  parse: (t = def) => (t === '~' || t.startsWith('~/') ? join(homedir(), t.slice(1)) : t),
});

export const int = (def: number, min: number, max: number, help: string, opts: Opts = {}): KeyDecl<number> => ({
  help, default: String(def), ...opts,
  parse: (t = String(def), bad) => {
    const n = /^-?\d+$/.test(t.trim()) ? Number(t) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) bad(`an integer ${min}..${max}`);
    return n;
  },
});

export const bool = (def: boolean, help: string): KeyDecl<boolean> => ({
  help, default: String(def), bare: true,
  parse: (t = String(def), bad) => {
    if (t !== 'true' && t !== 'false') bad('true or false');
    return t === 'true';
  },
});

/** Bytes; `64MiB`, `1GB` or a plain number. */
export const size = (def: string, help: string): KeyDecl<number> => ({
  help, default: def,
  parse: (t = def, bad) => {
    const n = parseSize(t);
    if (n === undefined || n < 1) bad('a size such as 1048576 or 64MiB');
    return n ?? 0;
  },
});

/** Milliseconds from a duration with a unit (`30s`, `7d`). */
export const duration = (def: string, help: string, opts: Opts = {}): KeyDecl<number> => ({
  help, default: def, ...opts,
  parse: (t = def, bad) => {
    const n = parseDuration(t);
    if (n === undefined) bad('a duration such as 30s or 7d');
    return n ?? 0;
  },
});

export const listen = (def: string, help: string): KeyDecl<{ host: string; port: number }> => ({
  help, default: def,
  parse: (t = def, bad) => {
    const l = parseListen(t);
    if (!l) bad('host:port');
    return l ?? { host: '', port: 0 };
  },
});

/** One http(s) base URL or a comma list of them (several hosts), trailing slashes dropped. */
export const urls = (def: string, help: string): KeyDecl<string> => ({
  help, default: def,
  parse: (t = def, bad) => {
    const out: string[] = [];
    for (const part of commaList(t)) {
      const u = normalizeBaseUrl(part);
      if (u === undefined) bad('an http(s) URL', part);
      else out.push(u);
    }
    if (commaList(t).length === 0) bad('at least one http(s) URL');
    return out.join(',');
  },
});

export const choice = <const C extends readonly string[]>(def: C[number], choices: C, help: string): KeyDecl<C[number]> => ({
  help, default: def,
  parse: (t = def, bad) => {
    if (!choices.includes(t)) bad(choices.join(' or '));
    return t as C[number];
  },
});

/** A comma list; empty when unset. */
export const list = (help: string): KeyDecl<readonly string[]> => ({
  help, default: undefined,
  parse: (t) => Object.freeze(commaList(t)),
});

/** A comma list of key=value pairs, e.g. model aliases `claude-*=qwen3-coder:30b`. */
export const pairs = (help: string): KeyDecl<readonly { pattern: string; target: string }[]> => ({
  help, default: undefined,
  parse: (t, bad) => {
    const out: { pattern: string; target: string }[] = [];
    for (const item of commaList(t)) {
      const eq = item.indexOf('=');
      if (eq <= 0 || eq === item.length - 1) bad('pattern=model', item);
      else out.push({ pattern: item.slice(0, eq).trim(), target: item.slice(eq + 1).trim() });
    }
    return Object.freeze(out);
  },
});
