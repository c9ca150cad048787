// The job store under faults and at size (SPEC §6, §16): a disk that fails and heals (an injected
// write layer: the tests run as root, so chmod stops nothing), damaged journals, bodies and results
// on disk, max_queue_bytes, upstream dying mid-answer. foreman + simulator on loopback, real files.
import assert from 'node:assert/strict';
import { access, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { BUSY_MESSAGE } from '../lib/errors.js';
import { renderStatus } from '../lib/ops/status-render.js';
import { faultyJournalIo, type JournalIo } from '../lib/journal/io.js';
import { silentLogger } from '../lib/log.js';
import type { Config } from '../lib/config.js';
import type { ForemanDeps } from '../lib/app.js';
import { startStack, type Stack } from './support/stack.js';
import { allJobs, getJson, postJob, waitJob } from './support/jobs-receiver.js';
import { until } from './support/until.js';

const CHAT = (content: string, extra: Record<string, unknown> = {}) => ({ model: 'llama3.2', messages: [{ role: 'user', content }], ...extra });
const STALL = { sim: { fault: 'stall', after: 1 } };

function stackOf(t: TestContext, o: { config?: Partial<Config>; deps?: ForemanDeps; dataDir?: string } = {}): Promise<Stack> {
  return startStack(t, { ...o, deps: { log: silentLogger, ...o.deps } });
}

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'foreman-store-'));
  t.after(() => rm(dir, { recursive: true, force: true, maxRetries: 10 }));
  return dir;
}

const exists = (path: string) => access(path).then(() => true, () => false);
const health = async (stack: Stack) => (await getJson(stack, '/health')).body;
const requestsTo = (stack: Stack) => stack.sim.stats().requests['llama3.2:latest'] ?? 0;

describe('store: a disk that fails and heals', () => {
  it('keeps a finished job working (never failed) while its result cannot be stored, refuses submissions with 503, holds queued jobs, and recovers by itself', async (t) => {
    const dataDir = await tempDir(t);
    const disk = faultyJournalIo();
    let armed = true;
    // The disk fills up exactly when the first result is written: no race with the run.
    const io: JournalIo = {
      write: async (fh, data) => {
        if (armed && data.includes('"done_reason"')) {
          armed = false;
          disk.failing = true;
        }
        return disk.write(fh, data);
      },
      datasync: (fh) => disk.datasync(fh),
    };
    const stack = await stackOf(t, { dataDir, deps: { journalIo: io, journalProbeMs: 10 } });
    const first = await postJob(stack, CHAT('first'));
    const second = await postJob(stack, CHAT('second'));
    assert.equal(first.status, 202);
    assert.equal(second.status, 202);
    await until(async () => (await health(stack)).status === 'degraded', 'the disk failure to show');
    const h = await health(stack);
    assert.equal(h.journal.writable, false);
    assert.ok(h.reasons.some((r: string) => /disk full/.test(r)), JSON.stringify(h.reasons));
    await stack.foreman.scheduler.idle();
    assert.equal((await getJson(stack, `/jobs/${first.job.id}`)).body.state, 'working', 'no undurable completed (nor failed) is shown');
    // The lane slot is given back when upstream is done, and the outcome is written while the next job
    // starts (ADR 0027): the second job either started before the disk failed (its 'working' was
    // durable) or is held queued because its start could not be recorded. Never anything else.
    const secondState = (await getJson(stack, `/jobs/${second.job.id}`)).body.state;
    assert.ok(secondState === 'queued' || secondState === 'working', secondState);
    assert.equal(requestsTo(stack), secondState === 'queued' ? 1 : 2, 'a held job did not reach upstream');
    const queue = (await getJson(stack, '/queue')).body;
    assert.equal(queue.store.writable, false);
    assert.match(queue.store.reason, /disk full/);
    assert.match(renderStatus(queue), /journal\s+journal cannot write: disk full; new jobs get 503, queued jobs wait/);
    assert.match(renderStatus(queue), /waiting\s+0\/512 {2}\(0\.0 MiB of 1024 MiB bodies\)/, 'the held job is not waiting in the scheduler');
    const refused = await stack.call('/jobs', { json: CHAT('third') });
    assert.equal(refused.status, 503);
    assert.match((await refused.json()).error, /job not stored: journal cannot write: disk full/);
    const cancel = await stack.call(`/jobs/${second.job.id}/cancel`, { method: 'POST' });
    assert.equal(cancel.status, 503, 'a cancel that could not be recorded is refused');
    // Sync requests are not journaled: they keep working.
    const sync = await stack.call('/api/chat', { json: CHAT('sync', { stream: false }) });
    assert.equal(sync.status, 200);

    disk.failing = false;
    const done = await waitJob(stack, first.job.id);
    assert.equal(done.state, 'completed');
    assert.equal(done.attempts, 1);
    assert.ok(done.result.message.content.length > 0);
    assert.equal((await waitJob(stack, second.job.id)).state, 'completed', 'held jobs run once the disk is back');
    assert.equal((await health(stack)).status, 'ok');
    const third = await postJob(stack, CHAT('third'));
    assert.equal(third.status, 202);
    await waitJob(stack, third.job.id);
    const before = requestsTo(stack);
    await stack.foreman.close();

    const again = await stackOf(t, { dataDir });
    const view = (await getJson(again, `/jobs/${first.job.id}`)).body;
    assert.equal(view.state, 'completed', 'completed stays completed across a restart');
    assert.deepEqual(view.result, done.result);
    assert.equal(requestsTo(again), 0, 'nothing ran again');
    assert.equal(before, 4);
  });

  it('answers 503 with the reason while the journal itself cannot append, then 202 once it can', async (t) => {
    const disk = faultyJournalIo();
    const stack = await stackOf(t, { dataDir: await tempDir(t), deps: { journalIo: disk, journalProbeMs: 10 } });
    disk.failing = true;
    const refused = await stack.call('/jobs', { json: CHAT('x') });
    assert.equal(refused.status, 503);
    assert.match((await refused.json()).error, /disk full/);
    assert.equal(refused.headers.get('retry-after'), '5');
    assert.equal((await health(stack)).status, 'degraded');
    assert.equal((await allJobs(stack)).length, 0, 'the refused job does not exist');
    disk.failing = false;
    await until(async () => (await health(stack)).journal.writable === true, 'the probe to succeed');
    const ok = await postJob(stack, CHAT('y'));
    assert.equal(ok.status, 202);
    assert.equal((await waitJob(stack, ok.job.id)).state, 'completed');
  });
});

describe('store: damaged journals', () => {
  it('skips a record of the wrong shape mid-file and runs again a job whose result line was garbled', async (t) => {
    const dataDir = await tempDir(t);
    const first = await stackOf(t, { dataDir });
    const a = await postJob(first, CHAT('alpha'));
    const b = await postJob(first, CHAT('beta'));
    const doneA = await waitJob(first, a.job.id);
    const doneB = await waitJob(first, b.job.id);
    await first.foreman.close();
    const path = join(dataDir, 'journal.jsonl');
    const lines = (await readFile(path, 'utf8')).split('\n');
    const resultOfB = lines.findIndex((l) => l.startsWith(`{"t":"result","id":"${b.job.id}"`));
    assert.ok(resultOfB > 0);
    lines[resultOfB] = `{"t":"result","id":"${b.job.id}","at":1,"bytes":"garbled"}`;
    lines.splice(2, 0, '{"t":"job"}');
    await writeFile(path, lines.join('\n'));

    const second = await stackOf(t, { dataDir });
    const h = await health(second);
    assert.equal(h.status, 'degraded');
    assert.equal(h.journal.bad_lines, 2);
    assert.ok(h.journal.copied_aside);
    assert.ok(await exists(h.journal.copied_aside));
    assert.deepEqual((await getJson(second, `/jobs/${a.job.id}`)).body.result, doneA.result, 'the intact job is intact');
    const rerun = await waitJob(second, b.job.id);
    assert.equal(rerun.state, 'completed');
    assert.ok(rerun.result, 'never completed without a result');
    assert.deepEqual(rerun.result.message, doneB.result.message);
    assert.deepEqual((await getJson(second, `/jobs/${b.job.id}/events`)).body.events.map((e: any) => e.state),
      ['queued', 'working', 'completed', 'queued', 'working', 'completed']);
  });
});

describe('store: journals of the previous version', () => {
  it('replays bodies and results that were inline, and old snapshots, then runs and shows them as before', async (t) => {
    const dataDir = await tempDir(t);
    const at = Date.now() - 1000;
    const response = { model: 'llama3.2:latest', done: true, done_reason: 'stop', message: { role: 'assistant', content: 'old answer' }, eval_count: 2 };
    const snapshot = {
      id: 'job_00000000a000aaaaaaaa', model: 'llama3.2:latest', kind: 'chat', priority: 0, createdAt: at, startedAt: at + 1, finishedAt: at + 2,
      attempts: 1, state: 'completed', metadata: { n: 1 }, webhookUrl: null, body: { model: 'llama3.2', messages: [{ role: 'user', content: 'x' }] },
      idempotency: null, response, error: null,
      transitions: [
        { seq: 1, state: 'queued', prev: null, at, attempts: 0 }, { seq: 2, state: 'working', prev: 'queued', at: at + 1, attempts: 1 },
        { seq: 3, state: 'completed', prev: 'working', at: at + 2, attempts: 1 },
      ],
      webhook: { settledSeq: 0, delivered: 0, gone: false, lastError: null, retry: null },
    };
    const lines = [
      { t: 'job', job: snapshot },
      { t: 'submit', id: 'job_00000000b000bbbbbbbb', at, model: 'llama3.2:latest', kind: 'chat', priority: 0, metadata: null, webhook_url: null,
        body: { model: 'llama3.2', messages: [{ role: 'user', content: 'inline' }] }, idem: null },
      { t: 'state', id: 'job_00000000b000bbbbbbbb', at: at + 1, state: 'working', attempts: 1 },
      { t: 'result', id: 'job_00000000b000bbbbbbbb', at: at + 2, response },
      { t: 'state', id: 'job_00000000b000bbbbbbbb', at: at + 2, state: 'completed', attempts: 1 },
      { t: 'submit', id: 'job_00000000c000cccccccc', at, model: 'llama3.2:latest', kind: 'chat', priority: 0, metadata: null, webhook_url: null,
        body: { model: 'llama3.2', messages: [{ role: 'user', content: 'still queued' }] }, idem: null },
    ];
    await writeFile(join(dataDir, 'journal.jsonl'), lines.map((l) => JSON.stringify(l) + '\n').join(''));
    await writeFile(join(dataDir, 'foreman.lock'), '1\n'); // the old pid lock, naming a live pid
    const stack = await stackOf(t, { dataDir });
    const h = await health(stack);
    assert.equal(h.journal.bad_lines, 0);
    for (const id of ['job_00000000a000aaaaaaaa', 'job_00000000b000bbbbbbbb']) {
      const view = (await getJson(stack, `/jobs/${id}`)).body;
      assert.equal(view.state, 'completed');
      assert.equal(view.result.message.content, 'old answer');
      assert.deepEqual(view.artifacts.map((a: any) => a.name), ['content.txt', 'response.json']);
      assert.equal(await (await stack.call(`/jobs/${id}/artifacts/content.txt`)).text(), 'old answer');
    }
    const ran = await waitJob(stack, 'job_00000000c000cccccccc');
    assert.equal(ran.state, 'completed', 'the queued job ran with its inline body');
    assert.ok(ran.result.message.content.length > 0);
    await stack.foreman.jobs.compact();
    assert.equal((await getJson(stack, '/jobs/job_00000000b000bbbbbbbb')).body.result.message.content, 'old answer', 'still there after a compaction');
  });
});

describe('store: bodies and results on disk', () => {
  it('keeps a large body in bodies/, a small one in the journal, none in memory, and drops both once the jobs end', async (t) => {
    const dataDir = await tempDir(t);
    const stack = await stackOf(t, { dataDir });
    const blocker = await postJob(stack, CHAT('hold', STALL));
    await until(async () => (await getJson(stack, `/jobs/${blocker.job.id}`)).body.state === 'working', 'the blocker to run');
    const big = await postJob(stack, CHAT('x'.repeat(200_000)));
    const small = await postJob(stack, CHAT('tiny'));
    const bodyFile = join(dataDir, 'bodies', `${big.job.id}.json`);
    assert.equal(JSON.parse(await readFile(bodyFile, 'utf8')).messages[0].content.length, 200_000);
    for (const id of [big.job.id, small.job.id]) {
      const job = stack.foreman.jobs.get(id) as unknown as Record<string, unknown>;
      assert.equal('body' in job, false, 'no body in memory');
    }
    assert.equal(stack.foreman.journal.hasKept(small.job.id), true);
    assert.equal(stack.foreman.scheduler.waitingBytes, stack.foreman.jobs.get(big.job.id).bodyBytes + stack.foreman.jobs.get(small.job.id).bodyBytes);
    await stack.call(`/jobs/${blocker.job.id}/cancel`, { method: 'POST' });
    const doneBig = await waitJob(stack, big.job.id);
    await waitJob(stack, small.job.id);
    assert.equal(doneBig.state, 'completed');
    assert.ok(await exists(join(dataDir, 'results', `${big.job.id}.json`)), 'the result is a file');
    const content = await (await stack.call(`/jobs/${big.job.id}/artifacts/content.txt`)).text();
    assert.equal(content, doneBig.result.message.content);
    assert.equal(stack.foreman.journal.hasKept(small.job.id), false, 'the small body is released');
    await stack.foreman.jobs.compact();
    assert.equal(await exists(bodyFile), false, 'the large body file is gone after compaction');
    assert.equal(stack.foreman.journal.stats().kept, 0);
  });

  it('counts waiting bodies against max_queue_bytes, sync and async, with Ollama\'s busy answer', async (t) => {
    const stack = await stackOf(t, { dataDir: await tempDir(t), config: { max_queue_bytes: 150_000 } });
    const blocker = await postJob(stack, CHAT('hold', STALL));
    await until(async () => (await getJson(stack, `/jobs/${blocker.job.id}`)).body.state === 'working', 'the blocker to run');
    const first = await postJob(stack, CHAT('a'.repeat(100_000)));
    assert.equal(first.status, 202);
    const over = await stack.call('/jobs', { json: CHAT('b'.repeat(100_000)) });
    assert.equal(over.status, 503);
    assert.equal((await over.json()).error, BUSY_MESSAGE);
    assert.ok(over.headers.get('retry-after'));
    const syncOver = await stack.call('/api/chat', { json: CHAT('c'.repeat(100_000), { stream: false }) });
    assert.equal(syncOver.status, 503);
    assert.equal((await syncOver.json()).error, BUSY_MESSAGE);
    const small = await postJob(stack, CHAT('small'));
    assert.equal(small.status, 202, 'a small body still fits');
    await stack.call(`/jobs/${blocker.job.id}/cancel`, { method: 'POST' });
    await waitJob(stack, small.job.id);
  });
});

describe('store: upstream dies mid-generation', () => {
  it('retries an async job whose stream was cut, up to max_attempts', async (t) => {
    const stack = await stackOf(t, { dataDir: await tempDir(t), config: { max_attempts: 2 } });
    const { job } = await postJob(stack, CHAT('cut me', { sim: { fault: 'reset', after: 2 } }));
    const done = await waitJob(stack, job.id);
    assert.equal(done.state, 'failed');
    assert.equal(done.attempts, 2);
    assert.deepEqual((await getJson(stack, `/jobs/${job.id}/events`)).body.events.map((e: any) => e.state),
      ['queued', 'working', 'queued', 'working', 'failed']);
    assert.equal(requestsTo(stack), 2);
  });
});
