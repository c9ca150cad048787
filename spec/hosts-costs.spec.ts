// Learned load times over several hosts (SPEC §17, ADR 0025), end to end on real sockets: an
// unmeasured (host, model) takes a prior from what is measured, and the measurements survive a
// restart in the data dir (a damaged file is ignored).

import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { catalogues, startHosts, type HostsStack } from './support/hosts-stack.js';
import { TOKEN } from './support/stack.js';
import { callForeman } from './support/call.js';
import { until } from './support/until.js';
import { createForeman, type Foreman } from '../lib/app.js';
import { defaultConfig } from '../lib/config.js';
import { createLogger, silentLogger, type Logger } from '../lib/log.js';
import { LOAD_TIMES_FILE } from '../lib/hosts/load-times-file.js';

const chat = (model: string) => ({ model, messages: [{ role: 'user', content: 'hi' }], options: { num_predict: 3 } });

interface QueueHost {
  name: string;
  loads: Array<{ group: string; load_ms: number; loads: number }>;
  estimated_loads: Array<{ group: string; load_ms: number; from: string }>;
}

async function queueHosts(url: string): Promise<QueueHost[]> {
  const r = await callForeman(url, TOKEN, '/queue');
  assert.equal(r.status, 200);
  return ((await r.json()) as { hosts: QueueHost[] }).hosts;
}

/** A second foreman over the same hosts and data dir (a restart), closed when the test ends. */
async function restart(t: { after(fn: () => Promise<void>): void }, stack: HostsStack, dataDir: string, log: Logger = silentLogger): Promise<Foreman> {
  const foreman = await createForeman(defaultConfig({
    listen: { host: '127.0.0.1', port: 0 }, upstream: stack.sims.map((s) => s.url).join(','),
    tokens: [TOKEN], data_dir: dataDir, shutdown_grace_ms: 2_000,
  }), { log, hostProbeMs: 20 });
  t.after(() => foreman.close());
  return foreman;
}

describe('learned load times over several hosts', () => {
  it('gives an unmeasured model on a host the load time measured for it on another host', async (t) => {
    const stack = await startHosts(t, [{ models: [{ name: 'qwen3', loadMs: 40 }] }, { models: [{ name: 'qwen3', loadMs: 40 }] }]);
    await catalogues(stack);
    const before = await queueHosts(stack.foreman.url);
    for (const h of before) assert.deepEqual(h.estimated_loads.map((e) => [e.group, e.from]), [['qwen3:latest', 'default']]);
    const r = await stack.call('/api/chat', { json: chat('qwen3') });
    assert.equal(r.status, 200);
    await r.text();
    await until(async () => (await queueHosts(stack.foreman.url)).some((h) => h.loads.length === 1), 'a load booked');
    const hosts = await queueHosts(stack.foreman.url);
    const ran = hosts.find((h) => h.loads.length === 1)!;
    const other = hosts.find((h) => h !== ran)!;
    assert.equal(ran.estimated_loads.length, 0, 'measured there: no estimate shown');
    assert.deepEqual(other.loads, []);
    assert.deepEqual(other.estimated_loads, [{ group: 'qwen3:latest', load_ms: ran.loads[0]!.load_ms, from: 'model' }]);
    assert.equal(stack.foreman.scheduler.fleet!.loadMs(other.name, 'qwen3:latest'), ran.loads[0]!.load_ms);
  });

  it('keeps measured load times in the data dir across a restart', async (t) => {
    const dataDir = await mkdtemp(join(tmpdir(), 'foreman-costs-'));
    t.after(() => rm(dataDir, { recursive: true, force: true }));
    const stack = await startHosts(t, [{ models: [{ name: 'llama3.2', loadMs: 30 }] }, { models: [{ name: 'qwen3', loadMs: 30 }] }], {
      config: { data_dir: dataDir },
    });
    await catalogues(stack);
    const r = await stack.call('/api/chat', { json: chat('qwen3') });
    assert.equal(r.status, 200);
    await r.text();
    await stack.foreman.close(); // writes what was measured
    const saved = JSON.parse(await readFile(join(dataDir, LOAD_TIMES_FILE), 'utf8'));
    assert.equal(saved.version, 1);
    const second = await restart(t, stack, dataDir);
    const hosts = await queueHosts(second.url);
    const qwenHost = stack.foreman.hosts.hosts[1]!.name;
    const measured = hosts.find((h) => h.name === qwenHost)!.loads;
    assert.equal(measured.length, 1, 'measured before the restart, known at start');
    assert.equal(measured[0]!.group, 'qwen3:latest');
    assert.equal(measured[0]!.load_ms, saved.loads[qwenHost]['qwen3:latest'].ms);
    assert.equal(second.scheduler.fleet!.costs.runMs('qwen3:latest'), saved.runs['qwen3:latest'].ms);
    await second.close();
  });

  it('ignores a damaged load times file with a log line and learns again', async (t) => {
    const dataDir = await mkdtemp(join(tmpdir(), 'foreman-costs-'));
    t.after(() => rm(dataDir, { recursive: true, force: true }));
    await writeFile(join(dataDir, LOAD_TIMES_FILE), '\u0000\u0000{"version":1,"lo');
    const lines: string[] = [];
    const stack = await startHosts(t, [{ models: [{ name: 'llama3.2', loadMs: 30 }] }, { models: [{ name: 'qwen3', loadMs: 30 }] }], {
      config: { data_dir: dataDir }, deps: { log: createLogger('text', { write: (l: string) => lines.push(l) }) },
    });
    assert.equal(lines.filter((l) => l.includes('load times file damaged, ignored')).length, 1);
    await catalogues(stack);
    for (const h of await queueHosts(stack.foreman.url)) assert.deepEqual(h.loads, []);
    const r = await stack.call('/api/chat', { json: chat('qwen3') });
    assert.equal(r.status, 200);
    await r.text();
    await stack.foreman.close();
    const saved = JSON.parse(await readFile(join(dataDir, LOAD_TIMES_FILE), 'utf8'));
    assert.ok(saved.loads[stack.foreman.hosts.hosts[1]!.name]['qwen3:latest'].ms >= 0, 'the damaged file replaced by what was learned');
  });
});
