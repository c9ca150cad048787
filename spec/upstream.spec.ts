// The Ollama client (lib/upstream.ts) against the project's simulator on loopback.
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createUpstream, forwardableHeaders, parseRetryAfter, readUpstreamError, type Upstream } from '../lib/upstream.js';
import { HttpError, StopReason } from '../lib/errors.js';
import { simFor } from './support/sim-client.js';

function client(t: TestContext, url: string, token?: string, idleMs?: number): Upstream {
  const u = createUpstream(url, token, idleMs);
  t.after(() => u.close());
  return u;
}

const generate = (model: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ model, prompt: 'hi', stream: false, ...extra });

describe('upstream client', () => {
  it('reads version, residency and capabilities, and unloads', async (t) => {
    const sim = await simFor(t, { loadMs: 0, tokensPerSecond: 0 });
    const up = client(t, sim.url + '/');
    assert.equal(up.baseUrl, sim.url, 'trailing slash dropped');
    assert.match(await up.version(), /^\d+\.\d+/);
    assert.deepEqual(await up.loadedModels(), []);
    const res = await up.send('/api/generate', { body: generate('llama3.2') });
    assert.equal(res.status, 200);
    assert.equal(JSON.parse(await res.text()).done, true);
    assert.deepEqual((await up.loadedModels()).map((m) => m.name), ['llama3.2:latest']);
    assert.ok((await up.capabilities('nomic-embed-text')).includes('embedding'));
    assert.ok(!(await up.capabilities('llama3.2')).includes('embedding'));
    assert.equal(await up.exists('llama3.2'), true);
    assert.equal(await up.exists('no-such-model'), false);
    await up.unload('llama3.2');
    assert.deepEqual(await up.loadedModels(), []);
  });

  it('turns a connection failure into 502 upstream_unreachable', async (t) => {
    const sim = await simFor(t);
    const url = sim.url;
    await sim.close(); // nothing listens on this port any more
    const up = client(t, url);
    await assert.rejects(up.send('/api/version'), (err: unknown) => {
      assert.ok(err instanceof HttpError);
      assert.equal(err.status, 502);
      assert.equal(err.code, 'upstream_unreachable');
      assert.match(err.message, /^upstream unreachable: .*ECONNREFUSED/);
      return true;
    });
  });

  it("reads upstream's error message from its body", async (t) => {
    const sim = await simFor(t, { loadMs: 0 });
    const up = client(t, sim.url);
    const res = await up.send('/api/generate', { body: generate('no-such-model') });
    assert.equal(res.status, 404);
    assert.match(await readUpstreamError(res), /model .*not found/);
  });

  it('stops a body when the caller aborts, and refuses to start with an aborted signal (its reason)', async (t) => {
    const sim = await simFor(t, { loadMs: 0 });
    const up = client(t, sim.url);
    const controller = new AbortController();
    const res = await up.send('/api/generate', { body: JSON.stringify({ model: 'llama3.2', prompt: 'x', sim: { fault: 'stall', after: 1 } }), signal: controller.signal });
    const iterator = res.body[Symbol.asyncIterator]();
    await iterator.next(); // the first line arrived; upstream now stalls
    const reason = new StopReason('cancelled');
    controller.abort(reason);
    // Mid-body the socket is destroyed: the read fails; callers tell why by the signal's reason.
    await assert.rejects(iterator.next());
    assert.equal(controller.signal.reason, reason);
    await assert.rejects(up.send('/api/version', { signal: controller.signal }), (err: unknown) => err === reason);
  });

  it('gives up on an upstream that sends nothing for idleMs, and says why', async (t) => {
    const sim = await simFor(t, { loadMs: 0 });
    const up = client(t, sim.url, undefined, 50);
    const res = await up.send('/api/generate', { body: JSON.stringify({ model: 'llama3.2', prompt: 'x', sim: { fault: 'stall', after: 1 } }) });
    await assert.rejects(res.text(), /./);
    assert.equal(res.failureReason(), 'upstream sent nothing for 50 ms');
  });

  it("sends upstream_token, never the caller's headers beyond the forwardable ones", async (t) => {
    const seen: Record<string, string | string[] | undefined>[] = [];
    const server = createServer((req, res) => {
      seen.push(req.headers);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"version":"0.0.1"}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    t.after(() => server.close());
    const port = (server.address() as AddressInfo).port;
    const up = client(t, `http://127.0.0.1:${port}`, 'up-secret');
    const headers = forwardableHeaders({ authorization: 'Bearer caller', host: 'public.example', 'user-agent': 'ua/1', cookie: 'c=1' });
    assert.deepEqual(headers, { 'user-agent': 'ua/1' });
    await (await up.send('/api/version', { headers })).text();
    assert.equal(seen[0]!.authorization, 'Bearer up-secret');
    assert.equal(seen[0]!.host, `127.0.0.1:${port}`);
    assert.equal(seen[0]!['user-agent'], 'ua/1');
    assert.equal(seen[0]!.cookie, undefined);
  });
});

describe('parseRetryAfter', () => {
  it('reads seconds and HTTP dates, and nothing else', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    assert.equal(parseRetryAfter('30', now), 30_000);
    assert.equal(parseRetryAfter('Thu, 01 Jan 2026 00:00:10 GMT', now), 10_000);
    assert.equal(parseRetryAfter('Wed, 31 Dec 2025 00:00:00 GMT', now), 0, 'a past date means now');
    assert.equal(parseRetryAfter('soon', now), null);
    assert.equal(parseRetryAfter(null, now), null);
  });
});
