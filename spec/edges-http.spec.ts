// Hostile and careless input at foreman's HTTP edge (issue 11): encoded paths, redirects, /health cost,
// case-insensitive model groups, option types, log lines, callers hanging up, the connection cap.
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { Agent, request as httpRequest } from 'node:http';
import { startStack, TOKEN } from './support/stack.js';
import { rawRequest } from './support/raw-http.js';
import { until } from './support/until.js';
import { createLogger } from '../lib/log.js';
import { effectiveMaxConnections, openFileLimit } from '../lib/ops/fd-limit.js';
import { startSim } from '../lib/sim/index.js';
import { spawnForeman, type ForemanProcess } from './support/jobs-process.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CHAT = (model: string, extra: Record<string, unknown> = {}) =>
  ({ model, messages: [{ role: 'user', content: 'hi' }], stream: false, ...extra });

function capture() {
  const lines: string[] = [];
  return { lines, log: createLogger('text', { write: (l: string) => lines.push(l) }) };
}

function openSocket(url: string): Promise<Socket> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const s = connect(Number(port), hostname, () => resolve(s));
    s.once('error', reject);
  });
}

describe('paths', () => {
  it('routes on the decoded, normalised path, so no spelling of /api/chat skips the queue', async (t) => {
    const stack = await startStack(t);
    const body = JSON.stringify(CHAT('llama3.2'));
    const spellings = ['/api/%63hat', '//api/chat', '/api/./chat', '/api/x/../chat', '/api%2Fchat'];
    for (const [i, path] of spellings.entries()) {
      const res = await rawRequest(stack.url, { path, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body });
      assert.equal(res.status, 200, path);
      assert.equal(stack.foreman.snapshot().totals.completed, i + 1, `${path} ran as a queued job`);
    }
  });

  it('answers 400 to a path that cannot be decoded', async (t) => {
    const stack = await startStack(t);
    const res = await rawRequest(stack.url, { method: 'GET', path: '/api/%zz', headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(res.status, 400);
    assert.match(JSON.parse(res.body.toString()).error, /invalid URL escape/);
  });

  it("passes upstream's redirect on with its Location", async (t) => {
    const stack = await startStack(t);
    const res = await stack.call('/api/tags/?x=1', { redirect: 'manual' });
    assert.equal(res.status, 301);
    assert.equal(res.headers.get('location'), '/api/tags?x=1');
  });
});

describe('/health', () => {
  it('answers from an upstream probe at most a second old, shared by concurrent callers', async (t) => {
    let now = 1_700_000_000_000;
    const stack = await startStack(t, { deps: { now: () => now } });
    let probes = 0;
    const version = stack.foreman.upstream.version.bind(stack.foreman.upstream);
    stack.foreman.upstream.version = (signal) => {
      probes++;
      return version(signal);
    };
    const first = await Promise.all(Array.from({ length: 20 }, () => fetch(stack.url + '/health').then((r) => r.json())));
    assert.ok(first.every((h: any) => h.upstream.reachable === true));
    await fetch(stack.url + '/health');
    assert.equal(probes, 1);
    now += 1_001;
    await fetch(stack.url + '/health');
    assert.equal(probes, 2);
  });
});

describe('model names and options', () => {
  it('groups model names without regard to case, and echoes each name as sent', async (t) => {
    const stack = await startStack(t, { config: { unload_on_switch: true, parallel: 1 } });
    const names = ['Llama3.2', 'llama3.2', 'LLAMA3.2:latest', 'llama3.2:Latest', 'Llama3.2', 'llama3.2'];
    const answers = await Promise.all(names.map((m) => stack.call('/api/chat', { json: CHAT(m) }).then((r) => r.json())));
    assert.deepEqual(answers.map((a: any) => a.model), names);
    assert.equal(stack.sim.stats().loads['llama3.2:latest'], 1, 'one load for one model');
    assert.equal(stack.foreman.snapshot().totals.switches, 1);
    const posted = await stack.call('/jobs', { json: { model: 'Llama3.2', prompt: 'hi' } });
    assert.equal((await posted.json()).model, 'Llama3.2', 'the record keeps the name as sent');
  });

  it('refuses a wrongly typed option with 400 in Ollama\'s words, before it can cost the loaded model', async (t) => {
    const stack = await startStack(t, { config: { unload_on_switch: true } });
    assert.equal((await stack.call('/api/chat', { json: CHAT('llama3.2') })).status, 200);
    for (const [options, message] of [
      [{ num_ctx: 'x' }, 'option "num_ctx" must be of type integer'],
      [{ temperature: 'hot' }, 'option "temperature" must be of type float32'],
      [{ use_mmap: 1 }, 'option "use_mmap" must be of type boolean'],
      [{ stop: 'END' }, 'option "stop" must be of type array'],
    ] as const) {
      const res = await stack.call('/api/chat', { json: CHAT('llama3.2', { options }) });
      assert.equal(res.status, 400, JSON.stringify(options));
      assert.deepEqual(await res.json(), { error: message });
    }
    const job = await stack.call('/jobs', { json: { model: 'llama3.2', prompt: 'x', options: { num_ctx: 'x' } } });
    assert.equal(job.status, 400);
    assert.equal(stack.foreman.snapshot().totals.switches, 1, 'no switch');
    assert.deepEqual(stack.sim.stats().unloads, {}, 'the loaded model stayed');
  });
});

describe('logs', () => {
  it('escapes control characters from callers and bounds every field', async (t) => {
    const { lines, log } = capture();
    const stack = await startStack(t, { deps: { log } });
    await stack.call('/api/chat', { json: CHAT('evil\u001b[31m\r\nfake 200 line\u009b') });
    await stack.call('/api/chat', { json: CHAT('llama3.2', { options: { num_ctx: 'x'.repeat(200_000) } }) });
    await stack.call('/api/' + 'a'.repeat(5_000));
    await until(() => lines.filter((l) => l.includes(' request ')).length >= 3, 'three request lines');
    for (const line of lines) {
      assert.equal(/[\x00-\x09\x0b-\x1f\x7f-\x9f]/.test(line), false, `raw control character in ${JSON.stringify(line.slice(0, 200))}`);
      assert.equal(line.indexOf('\n'), line.length - 1, 'one line');
      assert.ok(line.length < 4_096, `a ${line.length}-character line`);
    }
    assert.ok(lines.some((l) => l.includes('model="evil\\u001b[31m\\r\\nfake 200 line\\u009b"')));
  });

  it('logs a caller that hangs up as leaving, never as a 500', async (t) => {
    const { lines, log } = capture();
    const stack = await startStack(t, { deps: { log } });
    // Half a body, then gone.
    const s1 = await openSocket(stack.url);
    const arrived = new Promise((r) => stack.foreman.server.once('request', r));
    s1.write(`POST /api/chat HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer ${TOKEN}\r\ncontent-length: 1000\r\n\r\n{"model":`);
    await arrived;
    s1.destroy();
    // A queued chat whose caller leaves while it runs.
    const s2 = await openSocket(stack.url);
    const body = JSON.stringify(CHAT('llama3.2', { sim: { delay_ms: 60_000 } }));
    s2.write(`POST /api/chat HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer ${TOKEN}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    await until(() => stack.foreman.snapshot().running.length === 1, 'the job to run');
    s2.destroy();
    await until(() => lines.filter((l) => l.includes(' request ')).length >= 2, 'both request lines');
    await stack.foreman.scheduler.idle();
    const requests = lines.filter((l) => l.includes(' request '));
    assert.ok(requests.every((l) => /status=499 /.test(l) && /client=left/.test(l)), requests.join(''));
    assert.equal(lines.some((l) => / error /.test(l) || /status=500/.test(l)), false, lines.join(''));
  });
});

describe('connections', () => {
  it('refuses a connection beyond max_connections at once, and the others keep working', async (t) => {
    const stack = await startStack(t, { config: { max_connections: 4 } });
    const held = await Promise.all(Array.from({ length: 4 }, () => openSocket(stack.url)));
    t.after(() => held.forEach((s) => s.destroy()));
    await until(() => new Promise<boolean>((r) => stack.foreman.server.getConnections((_e, n) => r(n === 4))), 'four connections');
    const extra = await openSocket(stack.url);
    const refused = await new Promise<string>((resolve) => {
      let got = '';
      extra.on('data', (d) => (got += d));
      extra.on('close', () => resolve(got));
      extra.on('error', () => {});
      extra.write('GET /health HTTP/1.1\r\nhost: localhost\r\n\r\n');
    });
    assert.equal(refused, '', 'closed without an answer');
    const answer = await new Promise<string>((resolve) => {
      let got = '';
      held[0]!.on('data', (d) => {
        got += d;
        if (got.includes('"status"')) resolve(got);
      });
      held[0]!.write('GET /health HTTP/1.1\r\nhost: localhost\r\n\r\n');
    });
    assert.match(answer, /^HTTP\/1.1 200/);
  });
});

/** foreman under an open-file limit of 400, in front of a fresh simulator; idle sockets go in `idle`. */
async function startFdLimited(t: TestContext): Promise<{ fp: ForemanProcess; idle: Socket[] }> {
  const sim = await startSim({ loadMs: 0 });
  const dataDir = await mkdtemp(join(tmpdir(), 'foreman-fd-'));
  const fp = await spawnForeman(['--upstream', sim.url, '--data-dir', dataDir], { fdLimit: 400 });
  const idle: Socket[] = [];
  t.after(async () => {
    idle.forEach((s) => s.destroy());
    await fp.kill9();
    await sim.close();
    await rm(dataDir, { recursive: true, force: true });
  });
  assert.ok(fp.url, fp.stderr.join('\n'));
  assert.ok(fp.logs.some((l) => l.event === 'max_connections lowered' && l.max_connections === 200), 'the cap was lowered below the limit');
  return { fp, idle };
}

describe('open-file limit', () => {
  it('keeps the connection cap below the open-file limit, leaving room for the work of connections already in', () => {
    assert.deepEqual(effectiveMaxConnections(1024, null), { max: 1024, lowered: false });
    assert.deepEqual(effectiveMaxConnections(1024, 1024), { max: 768, lowered: true });
    assert.deepEqual(effectiveMaxConnections(1024, 20_000), { max: 1024, lowered: false });
    assert.deepEqual(effectiveMaxConnections(1024, 256), { max: 128, lowered: true });
    assert.deepEqual(effectiveMaxConnections(1024, 20), { max: 16, lowered: true });
    const limit = openFileLimit();
    assert.ok(limit === null || limit > 0);
  });

  it('answers a real request while more idle sockets than the open-file limit knock', { timeout: 120_000 }, async (t) => {
    const { fp, idle } = await startFdLimited(t);
    // The real client connects first and keeps its one connection.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    t.after(() => agent.destroy());
    const call = (method: string, path: string, body?: unknown) => new Promise<{ status: number; json: any }>((resolve, reject) => {
      const url = new URL(path, fp.url);
      const req = httpRequest(url, { method, agent, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: /^[{[]/.test(text) ? JSON.parse(text) : text }));
      });
      req.on('error', reject);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
    assert.equal((await call('GET', '/health')).status, 200);
    for (let i = 0; i < 500; i++) {
      const s = connect(Number(new URL(fp.url).port), '127.0.0.1');
      s.on('error', () => {});
      idle.push(s);
    }
    await until(() => fp.logs.some((l) => l.event === 'connection refused'), 'foreman to refuse a connection');
    // A job: its journal record, its run upstream and its artifacts on disk all need descriptors.
    const posted = await call('POST', '/jobs', { model: 'llama3.2', prompt: 'hi' });
    assert.equal(posted.status, 202, JSON.stringify(posted.json));
    const done = await call('GET', `/jobs/${posted.json.id}?wait=60`);
    assert.equal(done.json.state, 'completed', JSON.stringify(done.json));
    assert.equal((await call('GET', `/jobs/${posted.json.id}/artifacts/content.txt`)).status, 200);
  });

  it('streams a chat on a connection made before more idle sockets than the open-file limit knock', { timeout: 120_000 }, async (t) => {
    const { fp, idle } = await startFdLimited(t);
    // The real client connects first and keeps its connection.
    const real = await openSocket(fp.url);
    t.after(() => real.destroy());
    for (let i = 0; i < 500; i++) {
      const s = connect(Number(new URL(fp.url).port), '127.0.0.1');
      s.on('error', () => {});
      idle.push(s);
    }
    await until(() => fp.logs.some((l) => l.event === 'connection refused'), 'foreman to refuse a connection');
    const body = JSON.stringify(CHAT('llama3.2'));
    const answer = await new Promise<string>((resolve) => {
      let got = '';
      real.on('data', (d) => {
        got += d;
        if (got.includes('"done":true')) resolve(got);
      });
      real.write(`POST /api/chat HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${TOKEN}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    });
    assert.match(answer, /^HTTP\/1.1 200/);
  });
});
