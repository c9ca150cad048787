import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import type { Logger } from '../lib/log.js';
import {
  RETRY_SCHEDULE_MS, checkWebhookUrl, createWebhookDispatcher, nextDelay, parseRetryAfter, signPayload, verifySignature,
} from '../lib/webhooks/dispatcher.js';
import type { DeliveryProgress, WebhookDispatcherOptions, WebhookEvent } from '../lib/webhooks/dispatcher.js';

const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

interface Received { path: string; headers: IncomingHttpHeaders; body: string; jobId: string; seq: number }
type Handler = (req: Received, res: ServerResponse) => void;

/** A real loopback receiver; every request is parsed and recorded before the handler answers. */
async function startReceiver(handle: Handler) {
  const received: Received[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const parsed = JSON.parse(body) as { job_id: string; seq: number };
      const r = { path: req.url ?? '', headers: req.headers, body, jobId: parsed.job_id, seq: parsed.seq };
      received.push(r);
      handle(r, res);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const close = async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  };
  return { url: `http://127.0.0.1:${port}/hook`, received, close };
}

const answer = (status: number, headers: Record<string, string> = {}) => (_: Received, res: ServerResponse) => {
  res.writeHead(status, headers).end('{"ok":true}');
};

/** Progress reports, plus a way to await one matching a predicate (no sleeps). */
function progressLog() {
  const list: DeliveryProgress[] = [];
  const waiters: Array<{ match: (p: DeliveryProgress) => boolean; resolve: () => void }> = [];
  const onProgress = (p: DeliveryProgress) => {
    list.push(p);
    for (const w of [...waiters]) if (w.match(p)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(); }
  };
  const until = (match: (p: DeliveryProgress) => boolean) =>
    list.some(match) ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ match, resolve }));
  return { list, onProgress, until, of: (jobId: string) => list.filter((p) => p.jobId === jobId) };
}

function event(url: string, jobId: string, seq: number, extra: Partial<WebhookEvent> = {}): WebhookEvent {
  const body = JSON.stringify({ type: 'job.state', job_id: jobId, seq, state: 'working', previous_state: 'queued', at: '2024-01-01T00:00:00.000Z', job: {} });
  return { eventId: `evt_${jobId}_${seq}`, jobId, seq, url, body, attempts: 0, nextAttemptAt: 0, ...extra };
}

function headersOf(r: Received) {
  return {
    'webhook-id': String(r.headers['webhook-id']),
    'webhook-timestamp': String(r.headers['webhook-timestamp']),
    'webhook-signature': String(r.headers['webhook-signature']),
  };
}

/** Timers the test fires by hand; the clock moves only when the test says so. */
function manualClock(start = 1_700_000_000_000) {
  const timers: Array<{ fn: () => void; ms: number; cancelled: boolean }> = [];
  const clock = { now: start, timers };
  const setTimer = (fn: () => void, ms: number) => {
    const t = { fn, ms, cancelled: false };
    timers.push(t);
    return { cancel: () => { t.cancelled = true; } };
  };
  return { clock, now: () => clock.now, setTimer };
}

describe('webhook signing', () => {
  it('matches the Standard Webhooks reference vector', () => {
    const sig = signPayload(SECRET, 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}');
    assert.equal(sig, 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
  });

  it('verifies what it signs and rejects a tampered body, timestamp, id or secret', () => {
    const body = '{"a":1}';
    const headers = { 'webhook-id': 'msg_1', 'webhook-timestamp': '1700000000', 'webhook-signature': signPayload(SECRET, 'msg_1', 1700000000, body) };
    assert.equal(verifySignature(SECRET, headers, body), true);
    assert.equal(verifySignature(SECRET, headers, '{"a":2}'), false);
    assert.equal(verifySignature(SECRET, { ...headers, 'webhook-timestamp': '1700000001' }, body), false);
    assert.equal(verifySignature(SECRET, { ...headers, 'webhook-timestamp': '01700000000' }, body), false);
    assert.equal(verifySignature(SECRET, { ...headers, 'webhook-id': 'msg_2' }, body), false);
    assert.equal(verifySignature('whsec_' + Buffer.from('another key').toString('base64'), headers, body), false);
    assert.equal(verifySignature(SECRET, { ...headers, 'webhook-signature': 'v2,' + headers['webhook-signature'].slice(3) }, body), false);
    assert.equal(verifySignature(SECRET, { ...headers, 'webhook-signature': '' }, body), false);
  });

  it('accepts any one of several space-separated signatures', () => {
    const sig = signPayload(SECRET, 'msg_1', 1700000000, 'x');
    const headers = { 'webhook-id': 'msg_1', 'webhook-timestamp': '1700000000', 'webhook-signature': `v1,bm9wZQ== ${sig} v1a,zzz` };
    assert.equal(verifySignature(SECRET, headers, 'x'), true);
  });

  it('applies a timestamp tolerance only when asked', () => {
    const sig = signPayload(SECRET, 'm', 1000, 'x');
    const headers = { 'webhook-id': 'm', 'webhook-timestamp': '1000', 'webhook-signature': sig };
    assert.equal(verifySignature(SECRET, headers, 'x', { toleranceS: 300, now: () => 1200_000 }), true);
    assert.equal(verifySignature(SECRET, headers, 'x', { toleranceS: 300, now: () => 1400_000 }), false);
  });

  it('refuses a secret that is not base64', () => {
    assert.throws(() => signPayload('whsec_', 'm', 1, 'x'), /whsec_ followed by base64/);
    assert.throws(() => signPayload('whsec_not base64!', 'm', 1, 'x'), /whsec_ followed by base64/);
  });
});

describe('nextDelay', () => {
  const mid = () => 0.5; // no jitter

  it('is done on any 2xx', () => {
    for (const status of [200, 201, 204, 299]) assert.deepEqual(nextDelay(1, { kind: 'status', status }), { action: 'done' });
  });

  it('stops on 410 whatever the attempt', () => {
    assert.deepEqual(nextDelay(1, { kind: 'status', status: 410 }), { action: 'stop', reason: 'gone' });
    assert.deepEqual(nextDelay(99, { kind: 'status', status: 410 }), { action: 'stop', reason: 'gone' });
  });

  it('follows the schedule for 500s, errors and redirects, then is exhausted', () => {
    const outcomes = [{ kind: 'status', status: 500 }, { kind: 'status', status: 302 }, { kind: 'error', message: 'timeout' }] as const;
    for (const outcome of outcomes) {
      RETRY_SCHEDULE_MS.forEach((ms, i) => {
        assert.deepEqual(nextDelay(i + 1, outcome, { random: mid }), { action: 'retry', delayMs: ms });
      });
      assert.deepEqual(nextDelay(RETRY_SCHEDULE_MS.length + 1, outcome, { random: mid }), { action: 'stop', reason: 'exhausted' });
    }
    assert.deepEqual(RETRY_SCHEDULE_MS, [0, 5e3, 30e3, 120e3, 600e3, 1800e3, 3600e3, 3 * 3600e3, 6 * 3600e3, 12 * 3600e3]);
  });

  it('uses an injected schedule; an empty one gives up after the first try', () => {
    const fail = { kind: 'status', status: 503 } as const;
    assert.deepEqual(nextDelay(2, fail, { schedule: [0, 7], random: mid }), { action: 'retry', delayMs: 7 });
    assert.deepEqual(nextDelay(3, fail, { schedule: [0, 7] }), { action: 'stop', reason: 'exhausted' });
    assert.deepEqual(nextDelay(1, fail, { schedule: [] }), { action: 'stop', reason: 'exhausted' });
  });

  it('jitters within ±20%, never below zero, and keeps 0 at 0', () => {
    const fail = { kind: 'status', status: 500 } as const;
    assert.deepEqual(nextDelay(2, fail, { random: () => 0 }), { action: 'retry', delayMs: 4000 });
    assert.deepEqual(nextDelay(2, fail, { random: () => 0.999999 }), { action: 'retry', delayMs: 6000 });
    assert.deepEqual(nextDelay(1, fail, { random: () => 0 }), { action: 'retry', delayMs: 0 });
    assert.deepEqual(nextDelay(1, fail, { random: () => 0.999999 }), { action: 'retry', delayMs: 0 });
    for (let i = 0; i < 200; i++) {
      const d = nextDelay(3, fail) as { delayMs: number };
      assert.ok(d.delayMs >= 24_000 && d.delayMs <= 36_000, String(d.delayMs));
    }
  });

  it('lets Retry-After lengthen the wait up to the next step, never shorten it', () => {
    const busy = { kind: 'status', status: 429 } as const;
    assert.deepEqual(nextDelay(1, busy, { random: mid, retryAfterMs: 2000 }), { action: 'retry', delayMs: 2000 });
    assert.deepEqual(nextDelay(1, busy, { random: mid, retryAfterMs: 3_600_000 }), { action: 'retry', delayMs: 5000 });
    assert.deepEqual(nextDelay(3, busy, { random: mid, retryAfterMs: 1000 }), { action: 'retry', delayMs: 30_000 });
    assert.deepEqual(nextDelay(10, busy, { random: mid, retryAfterMs: 1e12 }), { action: 'retry', delayMs: 12 * 3600e3 });
  });

  it('refuses an attempt below 1', () => {
    assert.throws(() => nextDelay(0, { kind: 'status', status: 500 }), RangeError);
  });

  it('parses Retry-After seconds and HTTP dates', () => {
    const now = Date.parse('2024-01-01T00:00:00Z');
    assert.equal(parseRetryAfter('120', now), 120_000);
    assert.equal(parseRetryAfter('Mon, 01 Jan 2024 00:01:00 GMT', now), 60_000);
    assert.equal(parseRetryAfter('Sun, 31 Dec 2023 00:00:00 GMT', now), undefined);
    assert.equal(parseRetryAfter('soon', now), undefined);
    assert.equal(parseRetryAfter(null, now), undefined);
  });
});

describe('checkWebhookUrl', () => {
  it('accepts http and https URLs', () => {
    for (const url of ['http://example.com/hook', 'https://hooks.example.com:8443/a?b=c', 'http://127.0.0.1:9/x', 'http://[::1]/', 'http://169.253.1.1/', 'http://[fec0::1]/']) {
      assert.equal(checkWebhookUrl(url), null, url);
    }
  });

  it('refuses what is not an http(s) URL', () => {
    for (const raw of [undefined, null, 42, '', 'not a url', 'ftp://example.com/', 'file:///etc/passwd', 'javascript:alert(1)']) {
      assert.equal(checkWebhookUrl(raw), 'state_webhook_url must be an http or https URL', String(raw));
    }
    assert.match(checkWebhookUrl('https://example.com/' + 'a'.repeat(2048))!, /at most 2048/);
    assert.match(checkWebhookUrl('https://user:pw@example.com/')!, /credentials/);
  });

  it('refuses link-local hosts in every spelling', () => {
    const hosts = [
      'http://169.254.169.254/latest/meta-data', 'http://169.254.0.1:8080/', 'http://169.254.169.254./', 'http://0xa9fea9fe/',
      'http://2852039166/', 'http://[fe80::1]/', 'http://[FE80::abcd%25eth0]/', 'http://[febf:ffff::1]/',
      'http://[::ffff:169.254.169.254]/', 'http://[::ffff:a9fe:a9fe]/', 'http://[0:0:0:0:0:ffff:169.254.1.2]/',
    ];
    for (const url of hosts) {
      const message = checkWebhookUrl(url);
      if (url.includes('%25')) { assert.notEqual(message, null, url); continue; } // zone ids do not parse at all
      assert.equal(message, 'state_webhook_url points to a link-local address (169.254.0.0/16, fe80::/10)', url);
    }
  });
});

describe('webhook dispatcher', () => {
  it('delivers 3 jobs × 5 events, signed, in seq order and one at a time per job', async (t) => {
    const inFlight = new Map<string, number>();
    let overlap = false;
    const verified: boolean[] = [];
    const rx = await startReceiver((r, res) => {
      verified.push(verifySignature(SECRET, headersOf(r), r.body));
      const n = (inFlight.get(r.jobId) ?? 0) + 1;
      inFlight.set(r.jobId, n);
      if (n > 1) overlap = true;
      setImmediate(() => { inFlight.set(r.jobId, n - 1); res.writeHead(204).end(); });
    });
    const progress = progressLog();
    const d = createWebhookDispatcher({ secret: SECRET, schedule: [0, 5, 10], onProgress: progress.onProgress });
    t.after(async () => { await d.close(); await rx.close(); });

    for (let seq = 1; seq <= 5; seq++) for (const job of ['a', 'b', 'c']) d.enqueue(event(rx.url, job, seq));
    assert.equal(d.pending(), 15);
    await d.idle();

    assert.equal(d.pending(), 0);
    assert.equal(overlap, false);
    assert.equal(verified.length, 15);
    assert.ok(verified.every(Boolean));
    for (const job of ['a', 'b', 'c']) {
      assert.deepEqual(rx.received.filter((r) => r.jobId === job).map((r) => r.seq), [1, 2, 3, 4, 5]);
      assert.deepEqual(progress.of(job).map((p) => [p.seq, p.outcome, p.status, p.attempts]), [1, 2, 3, 4, 5].map((s) => [s, 'delivered', 204, 1]));
    }
    const r = rx.received[0]!;
    assert.equal(r.headers['content-type'], 'application/json');
    assert.equal(r.headers['user-agent'], 'foreman-webhooks/1');
    assert.equal(r.path, '/hook');
  });

  it('retries 500s with the same webhook-id and a fresh signed timestamp each time', async (t) => {
    const statuses = [500, 500, 200];
    const rx = await startReceiver((_, res) => res.writeHead(statuses.shift()!).end());
    const progress = progressLog();
    const d = createWebhookDispatcher({ secret: SECRET, schedule: [0, 5, 10], onProgress: progress.onProgress });
    t.after(async () => { await d.close(); await rx.close(); });

    d.enqueue(event(rx.url, 'j', 1));
    await progress.until((p) => p.outcome === 'delivered');

    assert.equal(rx.received.length, 3);
    assert.deepEqual(new Set(rx.received.map((r) => r.headers['webhook-id'])), new Set(['evt_j_1']));
    for (const r of rx.received) {
      assert.match(String(r.headers['webhook-timestamp']), /^\d{10}$/);
      assert.ok(verifySignature(SECRET, headersOf(r), r.body));
    }
    assert.deepEqual(progress.list.map((p) => [p.outcome, p.attempts, p.status, p.error]), [
      ['retrying', 1, 500, 'HTTP 500'], ['retrying', 2, 500, 'HTTP 500'], ['delivered', 3, 200, null],
    ]);
    assert.ok(progress.list.slice(0, 2).every((p) => typeof p.nextAttemptAt === 'number'));
    assert.equal(progress.list[2]!.nextAttemptAt, null);
  });

  it('waits the scheduled delay on the injected clock and honours Retry-After', async (t) => {
    const answers: Array<[number, Record<string, string>]> = [[500, {}], [503, { 'retry-after': '20' }], [200, {}]];
    const rx = await startReceiver((_, res) => { const [s, h] = answers.shift()!; res.writeHead(s, h).end(); });
    const { clock, now, setTimer } = manualClock();
    const progress = progressLog();
    const d = createWebhookDispatcher({ schedule: [0, 5000, 60_000], timeoutMs: 99_999, now, setTimer, random: () => 0.5, onProgress: progress.onProgress });
    t.after(async () => { await d.close(); await rx.close(); });

    d.enqueue(event(rx.url, 'j', 1));
    await progress.until((p) => p.attempts === 2);
    // attempt 1 → schedule[0] = 0 (at once, no timer); attempt 2 → 503 with Retry-After 20 s, capped at the next step (60 s)
    assert.deepEqual(progress.list.map((p) => p.nextAttemptAt), [clock.now, clock.now + 20_000]);
    assert.deepEqual(rx.received.map((r) => r.headers['webhook-timestamp']), ['1700000000', '1700000000']);
    assert.equal(rx.received[0]!.headers['webhook-signature'], undefined);
    await d.idle(); // a retry 20 s away is not due now
    assert.equal(rx.received.length, 2);

    const retry = clock.timers.find((x) => x.ms === 20_000 && !x.cancelled)!;
    clock.now += 20_000;
    retry.fn();
    await progress.until((p) => p.outcome === 'delivered');
    assert.equal(rx.received[2]!.headers['webhook-timestamp'], '1700000020');
    assert.ok(clock.timers.filter((x) => x.ms === 99_999).every((x) => x.cancelled), 'request timeouts are cancelled');
  });

  it('stops a job on 410, dropping its queued and later events, while other jobs go on', async (t) => {
    const rx = await startReceiver((r, res) => res.writeHead(r.jobId === 'a' ? 410 : 200).end());
    const progress = progressLog();
    const d = createWebhookDispatcher({ schedule: [0, 5], onProgress: progress.onProgress });
    t.after(async () => { await d.close(); await rx.close(); });

    for (const seq of [1, 2, 3]) d.enqueue(event(rx.url, 'a', seq));
    d.enqueue(event(rx.url, 'b', 1));
    await d.idle();
    d.enqueue(event(rx.url, 'a', 4));
    await d.idle();

    assert.deepEqual(rx.received.map((r) => `${r.jobId}${r.seq}`).sort(), ['a1', 'b1']);
    assert.deepEqual(progress.of('a').map((p) => [p.seq, p.outcome, p.status]), [[1, 'gone', 410], [2, 'gone', null], [3, 'gone', null], [4, 'gone', null]]);
    assert.deepEqual(progress.of('b').map((p) => p.outcome), ['delivered']);
    assert.equal(d.pending('a'), 0);
  });

  it('reports exhausted after the schedule and moves on to the job\'s next event', async (t) => {
    const rx = await startReceiver((r, res) => res.writeHead(r.seq === 1 ? 500 : 200).end());
    const progress = progressLog();
    const d = createWebhookDispatcher({ schedule: [0, 1], onProgress: progress.onProgress });
    t.after(async () => { await d.close(); await rx.close(); });

    d.enqueue(event(rx.url, 'j', 1));
    d.enqueue(event(rx.url, 'j', 2));
    await progress.until((p) => p.seq === 2 && p.outcome === 'delivered');

    assert.deepEqual(rx.received.map((r) => r.seq), [1, 1, 1, 2]);
    assert.deepEqual(progress.list.map((p) => [p.seq, p.outcome, p.attempts]), [
      [1, 'retrying', 1], [1, 'retrying', 2], [1, 'exhausted', 3], [2, 'delivered', 1],
    ]);
    assert.equal(d.pending(), 0);
  });

  it('lets a fast receiver finish while another job\'s receiver hangs, and close() keeps the hung event pending', async (t) => {
    let hit!: () => void;
    const slowHit = new Promise<void>((resolve) => { hit = resolve; });
    const slow = await startReceiver(() => hit()); // never answers
    const fast = await startReceiver(answer(200));
    const progress = progressLog();
    const d = createWebhookDispatcher({ maxConcurrent: 2, timeoutMs: 60_000, onProgress: progress.onProgress });
    t.after(async () => { await d.close(); await slow.close(); await fast.close(); });

    d.enqueue(event(slow.url, 'slow', 1));
    d.enqueue(event(slow.url, 'slow', 2));
    await slowHit;
    for (let seq = 1; seq <= 5; seq++) d.enqueue(event(fast.url, 'fast', seq));
    await progress.until((p) => p.jobId === 'fast' && p.seq === 5);

    assert.deepEqual(progress.of('fast').map((p) => p.outcome), Array(5).fill('delivered'));
    assert.deepEqual(progress.of('slow'), []);
    assert.equal(slow.received.length, 1);
    assert.equal(d.pending('slow'), 2);

    await d.close();
    assert.equal(d.pending('slow'), 2);
    assert.deepEqual(progress.of('slow'), []);
    await d.idle();
  });

  it('times out a receiver that never answers', async (t) => {
    const rx = await startReceiver(() => {});
    const progress = progressLog();
    const d = createWebhookDispatcher({ timeoutMs: 50, schedule: [], onProgress: progress.onProgress });
    t.after(async () => { await d.close(); await rx.close(); });

    d.enqueue(event(rx.url, 'j', 1));
    await d.idle();
    assert.deepEqual(progress.list.map((p) => [p.outcome, p.status, p.error]), [['exhausted', null, 'timed out']]);
  });

  it('does not follow redirects and sends no signature without a secret', async (t) => {
    const rx = await startReceiver(answer(302, { location: '/elsewhere' }));
    const progress = progressLog();
    const d = createWebhookDispatcher({ schedule: [], onProgress: progress.onProgress });
    t.after(async () => { await d.close(); await rx.close(); });

    d.enqueue(event(rx.url, 'j', 1));
    await d.idle();
    assert.deepEqual(rx.received.map((r) => r.path), ['/hook']);
    assert.deepEqual(progress.list.map((p) => [p.outcome, p.status, p.error]), [['exhausted', 302, 'HTTP 302']]);
    const h = rx.received[0]!.headers;
    assert.equal(h['webhook-signature'], undefined);
    assert.equal(h['webhook-id'], 'evt_j_1');
    assert.match(String(h['webhook-timestamp']), /^\d+$/);
  });

  it('reports a network error in words, never the raw socket error', async (t) => {
    const gone = await startReceiver(answer(200));
    await gone.close(); // nothing listens on this port now
    const progress = progressLog();
    const d = createWebhookDispatcher({ schedule: [], onProgress: progress.onProgress });
    t.after(() => d.close());

    d.enqueue(event(gone.url, 'j', 1));
    await d.idle();
    assert.equal(progress.list.length, 1);
    assert.equal(progress.list[0]!.outcome, 'exhausted');
    assert.equal(progress.list[0]!.error, 'could not connect');
  });

  it('orders a synchronous batch by seq and ignores an event enqueued twice', async (t) => {
    const rx = await startReceiver(answer(200));
    const d = createWebhookDispatcher({});
    t.after(async () => { await d.close(); await rx.close(); });

    d.enqueue(event(rx.url, 'j', 3));
    d.enqueue(event(rx.url, 'j', 1));
    d.enqueue(event(rx.url, 'j', 2));
    d.enqueue(event(rx.url, 'j', 1));
    await d.idle();
    assert.deepEqual(rx.received.map((r) => r.seq), [1, 2, 3]);
  });

  it('bounds the queue per job and in total, refusing with a warning', async (t) => {
    const warnings: string[] = [];
    const log: Logger = { info() {}, error() {}, warn: (e, f) => warnings.push(`${e} ${f?.limit}`) };
    const { setTimer } = manualClock();
    const d = createWebhookDispatcher({ maxQueuedPerJob: 2, maxQueuedTotal: 3, setTimer, log });
    t.after(() => d.close());

    const later = { nextAttemptAt: Date.now() + 3_600_000 }; // not due: nothing is sent
    for (const seq of [1, 2, 3]) d.enqueue(event('http://127.0.0.1:9/', 'a', seq, later));
    for (const seq of [1, 2]) d.enqueue(event('http://127.0.0.1:9/', 'b', seq, later));
    assert.equal(d.pending('a'), 2);
    assert.equal(d.pending('b'), 1);
    assert.equal(d.pending(), 3);
    assert.deepEqual(warnings, ['webhook_queue_full maxQueuedPerJob=2', 'webhook_queue_full maxQueuedTotal=3']);
    await d.idle();
  });

  it('keeps delivering when onProgress throws', async (t) => {
    const rx = await startReceiver(answer(200));
    const errors: string[] = [];
    const log: Logger = { info() {}, warn() {}, error: (e) => errors.push(e) };
    const d = createWebhookDispatcher({ log, onProgress: () => { throw new Error('journal full'); } } satisfies WebhookDispatcherOptions);
    t.after(async () => { await d.close(); await rx.close(); });

    d.enqueue(event(rx.url, 'j', 1));
    d.enqueue(event(rx.url, 'j', 2));
    await d.idle();
    assert.equal(rx.received.length, 2);
    assert.deepEqual(errors, ['webhook_progress_failed', 'webhook_progress_failed']);
  });
});
