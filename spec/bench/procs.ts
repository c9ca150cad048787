// Child processes for the benchmarks: the simulator and foreman each in their own process
// (launch.ts), on a free loopback port, logs to a file, CPU and memory over IPC. Every child
// started here is registered, so stopAll() (finally, SIGINT, exit) leaves none behind.

import { fork, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getJson } from './load.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..', '..');
const LAUNCHER = join(HERE, 'launch.ts');
const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 8_000;
const USAGE_TIMEOUT_MS = 5_000;

export interface Usage {
  /** user + system CPU, microseconds since the process started */
  cpuUs: number;
  rss: number;
  heapUsed: number;
}

export interface BenchProcess {
  readonly name: string;
  readonly url: string;
  readonly pid: number;
  usage(): Promise<Usage>;
  /** The last lines of its log, for error messages. */
  logTail(lines?: number): string;
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();

/** Registers a child started elsewhere (nginx), so stopAll() and the exit hook kill it too. */
export function track(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
}
let scratch: string | null = null;
let started = 0;

async function scratchDir(): Promise<string> {
  scratch ??= await mkdtemp(join(tmpdir(), 'foreman-bench-'));
  return scratch;
}

/** A fresh empty directory under the bench's scratch dir (foreman's --data-dir). */
export async function tempDir(name: string): Promise<string> {
  const dir = await mkdtemp(join(await scratchDir(), `${name}-`));
  return dir;
}

// Where each child says which port it bound (it listens on port 0; choosing a port here and
// passing it down races with other processes on the machine).
const LISTENING = /listening (?:on |url=)(http:\/\/\S+)/;

/** Starts `foreman sim|serve` on 127.0.0.1:0 and waits until it says its URL and GET / answers. */
export async function startProcess(
  name: string, command: 'sim' | 'serve', flags: string[], nodeArgs: string[] = [],
): Promise<BenchProcess> {
  const logPath = join(await scratchDir(), `${name}-${++started}.log`);
  const logFd = openSync(logPath, 'w');
  const child = fork(LAUNCHER, [command, '--listen', '127.0.0.1:0', ...flags], {
    cwd: ROOT,
    execArgv: ['--import', 'tsx', ...nodeArgs],
    stdio: ['ignore', logFd, logFd, 'ipc'],
    env: { ...process.env, NODE_ENV: 'production' },
  });
  closeSync(logFd);
  live.add(child);
  let childError: Error | null = null;
  child.on('error', (err) => (childError = err)); // e.g. a send on a closed channel; reported by usage()
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => {
    exited = true;
    live.delete(child);
    if (child.connected) child.disconnect(); // the IPC pipe would hold the bench's event loop
    resolve();
  }));
  const logTail = (lines = 15) => {
    try {
      return readFileSync(logPath, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  };

  const deadline = Date.now() + READY_TIMEOUT_MS;
  let url = '';
  for (;;) {
    if (exited) throw new Error(`${name} exited before it was ready:\n${logTail()}`);
    url ||= LISTENING.exec(logTail(50))?.[1] ?? '';
    try {
      if (url) {
        await getJson(`${url}/`, 1_000);
        break;
      }
    } catch {}
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${name} not ready after ${READY_TIMEOUT_MS} ms:\n${logTail()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  let nextId = 0;
  const usage = () =>
    new Promise<Usage>((resolve, reject) => {
      const id = ++nextId;
      const timer = setTimeout(() => {
        child.off('message', onMessage);
        reject(new Error(`${name}: no usage answer within ${USAGE_TIMEOUT_MS} ms`));
      }, USAGE_TIMEOUT_MS);
      const onMessage = (m: { type?: string; id?: number; cpu?: NodeJS.CpuUsage; rss?: number; heapUsed?: number }) => {
        if (m?.type !== 'usage' || m.id !== id) return;
        clearTimeout(timer);
        child.off('message', onMessage);
        resolve({ cpuUs: m.cpu!.user + m.cpu!.system, rss: m.rss!, heapUsed: m.heapUsed! });
      };
      if (exited || !child.connected) {
        clearTimeout(timer);
        reject(new Error(`${name}: process gone (${childError?.message ?? 'exited'}):\n${logTail()}`));
        return;
      }
      child.on('message', onMessage);
      child.send({ type: 'usage', id }, (err) => {
        if (!err) return;
        clearTimeout(timer);
        child.off('message', onMessage);
        reject(new Error(`${name}: ${err.message}:\n${logTail()}`));
      });
    });

  const stop = async () => {
    if (exited) return;
    child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), STOP_TIMEOUT_MS)));
    const how = await Promise.race([exit.then(() => 'exited' as const), late]);
    clearTimeout(timer);
    if (how === 'late') {
      child.kill('SIGKILL');
      await exit;
    }
  };

  return { name, url, pid: child.pid!, usage, logTail, stop };
}

/** Kills whatever is still running (SIGKILL: used on errors and signals) and removes the scratch dir. */
export async function stopAll(): Promise<void> {
  for (const child of live) child.kill('SIGKILL');
  live.clear();
  if (scratch) {
    const dir = scratch;
    scratch = null;
    await rm(dir, { recursive: true, force: true });
  }
}

/** Synchronous last resort for process 'exit'. */
export function killAllNow(): void {
  for (const child of live) child.kill('SIGKILL');
  live.clear();
}
