// /health's job counts are kept at each state change, not counted by a scan per poll: they must
// stay equal to what the jobs themselves say through every path (run, cancel, fail, a refused
// submission, retention). foreman + simulator on loopback.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { faultyJournalIo } from '../lib/journal/io.js';
import { silentLogger } from '../lib/log.js';
import { startStack, type Stack } from './support/stack.js';
import { allJobs, getJson, postJob, waitJob } from './support/jobs-receiver.js';
import { until } from './support/until.js';

const CHAT = (content: string, extra: Record<string, unknown> = {}) => ({ model: 'llama3.2', messages: [{ role: 'user', content }], ...extra });

async function agree(stack: Stack): Promise<Record<string, number>> {
  const shown = (await getJson(stack, '/health')).body.journal.jobs as Record<string, number>;
  const scan: Record<string, number> = { queued: 0, working: 0, completed: 0, failed: 0, cancelled: 0 };
  for (const job of await allJobs(stack)) scan[job.state]++;
  assert.deepEqual(shown, scan);
  return shown;
}

describe('/health job counts', () => {
  it('stay equal to a scan of the jobs through every state change', async (t) => {
    const dataDir = await mkdtemp(join(tmpdir(), 'foreman-counts-'));
    t.after(() => rm(dataDir, { recursive: true, force: true, maxRetries: 10 }));
    const disk = faultyJournalIo();
    let now = Date.now();
    const stack = await startStack(t, {
      dataDir, config: { retention_ms: 60_000 }, deps: { log: silentLogger, journalIo: disk, journalProbeMs: 10, now: () => now },
    });
    const blocker = await postJob(stack, CHAT('hold', { sim: { fault: 'stall', after: 1 } }));
    await until(async () => (await getJson(stack, `/jobs/${blocker.job.id}`)).body.state === 'working', 'the blocker to run');
    const queued = await postJob(stack, CHAT('wait'));
    const cancelled = await postJob(stack, CHAT('cancel me'));
    await stack.call(`/jobs/${cancelled.job.id}/cancel`, { method: 'POST' });
    assert.deepEqual(await agree(stack), { queued: 1, working: 1, completed: 0, failed: 0, cancelled: 1 });
    // A submission the journal refuses leaves no job behind, nor a count.
    disk.failing = true;
    assert.equal((await stack.call('/jobs', { json: CHAT('refused') })).status, 503);
    disk.failing = false;
    await until(async () => (await getJson(stack, '/health')).body.journal.writable === true, 'the journal to write again');
    await agree(stack);
    await stack.call(`/jobs/${blocker.job.id}/cancel`, { method: 'POST' });
    await waitJob(stack, queued.job.id);
    const failed = await postJob(stack, CHAT('bad', { sim: { fault: 'error_before', status: 400 } }));
    assert.equal((await waitJob(stack, failed.job.id)).state, 'failed');
    assert.deepEqual(await agree(stack), { queued: 0, working: 0, completed: 1, failed: 1, cancelled: 2 });
    // Past retention every finished job goes, and its count with it.
    now += 120_000;
    await stack.foreman.jobs.compact();
    assert.deepEqual(await agree(stack), { queued: 0, working: 0, completed: 0, failed: 0, cancelled: 0 });
  });
});
