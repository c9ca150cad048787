// The job store under real faults, on real processes (SPEC §6): a results directory that cannot be
// written (replaced by a file: the tests run as root, so permissions would stop nothing), healed
// while foreman runs; then kill -9 and a restart on the same data dir.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it, type TestContext } from 'node:test';
import { startSim } from '../lib/sim/index.js';
import { callJson, startTracked, type ForemanProcess } from './support/jobs-process.js';
import { until } from './support/until.js';

const children: ForemanProcess[] = [];
after(async () => {
  for (const c of children) await c.kill9();
});

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'foreman-storeproc-'));
  t.after(() => rm(dir, { recursive: true, force: true, maxRetries: 10 }));
  return dir;
}

const start = (flags: string[]) => startTracked(children, flags);
const json = callJson;

describe('store on a real process', () => {
  it('holds a finished job as working while its result cannot be written, says degraded, refuses jobs, and heals by itself; kill -9 keeps it', { timeout: 60_000 }, async (t) => {
    const sim = await startSim({ loadMs: 0, tokensPerSecond: 0, defaultTokens: 5 });
    t.after(() => sim.close());
    const dataDir = await tempDir(t);
    const flags = ['--upstream', sim.url, '--data-dir', dataDir];
    const first = await start(flags);
    // The disk refuses results from now on: results/ is a file, not a directory.
    const results = join(dataDir, 'results');
    await rm(results, { recursive: true, force: true });
    await writeFile(results, 'not a directory');
    const { status, body: job } = await json(first, '/jobs', { json: { model: 'llama3.2', prompt: 'hello' } });
    assert.equal(status, 202);
    await until(async () => (await json(first, '/health')).body.status === 'degraded', 'health to say degraded');
    const health = (await json(first, '/health')).body;
    assert.equal(health.journal.writable, false);
    assert.ok(health.reasons.some((r: string) => /journal cannot write/.test(r)), JSON.stringify(health.reasons));
    assert.equal((await json(first, `/jobs/${job.id}`)).body.state, 'working', 'not completed (nor failed) without a stored result');
    const refused = await json(first, '/jobs', { json: { model: 'llama3.2', prompt: 'more' } });
    assert.equal(refused.status, 503);
    assert.match(refused.body.error, /job not stored: journal cannot write/);

    await rm(results, { force: true });
    await mkdir(results);
    const done = (await json(first, `/jobs/${job.id}?wait=30`)).body;
    assert.equal(done.state, 'completed');
    assert.ok(done.result.message === undefined && typeof done.result.response === 'string' && done.result.response.length > 0);
    await until(async () => (await json(first, '/health')).body.status === 'ok', 'health to be ok again');
    const again = await json(first, '/jobs', { json: { model: 'llama3.2', prompt: 'after' } });
    assert.equal(again.status, 202);
    await json(first, `/jobs/${again.body.id}?wait=30`);
    const before = sim.stats().requests['llama3.2:latest'];
    await first.kill9();

    // The kernel released the lock with the process: the restart needs no hand.
    const second = await start(flags);
    const view = (await json(second, `/jobs/${job.id}`)).body;
    assert.equal(view.state, 'completed');
    assert.deepEqual(view.result, done.result);
    assert.equal(view.attempts, 1);
    assert.equal(sim.stats().requests['llama3.2:latest'], before, 'nothing ran twice');
    assert.equal((await json(second, '/health')).body.status, 'ok');
    await second.kill9();
  });
});
