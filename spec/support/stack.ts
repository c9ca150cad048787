// Test helper: the simulator and a foreman in front of it, on 127.0.0.1:0 with a
// temp data dir, both closed when the test ends.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { startSim, type Sim, type SimOptions } from '../../lib/sim/index.js';
import { createForeman, type Foreman, type ForemanDeps } from '../../lib/app.js';
import { defaultConfig, type Config } from '../../lib/config.js';
import { createLogger, silentLogger } from '../../lib/log.js';
import { callForeman, type CallInit } from './call.js';

export const TOKEN = 'test-token-1';

/** A fetch Response whose json() is loosely typed: tests assert on shapes they read. */
export type TestResponse = Omit<Response, 'json'> & { json(): Promise<any> };

export interface Stack {
  sim: Sim;
  foreman: Foreman;
  url: string;
  dataDir: string;
  config: Readonly<Config>;
  /** fetch against foreman with the Bearer token */
  call(path: string, init?: RequestInit & { json?: unknown }): Promise<TestResponse>;
}

export async function startStack(
  t: Pick<TestContext, 'after'>,
  options: { sim?: SimOptions; config?: Partial<Config>; deps?: ForemanDeps; dataDir?: string } = {},
): Promise<Stack> {
  const sim = await startSim({ loadMs: 0, ...options.sim });
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'foreman-spec-')));
  const config = defaultConfig({
    listen: { host: '127.0.0.1', port: 0 },
    upstream: sim.url,
    tokens: [TOKEN],
    data_dir: dataDir,
    shutdown_grace_ms: 2_000,
    ...options.config,
  });
  // FOREMAN_TEST_LOG=1 shows foreman's log lines while debugging a test.
  const log = process.env.FOREMAN_TEST_LOG ? createLogger('text') : silentLogger;
  const foreman = await createForeman(config, { log, ...options.deps });
  t.after(async () => {
    await foreman.close();
    await sim.close();
    if (!options.dataDir) await rm(dataDir, { recursive: true, force: true });
  });
  const call = (path: string, init: CallInit = {}) => callForeman(foreman.url, TOKEN, path, init);
  return { sim, foreman, url: foreman.url, dataDir, config, call };
}

/** Reads an NDJSON response into parsed lines, asserting every line ends in '\n'. */
export async function readNdjson(res: Response): Promise<{ lines: any[]; raw: string }> {
  const raw = await res.text();
  const parts = raw.split('\n');
  if (parts.at(-1) !== '') throw new Error(`NDJSON body does not end with a newline: ${JSON.stringify(raw.slice(-80))}`);
  return { lines: parts.slice(0, -1).map((l) => JSON.parse(l)), raw };
}
