// The one reader of argv and the environment for `serve`: defaults < FOREMAN_* < flags.
// Every key is validated and all problems are reported at once; the result is frozen.

import { homedir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import type { LogFormat } from './log.js';
import { KeysFileError, parseKeysFile } from './keys/keys-file.js';
import { collectHosts, parseUpstreamList } from './hosts/specs.js';

export interface Config {
  listen: { host: string; port: number };
  /** one base URL, or a comma list for several hosts (SPEC §17) */
  upstream: string;
  hosts_file: string | undefined;
  upstream_token: string | undefined;
  tokens: readonly string[];
  token_file: string | undefined;
  keys_file: string | undefined;
  data_dir: string;
  parallel: number;
  embed_parallel: number;
  cloud_parallel: number;
  max_queue: number;
  max_queue_bytes: number;
  sync_priority: number;
  aging_ms: number;
  unload_on_switch: boolean;
  max_attempts: number;
  webhook_secret: string | undefined;
  /** webhook targets a non-loopback foreman may still deliver to (SPEC §5) */
  webhook_allow: readonly string[];
  retention_ms: number;
  webhook_max_result: number;
  stream_heartbeat_ms: number;
  max_body: number;
  max_connections: number;
  /** extra allowed browser origins, `*` wildcards (SPEC §13) */
  origins: readonly string[];
  /** model-name patterns mapped to a model, e.g. claude-* -> qwen3-coder:30b (SPEC §7) */
  aliases: readonly { pattern: string; target: string }[];
  shutdown_grace_ms: number;
  log_format: LogFormat;
  insecure: boolean;
}

type Kind = 'string' | 'int' | 'bool' | 'size' | 'duration' | 'ms' | 'listen' | 'urls' | 'enum';

interface KeySpec {
  key: string;
  kind: Kind;
  default: string | undefined;
  help: string;
  min?: number;
  max?: number;
  choices?: readonly string[];
}

/** The configuration table; `--help` and the README are generated from the same rows. */
export const CONFIG_KEYS: readonly KeySpec[] = [
  { key: 'listen', kind: 'listen', default: '127.0.0.1:11435', help: 'address to listen on (host:port)' },
  { key: 'upstream', kind: 'urls', default: 'http://127.0.0.1:11434', help: 'the Ollama server foreman fronts; a comma list for several hosts' },
  { key: 'hosts_file', kind: 'string', default: undefined, help: 'JSON file listing several Ollama hosts ({"hosts":[{name,url,token,parallel,embed_parallel}]})' },
  { key: 'upstream_token', kind: 'string', default: undefined, help: 'Bearer token sent upstream (callers\' tokens never are)' },
  { key: 'tokens', kind: 'string', default: undefined, help: 'comma-separated Bearer tokens callers must present' },
  { key: 'token_file', kind: 'string', default: undefined, help: 'file with one accepted token per line' },
  { key: 'keys_file', kind: 'string', default: undefined, help: 'JSON file of named keys with per-key limits (see README)' },
  { key: 'data_dir', kind: 'string', default: '~/.foreman', help: 'where the job journal lives' },
  { key: 'parallel', kind: 'int', default: '1', min: 1, max: 64, help: 'jobs running at once (all of one model)' },
  { key: 'embed_parallel', kind: 'int', default: '4', min: 1, max: 64, help: 'embedding requests in flight at once' },
  { key: 'cloud_parallel', kind: 'int', default: '4', min: 1, max: 64, help: 'cloud-model (:cloud) jobs running at once' },
  { key: 'max_queue', kind: 'int', default: '512', min: 1, max: 1_000_000, help: 'waiting jobs before 503 busy' },
  { key: 'max_queue_bytes', kind: 'size', default: '1GiB', help: 'request bytes of waiting jobs before 503 busy' },
  { key: 'sync_priority', kind: 'int', default: '10', min: -100, max: 100, help: 'priority of sync requests (async jobs default 0)' },
  { key: 'aging_ms', kind: 'ms', default: '60000', min: 1, max: 86_400_000, help: 'a waiting job gains 1 priority per this many ms' },
  { key: 'unload_on_switch', kind: 'bool', default: 'true', help: 'unload the old model before loading the next one' },
  { key: 'max_attempts', kind: 'int', default: '3', min: 1, max: 100, help: 'tries of an async job interrupted by a crash' },
  { key: 'webhook_secret', kind: 'string', default: undefined, help: 'Standard Webhooks secret (whsec_…) to sign webhooks' },
  { key: 'webhook_allow', kind: 'string', default: undefined, help: 'comma list of private/loopback webhook hosts or CIDRs a non-loopback foreman may call' },
  { key: 'retention', kind: 'duration', default: '7d', help: 'how long finished jobs are kept' },
  { key: 'webhook_max_result', kind: 'size', default: '256KiB', help: 'largest result carried in a webhook' },
  { key: 'stream_heartbeat_ms', kind: 'ms', default: '0', min: 0, max: 3_600_000, help: 'keep-alive chunks while a stream waits (0 = off)' },
  { key: 'max_body', kind: 'size', default: '64MiB', help: 'largest request body' },
  { key: 'max_connections', kind: 'int', default: '1024', min: 1, max: 1_000_000, help: 'client connections at once; more are refused' },
  { key: 'origins', kind: 'string', default: undefined, help: 'extra allowed browser origins, comma list with * wildcards' },
  { key: 'aliases', kind: 'string', default: undefined, help: 'model aliases, comma list of pattern=model (claude-*=qwen3-coder:30b)' },
  { key: 'shutdown_grace', kind: 'duration', default: '30s', help: 'how long running jobs may finish on SIGTERM' },
  { key: 'log_format', kind: 'enum', default: 'text', choices: ['text', 'json'], help: 'log lines as text or json' },
  { key: 'insecure', kind: 'bool', default: 'false', help: 'allow a non-loopback listen address with no token' },
];

export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: string[]) {
    super(problems.join('\n'));
    this.name = 'ConfigError';
    this.problems = problems;
  }
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

function parseListen(text: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(text.trim()) ?? /^()()(\d{1,5})$/.exec(text.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  return { host: m[1] || m[2] || '127.0.0.1', port };
}

const envName = (key: string) => `FOREMAN_${key.toUpperCase()}`;
export const flagName = (key: string) => `--${key.replaceAll('_', '-')}`;

/**
 * Reads `--key value`, `--key=value` and bare boolean flags. Unknown flags are problems,
 * not silently ignored: a typo in a flag should not start a server with defaults.
 */
function readFlags(argv: readonly string[], problems: string[]): Map<string, string> {
  const byFlag = new Map(CONFIG_KEYS.map((s) => [flagName(s.key), s] as const));
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) {
      problems.push(`unexpected argument '${arg}'`);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq === -1 ? arg : arg.slice(0, eq);
    const spec = byFlag.get(name);
    if (!spec) {
      problems.push(`unknown flag ${name} (see --help)`);
      continue;
    }
    if (eq !== -1) out.set(spec.key, arg.slice(eq + 1));
    else if (spec.kind === 'bool' && (i + 1 >= argv.length || !/^(true|false)$/.test(argv[i + 1]!))) out.set(spec.key, 'true');
    else if (i + 1 < argv.length) out.set(spec.key, argv[++i]!);
    else problems.push(`${name}: expects a value`);
  }
  return out;
}

export function parseConfig(argv: readonly string[], env: NodeJS.ProcessEnv): Readonly<Config> {
  const problems: string[] = [];
  const flags = readFlags(argv, problems);
  const raw = (spec: KeySpec): { text: string | undefined; where: string } => {
    if (flags.has(spec.key)) return { text: flags.get(spec.key), where: flagName(spec.key) };
    const e = env[envName(spec.key)];
    if (e !== undefined && e !== '') return { text: e, where: envName(spec.key) };
    return { text: spec.default, where: `default ${spec.key}` };
  };

  const values: Record<string, unknown> = {};
  for (const spec of CONFIG_KEYS) {
    const { text, where } = raw(spec);
    if (text === undefined) {
      values[spec.key] = undefined;
      continue;
    }
    const bad = (expected: string) => problems.push(`${where}: expected ${expected}, got '${text}'`);
    switch (spec.kind) {
      case 'string':
        values[spec.key] = text;
        break;
      case 'int':
      case 'ms': {
        const n = /^-?\d+$/.test(text.trim()) ? Number(text) : NaN;
        if (!Number.isSafeInteger(n) || n < spec.min! || n > spec.max!) bad(`an integer ${spec.min}..${spec.max}`);
        values[spec.key] = n;
        break;
      }
      case 'bool':
        if (text !== 'true' && text !== 'false') bad('true or false');
        values[spec.key] = text === 'true';
        break;
      case 'size': {
        const n = parseSize(text);
        if (n === undefined || n < 1) bad('a size such as 1048576 or 64MiB');
        values[spec.key] = n;
        break;
      }
      case 'duration': {
        const n = parseDuration(text);
        if (n === undefined) bad('a duration such as 30s or 7d');
        values[spec.key] = n;
        break;
      }
      case 'listen': {
        const l = parseListen(text);
        if (!l) bad('host:port');
        values[spec.key] = l;
        break;
      }
      case 'urls': {
        const sub: string[] = [];
        const urls = parseUpstreamList(text, sub, where);
        problems.push(...sub);
        values[spec.key] = urls.join(',');
        break;
      }
      case 'enum':
        if (!spec.choices!.includes(text)) bad(spec.choices!.join(' or '));
        values[spec.key] = text;
        break;
    }
  }

  const tokens = new Set<string>();
  for (const t of String(values.tokens ?? '').split(',')) if (t.trim()) tokens.add(t.trim());
  if (typeof values.token_file === 'string') {
    try {
      for (const line of readFileSync(values.token_file, 'utf8').split('\n')) {
        const t = line.trim();
        if (t && !t.startsWith('#')) tokens.add(t);
      }
    } catch (err) {
      problems.push(`token_file: cannot read '${values.token_file}': ${(err as Error).message}`);
    }
  }
  if (typeof values.webhook_secret === 'string' && !/^whsec_[A-Za-z0-9+/=]+$/.test(values.webhook_secret)) {
    problems.push(`webhook_secret: expected whsec_ followed by base64`);
  }
  const commaList = (v: unknown) => String(v ?? '').split(',').map((x) => x.trim()).filter(Boolean);
  const aliases: { pattern: string; target: string }[] = [];
  for (const item of commaList(values.aliases)) {
    const eq = item.indexOf('=');
    if (eq <= 0 || eq === item.length - 1) problems.push(`aliases: expected pattern=model, got '${item}'`);
    else aliases.push({ pattern: item.slice(0, eq).trim(), target: item.slice(eq + 1).trim() });
  }
  // Checked here so a bad keys file stops the start with the other problems; the server reads it again.
  let fileKeys = 0;
  if (typeof values.keys_file === 'string') {
    try {
      fileKeys = parseKeysFile(readFileSync(values.keys_file, 'utf8')).length;
    } catch (err) {
      const reasons = err instanceof KeysFileError ? err.problems : [(err as Error).message];
      for (const r of reasons) problems.push(`keys_file '${values.keys_file}': ${r}`);
    }
  }
  if (typeof values.hosts_file === 'string' || String(values.upstream ?? '').includes(',')) {
    // Read and checked now so a bad hosts file stops the start with the others' problems.
    collectHosts({
      upstream: String(values.upstream ?? ''), hosts_file: values.hosts_file as string | undefined,
      upstream_token: values.upstream_token as string | undefined,
      parallel: Number(values.parallel) || 1, embed_parallel: Number(values.embed_parallel) || 1,
    }, problems);
  }
  const listen = values.listen as Config['listen'] | undefined;
  if (listen && tokens.size === 0 && fileKeys === 0 && !isLoopbackHost(listen.host) && !values.insecure) {
    problems.push(
      `listen ${listen.host}:${listen.port} is not a loopback address and no token is configured; ` +
        `set --tokens, --token-file or --keys-file, or pass --insecure to accept anyone on the network`,
    );
  }
  if (problems.length) throw new ConfigError(problems);

  const dataDir = String(values.data_dir);
  return Object.freeze({
    listen: listen!,
    upstream: values.upstream as string,
    hosts_file: values.hosts_file as string | undefined,
    upstream_token: values.upstream_token as string | undefined,
    tokens: Object.freeze([...tokens]),
    token_file: values.token_file as string | undefined,
    keys_file: values.keys_file as string | undefined,
    data_dir: dataDir === '~' || dataDir.startsWith('~/') ? join(homedir(), dataDir.slice(1)) : dataDir,
    parallel: values.parallel as number,
    embed_parallel: values.embed_parallel as number,
    cloud_parallel: values.cloud_parallel as number,
    max_queue: values.max_queue as number,
    max_queue_bytes: values.max_queue_bytes as number,
    sync_priority: values.sync_priority as number,
    aging_ms: values.aging_ms as number,
    unload_on_switch: values.unload_on_switch as boolean,
    max_attempts: values.max_attempts as number,
    webhook_secret: values.webhook_secret as string | undefined,
    webhook_allow: Object.freeze(commaList(values.webhook_allow)),
    retention_ms: values.retention as number,
    webhook_max_result: values.webhook_max_result as number,
    stream_heartbeat_ms: values.stream_heartbeat_ms as number,
    max_body: values.max_body as number,
    max_connections: values.max_connections as number,
    origins: Object.freeze(commaList(values.origins)),
    aliases: Object.freeze(aliases),
    shutdown_grace_ms: values.shutdown_grace as number,
    log_format: values.log_format as LogFormat,
    insecure: values.insecure as boolean,
  });
}

/** The configuration table for `--help` and the README. */
export function configHelp(): string {
  const rows = CONFIG_KEYS.map((s) => [flagName(s.key), envName(s.key), s.default ?? '(none)', s.help]);
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => `  ${r[0]!.padEnd(widths[0]!)}  ${r[1]!.padEnd(widths[1]!)}  ${r[2]!.padEnd(widths[2]!)}  ${r[3]}`).join('\n');
}

/** A config for tests and embedding: defaults plus overrides, no argv or env read. */
export function defaultConfig(overrides: Partial<Config> = {}): Readonly<Config> {
  return Object.freeze({ ...parseConfig([], {}), ...overrides });
}
