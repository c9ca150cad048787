// Named keys end to end (SPEC §15): the keys file and its checks, auth by Bearer and x-api-key,
// each field's effect, ownership on every job route, /queue, /metrics and GET /keys per key,
// usage, and reloads (direct, on file change, on SIGHUP) that keep connections and queued jobs.
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { startStack, TOKEN, type Stack } from './support/stack.js';
import { until } from './support/until.js';
import { spawnForeman } from './support/jobs-process.js';
import { startSim } from '../lib/sim/index.js';
import { KeysFileError, mayUseModel, parseKeysFile, priorityFor, keysFromTokens } from '../lib/keys/keys-file.js';
import { parseConfig, ConfigError } from '../lib/config.js';
import { parsePrometheusText } from '../lib/ops/metrics.js';
import { PassThrough, Writable } from 'node:stream';
import { runCli } from '../lib/cli/cli.js';

async function cli(argv: string[], env: NodeJS.ProcessEnv, input?: string) {
  let out = '';
  let err = '';
  const sink = (add: (s: string) => void) => new Writable({ write(c, _e, cb) { add(String(c)); cb(); } });
  const stdin = new PassThrough();
  if (input !== undefined) stdin.end(input);
  const code = await runCli(argv, env, { stdout: sink((s) => (out += s)), stderr: sink((s) => (err += s)), stdin });
  stdin.destroy();
  return { code, out, err };
}

const sha = (t: string) => createHash('sha256').update(t).digest('hex');
const CI = 'ci-secret-token';
const BOT = 'bot-secret-token';
const OTHER = 'other-secret-token';

const KEYS = {
  keys: [
    { name: 'ci', token_sha256: sha(CI), sync_priority: 5, max_priority: 2, max_queued: 3, models: ['llama3.2*', 'qwen3*'] },
    { name: 'bot', token: BOT, max_running: 1 },
    { name: 'other', token: OTHER, weight: 2 },
  ],
};

async function keysFile(t: TestContext, doc: unknown): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'foreman-keys-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'keys.json');
  await writeFile(path, JSON.stringify(doc));
  return path;
}

async function stackWithKeys(t: TestContext, doc: unknown = KEYS, config: Record<string, unknown> = {}) {
  const path = await keysFile(t, doc);
  const stack = await startStack(t, { config: { keys_file: path, ...config } });
  const as = (token: string | null, p: string, init: RequestInit & { json?: unknown } = {}) => {
    const headers = new Headers(init.headers);
    headers.set('authorization', token === null ? '' : `Bearer ${token}`);
    return stack.call(p, { ...init, headers });
  };
  return { ...stack, path, as };
}

const chat = (model = 'llama3.2', extra: Record<string, unknown> = {}) => ({ model, stream: false, messages: [{ role: 'user', content: 'hi' }], ...extra });
const STALL = { sim: { fault: 'stall_before' } };

async function waitState(s: Stack, id: string, state: string) {
  await until(async () => (await (await s.call(`/jobs/${id}`)).json()).state === state, `${id} ${state}`);
}

describe('keys file', () => {
  it('accepts every field and gives defaults; tokens become admin keys token-1, token-2', () => {
    const keys = parseKeysFile(JSON.stringify(KEYS), keysFromTokens(['a', 'b']));
    assert.deepEqual(keys.map((k) => [k.name, k.weight, k.admin]), [['ci', 1, false], ['bot', 1, false], ['other', 2, false]]);
    assert.equal(keys[0]!.digest.toString('hex'), sha(CI));
    assert.equal(keys[0]!.maxQueued, 3);
    assert.equal(keys[1]!.maxRunning, 1);
    assert.deepEqual(keysFromTokens(['a', 'b']).map((k) => [k.name, k.admin, k.maxRunning, k.models]), [['token-1', true, null, null], ['token-2', true, null, null]]);
  });

  it('reports every problem at once and accepts nothing from a bad file', () => {
    const bad = { keys: [
      { name: 'Bad Name', token: 'x' },
      { name: 'two', token: 'y', token_sha256: sha('y') },
      { name: 'none' },
      { name: 'dup', token: 'z', weight: 0 },
      { name: 'dup', token: 'z', max_running: 0, colour: 'red' },
      { name: 'token-1', token_sha256: 'abc', models: 'llama*' },
    ] };
    const err = (() => { try { parseKeysFile(JSON.stringify(bad), keysFromTokens(['t'])); } catch (e) { return e; } })();
    assert.ok(err instanceof KeysFileError);
    const text = err.problems.join('\n');
    for (const expected of ['keys[0].name', 'keys[1]: needs exactly one', 'keys[2]: needs exactly one', 'keys[3].weight', "keys[4]: the name 'dup' is used twice",
      'keys[4]: the same token', 'keys[4].max_running', "keys[4]: unknown field 'colour'", "keys[5]: the name 'token-1'", 'keys[5].token_sha256', 'keys[5].models']) {
      assert.ok(text.includes(expected), `missing '${expected}' in:\n${text}`);
    }
    assert.throws(() => parseKeysFile('{"keys": 3}'), KeysFileError);
    assert.throws(() => parseKeysFile('not json'), /not JSON/);
  });

  it('matches model globs case-insensitively, with ollama\'s implied :latest; caps priorities', () => {
    const [ci] = parseKeysFile(JSON.stringify(KEYS));
    assert.ok(mayUseModel(ci!, 'llama3.2'));
    assert.ok(mayUseModel(ci!, 'LLAMA3.2:1b'));
    assert.ok(mayUseModel(ci!, 'qwen3:8b'));
    assert.ok(!mayUseModel(ci!, 'mistral'));
    const exact = parseKeysFile(JSON.stringify({ keys: [{ name: 'x', token: 't', models: ['llama3.2'] }] }))[0]!;
    assert.ok(mayUseModel(exact, 'llama3.2:latest'));
    assert.ok(!mayUseModel(exact, 'llama3.2:1b'));
    assert.equal(priorityFor(ci!, 100, 0), 2);
    assert.equal(priorityFor(ci!, undefined, 5), 2);
    assert.equal(priorityFor(ci!, -50, 0), -50);
  });

  it('counts keys_file keys as tokens for a non-loopback listen, and refuses a bad file at start', async (t) => {
    const path = await keysFile(t, KEYS);
    const config = parseConfig(['--listen', '0.0.0.0:11435', '--keys-file', path], {});
    assert.equal(config.keys_file, path);
    assert.throws(() => parseConfig(['--listen', '0.0.0.0:11435'], {}), ConfigError);
    const badPath = await keysFile(t, { keys: [{ name: 'x' }] });
    assert.throws(() => parseConfig(['--keys-file', badPath], {}), (e: ConfigError) => e.problems.some((p) => p.includes('needs exactly one of token')));
  });
});

describe('named keys (HTTP)', () => {
  it('authenticates by Bearer or x-api-key, token or token_sha256; anything else is 401 in the surface\'s shape', async (t) => {
    const s = await stackWithKeys(t);
    assert.equal((await s.as(BOT, '/api/tags')).status, 200);
    assert.equal((await s.as(CI, '/api/tags')).status, 200); // stored only as sha256
    assert.equal((await fetch(`${s.url}/api/tags`, { headers: { 'x-api-key': OTHER } })).status, 200);
    assert.equal((await s.as(TOKEN, '/api/tags')).status, 200); // --tokens still work, as token-1
    assert.equal((await s.as(sha(CI), '/api/tags')).status, 401); // the hash is not the token
    const v1 = await s.as('nope', '/v1/models');
    assert.equal(v1.status, 401);
    assert.equal((await v1.json()).error.type, 'authentication_error');
    assert.equal((await s.as(null, '/nowhere')).status, 401);
    assert.equal((await s.as(BOT, '/nowhere')).status, 404);
  });

  it('sync_priority and max_priority: the priority used is in X-Foreman-Priority and in job records', async (t) => {
    const s = await stackWithKeys(t);
    const own = await s.as(CI, '/api/chat', { json: chat() });
    assert.equal(own.status, 200);
    assert.equal(own.headers.get('x-foreman-priority'), '2'); // sync_priority 5, lowered to max_priority 2
    const asked = await s.as(CI, '/api/chat', { json: chat(), headers: { 'x-foreman-priority': '100' } });
    assert.equal(asked.headers.get('x-foreman-priority'), '2');
    const low = await s.as(CI, '/api/chat', { json: chat(), headers: { 'x-foreman-priority': '-7' } });
    assert.equal(low.headers.get('x-foreman-priority'), '-7');
    const bot = await s.as(BOT, '/api/chat', { json: chat() });
    assert.equal(bot.headers.get('x-foreman-priority'), '10'); // the global sync_priority
    const job = await (await s.as(CI, '/jobs', { json: { model: 'llama3.2', prompt: 'x', priority: 90 } })).json();
    assert.equal(job.priority, 2);
    assert.equal(job.key, 'ci');
  });

  it('models: other models are 403 on every surface that names one', async (t) => {
    const s = await stackWithKeys(t);
    const native = await s.as(CI, '/api/chat', { json: chat('mistral') });
    assert.equal(native.status, 403);
    assert.match((await native.json()).error, /may not use model 'mistral'/);
    const v1 = await s.as(CI, '/v1/chat/completions', { json: chat('mistral') });
    assert.equal(v1.status, 403);
    assert.equal((await v1.json()).error.type, 'permission_error');
    assert.equal((await s.as(CI, '/jobs', { json: { model: 'mistral', prompt: 'x' } })).status, 403);
    assert.equal((await s.as(CI, '/api/embed', { json: { model: 'nomic-embed-text', input: 'x' } })).status, 403);
    assert.equal((await s.as(CI, '/api/chat', { json: chat('qwen3:8b') })).status !== 403, true);
    assert.equal((await s.as(BOT, '/api/chat', { json: chat('mistral') })).status !== 403, true); // no models list: any
  });

  it('model management (pull, delete, create, copy) is for admin keys; reading stays open', async (t) => {
    const s = await stackWithKeys(t);
    for (const [method, p, body] of [['DELETE', '/api/delete', { model: 'llama3.2' }], ['POST', '/api/pull', { model: 'x' }], ['POST', '/api/copy', { source: 'a', destination: 'b' }]] as const) {
      const r = await s.as(BOT, p, { method, body: JSON.stringify(body) });
      assert.equal(r.status, 403, `${method} ${p}`);
      assert.match((await r.json()).error, /is for admin keys/);
    }
    assert.equal((await s.as(BOT, '/api/tags')).status, 200);
    assert.equal((await s.as(BOT, '/api/show', { json: { model: 'llama3.2' } })).status, 200);
    assert.notEqual((await s.as(TOKEN, '/api/copy', { json: { source: 'llama3.2', destination: 'mine' } })).status, 403);
  });

  it('max_queued: beyond it 429 with Retry-After in the surface\'s shape; other keys still get in', async (t) => {
    const s = await stackWithKeys(t);
    const blocker = await (await s.as(TOKEN, '/jobs', { json: { model: 'llama3.2', prompt: 'x', ...STALL } })).json();
    await waitState(s, blocker.id, 'working');
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await s.as(CI, '/jobs', { json: { model: 'llama3.2', prompt: `x${i}` } });
      assert.equal(r.status, 202);
      ids.push((await r.json()).id);
    }
    const refused = await s.as(CI, '/jobs', { json: { model: 'llama3.2', prompt: 'x' } });
    assert.equal(refused.status, 429);
    assert.equal(refused.headers.get('retry-after'), '5');
    assert.match((await refused.json()).error, /max_queued/);
    const v1 = await s.as(CI, '/v1/chat/completions', { json: chat() });
    assert.equal(v1.status, 429);
    assert.equal((await v1.json()).error.type, 'rate_limit_error');
    assert.equal((await s.as(BOT, '/jobs', { json: { model: 'llama3.2', prompt: 'x' } })).status, 202);
    // One leaves the queue: the key may queue one more.
    assert.equal((await s.as(CI, `/jobs/${ids[0]}/cancel`, { method: 'POST' })).status, 200);
    assert.equal((await s.as(CI, '/jobs', { json: { model: 'llama3.2', prompt: 'x' } })).status, 202);
    await s.call(`/jobs/${blocker.id}/cancel`, { method: 'POST' });
  });

  it('max_running: the key\'s other jobs wait while other keys\' jobs run past them', async (t) => {
    const s = await stackWithKeys(t, KEYS, { parallel: 3 });
    const bot = [];
    for (let i = 0; i < 3; i++) bot.push((await (await s.as(BOT, '/jobs', { json: { model: 'llama3.2', prompt: `b${i}`, ...STALL } })).json()).id);
    const other = (await (await s.as(OTHER, '/jobs', { json: { model: 'llama3.2', prompt: 'o', ...STALL } })).json()).id;
    await waitState(s, other, 'working');
    const queue = await (await s.call('/queue')).json();
    assert.deepEqual(queue.running.map((r: { key: string }) => r.key).sort(), ['bot', 'other']);
    assert.equal(queue.totals.waiting, 2);
    const keys = await (await s.call('/keys')).json();
    const botView = keys.keys.find((k: { name: string }) => k.name === 'bot');
    assert.deepEqual([botView.running, botView.waiting, botView.max_running], [1, 2, 1]);
    // The running one ends: the next of bot's starts.
    await s.as(BOT, `/jobs/${bot[0]}/cancel`, { method: 'POST' });
    await waitState(s, bot[1]!, 'working');
    assert.equal((await (await s.call(`/jobs/${bot[2]}`)).json()).state, 'queued');
    for (const id of [bot[1], bot[2], other]) await s.call(`/jobs/${id}/cancel`, { method: 'POST' });
  });

  it('ownership: a key sees, waits on, cancels and reads only its own jobs; admins see all', async (t) => {
    const s = await stackWithKeys(t);
    const mine = await (await s.as(BOT, '/jobs', { json: { model: 'llama3.2', prompt: 'mine' } })).json();
    const theirs = await (await s.as(OTHER, '/jobs', { json: { model: 'llama3.2', prompt: 'theirs' } })).json();
    await waitState(s, mine.id, 'completed');
    await waitState(s, theirs.id, 'completed');
    const list = await (await s.as(BOT, '/jobs')).json();
    assert.deepEqual(list.jobs.map((j: { id: string }) => j.id), [mine.id]);
    // Asking for another key's jobs by filter changes nothing for a key that is not admin.
    assert.deepEqual((await (await s.as(BOT, '/jobs?key=other')).json()).jobs.map((j: { id: string }) => j.id), [mine.id]);
    for (const [method, p] of [['GET', ''], ['GET', '?wait=1'], ['GET', '/events'], ['GET', '/artifacts/content.txt'], ['POST', '/cancel'], ['DELETE', '']] as const) {
      const r = await s.as(BOT, `/jobs/${theirs.id}${p}`, { method });
      assert.equal(r.status, 404, `${method} /jobs/{other}${p}`);
      assert.match((await r.json()).error, /not found/);
    }
    assert.equal((await s.as(BOT, `/jobs/${mine.id}/artifacts/content.txt`)).status, 200);
    assert.equal((await s.as(BOT, `/jobs/${mine.id}/events`)).status, 200);
    const all = await (await s.call('/jobs')).json();
    assert.deepEqual(new Set(all.jobs.map((j: { id: string }) => j.id)), new Set([mine.id, theirs.id]));
    assert.deepEqual((await (await s.call('/jobs?key=other')).json()).jobs.map((j: { id: string }) => j.id), [theirs.id]);
    assert.equal((await s.call(`/jobs/${theirs.id}`)).status, 200);
    // An Idempotency-Key is the caller's own: the same one from another key makes another job.
    const idem = { headers: { 'idempotency-key': 'same' }, json: { model: 'llama3.2', prompt: 'i' } };
    const first = await s.as(BOT, '/jobs', idem);
    const second = await s.as(OTHER, '/jobs', idem);
    assert.deepEqual([first.status, second.status], [202, 202]);
    assert.notEqual((await first.json()).id, (await second.json()).id);
    assert.equal((await s.as(BOT, '/jobs', idem)).status, 200);
    const events = await (await s.as(OTHER, `/jobs/${theirs.id}/events`)).json();
    assert.ok(events.events.every((e: { job: { key: string } }) => e.job.key === 'other')); // webhooks carry the same payloads
  });

  it('/queue shows a key its own jobs with aggregate counts; /metrics is for admins; GET /keys shows itself', async (t) => {
    const s = await stackWithKeys(t);
    const theirs = await (await s.as(OTHER, '/jobs', { json: { model: 'llama3.2', prompt: 'x', ...STALL } })).json();
    await waitState(s, theirs.id, 'working');
    const mineQueued = await (await s.as(BOT, '/jobs', { json: { model: 'llama3.2', prompt: 'y' } })).json();
    const botQueue = await (await s.as(BOT, '/queue')).json();
    assert.deepEqual(botQueue.running, []);
    assert.equal(botQueue.totals.running, 1);
    assert.equal(botQueue.totals.waiting, 1);
    assert.deepEqual(botQueue.key, { name: 'bot', admin: false, waiting: 1, running: 0 });
    const otherQueue = await (await s.as(OTHER, '/queue')).json();
    assert.deepEqual(otherQueue.running.map((r: { id: string }) => r.id), [theirs.id]);
    const admin = await (await s.call('/queue')).json();
    assert.equal(admin.running.length, 1);
    assert.equal(admin.key.admin, true);
    const metrics = await s.as(BOT, '/metrics');
    assert.equal(metrics.status, 403);
    assert.equal((await s.call('/metrics')).status, 200);
    const botKeys = await (await s.as(BOT, '/keys')).json();
    assert.deepEqual(botKeys.keys.map((k: { name: string }) => k.name), ['bot']);
    assert.equal(botKeys.file, undefined);
    const adminKeys = await (await s.call('/keys')).json();
    assert.deepEqual(adminKeys.keys.map((k: { name: string }) => k.name), ['token-1', 'ci', 'bot', 'other']);
    assert.ok(!JSON.stringify(adminKeys).includes(BOT) && !JSON.stringify(adminKeys).includes(sha(CI)));
    await s.call(`/jobs/${theirs.id}/cancel`, { method: 'POST' });
    await waitState(s, mineQueued.id, 'completed');
  });

  it('counts the tokens of a key\'s async jobs, whose responses live on disk', async (t) => {
    const s = await stackWithKeys(t);
    const job = await (await s.as(BOT, '/jobs', { json: { model: 'llama3.2', prompt: 'count' } })).json();
    await waitState(s, job.id, 'completed');
    const response = await (await s.as(BOT, `/jobs/${job.id}/artifacts/response.json`)).json();
    assert.ok(response.eval_count > 0);
    const view = (await (await s.as(BOT, '/keys')).json()).keys[0];
    assert.equal(view.usage.completion_tokens, response.eval_count);
    assert.equal(view.usage.prompt_tokens, response.prompt_eval_count);
  });

  it('usage per key: requests by surface, jobs by state, tokens, run and wait time, in GET /keys and /metrics by name', async (t) => {
    const s = await stackWithKeys(t);
    await (await s.as(BOT, '/api/chat', { json: chat() })).text();
    await (await s.as(BOT, '/api/chat', { json: { ...chat(), stream: true } })).text();
    await (await s.as(BOT, '/v1/chat/completions', { json: chat() })).text();
    const job = await (await s.as(BOT, '/jobs', { json: { model: 'llama3.2', prompt: 'count' } })).json();
    await waitState(s, job.id, 'completed');
    const failed = await s.as(BOT, '/api/chat', { json: chat('llama3.2', { sim: { fault: 'error_before', status: 500 } }) });
    assert.equal(failed.status, 500);
    const view = (await (await s.as(BOT, '/keys')).json()).keys[0];
    assert.equal(view.usage.requests.ollama, 3);
    assert.equal(view.usage.requests.openai, 1);
    assert.equal(view.usage.requests.jobs, 1);
    assert.equal(view.usage.requests.ops, 1); // this GET /keys
    assert.equal(view.usage.jobs.completed, 4);
    assert.equal(view.usage.jobs.failed, 1);
    assert.ok(view.usage.prompt_tokens > 0 && view.usage.completion_tokens > 0, JSON.stringify(view.usage));
    assert.ok(view.usage.run_seconds > 0);
    const metrics = parsePrometheusText(await (await s.call('/metrics')).text());
    const value = (name: string, labels: Record<string, string>) =>
      metrics.get(`${name}{${Object.keys(labels).sort().map((k) => `${k}="${labels[k]}"`).join(',')}}`);
    assert.equal(value('foreman_key_jobs_total', { key: 'bot', state: 'completed' }), 4);
    assert.equal(value('foreman_key_tokens_total', { key: 'bot', kind: 'completion' }), view.usage.completion_tokens);
    assert.equal(value('foreman_key_requests_total', { key: 'bot', surface: 'openai' }), 1);
    assert.equal(value('foreman_key_waiting', { key: 'other' }), 0);
    const text = await (await s.call('/metrics')).text();
    assert.ok(!text.includes(BOT) && !text.includes(TOKEN));
  });

  it('reload: a new key works, a removed key gets 401 and its queued jobs stay, a bad file keeps the keys in force', async (t) => {
    const s = await stackWithKeys(t);
    const blocker = await (await s.as(TOKEN, '/jobs', { json: { model: 'llama3.2', prompt: 'x', ...STALL } })).json();
    await waitState(s, blocker.id, 'working');
    const queued = await (await s.as(BOT, '/jobs', { json: { model: 'llama3.2', prompt: 'stays' } })).json();
    const NEW = 'new-key-token';
    await writeFile(s.path, JSON.stringify({ keys: [KEYS.keys[0], KEYS.keys[2], { name: 'new', token: NEW, max_priority: -5 }] }));
    assert.equal(s.foreman.reloadKeys(), true);
    assert.equal((await s.as(BOT, '/api/tags')).status, 401);
    assert.equal((await (await s.as(NEW, '/jobs', { json: { model: 'llama3.2', prompt: 'n' } })).json()).priority, -5);
    assert.equal((await (await s.call(`/jobs/${queued.id}`)).json()).state, 'queued');
    const adminKeys = await (await s.call('/keys')).json();
    assert.equal(adminKeys.keys.find((k: { name: string }) => k.name === 'bot')?.source, 'removed');
    await writeFile(s.path, '{"keys": [{"name": "broken"}]}');
    assert.equal(s.foreman.reloadKeys(), false);
    assert.equal((await s.as(NEW, '/api/tags')).status, 200);
    const file = (await (await s.call('/keys')).json()).file;
    assert.equal(file.refused, 1);
    assert.match(file.last_error, /needs exactly one of token/);
    await s.call(`/jobs/${blocker.id}/cancel`, { method: 'POST' });
    await waitState(s, queued.id, 'completed'); // the removed key's job ran
  });

  it('reloads by itself when the file changes', async (t) => {
    const s = await stackWithKeys(t);
    const reloaded = new Promise<void>((resolve) => s.foreman.keys.onReload(() => resolve()));
    await writeFile(s.path, JSON.stringify({ keys: [...KEYS.keys, { name: 'late', token: 'late-token', admin: true }] }));
    await reloaded;
    assert.equal((await s.as('late-token', '/metrics')).status, 200);
  });

  it('reloads on SIGHUP in a running foreman, keeping an open connection', async (t) => {
    const sim = await startSim({ loadMs: 0 });
    t.after(() => sim.close());
    const path = await keysFile(t, { keys: [{ name: 'a', token: 'tok-a' }] });
    const dataDir = await mkdtemp(join(tmpdir(), 'foreman-keys-data-'));
    t.after(() => rm(dataDir, { recursive: true, force: true }));
    const fp = await spawnForeman(['--upstream', sim.url, '--data-dir', dataDir, '--keys-file', path]);
    t.after(() => fp.kill9());
    const get = (token: string) => fetch(`${fp.url}/api/tags`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal((await get('tok-a')).status, 200);
    await writeFile(path, JSON.stringify({ keys: [{ name: 'b', token: 'tok-b' }] }));
    const before = fp.logs.length;
    fp.child.kill('SIGHUP');
    await until(() => fp.logs.slice(before).some((l) => l.event === 'keys reloaded'), 'keys reloaded');
    assert.equal((await get('tok-b')).status, 200);
    assert.equal((await get('tok-a')).status, 401);
    assert.equal(fp.child.exitCode, null);
  });

  it('foreman keys prints the keys with limits and usage; foreman keys hash gives token_sha256', async (t) => {
    const s = await stackWithKeys(t);
    await (await s.as(BOT, '/api/chat', { json: chat() })).text();
    const admin = await cli(['keys'], { FOREMAN_URL: s.url, FOREMAN_TOKEN: TOKEN });
    assert.equal(admin.code, 0, admin.err);
    const lines = admin.out.split('\n');
    assert.match(lines[0]!, /^KEY\s+FLAGS\s+WEIGHT\s+RUNNING\s+WAITING/);
    assert.match(lines.find((l) => l.startsWith('bot '))!, /^bot\s+-\s+1\s+0\/1\s+0\s+-\s+\*\s+1\s+1\/0\/0\s+\d+\/\d+/);
    assert.match(lines.find((l) => l.startsWith('ci '))!, /^ci\s+-\s+1\s+0\s+0\/3\s+2\s+llama3\.2\*,qwen3\*/);
    assert.match(admin.out, /keys file .*keys\.json: 0 reloads, 0 refused/);
    const own = await cli(['keys', '--json'], { FOREMAN_URL: s.url, FOREMAN_TOKEN: BOT });
    assert.deepEqual(JSON.parse(own.out).keys.map((k: { name: string }) => k.name), ['bot']);
    const status = await cli(['status'], { FOREMAN_URL: s.url, FOREMAN_TOKEN: BOT });
    assert.match(status.out, /key\s+bot  \(own jobs only\)  0 running  0 waiting/);
    const hash = await cli(['keys', 'hash', CI], {});
    assert.equal(hash.out, sha(CI) + '\n');
    assert.equal((await cli(['keys', 'hash'], {}, `${CI}\n`)).out, sha(CI) + '\n');
    const refused = await cli(['keys'], { FOREMAN_URL: s.url, FOREMAN_TOKEN: 'wrong' });
    assert.equal(refused.code, 3);
  });
});
