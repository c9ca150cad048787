// `foreman sim`: runs the Ollama simulator in the foreground until SIGINT or
// SIGTERM. Returns an exit code (0 after a clean close, 1 if it cannot
// listen, 2 on bad flags); bin/ and cli.ts stay thin.

import { parseArgs } from 'node:util';
import { DEFAULT_MODELS, modelFromName } from './catalog.js';
import { hostVariants } from './hosts.js';
import { startSim } from './index.js';
import type { Sim, SimOptions, SplitMode } from './types.js';

export interface SimIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

export const SIM_HELP = `Usage: foreman sim [flags]

Runs a simulated Ollama server: native /api/* (NDJSON) and /v1/* (SSE),
including the agent surfaces /v1/messages (Anthropic), /v1/responses and
/v1/audio/transcriptions, deterministic replies, model loads and evictions like Ollama's scheduler
(one generation model and one embedding model resident), injectable faults.

Flags:
  --listen host:port         address to listen on (default 127.0.0.1:11434)
  --load-ms N                time a model load takes (default 1500)
  --unload-ms N              time an unload takes (default 0)
  --tokens-per-second N      token rate; 0 = no delay (default 40)
  --num-parallel N           OLLAMA_NUM_PARALLEL: requests at once per model (default 1)
  --max-queue N              OLLAMA_MAX_QUEUE: requests waiting for a load before 503 (default 512)
  --split none|random|N      cut response bytes into writes: per line, at random, every N bytes (default none)
  --seed N                   seed for replies' random cuts and ids (default 1)
  --default-tokens N         reply length when num_predict is absent (default 12)
  --models a,b=MS,c          model names (default llama3.2, qwen3, mistral, gemma3, nomic-embed-text,
                             gpt-oss:120b-cloud); a name containing "embed" is an embedding model, one
                             ending :cloud or with a -cloud tag a cloud model (never loaded here);
                             name=MS sets that model's load time
  --origins a,b              OLLAMA_ORIGINS: extra browser origins (* wildcards) besides Ollama's defaults
  --hosts N                  run N simulated hosts on consecutive ports from --listen, each with its
                             own catalogue (not every model everywhere) and load times (0.5-2x
                             --load-ms per model); front them with foreman --upstream URL1,URL2,...
  --help                     this text

Per request, a top-level body field controls faults (Ollama ignores unknown fields):
  "sim": {"fault": "not_found|error_before|error_mid|stall|stall_before|reset|bad_line",
          "after": N, "status": S, "message": M, "delay_ms": D, "split": "random"}
A tool call happens when tools are given and the last user message mentions "weather".
GET /sim/stats shows loads, evictions and requests per model; POST /sim/reset clears them.
POST /sim/cloud {"limit": N, "retry_after": S}: the next N cloud requests get 429 (a spent usage limit).
POST /api/blobs/sha256:<hex> checks the digest of what it receives and keeps only the count.
`;

const FLAGS = {
  listen: { type: 'string' },
  'load-ms': { type: 'string' },
  'unload-ms': { type: 'string' },
  'tokens-per-second': { type: 'string' },
  'num-parallel': { type: 'string' },
  'max-queue': { type: 'string' },
  split: { type: 'string' },
  seed: { type: 'string' },
  'default-tokens': { type: 'string' },
  models: { type: 'string' },
  origins: { type: 'string' },
  hosts: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** `signal` stands in for SIGINT/SIGTERM, so tests can stop it in-process. */
export async function runSim(argv: string[], io: SimIo, signal?: AbortSignal): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args: argv, options: FLAGS, strict: true, allowPositionals: false }).values;
  } catch (err) {
    io.stderr.write(`foreman sim: ${(err as Error).message}\nRun 'foreman sim --help' for the flags.\n`);
    return 2;
  }
  if (values['help']) {
    io.stdout.write(SIM_HELP);
    return 0;
  }
  const problems: string[] = [];
  const options = toOptions(values, problems);
  if (problems.length > 0) {
    for (const problem of problems) io.stderr.write(`foreman sim: ${problem}\n`);
    io.stderr.write(`Run 'foreman sim --help' for the flags.\n`);
    return 2;
  }
  const count = hostCount(values['hosts'], problems);
  if (problems.length > 0) {
    for (const problem of problems) io.stderr.write(`foreman sim: ${problem}\n`);
    return 2;
  }
  const sims: Sim[] = [];
  if (count === 1) {
    try {
      sims.push(await startSim(options));
    } catch (err) {
      io.stderr.write(`foreman sim: cannot listen on ${options.host}:${options.port}: ${(err as Error).message}\n`);
      return 1;
    }
    io.stderr.write(`foreman sim listening on ${sims[0]!.url}\n`);
  } else {
    for (const variant of hostVariants(count, { ...options, models: options.models ?? [...DEFAULT_MODELS] })) {
      try {
        const sim = await startSim(variant.options);
        sims.push(sim);
        const models = (variant.options.models ?? []).map((m) => `${m.name.replace(/:latest$/, '')} ${m.loadMs} ms`);
        io.stderr.write(`foreman sim ${variant.name} listening on ${sim.url}: ${models.join(', ')}\n`);
      } catch (err) {
        io.stderr.write(`foreman sim: cannot listen for ${variant.name} on port ${variant.options.port}: ${(err as Error).message}\n`);
        await Promise.all(sims.map((s) => s.close()));
        return 1;
      }
    }
    io.stderr.write(`foreman serve --upstream ${sims.map((s) => s.url).join(',')}\n`);
  }
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      signal?.removeEventListener('abort', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    if (signal?.aborted) stop();
    else signal?.addEventListener('abort', stop, { once: true });
  });
  await Promise.all(sims.map((s) => s.close()));
  return 0;
}

function hostCount(raw: string | boolean | undefined, problems: string[]): number {
  if (typeof raw !== 'string') return 1;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < 1 || n > 64) {
    problems.push(`--hosts: expected an integer 1..64, got '${raw}'`);
    return 1;
  }
  return n;
}

function toOptions(values: Record<string, string | boolean | undefined>, problems: string[]): SimOptions {
  const num = (flag: string, fallback: number, min: number, integer: boolean): number => {
    const raw = values[flag];
    if (typeof raw !== 'string') return fallback;
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) {
      problems.push(`--${flag}: expected ${integer ? 'an integer' : 'a number'} >= ${min}, got '${raw}'`);
      return fallback;
    }
    return n;
  };
  const { host, port } = parseListen(String(values['listen'] ?? '127.0.0.1:11434'), problems);
  const options: SimOptions = {
    host,
    port,
    loadMs: num('load-ms', 1500, 0, false),
    unloadMs: num('unload-ms', 0, 0, false),
    tokensPerSecond: num('tokens-per-second', 40, 0, false),
    numParallel: num('num-parallel', 1, 1, true),
    maxQueue: num('max-queue', 512, 0, true),
    seed: num('seed', 1, Number.MIN_SAFE_INTEGER, true),
    defaultTokens: num('default-tokens', 12, 1, true),
    split: parseSplitFlag(values['split'], problems),
  };
  if (typeof values['origins'] === 'string') options.origins = values['origins'].split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (typeof values['models'] === 'string') {
    const names = values['models'].split(',').map((s) => s.trim()).filter((s) => s !== '');
    if (names.length === 0) problems.push(`--models: expected comma-separated names, got '${values['models']}'`);
    else options.models = names.map((item) => {
      // `name=MS` gives the model its own load time (several hosts differ per model).
      const m = /^(.+?)=(\d+)$/.exec(item);
      return m ? { ...modelFromName(m[1]!), loadMs: Number(m[2]) } : modelFromName(item);
    });
  }
  return options;
}

function parseListen(text: string, problems: string[]): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(text) ?? /^()()(\d+)$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    problems.push(`--listen: expected host:port, got '${text}'`);
    return { host: '127.0.0.1', port: 11434 };
  }
  return { host: m[1] || m[2] || '127.0.0.1', port };
}

function parseSplitFlag(raw: string | boolean | undefined, problems: string[]): SplitMode {
  if (raw === undefined || raw === 'none' || raw === 'random') return (raw ?? 'none') as SplitMode;
  const n = Number(raw);
  if (typeof raw === 'string' && /^\d+$/.test(raw) && n > 0) return n;
  problems.push(`--split: expected none, random or a positive integer, got '${String(raw)}'`);
  return 'none';
}
