import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { createBrowserPolicy, hostOfHeader } from '../lib/browser-policy.js';
import { startStack, TOKEN } from './support/stack.js';

const policy = (origins: string[] = [], listenHost = '127.0.0.1') =>
  createBrowserPolicy({ origins, listenHost, hostname: 'mymac', localAddresses: ['192.0.2.7'] });
const local = { host: '127.0.0.1:11435' };

describe('browser policy (CORS and Host, as Ollama)', () => {
  it('allows Ollama\'s default origins on any port and refuses others', () => {
    const p = policy();
    for (const origin of ['http://localhost', 'http://localhost:5173', 'https://127.0.0.1:8443', 'http://0.0.0.0:3000',
      'app://obsidian.md', 'file://', 'tauri://localhost', 'vscode-webview://abc', 'vscode-file://vscode-app']) {
      const v = p.check('GET', { ...local, origin });
      assert.equal(v.kind, 'pass', origin);
      assert.equal(v.kind === 'pass' && v.headers['access-control-allow-origin'], origin);
    }
    for (const origin of ['https://evil.example', 'http://localhost.evil.example', 'null', 'chrome-extension://abc']) {
      assert.deepEqual(p.check('GET', { ...local, origin }), { kind: 'forbidden', reason: 'origin' }, origin);
    }
  });

  it('adds `origins` with wildcards, and `*` for every origin', () => {
    const p = policy(['https://*.example.com', 'chrome-extension://*']);
    assert.equal(p.check('GET', { ...local, origin: 'https://app.example.com' }).kind, 'pass');
    assert.equal(p.check('GET', { ...local, origin: 'chrome-extension://abcdef' }).kind, 'pass');
    assert.equal(p.check('GET', { ...local, origin: 'https://example.org' }).kind, 'forbidden');
    assert.equal(policy(['*']).check('GET', { ...local, origin: 'https://anything.example' }).kind, 'pass');
  });

  it('answers a preflight with the origin echoed and the agent headers allowed', () => {
    const v = policy().check('OPTIONS', {
      ...local, origin: 'http://localhost:5173', 'access-control-request-method': 'POST',
      'access-control-request-headers': 'x-api-key, anthropic-version, x-stainless-new-thing',
    });
    assert.equal(v.kind, 'preflight');
    if (v.kind !== 'preflight') return;
    assert.equal(v.headers['access-control-allow-origin'], 'http://localhost:5173');
    const allowed = v.headers['access-control-allow-headers']!.toLowerCase().split(', ');
    for (const h of ['authorization', 'content-type', 'x-api-key', 'anthropic-version', 'anthropic-beta', 'x-stainless-retry-count', 'x-stainless-new-thing']) {
      assert.ok(allowed.includes(h), h);
    }
    assert.match(v.headers['access-control-allow-methods']!, /POST/);
    // An OPTIONS without Access-Control-Request-Method is no preflight: it goes on to routing.
    assert.equal(policy().check('OPTIONS', { ...local, origin: 'http://localhost' }).kind, 'pass');
  });

  it('treats a page\'s own origin as no cross-origin request', () => {
    const v = policy().check('GET', { host: '127.0.0.1:11435', origin: 'http://127.0.0.1:11435' });
    assert.deepEqual(v, { kind: 'pass', headers: {} });
  });

  it('refuses a foreign Host while listening on loopback, as Ollama\'s allowed-hosts rule', () => {
    const p = policy();
    for (const host of ['localhost:11435', '127.0.0.1', '[::1]:11435', 'mymac', 'MyMac:11435', 'box.local', 'ollama.internal',
      'app.localhost', '192.168.1.20:11435', '10.0.0.1', '192.0.2.7']) {
      assert.equal(p.check('GET', { host }).kind, 'pass', host);
    }
    for (const host of ['evil.example', 'evil.example:11435', '203.0.113.9', 'localhost.evil.example']) {
      assert.deepEqual(p.check('GET', { host }), { kind: 'forbidden', reason: 'host' }, host);
    }
    // A rebinding page's Origin matches its Host, so only the Host rule stops it.
    assert.equal(p.check('GET', { host: 'evil.example:11435', origin: 'http://evil.example:11435' }).kind, 'forbidden');
    // Listening on every interface, any Host is fine (Ollama skips the check too).
    assert.equal(policy([], '0.0.0.0').check('GET', { host: 'evil.example' }).kind, 'pass');
    assert.equal(hostOfHeader('[::1]:80'), '::1');
    assert.equal(hostOfHeader('a.b:80'), 'a.b');
  });
});

/** node:http, because fetch will not send a Host of our choosing. */
function call(url: string, options: { method?: string; path: string; headers?: Record<string, string> }) {
  return new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }>((resolve, reject) => {
    const req = request(url + options.path, { method: options.method ?? 'GET', headers: options.headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('browsers through foreman', () => {
  it('answers preflights without a token and marks allowed origins', async (t) => {
    const stack = await startStack(t);
    const pre = await call(stack.url, {
      method: 'OPTIONS', path: '/v1/messages?beta=true',
      headers: { origin: 'http://localhost:5173', 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-api-key,anthropic-version' },
    });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers['access-control-allow-origin'], 'http://localhost:5173');
    assert.match(String(pre.headers['access-control-allow-headers']), /x-api-key/);
    const tags = await call(stack.url, { path: '/api/tags', headers: { origin: 'http://localhost:5173', authorization: `Bearer ${TOKEN}` } });
    assert.equal(tags.status, 200);
    assert.equal(tags.headers['access-control-allow-origin'], 'http://localhost:5173');
    assert.match(String(tags.headers['access-control-expose-headers']), /X-Foreman-Job-Id/);
    // Without an Origin nothing changes for ordinary clients.
    const plain = await stack.call('/api/tags');
    assert.equal(plain.headers.get('access-control-allow-origin'), null);
  });

  it('refuses a foreign Origin with 403 on every route, before auth, in the surface\'s shape', async (t) => {
    const stack = await startStack(t);
    const origin = 'https://evil.example';
    for (const [method, path] of [['GET', '/'], ['GET', '/health'], ['GET', '/ui'], ['GET', '/queue'], ['POST', '/api/chat'],
      ['GET', '/api/tags'], ['POST', '/jobs'], ['GET', '/nope'], ['OPTIONS', '/api/chat']] as const) {
      const res = await call(stack.url, { method, path, headers: { origin, authorization: `Bearer ${TOKEN}`, 'access-control-request-method': 'POST' } });
      assert.equal(res.status, 403, `${method} ${path}`);
      assert.equal(res.headers['access-control-allow-origin'], undefined);
      assert.equal(JSON.parse(res.body).error, 'origin not allowed');
    }
    const v1 = await call(stack.url, { method: 'POST', path: '/v1/chat/completions', headers: { origin } });
    assert.equal(v1.status, 403);
    assert.equal(JSON.parse(v1.body).error.type, 'permission_error');
  });

  it('refuses a foreign Host with 403 on every route while on loopback (DNS rebinding)', async (t) => {
    const stack = await startStack(t);
    for (const path of ['/', '/health', '/ui', '/queue', '/api/tags', '/api/version']) {
      const res = await call(stack.url, { path, headers: { host: 'evil.example:11435', authorization: `Bearer ${TOKEN}` } });
      assert.equal(res.status, 403, path);
      assert.equal(JSON.parse(res.body).error, 'host not allowed');
      const ok = await call(stack.url, { path, headers: { host: `localhost:${new URL(stack.url).port}`, authorization: `Bearer ${TOKEN}` } });
      assert.notEqual(ok.status, 403, path);
    }
  });

  it('lets the /ui page fetch /queue from its own origin', async (t) => {
    const stack = await startStack(t);
    const res = await call(stack.url, { path: '/queue', headers: { origin: stack.url, authorization: `Bearer ${TOKEN}` } });
    assert.equal(res.status, 200);
    assert.ok(Array.isArray(JSON.parse(res.body).lanes));
  });
});

describe('the simulator applies Ollama\'s browser rules', () => {
  it('refuses foreign origins and hosts with an empty 403 and answers preflights with Ollama\'s header list', async (t) => {
    const { startSim } = await import('../lib/sim/index.js');
    const sim = await startSim({ origins: ['https://*.example.com'] });
    t.after(() => sim.close());
    const evil = await call(sim.url, { path: '/api/tags', headers: { origin: 'https://evil.example' } });
    assert.equal(evil.status, 403);
    assert.equal(evil.body, '');
    const host = await call(sim.url, { path: '/api/version', headers: { host: 'evil.example' } });
    assert.equal(host.status, 403);
    const ok = await call(sim.url, { path: '/api/version', headers: { origin: 'https://app.example.com' } });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers['access-control-allow-origin'], 'https://app.example.com');
    const pre = await call(sim.url, { method: 'OPTIONS', path: '/v1/messages', headers: { origin: 'http://localhost:3000' } });
    assert.equal(pre.status, 204);
    assert.doesNotMatch(String(pre.headers['access-control-allow-headers']), /x-api-key/i); // Ollama's own preflight lacks it
    assert.match(String(pre.headers['access-control-allow-headers']), /Authorization/);
  });
});

describe('a real browser (headless Chromium) against foreman', () => {
  /** Serves one page at `/` that fetches foreman's /api/tags with the token and writes the outcome. */
  async function pageServer(t: { after(fn: () => unknown): void }, foremanUrl: string) {
    const { createServer } = await import('node:http');
    const script = `fetch(${JSON.stringify(foremanUrl + '/api/tags')}, { headers: { authorization: 'Bearer ${TOKEN}' } })
      .then((r) => r.json()).then((b) => { document.getElementById('out').textContent = 'models ' + b.models.length; })
      .catch((e) => { document.getElementById('out').textContent = 'blocked ' + e.name; });`;
    const html = `<!doctype html><html><body><p id="out">pending</p><script>${script}</script></body></html>`;
    const server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(html));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    t.after(() => new Promise((r) => server.close(r)));
    return (server.address() as { port: number }).port;
  }

  it('serves a page on an allowed origin (preflight, then the answer) and blocks one on a foreign origin', async (t) => {
    const stack = await startStack(t);
    const port = await pageServer(t, stack.url);
    const allowed = await import('./support/chromium.js').then((c) => c.chromiumDumpDom(`http://localhost:${port}/`, 3000));
    assert.match(allowed, /<p id="out">models \d+<\/p>/);
    // *.localhost is loopback to Chromium, but not one of Ollama's default origins.
    const foreign = await import('./support/chromium.js').then((c) => c.chromiumDumpDom(`http://page.localhost:${port}/`, 3000));
    assert.match(foreign, /<p id="out">blocked TypeError<\/p>/);
  });
});
