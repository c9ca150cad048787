import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSim } from '../lib/sim/index.js';
import { spawnForeman } from './support/jobs-process.js';
import { until } from './support/until.js';


describe('SIGTERM', () => {
  it('stops accepting, answers waiting callers 503, lets the running stream finish and keeps async jobs', async (t) => {
    const sim = await startSim({ loadMs: 0, tokensPerSecond: 100 });
    const dataDir = await mkdtemp(join(tmpdir(), 'foreman-sigterm-'));
    t.after(async () => {
      await sim.close();
      await rm(dataDir, { recursive: true, force: true });
    });
    const fm = await spawnForeman(['--upstream', sim.url, '--data-dir', dataDir, '--shutdown-grace', '20s']);
    t.after(() => fm.kill9());
    assert.ok(fm.url, `foreman did not start: ${fm.stderr.join('\n')}`);
    const queue = async () => (await (await fm.call('/queue')).json()) as any;

    const running = fm.call('/api/generate', { json: { model: 'llama3.2', prompt: 'long', options: { num_predict: 60 } } });
    await until(async () => (await queue()).totals.running === 1, 'the running stream');
    const waiting = fm.call('/api/generate', { json: { model: 'llama3.2', prompt: 'later', stream: false } });
    const job = await (await fm.call('/jobs', { json: { model: 'llama3.2', prompt: 'keep me' } })).json() as any;
    await until(async () => (await queue()).totals.waiting === 2, 'two waiting');

    fm.child.kill('SIGTERM');
    const w = await waiting;
    assert.equal(w.status, 503);
    assert.match(((await w.json()) as any).error, /shutting down/);
    const r = await running;
    assert.equal(r.status, 200);
    const lines = (await r.text()).trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines.at(-1).done, true, 'the running stream ran to its end');
    assert.equal(lines.length, 61);
    const exit = await fm.exited;
    assert.equal(exit.code, 0);
    assert.ok(fm.logs.some((l) => l.event === 'stopped'));

    // The async job is still queued in the journal and runs at the next start.
    const again = await spawnForeman(['--upstream', sim.url, '--data-dir', dataDir]);
    t.after(() => again.kill9());
    const done = (await (await again.call(`/jobs/${job.id}?wait=30`)).json()) as any;
    assert.equal(done.state, 'completed');
  });
});
