// `foreman serve`: parse the configuration, start foreman, say plainly when no
// Ollama answers at the upstream, and run until SIGTERM/SIGINT. `foreman demo`
// reuses the start and the signal loop.

import { ConfigError, parseConfig, type Config } from '../config.js';
import type { Foreman } from '../app.js';
import { EXIT, type CliIo } from './io.js';

/** Parses argv into a Config, or writes every problem and returns null. */
export function configOrReport(argv: readonly string[], env: NodeJS.ProcessEnv, io: CliIo): Readonly<Config> | null {
  try {
    return parseConfig(argv, env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    io.stderr.write(`foreman: invalid configuration:\n${err.problems.map((p) => `  ${p}`).join('\n')}\n`);
    return null;
  }
}

/** Starts foreman, or writes why it cannot and returns null. */
export async function start(config: Readonly<Config>, io: CliIo): Promise<Foreman | null> {
  const { createForeman } = await import('../app.js');
  try {
    return await createForeman(config);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const hint = e.code === 'EADDRINUSE' ? ` (another process has ${config.listen.host}:${config.listen.port}; pass --listen with a free port)` : '';
    io.stderr.write(`foreman: cannot start: ${e.message}${hint}\n`);
    return null;
  }
}

/**
 * The hosts that do not answer /api/version now. A missing Ollama is the most common
 * first-run failure; every request would answer 502, so it is said once, at start.
 */
export async function silentHosts(foreman: Foreman, timeoutMs = 2_000): Promise<{ url: string; error: string }[]> {
  const checks = foreman.hosts.hosts.map(async (h) => {
    try {
      await h.upstream.version(AbortSignal.timeout(timeoutMs));
      return null;
    } catch (err) {
      return { url: h.url, error: (err as Error).message };
    }
  });
  return (await Promise.all(checks)).filter((x) => x !== null);
}

export function noOllamaMessage(silent: readonly { url: string; error: string }[]): string {
  const lines = silent.map((s) => `foreman: no Ollama answers at ${s.url} (${s.error})`);
  return `${lines.join('\n')}
  foreman keeps running and answers 502 until it does. Either
    start Ollama there (ollama serve), or point --upstream at a running one, or
    try foreman without Ollama: node bin/foreman.js demo   (a simulated Ollama in the same process)
`;
}

/** Resolves on SIGTERM or SIGINT after foreman closed; a second signal exits at once. */
export function untilSignal(io: CliIo, close: () => Promise<void>): Promise<void> {
  return new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        io.stderr.write(`foreman: second ${signal}, exiting now\n`);
        process.exit(EXIT.failure);
      }
      stopping = true;
      close().then(resolve, resolve);
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}

export async function serve(argv: readonly string[], env: NodeJS.ProcessEnv, io: CliIo): Promise<number> {
  const config = configOrReport(argv, env, io);
  if (!config) return EXIT.usage;
  const foreman = await start(config, io);
  if (!foreman) return EXIT.failure;
  // Signals are handled from here on, so a stop right after the message below is graceful.
  const stopped = untilSignal(io, () => foreman.close());
  // SIGHUP reads keys_file and hosts_file again (SPEC §15, §17); connections and queued jobs are kept.
  process.on('SIGHUP', () => {
    foreman.reloadKeys('SIGHUP');
    foreman.reloadHosts('SIGHUP');
  });
  const silent = await silentHosts(foreman);
  if (silent.length > 0) io.stderr.write(noOllamaMessage(silent));
  await stopped;
  return EXIT.ok;
}
