// Webhook targets and delivery at the edges (issue 11, ADR 0021): the address actually connected to is
// checked after DNS, last_error is in words, and a receiver that hangs holds only its own queue.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { classifyAddress, refusalFor, badAllowEntries, policyForListen, OPEN_POLICY, type TargetPolicy } from '../lib/webhooks/targets.js';
import { createWebhookTransport, type Resolver } from '../lib/http/webhook-transport.js';
import { checkWebhookUrl, createWebhookDispatcher, type DeliveryProgress, type WebhookEvent } from '../lib/webhooks/dispatcher.js';
import { startStack } from './support/stack.js';
import { parseConfig } from '../lib/config.js';
import { until } from './support/until.js';

const STRICT: TargetPolicy = { strict: true, allow: [] };

interface Hit { host: string | undefined; headers: IncomingHttpHeaders }

/** A loopback receiver answering `status`, or never when status is 0. */
async function receiver(status: number) {
  const hits: Hit[] = [];
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      hits.push({ host: req.headers.host, headers: req.headers });
      if (status > 0) res.writeHead(status).end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    port, hits, url: `http://127.0.0.1:${port}/hook`,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

/** Names that resolve where the test says, without any DNS. */
const resolver = (table: Record<string, string[]>): Resolver => async (host) => {
  const list = table[host];
  if (!list) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
  return list.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
};

const post = (url: string) => ({ url, headers: { 'content-type': 'application/json' }, body: '{}', signal: new AbortController().signal });

describe('webhook target policy', () => {
  it('classifies special addresses in every family and spelling', () => {
    const cases: Array<[string, string | null]> = [
      ['169.254.169.254', 'link-local'], ['fe80::1', 'link-local'], ['::ffff:169.254.1.1', 'link-local'], ['64:ff9b::a9fe:a9fe', 'link-local'],
      ['127.0.0.1', 'loopback'], ['127.9.9.9', 'loopback'], ['::1', 'loopback'], ['::ffff:127.0.0.1', 'loopback'],
      ['10.1.2.3', 'private'], ['172.16.0.1', 'private'], ['172.31.255.255', 'private'], ['192.168.0.10', 'private'], ['::ffff:10.0.0.1', 'private'],
      ['fc00::1', 'unique-local'], ['fd12:3456::1', 'unique-local'], ['0.0.0.0', 'unspecified'], ['::', 'unspecified'],
      ['8.8.8.8', null], ['172.32.0.1', null], ['2001:db8::1', null], ['::ffff:8.8.8.8', null],
    ];
    for (const [address, kind] of cases) assert.equal(classifyAddress(address), kind, address);
  });

  it('refuses link-local always, the rest only beyond loopback and unless webhook_allow names it', () => {
    const allow: TargetPolicy = { strict: true, allow: ['192.168.1.0/24', 'recv.lan', '10.0.0.5', 'fd00::/8', '169.254.0.0/16'] };
    assert.equal(refusalFor('169.254.169.254', 'x', OPEN_POLICY), 'link-local');
    assert.equal(refusalFor('169.254.169.254', 'recv.lan', allow), 'link-local', 'webhook_allow cannot open link-local');
    assert.equal(refusalFor('127.0.0.1', 'x', OPEN_POLICY), null, 'a loopback foreman serves local scripts');
    assert.equal(refusalFor('127.0.0.1', 'x', STRICT), 'loopback');
    assert.equal(refusalFor('192.168.1.7', 'x', allow), null);
    assert.equal(refusalFor('192.168.2.7', 'x', allow), 'private');
    assert.equal(refusalFor('10.9.9.9', 'recv.lan', allow), null, 'a named host may resolve to any private address');
    assert.equal(refusalFor('10.0.0.5', 'other', allow), null);
    assert.equal(refusalFor('fd00::1', 'other', allow), null);
    assert.equal(refusalFor('::ffff:192.168.1.9', 'other', allow), null);
    assert.deepEqual(badAllowEntries(['10.0.0.0/8', 'host.lan', '::1', 'not a host', '1.2.3.4/40']), ['not a host', '1.2.3.4/40']);
  });

  it('is strict for every listen address but loopback', () => {
    for (const host of ['127.0.0.1', '127.0.0.2', '::1', '[::1]', 'localhost']) assert.equal(policyForListen(host, []).strict, false, host);
    for (const host of ['0.0.0.0', '::', '192.168.1.20', '10.0.0.2', 'mymac.local', '203.0.113.9']) assert.equal(policyForListen(host, []).strict, true, host);
  });

  it('refuses at submission what the URL text already shows, in the policy of the listen address', () => {
    for (const url of ['http://127.0.0.1:9/x', 'http://localhost/x', 'http://api.localhost/x', 'http://10.0.0.1/', 'http://[::1]/', 'http://[fd00::1]/', 'http://0.0.0.0/', 'http://0x7f000001/']) {
      assert.match(checkWebhookUrl(url, STRICT) ?? '', /points to a (loopback|private|unique-local|unspecified) address/, url);
      assert.equal(checkWebhookUrl(url, OPEN_POLICY), null, `${url} on a loopback foreman`);
    }
    assert.equal(checkWebhookUrl('http://10.0.0.1/', { strict: true, allow: ['10.0.0.0/8'] }), null);
    assert.equal(checkWebhookUrl('https://hooks.example.com/x', STRICT), null, 'names are checked at delivery');
    assert.match(checkWebhookUrl('http://169.254.169.254/', { strict: true, allow: ['169.254.169.254'] }) ?? '', /link-local/);
  });
});

describe('webhook_allow', () => {
  it('takes host names, addresses and CIDRs, and says which entry is none of them', () => {
    const ok = parseConfig(['--webhook-allow', 'recv.lan,10.0.0.0/8,fd00::/8,192.168.1.9'], {});
    assert.deepEqual(ok.webhook_allow, ['recv.lan', '10.0.0.0/8', 'fd00::/8', '192.168.1.9']);
    assert.throws(() => parseConfig(['--webhook-allow', '10.0.0.0/99,recv.lan'], {}), /webhook_allow: '10.0.0.0\/99' is not a host name/);
  });
});

describe('webhook transport', () => {
  it('refuses a name that resolves to a link-local address, without connecting', async () => {
    const send = createWebhookTransport({ resolve: resolver({ 'metadata.test': ['169.254.169.254'] }) });
    assert.deepEqual(await send(post('http://metadata.test/latest/meta-data')), { kind: 'error', message: 'refused: link-local address' });
  });

  it('checks the resolved address beyond loopback, and delivers when webhook_allow names the host or its range', async (t) => {
    const rx = await receiver(204);
    t.after(rx.close);
    const resolve = resolver({ 'rebind.test': ['127.0.0.1'] });
    const url = `http://rebind.test:${rx.port}/hook`;
    assert.deepEqual(await createWebhookTransport({ policy: STRICT, resolve })(post(url)), { kind: 'error', message: 'refused: loopback address' });
    assert.deepEqual(await createWebhookTransport({ policy: STRICT, resolve })(post(rx.url)), { kind: 'error', message: 'refused: loopback address' });
    assert.equal(rx.hits.length, 0, 'nothing reached the receiver');
    const byName = await createWebhookTransport({ policy: { strict: true, allow: ['rebind.test'] }, resolve })(post(url));
    assert.deepEqual(byName, { kind: 'status', status: 204, retryAfter: null });
    assert.equal(rx.hits[0]!.host, `rebind.test:${rx.port}`, 'the Host header stays the URL host');
    const byRange = await createWebhookTransport({ policy: { strict: true, allow: ['127.0.0.0/8'] }, resolve })(post(url));
    assert.equal(byRange.kind, 'status');
  });

  it('connects only to the allowed one of several resolved addresses', async (t) => {
    const rx = await receiver(200);
    t.after(rx.close);
    // A public-looking first answer that nothing listens on would fail; a refused one must be skipped, not tried.
    const resolve = resolver({ 'mixed.test': ['10.0.0.1', '127.0.0.1'] });
    const res = await createWebhookTransport({ policy: { strict: true, allow: ['127.0.0.1'] }, resolve })(post(`http://mixed.test:${rx.port}/`));
    assert.deepEqual(res, { kind: 'status', status: 200, retryAfter: null });
  });

  it('says what went wrong in words, never a raw socket error', async (t) => {
    const gone = await receiver(200);
    await gone.close();
    const send = createWebhookTransport({ resolve: resolver({}) });
    assert.deepEqual(await send(post(gone.url)), { kind: 'error', message: 'could not connect' });
    assert.deepEqual(await send(post('http://nowhere.test/')), { kind: 'error', message: 'could not resolve the host name' });
    const busy = await receiver(503);
    t.after(busy.close);
    assert.deepEqual(await send(post(busy.url)), { kind: 'status', status: 503, retryAfter: null });
  });
});

describe('webhook delivery per receiver', () => {
  it('delivers to a healthy receiver while 64 others hang, each holding only its own queue', { timeout: 60_000 }, async (t) => {
    const hanging = await Promise.all(Array.from({ length: 64 }, () => receiver(0)));
    const healthy = await receiver(200);
    t.after(async () => { await Promise.all(hanging.map((h) => h.close())); await healthy.close(); });
    const progress: DeliveryProgress[] = [];
    let onHealthy!: () => void;
    const healthyDone = new Promise<void>((r) => (onHealthy = r));
    // A timeout far beyond the test's own: if the healthy receiver waited behind the hanging ones, the test fails.
    const d = createWebhookDispatcher({
      timeoutMs: 600_000,
      onProgress: (p) => { progress.push(p); if (p.jobId === 'healthy') onHealthy(); },
    });
    t.after(() => d.close());
    const ev = (url: string, jobId: string, seq = 1): WebhookEvent => ({ eventId: `e_${jobId}_${seq}`, jobId, seq, url, body: '{}', attempts: 0, nextAttemptAt: 0 });
    hanging.forEach((h, i) => { d.enqueue(ev(h.url, `hang${i}`, 1)); d.enqueue(ev(h.url, `hang${i}b`, 1)); });
    await until(() => hanging.every((h) => h.hits.length >= 1), 'every hanging receiver to be hit');
    d.enqueue(ev(healthy.url, 'healthy'));
    await healthyDone;
    assert.deepEqual(progress.map((p) => [p.jobId, p.outcome]), [['healthy', 'delivered']], 'delivered while all 64 still hang');
    assert.equal(d.pending(), 128);
  });

  it('keeps one receiver to its share when it has many jobs, so another receiver is not starved', async (t) => {
    const slow = await receiver(0);
    const fast = await receiver(200);
    t.after(async () => { await slow.close(); await fast.close(); });
    let onFast!: () => void;
    const fastDone = new Promise<void>((r) => (onFast = r));
    const d = createWebhookDispatcher({ timeoutMs: 600_000, maxConcurrent: 8, perReceiver: 4, onProgress: (p) => p.jobId === 'fast' && onFast() });
    t.after(() => d.close());
    for (let i = 0; i < 50; i++) d.enqueue({ eventId: `s${i}`, jobId: `s${i}`, seq: 1, url: slow.url, body: '{}', attempts: 0, nextAttemptAt: 0 });
    await until(() => slow.hits.length === 4, 'four deliveries to the slow receiver');
    d.enqueue({ eventId: 'f', jobId: 'fast', seq: 1, url: fast.url, body: '{}', attempts: 0, nextAttemptAt: 0 });
    await fastDone;
    assert.equal(slow.hits.length, 4, 'the slow receiver never had more than its four');
  });
});

describe('webhook last_error through foreman', () => {
  it('records refusals and failures in words on the job', async (t) => {
    const stack = await startStack(t, { deps: { webhookSchedule: [], webhookResolve: resolver({ 'metadata.test': ['169.254.169.254'] }) } });
    const gone = await receiver(200);
    await gone.close();
    const busy = await receiver(503);
    t.after(busy.close);
    const submit = async (url: string) => (await (await stack.call('/jobs', { json: { model: 'llama3.2', prompt: 'x', state_webhook_url: url } })).json()).id as string;
    const cases: Array<[string, string]> = [['http://metadata.test/hook', 'refused: link-local address'], [gone.url, 'could not connect'], [busy.url, 'HTTP 503']];
    for (const [url, words] of cases) {
      const id = await submit(url);
      let job: any;
      await until(async () => {
        job = await (await stack.call(`/jobs/${id}`)).json();
        return job.state === 'completed' && job.webhook.last_error !== null && job.webhook.pending === 0;
      }, `last_error for ${url}`);
      assert.equal(job.webhook.last_error, words, url);
    }
    const refused = await stack.call('/jobs', { json: { model: 'llama3.2', prompt: 'x', state_webhook_url: 'http://[fe80::1]/' } });
    assert.equal(refused.status, 400);
  });
});
