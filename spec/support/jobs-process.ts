// Test helper: foreman as a real child process (`bin/foreman.js serve` from the build that
// npm test makes first, so no child recompiles TypeScript), so tests can SIGKILL it and
// restart it on the same data dir.

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { TOKEN } from './stack.js';
import { callForeman, type CallInit } from './call.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const BIN = fileURLToPath(new URL('../../bin/foreman.js', import.meta.url));

export interface ForemanProcess {
  child: ChildProcess;
  pid: number;
  /** http://127.0.0.1:port, known once it logged 'listening' */
  url: string;
  /** parsed JSON log lines so far */
  logs: Array<Record<string, unknown>>;
  /** every stderr line, raw */
  stderr: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  call(path: string, init?: CallInit): Promise<Response>;
  kill9(): Promise<void>;
}

/**
 * Spawns foreman and resolves when it listens, or when it exits first (url is then '').
 * Flags are appended to a loopback listen on port 0 with the test token and JSON logs.
 */
export async function spawnForeman(flags: string[], options: { token?: boolean; fdLimit?: number } = {}): Promise<ForemanProcess> {
  const args = ['--listen', '127.0.0.1:0', '--log-format', 'json', ...(options.token === false ? [] : ['--tokens', TOKEN]), ...flags];
  const command = [process.execPath, BIN, 'serve', ...args];
  // An open-file limit of the test's choosing: the shell lowers it, then becomes foreman.
  const child = options.fdLimit === undefined
    ? spawn(command[0]!, command.slice(1), { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] })
    : spawn('/bin/sh', ['-c', `ulimit -n ${options.fdLimit} && exec "$@"`, 'sh', ...command], { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] });
  // 'close', not 'exit': stderr is fully read by then.
  const exited = once(child, 'close').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }));
  const logs: Array<Record<string, unknown>> = [];
  const stderr: string[] = [];
  const fp: ForemanProcess = {
    child,
    pid: child.pid!,
    url: '',
    logs,
    stderr,
    exited,
    call: (path, init = {}) => callForeman(fp.url, TOKEN, path, init),
    async kill9() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
  const listening = new Promise<void>((resolve) => {
    createInterface({ input: child.stderr! }).on('line', (line) => {
      stderr.push(line);
      let entry: Record<string, unknown> | null = null;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {}
      if (!entry) return;
      logs.push(entry);
      if (entry.event === 'listening') {
        fp.url = String(entry.url);
        resolve();
      }
    });
  });
  await Promise.race([listening, exited]);
  return fp;
}

/** Seeded so the kill moments are random but the same on every run. */
export { seededRandom } from './prng.js';

/** Spawns foreman, records it in `children` (for the spec's kill-all), and fails the test when it did not listen. */
export async function startTracked(children: ForemanProcess[], flags: string[]): Promise<ForemanProcess> {
  const fp = await spawnForeman(flags);
  children.push(fp);
  if (!fp.url) throw new Error(`foreman did not start:\n${fp.stderr.join('\n')}`);
  return fp;
}

/** One call and its JSON body. */
export async function callJson(fp: ForemanProcess, path: string, init?: CallInit): Promise<{ status: number; body: any }> {
  const res = await fp.call(path, init);
  return { status: res.status, body: await res.json() };
}
