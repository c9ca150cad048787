// Test helper: several simulators (the hosts of SPEC §17) and one foreman in front of them,
// on 127.0.0.1:0, all closed when the test ends. A host can be killed and brought back on
// the same port.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { startSim, type Sim, type SimOptions } from '../../lib/sim/index.js';
import { createForeman, type Foreman, type ForemanDeps } from '../../lib/app.js';
import { defaultConfig, type Config } from '../../lib/config.js';
import { createLogger, silentLogger } from '../../lib/log.js';
import { TOKEN, type TestResponse } from './stack.js';
import { callForeman, type CallInit } from './call.js';
import { until } from './until.js';

export interface HostsStack {
  sims: Sim[];
  foreman: Foreman;
  call(path: string, init?: RequestInit & { json?: unknown }): Promise<TestResponse>;
  /** Closes host i's simulator (its port stays known). */
  kill(i: number): Promise<void>;
  /** Starts host i again on the same port with the same options. */
  revive(i: number): Promise<Sim>;
}

export async function startHosts(
  t: Pick<TestContext, 'after'>,
  hosts: SimOptions[],
  options: { config?: Partial<Config>; deps?: ForemanDeps; before?: (sims: Sim[]) => Promise<void> } = {},
): Promise<HostsStack> {
  const sims: Sim[] = [];
  for (const h of hosts) sims.push(await startSim({ loadMs: 0, ...h }));
  await options.before?.(sims);
  const dataDir = await mkdtemp(join(tmpdir(), 'foreman-hosts-'));
  const config = defaultConfig({
    listen: { host: '127.0.0.1', port: 0 },
    upstream: sims.map((s) => s.url).join(','),
    tokens: [TOKEN],
    data_dir: dataDir,
    shutdown_grace_ms: 2_000,
    ...options.config,
  });
  const log = process.env.FOREMAN_TEST_LOG ? createLogger('text') : silentLogger;
  const foreman = await createForeman(config, { log, hostProbeMs: 20, ...options.deps });
  const closed = new Set<number>();
  t.after(async () => {
    await foreman.close();
    for (let i = 0; i < sims.length; i++) if (!closed.has(i)) await sims[i]!.close();
    await rm(dataDir, { recursive: true, force: true });
  });
  const call = (path: string, init: CallInit = {}) => callForeman(foreman.url, TOKEN, path, init);
  return {
    sims, foreman, call,
    async kill(i) {
      closed.add(i);
      await sims[i]!.close();
    },
    async revive(i) {
      sims[i] = await startSim({ loadMs: 0, ...hosts[i], port: sims[i]!.port });
      closed.delete(i);
      return sims[i]!;
    },
  };
}

/** Resolves once every host's catalogue (its /api/tags) has been read. */
export async function catalogues(stack: HostsStack): Promise<void> {
  await until(() => stack.foreman.hosts.hosts.every((h) => h.catalogueKnown), 'catalogues read');
}
