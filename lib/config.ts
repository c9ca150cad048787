// The one reader of argv and the environment for `serve`: defaults < FOREMAN_* < flags.
// Each key is declared once in CONFIG_KEYS: its type in Config, its parsing and
// validation, `--help` and the README table all come from that one entry.
// Every problem is reported at once; the result is frozen.

import { readFileSync } from 'node:fs';
import { collectHosts } from './hosts/specs.js';
import { KeysFileError, parseKeysFile } from './keys/keys-file.js';
import {
  bool, choice, duration, int, isLoopbackHost, list, listen, pairs, path, size, text, urls,
  type KeyDecl, type ValueOf,
} from './config-kinds.js';

import { badAllowEntries } from './webhooks/targets.js';
export { isLoopbackHost, parseDuration, parseSize } from './config-kinds.js';

/**
 * The configuration table, in --help order. A new key is one entry here: its field in
 * Config, flag `--some-key`, variable `FOREMAN_SOME_KEY` and README row follow from it.
 */
export const CONFIG_KEYS = {
  listen: listen('127.0.0.1:11435', 'address to listen on (host:port)'),
  upstream: urls('http://127.0.0.1:11434', 'the Ollama server foreman fronts; a comma list for several hosts'),
  hosts_file: text('JSON file listing several Ollama hosts ({"hosts":[{name,url,token,parallel,embed_parallel}]})'),
  upstream_token: text("Bearer token sent upstream (callers' tokens never are)"),
  tokens: list('comma-separated Bearer tokens callers must present'),
  token_file: text('file with one accepted token per line'),
  keys_file: text('JSON file of named keys with per-key limits (see README)'),
  data_dir: path('~/.foreman', 'where the job journal, bodies and results live (one foreman per dir)'),
  parallel: int(1, 1, 64, 'jobs running at once (all of one model)'),
  embed_parallel: int(4, 1, 64, 'embedding requests in flight at once'),
  cloud_parallel: int(4, 1, 64, 'cloud-model (:cloud) jobs running at once'),
  max_queue: int(512, 1, 1_000_000, 'waiting jobs before 503 busy'),
  max_queue_bytes: size('1GiB', 'request body bytes of waiting jobs (sync and async) before 503 busy'),
  sync_priority: int(10, -100, 100, 'priority of sync requests (async jobs default 0)'),
  aging_ms: int(60000, 1, 86_400_000, 'a waiting job gains 1 priority per this many ms'),
  unload_on_switch: bool(true, 'unload the old model before loading the next one'),
  max_attempts: int(3, 1, 100, 'starts of an async job cut short (crash, Ollama unreachable or dying mid-answer)'),
  webhook_secret: text('Standard Webhooks secret (whsec_…) to sign webhooks', {
    pattern: /^whsec_[A-Za-z0-9+/=]+$/, expected: 'whsec_ followed by base64',
  }),
  webhook_allow: list('comma list of private/loopback webhook hosts or CIDRs a non-loopback foreman may call'),
  retention_ms: duration('7d', 'how long finished jobs (and their results) are kept', { name: 'retention' }),
  webhook_max_result: size('256KiB', 'largest result carried in a webhook'),
  stream_heartbeat_ms: int(0, 0, 3_600_000, 'keep-alive units while a stream waits in the queue, in each surface\'s form (0 = off)'),
  max_body: size('64MiB', 'largest request body'),
  max_connections: int(1024, 1, 1_000_000, 'client connections at once; more are refused'),
  origins: list('extra allowed browser origins, comma list with * wildcards'),
  aliases: pairs('model aliases, comma list of pattern=model (claude-*=qwen3-coder:30b)'),
  shutdown_grace_ms: duration('30s', 'how long running jobs may finish on SIGTERM', { name: 'shutdown_grace' }),
  log_format: choice('text', ['text', 'json'] as const, 'log lines as text or json'),
  insecure: bool(false, 'allow a non-loopback listen address with no token'),
} satisfies Record<string, KeyDecl<unknown>>;

type Keys = typeof CONFIG_KEYS;

/** What `serve` runs with: one field per CONFIG_KEYS entry, typed by its parser. */
export type Config = { [K in keyof Keys]: ValueOf<Keys[K]> };

export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: string[]) {
    super(problems.join('\n'));
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

const FIELDS = Object.keys(CONFIG_KEYS) as (keyof Keys)[];
const decl = (field: keyof Keys): KeyDecl<unknown> => CONFIG_KEYS[field];
/** The name a key goes by on the command line and in the environment. */
export const keyName = (field: keyof Keys): string => decl(field).name ?? field;
const envName = (key: string) => `FOREMAN_${key.toUpperCase()}`;
export const flagName = (key: string) => `--${key.replaceAll('_', '-')}`;

/**
 * Reads `--key value`, `--key=value` and bare boolean flags. Unknown flags are problems,
 * not silently ignored: a typo in a flag should not start a server with defaults.
 */
function readFlags(argv: readonly string[], problems: string[]): Map<keyof Keys, string> {
  const byFlag = new Map(FIELDS.map((f) => [flagName(keyName(f)), f] as const));
  const out = new Map<keyof Keys, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) {
      problems.push(`unexpected argument '${arg}'`);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq === -1 ? arg : arg.slice(0, eq);
    const field = byFlag.get(name);
    if (!field) {
      problems.push(`unknown flag ${name} (see --help)`);
      continue;
    }
    if (eq !== -1) out.set(field, arg.slice(eq + 1));
    else if (decl(field).bare && (i + 1 >= argv.length || !/^(true|false)$/.test(argv[i + 1]!))) out.set(field, 'true');
    else if (i + 1 < argv.length) out.set(field, argv[++i]!);
    else problems.push(`${name}: expects a value`);
  }
  return out;
}

export function parseConfig(argv: readonly string[], env: NodeJS.ProcessEnv): Readonly<Config> {
  const problems: string[] = [];
  const flags = readFlags(argv, problems);
  const values: Record<string, unknown> = {};
  for (const field of FIELDS) {
    const name = keyName(field);
    let given: string | undefined;
    let where: string;
    if (flags.has(field)) [given, where] = [flags.get(field), flagName(name)];
    else if (env[envName(name)]) [given, where] = [env[envName(name)], envName(name)];
    else [given, where] = [undefined, `default ${name}`];
    const shown = given ?? decl(field).default;
    values[field] = decl(field).parse(given, (expected, got = shown) => problems.push(`${where}: expected ${expected}, got '${got}'`));
  }
  const config = values as Config;
  crossCheck(config, problems);
  if (problems.length) throw new ConfigError(problems);
  return Object.freeze(config);
}

/** The rules that span keys; everything about one key alone lives in its declaration. */
function crossCheck(config: Config, problems: string[]): void {
  const tokens = new Set(config.tokens);
  if (config.token_file !== undefined) {
    try {
      for (const line of readFileSync(config.token_file, 'utf8').split('\n')) {
        const t = line.trim();
        if (t && !t.startsWith('#')) tokens.add(t);
      }
    } catch (err) {
      problems.push(`token_file: cannot read '${config.token_file}': ${(err as Error).message}`);
    }
  }
  config.tokens = Object.freeze([...tokens]);
  if (config.hosts_file !== undefined || config.upstream.includes(',')) {
    // Read and checked now so a bad hosts file stops the start with the others' problems.
    collectHosts(config, problems);
  }
  const badAllow = badAllowEntries(config.webhook_allow);
  if (badAllow.length > 0) {
    problems.push(`webhook_allow: ${badAllow.map((e) => `'${e}'`).join(', ')} is not a host name, an address or a CIDR (10.0.0.0/8, fd00::/8)`);
  }
  // Checked here so a bad keys file stops the start with the other problems; the server reads it again.
  let fileKeys = 0;
  if (config.keys_file !== undefined) {
    try {
      fileKeys = parseKeysFile(readFileSync(config.keys_file, 'utf8')).length;
    } catch (err) {
      const reasons = err instanceof KeysFileError ? err.problems : [(err as Error).message];
      for (const r of reasons) problems.push(`keys_file '${config.keys_file}': ${r}`);
    }
  }
  const { host, port } = config.listen;
  if (host && tokens.size === 0 && fileKeys === 0 && !isLoopbackHost(host) && !config.insecure) {
    problems.push(
      `listen ${host}:${port} is not a loopback address and no token is configured; ` +
        `set --tokens, --token-file or --keys-file, or pass --insecure to accept anyone on the network`,
    );
  }
}

/** The configuration table for `--help`. */
export function configHelp(): string {
  const rows = FIELDS.map((f) => [flagName(keyName(f)), envName(keyName(f)), decl(f).default ?? '(none)', decl(f).help]);
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => `  ${r[0]!.padEnd(widths[0]!)}  ${r[1]!.padEnd(widths[1]!)}  ${r[2]!.padEnd(widths[2]!)}  ${r[3]}`).join('\n');
}

/** The same table as Markdown, for the README (spec/config.spec.ts fails when they differ). */
export function configMarkdown(): string {
  const code = (t: string) => `\`${t}\``;
  const rows = FIELDS.map((f) => {
    const d = decl(f).default;
    return `| ${code(flagName(keyName(f)))} | ${code(envName(keyName(f)))} | ${d === undefined ? 'none' : code(d)} | ${decl(f).help.replaceAll('|', '\\|')} |`;
  });
  return ['| flag | environment | default | meaning |', '| --- | --- | --- | --- |', ...rows].join('\n');
}

/** A config for tests and embedding: defaults plus overrides, no argv or env read. */
export function defaultConfig(overrides: Partial<Config> = {}): Readonly<Config> {
  return Object.freeze({ ...parseConfig([], {}), ...overrides });
}
