// The browser refusals of SPEC §13 hold on every route and surface (issue 11): a page at a foreign
// origin and a DNS-rebound Host get 403 before anything happens, whatever the path, method or token.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { startStack, TOKEN, type Stack } from './support/stack.js';

interface Answer { status: number; headers: Record<string, string | string[] | undefined>; body: string }

/** node:http, so the test can send any Host header (fetch will not). */
function send(stack: Stack, method: string, path: string, headers: Record<string, string>, body?: string): Promise<Answer> {
  const { hostname, port } = new URL(stack.url);
  return new Promise((resolve, reject) => {
    const req = request({ host: hostname, port, method, path, headers: { ...headers, ...(body ? { 'content-type': 'application/json' } : {}) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const CHAT = JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], stream: false });
const GENERATE = JSON.stringify({ model: 'llama3.2', prompt: 'hi', stream: false });

/** Every route and surface foreman has, with a body that would do something if it got through. */
const ROUTES: Array<[string, string, string?]> = [
  ['GET', '/'], ['HEAD', '/'], ['GET', '/health'], ['GET', '/ui'], ['GET', '/queue'], ['GET', '/metrics'], ['GET', '/keys'],
  ['POST', '/api/chat', CHAT], ['POST', '/api/generate', GENERATE], ['POST', '/api/%63hat', CHAT],
  ['POST', '/api/embed', JSON.stringify({ model: 'nomic-embed-text', input: 'x' })],
  ['POST', '/api/pull', JSON.stringify({ model: 'llama3.2' })], ['DELETE', '/api/delete', JSON.stringify({ model: 'llama3.2' })],
  ['GET', '/api/tags'], ['GET', '/api/ps'], ['POST', '/api/show', JSON.stringify({ model: 'llama3.2' })], ['GET', '/api/version'],
  ['POST', '/v1/chat/completions', CHAT], ['POST', '/v1/completions', GENERATE], ['GET', '/v1/models'],
  ['POST', '/v1/embeddings', JSON.stringify({ model: 'nomic-embed-text', input: 'x' })],
  ['POST', '/v1/messages', JSON.stringify({ model: 'llama3.2', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] })],
  ['POST', '/v1/responses', JSON.stringify({ model: 'llama3.2', input: 'hi' })], ['POST', '/v1/messages/count_tokens', JSON.stringify({ model: 'llama3.2', messages: [] })],
  ['POST', '/v1/audio/transcriptions', 'x'], ['POST', `/api/blobs/sha256:${'a'.repeat(64)}`, 'blob'], ['HEAD', `/api/blobs/sha256:${'a'.repeat(64)}`],
  ['POST', '/api/create', JSON.stringify({ model: 'x', from: 'llama3.2' })], ['POST', '/api/copy', JSON.stringify({ source: 'llama3.2', destination: 'y' })],
  ['POST', '/jobs', GENERATE], ['GET', '/jobs'], ['GET', '/jobs/job_x'], ['POST', '/jobs/job_x/cancel'], ['DELETE', '/jobs/job_x'],
  ['GET', '/jobs/job_x/events'], ['GET', '/no/such/path'], ['PATCH', '/api/chat', CHAT],
];

async function nothingHappened(stack: Stack) {
  assert.deepEqual(stack.sim.stats().requests, {}, 'upstream never asked');
  assert.deepEqual(stack.sim.stats().loads, {}, 'nothing loaded');
  const jobs = await (await stack.call('/jobs')).json();
  assert.deepEqual(jobs.jobs, [], 'no job made');
  assert.equal(stack.foreman.snapshot().totals.completed, 0);
}

describe('browser refusals on every route', () => {
  it('refuses a foreign Origin with 403 on every route and method, with or without a token', async (t) => {
    const stack = await startStack(t);
    for (const [method, path, body] of ROUTES) {
      for (const auth of [{ authorization: `Bearer ${TOKEN}` }, { 'x-api-key': TOKEN }, {}] as Array<Record<string, string>>) {
        const res = await send(stack, method, path, { origin: 'https://evil.example', ...auth }, body);
        assert.equal(res.status, 403, `${method} ${path} ${Object.keys(auth).join('')}`);
        assert.equal(res.headers['access-control-allow-origin'], undefined, `${method} ${path}: no CORS grant`);
      }
    }
    // A preflight from a foreign origin is no grant either.
    const pre = await send(stack, 'OPTIONS', '/api/chat', { origin: 'https://evil.example', 'access-control-request-method': 'POST' });
    assert.equal(pre.status, 403);
    for (const origin of ['null', 'http://localhost.evil.example', 'http://127.0.0.1.evil.example', 'https://evil.example:11435']) {
      assert.equal((await send(stack, 'POST', '/api/chat', { origin, authorization: `Bearer ${TOKEN}` }, CHAT)).status, 403, origin);
    }
    await nothingHappened(stack);
  });

  it('refuses a foreign Host on loopback (DNS rebinding) with 403 on every route, even from its "own" origin', async (t) => {
    const stack = await startStack(t);
    const port = new URL(stack.url).port;
    for (const [method, path, body] of ROUTES) {
      for (const headers of [
        { host: `rebind.evil.example:${port}`, authorization: `Bearer ${TOKEN}` } as Record<string, string>,
        // The page's own origin, as a rebinding page would send it.
        { host: `rebind.evil.example:${port}`, origin: `http://rebind.evil.example:${port}`, authorization: `Bearer ${TOKEN}` },
      ]) {
        const res = await send(stack, method, path, headers, body);
        assert.equal(res.status, 403, `${method} ${path} ${headers.origin ?? ''}`);
      }
    }
    await nothingHappened(stack);
  });

  it('lets Ollama\'s allowed origins and local Hosts through, with the CORS grant', async (t) => {
    const stack = await startStack(t);
    const port = new URL(stack.url).port;
    const res = await send(stack, 'POST', '/api/chat', { origin: 'http://localhost:3000', authorization: `Bearer ${TOKEN}` }, CHAT);
    assert.equal(res.status, 200);
    assert.equal(res.headers['access-control-allow-origin'], 'http://localhost:3000');
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, `foreman.localhost:${port}`]) {
      assert.equal((await send(stack, 'GET', '/api/version', { host, authorization: `Bearer ${TOKEN}` })).status, 200, host);
    }
  });
});
