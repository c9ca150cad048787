// Tests for lib/jobs/upkeep.ts (SPEC §6): compaction when enough records are dead, off the
// appender's path; backoff after a failure instead of a retry per append; retention swept.
// A real journal in a temp dir where it matters, an injected clock, no sleeps.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { openJournal, type Journal } from '../lib/journal/journal.js';
import { JobStore } from '../lib/jobs/store.js';
import { JobUpkeep } from '../lib/jobs/upkeep.js';
import { jobFromSubmit, applyState, type Job } from '../lib/jobs/records.js';

async function journalIn(t: TestContext): Promise<Journal> {
  const dir = await mkdtemp(join(tmpdir(), 'foreman-upkeep-'));
  const journal = await openJournal({ dir });
  t.after(async () => {
    await journal.close();
    await rm(dir, { recursive: true, force: true });
  });
  return journal;
}

function job(id: string, at: number): Job {
  return jobFromSubmit({
    t: 'submit', id, at, model: 'm:latest', kind: 'generate', priority: 0, metadata: null, webhook_url: null, idem: null, body: { prompt: 'p' },
  });
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('JobUpkeep', () => {
  it('compacts once dead records pass twice the live ones plus the slack, and not before', async (t) => {
    const journal = await journalIn(t);
    const jobs = new Map<string, Job>([['job_a', job('job_a', 1)]]);
    const upkeep = new JobUpkeep({
      journal, store: new JobStore('/nonexistent', journal), jobs, retentionMs: 60_000, slack: 5, checkEvery: 1,
      isPending: () => false, isRunning: () => false, forget: (j) => jobs.delete(j.id),
    });
    for (let i = 0; i < 7; i++) await journal.append({ noise: i });
    upkeep.appended();
    await turn();
    await upkeep.idle();
    assert.equal(journal.stats().compactions, 0, '7 records: not more than 2 x 1 live + 5');
    await journal.append({ noise: 8 });
    upkeep.appended();
    upkeep.appended(); // a second call in the same tick schedules nothing more
    await turn();
    await upkeep.idle();
    assert.equal(journal.stats().compactions, 1);
    assert.equal(journal.stats().records, 1, 'one snapshot for the one live job');
    assert.equal(upkeep.health().failures, 0);
  });

  it('backs off after a failed compaction instead of retrying on every append, and reports it', async (t) => {
    const journal = await journalIn(t);
    let clock = 1_000_000;
    let attempts = 0;
    let fail = true;
    // The real journal, whose compact fails on demand (private fields need the real object as `this`).
    const flaky: Journal = {
      ...Object.fromEntries((['append', 'readKept', 'release', 'hasKept', 'stats', 'health', 'whenWritable', 'reportFailure', 'close'] as const)
        .map((name) => [name, (journal[name] as (...a: unknown[]) => unknown).bind(journal)])),
      path: journal.path, replay: journal.replay,
      compact: (live: Iterable<object> | (() => Iterable<object>)) => {
        attempts++;
        if (fail) return Promise.reject(new RangeError('Maximum call stack size exceeded'));
        return journal.compact(live);
      },
    } as Journal;
    const jobs = new Map<string, Job>();
    const upkeep = new JobUpkeep({
      journal: flaky, store: new JobStore('/nonexistent', journal), jobs, retentionMs: 60_000, slack: 0, checkEvery: 1, now: () => clock,
      isPending: () => false, isRunning: () => false, forget: (j) => jobs.delete(j.id),
    });
    await journal.append({ noise: 1 });
    upkeep.appended();
    await turn();
    await upkeep.idle();
    assert.equal(attempts, 1);
    const health = upkeep.health();
    assert.equal(health.failures, 1);
    assert.match(health.last_error!, /call stack/);
    assert.equal(health.next_attempt_at, new Date(clock + 1_000).toISOString());
    for (let i = 0; i < 50; i++) {
      await journal.append({ more: i });
      upkeep.appended();
    }
    await turn();
    await upkeep.idle();
    assert.equal(attempts, 1, 'no retry per append during the backoff');
    clock += 1_001;
    fail = false;
    upkeep.appended();
    await turn();
    await upkeep.idle();
    assert.equal(attempts, 2);
    assert.equal(upkeep.health().failures, 0);
    assert.equal(upkeep.health().last_error, null);
    assert.equal(journal.stats().compactions, 1);
  });

  it('drops finished jobs past retention at a sweep, and keeps running and recent ones', async (t) => {
    const journal = await journalIn(t);
    let clock = 100_000;
    const old = job('job_old', 0);
    applyState(old, 'completed', 10_000, 1);
    const recent = job('job_recent', 0);
    applyState(recent, 'failed', 95_000, 1);
    const queued = job('job_queued', 0);
    const jobs = new Map<string, Job>([[old.id, old], [recent.id, recent], [queued.id, queued]]);
    const forgotten: string[] = [];
    const upkeep = new JobUpkeep({
      journal, store: new JobStore('/nonexistent', journal), jobs, retentionMs: 60_000, now: () => clock,
      isPending: () => false, isRunning: () => false, forget: (j) => {
        forgotten.push(j.id);
        jobs.delete(j.id);
      },
    });
    assert.equal(upkeep.sweep(), 1);
    assert.deepEqual(forgotten, ['job_old']);
    clock += 60_000;
    assert.equal(upkeep.sweep(), 1);
    assert.deepEqual([...jobs.keys()], ['job_queued']);
  });
});
