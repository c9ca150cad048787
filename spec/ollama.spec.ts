import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startStack, readNdjson, TOKEN, type Stack } from './support/stack.js';
import { rawRequest } from './support/raw-http.js';
import { until } from './support/until.js';

const chat = (content: string, extra: Record<string, unknown> = {}) => ({
  model: 'llama3.2', messages: [{ role: 'user', content }], ...extra,
});


async function queueTotals(stack: Stack) {
  return (await (await stack.call('/queue')).json()).totals as { waiting: number; running: number };
}

/** Starts a request that holds the one slot (the simulator stalls it) and resolves once it runs. */
async function holdSlot(stack: Stack, model = 'llama3.2') {
  const controller = new AbortController();
  const done = stack.call('/api/chat', { json: chat('hold', { model, sim: { fault: 'stall', after: 1 } }), signal: controller.signal })
    .then((r) => r.text()).catch(() => 'aborted');
  await until(async () => (await queueTotals(stack)).running === 1, 'the blocker to run');
  return { release: () => controller.abort(), done };
}

describe('native surface: generation through the queue', () => {
  it('streams chat as NDJSON with exactly one whole line per write, even when upstream splits anywhere', async (t) => {
    const stack = await startStack(t, { sim: { split: 'random', seed: 42 } });
    const res = await rawRequest(stack.url, {
      path: '/api/chat', headers: { authorization: `Bearer ${TOKEN}` }, body: JSON.stringify(chat('tell me about queues')),
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], 'application/x-ndjson');
    assert.match(res.headers['x-foreman-job-id'] ?? '', /^s_/);
    assert.match(res.headers['x-foreman-queue-ms'] ?? '', /^\d+$/);
    assert.ok(res.chunks.length > 3);
    for (const chunk of res.chunks) {
      const text = chunk.toString('utf8');
      assert.equal(text.indexOf('\n'), text.length - 1, `a write must be one whole line: ${JSON.stringify(text)}`);
      JSON.parse(text);
    }
    const lines = res.chunks.map((c) => JSON.parse(c.toString('utf8')));
    assert.equal(lines.at(-1).done, true);
    assert.equal(lines.at(-1).done_reason, 'stop');
    assert.ok(lines.slice(0, -1).every((l) => l.done === false && l.eval_count === undefined), 'metrics only on the final chunk');

    // The same request straight to the simulator gives the same text.
    const direct = await readNdjson(await fetch(`${stack.sim.url}/api/chat`, { method: 'POST', body: JSON.stringify(chat('tell me about queues')) }));
    const text = (ls: any[]) => ls.map((l) => l.message?.content ?? '').join('');
    assert.equal(text(lines), text(direct.lines));
  });

  it('answers stream:false generate with one JSON object equal to the streamed text', async (t) => {
    const stack = await startStack(t);
    const body = { model: 'llama3.2', prompt: 'why is the sky blue' };
    const whole = await stack.call('/api/generate', { json: { ...body, stream: false } });
    assert.equal(whole.status, 200);
    assert.match(whole.headers.get('content-type') ?? '', /^application\/json/);
    const obj = await whole.json();
    const streamed = await readNdjson(await stack.call('/api/generate', { json: body }));
    assert.equal(obj.response, streamed.lines.map((l) => l.response).join(''));
    assert.equal(obj.done, true);
    assert.equal(typeof obj.eval_count, 'number');
  });

  it('passes streamed tool calls through intact', async (t) => {
    const stack = await startStack(t, { sim: { split: 7 } });
    const tools = [{ type: 'function', function: { name: 'get_weather', description: 'w', parameters: { type: 'object', required: ['city'], properties: { city: { type: 'string' } } } } }];
    const { lines } = await readNdjson(await stack.call('/api/chat', { json: chat('what is the weather in Tokyo?', { tools }) }));
    const withCalls = lines.filter((l) => l.message?.tool_calls);
    assert.equal(withCalls.length, 1);
    const call = withCalls[0].message.tool_calls[0];
    assert.equal(call.function.name, 'get_weather');
    assert.equal(call.function.index, 0);
    assert.equal(typeof call.function.arguments, 'object');
    assert.match(call.id, /^call_[a-z0-9]{8}$/);
    assert.equal(lines.at(-1).done, true);
  });

  it('preloads with empty messages and unloads at once with keep_alive 0', async (t) => {
    const stack = await startStack(t);
    const load = await (await stack.call('/api/chat', { json: { model: 'llama3.2', messages: [] } })).json();
    assert.equal(load.done_reason, 'load');
    assert.equal(stack.sim.stats().loads['llama3.2:latest'], 1);
    const unload = await (await stack.call('/api/generate', { json: { model: 'llama3.2', keep_alive: 0 } })).json();
    assert.equal(unload.done_reason, 'unload');
    await until(() => !stack.sim.stats().loaded.includes('llama3.2:latest'), 'the unload');
    const ps = await (await stack.call('/api/ps')).json();
    assert.deepEqual(ps.models, []);
  });

  it('loads each of three models once for an interleaved burst', async (t) => {
    const stack = await startStack(t, { config: { unload_on_switch: true } });
    const blocker = await holdSlot(stack, 'mistral');
    const models = ['llama3.2', 'qwen3', 'gemma3'];
    const requests = Array.from({ length: 9 }, (_, i) =>
      stack.call('/api/generate', { json: { model: models[i % 3], prompt: `job ${i}`, stream: false, think: false } }).then((r) => r.json()));
    await until(async () => (await queueTotals(stack)).waiting === 9, 'nine queued jobs');
    blocker.release();
    const answers = await Promise.all(requests);
    assert.ok(answers.every((a) => a.done === true));
    const loads = stack.sim.stats().loads;
    for (const m of models) assert.equal(loads[`${m}:latest`], 1, `${m} loaded once`);
    const order = stack.sim.stats().loadOrder.filter((m) => m !== 'mistral:latest');
    assert.equal(order.length, 3);
  });
});

describe('native surface: embeddings bypass the queue', () => {
  it('answers embeddings while a generation holds the only slot, without a model switch', async (t) => {
    const stack = await startStack(t);
    const blocker = await holdSlot(stack);
    const switches = stack.foreman.snapshot().totals.switches;
    const embed = await stack.call('/api/embed', { json: { model: 'nomic-embed-text', input: ['a', 'b'] } });
    assert.equal(embed.status, 200);
    assert.equal((await embed.json()).embeddings.length, 2);
    const legacy = await stack.call('/api/embeddings', { json: { model: 'nomic-embed-text', prompt: 'a' } });
    assert.equal(legacy.status, 200);
    assert.ok(Array.isArray((await legacy.json()).embedding));
    assert.equal(stack.foreman.snapshot().totals.switches, switches, 'an embedding is no switch');
    assert.equal(stack.foreman.snapshot().loaded_model, 'llama3.2:latest');
    assert.ok(stack.sim.stats().loaded.includes('llama3.2:latest'), 'the generation model stayed resident');
    const bad = await stack.call('/api/embed', { method: 'POST', body: '{' });
    assert.equal(bad.status, 400);
    blocker.release();
    await blocker.done;
  });
});

describe('native surface: failures and bad input', () => {
  it('requires the Bearer token except on / and /health', async (t) => {
    const stack = await startStack(t);
    const none = await fetch(`${stack.url}/api/tags`);
    assert.equal(none.status, 401);
    assert.equal(none.headers.get('www-authenticate'), 'Bearer');
    assert.deepEqual(await none.json(), { error: 'unauthorized' });
    const wrong = await fetch(`${stack.url}/api/tags`, { headers: { authorization: 'Bearer nope' } });
    assert.equal(wrong.status, 401);
    const right = await stack.call('/api/tags');
    assert.equal(right.status, 200);
    assert.ok(Array.isArray((await right.json()).models));
    const root = await fetch(`${stack.url}/`);
    assert.equal(root.status, 200);
    assert.equal(await root.text(), 'Ollama is running');
    const head = await fetch(`${stack.url}/`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal((await fetch(`${stack.url}/health`)).status, 200);
  });

  it('answers malformed, mistyped and oversized bodies with JSON errors', async (t) => {
    const stack = await startStack(t, { config: { max_body: 1024 } });
    const bad = await stack.call('/api/chat', { method: 'POST', body: '{nope' });
    assert.equal(bad.status, 400);
    assert.match((await bad.json()).error, /invalid JSON/);
    const empty = await stack.call('/api/chat', { method: 'POST', body: '' });
    assert.equal(empty.status, 400);
    assert.equal((await empty.json()).error, 'missing request body');
    const noModel = await stack.call('/api/chat', { json: { messages: [] } });
    assert.equal(noModel.status, 400);
    assert.equal((await noModel.json()).error, 'model is required');
    const wrongType = await stack.call('/api/generate', { json: { model: 'llama3.2', prompt: 5 } });
    assert.equal(wrongType.status, 400);
    const badPriority = await stack.call('/api/chat', { json: chat('x'), headers: { 'x-foreman-priority': '1000' } });
    assert.equal(badPriority.status, 400);
    const big = await stack.call('/api/chat', { json: chat('x'.repeat(5000)) });
    assert.equal(big.status, 413);
    assert.match((await big.json()).error, /max_body/);
    const method = await stack.call('/api/chat');
    assert.equal(method.status, 405);
    assert.ok((await method.json()).error);
    // form content type, as curl -d sends: still JSON
    const form = await stack.call('/api/generate', {
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: JSON.stringify({ model: 'llama3.2', prompt: 'hi', stream: false }),
    });
    assert.equal(form.status, 200);
    assert.equal(stack.sim.stats().requests['llama3.2:latest'], 1, 'only the valid request reached upstream');
  });

  it('refuses JSON nested deeper than 512 levels with a 400, before it reaches upstream', async (t) => {
    const stack = await startStack(t);
    const deep = await stack.call('/api/chat', { method: 'POST', body: `{"model":"llama3.2","messages":[],"options":${'{"a":'.repeat(513)}1${'}'.repeat(513)}}` });
    assert.equal(deep.status, 400);
    assert.match((await deep.json()).error, /nested deeper than 512/);
    const v1 = await stack.call('/v1/chat/completions', { method: 'POST', body: `{"model":"llama3.2","messages":${'['.repeat(600)}${']'.repeat(600)}}` });
    assert.equal(v1.status, 400);
    assert.match(JSON.stringify(await v1.json()), /nested deeper than 512/);
    assert.equal(stack.sim.stats().requests['llama3.2:latest'] ?? 0, 0, 'nothing reached upstream');
  });

  it("passes upstream's own status through, e.g. 404 for an unknown model", async (t) => {
    const stack = await startStack(t);
    const res = await stack.call('/api/chat', { json: chat('hi', { model: 'llama9' }) });
    assert.equal(res.status, 404);
    assert.deepEqual(await res.json(), { error: "model 'llama9' not found" });
  });

  it('keeps the loaded model resident when a request names an unknown model', async (t) => {
    const stack = await startStack(t, { config: { unload_on_switch: true } });
    assert.equal((await stack.call('/api/generate', { json: { model: 'llama3.2', prompt: 'a', stream: false } })).status, 200);
    assert.equal((await stack.call('/api/generate', { json: { model: 'llama9', prompt: 'b', stream: false } })).status, 404);
    assert.equal((await stack.call('/api/generate', { json: { model: 'llama3.2', prompt: 'c', stream: false } })).status, 200);
    assert.equal(stack.sim.stats().loads['llama3.2:latest'], 1, 'the typo did not cost a reload');
  });

  it('answers 502 with a JSON body when upstream is down', async (t) => {
    const stack = await startStack(t, { config: { upstream: 'http://127.0.0.1:9' } });
    const res = await stack.call('/api/chat', { json: chat('hi') });
    assert.equal(res.status, 502);
    assert.match((await res.json()).error, /^upstream unreachable: /);
    const tags = await stack.call('/api/tags');
    assert.equal(tags.status, 502);
    const health = (await (await fetch(`${stack.url}/health`)).json()) as any;
    assert.equal(health.status, 'degraded');
    assert.equal(health.upstream.reachable, false);
  });

  it('ends a stream with one error line when upstream fails mid-stream', async (t) => {
    const stack = await startStack(t);
    for (const fault of ['error_mid', 'reset', 'bad_line']) {
      const res = await stack.call('/api/chat', { json: chat(`fault ${fault}`, { sim: { fault, after: 2, message: 'boom' } }) });
      assert.equal(res.status, 200, fault);
      const { lines } = await readNdjson(res);
      assert.equal(lines.length, 3, `${fault}: two chunks and one error line`);
      assert.equal(typeof lines.at(-1).error, 'string', fault);
      assert.ok(lines.slice(0, 2).every((l) => l.done === false), fault);
    }
  });

  it('gives up on an upstream that goes silent mid-stream, and the queue moves on', async (t) => {
    const stack = await startStack(t, { deps: { upstreamIdleMs: 300 } });
    const stuck = stack.call('/api/chat', { json: chat('stall', { sim: { fault: 'stall', after: 2 } }) });
    const next = stack.call('/api/generate', { json: { model: 'llama3.2', prompt: 'next', stream: false } });
    const { lines } = await readNdjson(await stuck);
    assert.match(lines.at(-1).error, /upstream (failed mid-stream|sent nothing)/);
    assert.equal((await next).status, 200);
  });

  it("returns Ollama's exact busy error beyond max_queue", async (t) => {
    const stack = await startStack(t, { config: { max_queue: 1 } });
    const blocker = await holdSlot(stack);
    const queued = stack.call('/api/generate', { json: { model: 'llama3.2', prompt: 'q', stream: false } });
    await until(async () => (await queueTotals(stack)).waiting === 1, 'one queued');
    const busy = await stack.call('/api/generate', { json: { model: 'llama3.2', prompt: 'r', stream: false } });
    assert.equal(busy.status, 503);
    assert.ok(busy.headers.get('retry-after'));
    assert.deepEqual(await busy.json(), { error: 'server busy, please try again.  maximum pending requests exceeded' });
    blocker.release();
    assert.equal((await queued).status, 200);
  });
});

describe('native surface: client disconnects and backpressure', () => {
  it('drops a queued request whose client left, before it reaches upstream', async (t) => {
    const stack = await startStack(t);
    const blocker = await holdSlot(stack);
    const leaving = new AbortController();
    const left = stack.call('/api/chat', { json: chat('I will leave', { model: 'qwen3' }), signal: leaving.signal }).catch(() => null);
    await until(async () => (await queueTotals(stack)).waiting === 1, 'the queued request');
    leaving.abort();
    await left;
    await until(async () => (await queueTotals(stack)).waiting === 0, 'the queue to empty');
    blocker.release();
    await blocker.done;
    const next = await stack.call('/api/generate', { json: { model: 'llama3.2', prompt: 'after', stream: false } });
    assert.equal(next.status, 200);
    assert.equal(stack.sim.stats().requests['qwen3:latest'] ?? 0, 0, 'the dropped job never reached upstream');
  });

  it('aborts upstream at once when a working client leaves, and starts the next job', async (t) => {
    const stack = await startStack(t);
    const blocker = await holdSlot(stack);
    const next = stack.call('/api/generate', { json: { model: 'llama3.2', prompt: 'next', stream: false } });
    await until(async () => (await queueTotals(stack)).waiting === 1, 'the next job queued');
    blocker.release();
    await until(() => stack.sim.stats().aborted === 1, 'upstream to see the abort');
    const res = await next;
    assert.equal(res.status, 200);
    assert.equal((await res.json()).done, true);
  });

  it('keeps memory bounded when the client reads slowly and upstream is fast', async (t) => {
    const stack = await startStack(t);
    const { connect } = await import('node:net');
    const url = new URL(stack.url);
    const body = JSON.stringify({ model: 'llama3.2', prompt: 'long', options: { num_predict: 400_000 } });
    const socket = connect(Number(url.port), url.hostname);
    t.after(() => socket.destroy());
    await new Promise<void>((r) => socket.once('connect', () => r()));
    global.gc?.();
    const before = process.memoryUsage();
    socket.write(`POST /api/generate HTTP/1.1\r\nhost: ${url.host}\r\nauthorization: Bearer ${TOKEN}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    let received = 0;
    socket.once('data', (d) => {
      received += d.length;
      socket.pause(); // read one packet, then stop reading
    });
    await until(() => received > 0, 'the first bytes');
    // Wait for the pipeline to fill (sim -> foreman -> socket buffers; a full 400k-token answer is
    // ~40 MB): the simulator is held by backpressure on one write and stays held on that same write
    // across three round trips through foreman, so foreman had every chance to read upstream and
    // did not. A simulator that finished instead is reported by the assertion below.
    let still = 0;
    let heldOn = -1;
    await until(async () => {
      const s = stack.sim.stats();
      if (s.active === 0) return true;
      const on = s.backpressure.waiting === 1 ? s.backpressure.waits : -1;
      still = on !== -1 && on === heldOn ? still + 1 : 0;
      heldOn = on;
      await (await fetch(stack.url + '/health')).text();
      return still >= 3;
    }, () => `the simulator to stay held by backpressure (${JSON.stringify(stack.sim.stats().backpressure)})`);
    const after = process.memoryUsage();
    assert.equal(stack.sim.stats().active, 1, 'upstream is held back, not finished');
    const grown = after.heapUsed + after.arrayBuffers - (before.heapUsed + before.arrayBuffers);
    assert.ok(grown < 24 * 1024 * 1024, `memory grew by ${(grown / 1048576).toFixed(1)} MiB`);
  });
});

describe('native surface: headers, heartbeat, shutdown', () => {
  it('never forwards the caller token, sends upstream_token and upstream\'s own Host', async (t) => {
    const seen: Array<{ url: string; headers: Record<string, string | string[] | undefined> }> = [];
    const upstream = createServer((req, res) => {
      seen.push({ url: req.url ?? '', headers: req.headers });
      req.resume();
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.end('{"model":"m","message":{"role":"assistant","content":"hi"},"done":false}\n{"model":"m","done":true}\n');
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
    t.after(() => upstream.close());
    const port = (upstream.address() as AddressInfo).port;
    const stack = await startStack(t, { config: { upstream: `http://127.0.0.1:${port}`, upstream_token: 'up-secret' } });
    const res = await stack.call('/api/chat', { json: chat('hi'), headers: { host: 'public.example.com' } });
    assert.equal(res.status, 200);
    await res.text();
    const chatHeaders = seen.find((x) => x.url === '/api/chat')!.headers;
    assert.equal(chatHeaders.authorization, 'Bearer up-secret');
    assert.equal(chatHeaders.host, `127.0.0.1:${port}`);
  });

  it('sends heartbeat chunks while a stream waits, then the answer', async (t) => {
    const stack = await startStack(t, { config: { stream_heartbeat_ms: 20 } });
    const blocker = await holdSlot(stack);
    const res = await stack.call('/api/chat', { json: chat('patience') });
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    const first = await reader.read();
    const beat = JSON.parse(Buffer.from(first.value!).toString('utf8').split('\n')[0]!);
    assert.equal(beat.done, false);
    assert.equal(beat.message.content, '');
    blocker.release();
    let rest = Buffer.from(first.value!).toString('utf8');
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      rest += Buffer.from(value).toString('utf8');
    }
    const lines = rest.trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines.at(-1).done, true);
    assert.ok(lines.some((l) => l.message?.content), 'the answer followed the heartbeats');
  });

  it('on shutdown answers waiting callers 503 and lets the running job finish', async (t) => {
    const stack = await startStack(t, { sim: { tokensPerSecond: 200 } });
    const running = stack.call('/api/generate', { json: { model: 'llama3.2', prompt: 'run', options: { num_predict: 40 } } });
    await until(async () => (await queueTotals(stack)).running === 1, 'the running job');
    const waiting = stack.call('/api/generate', { json: { model: 'llama3.2', prompt: 'wait', stream: false } });
    await until(async () => (await queueTotals(stack)).waiting === 1, 'the waiting job');
    const closing = stack.foreman.close();
    const w = await waiting;
    assert.equal(w.status, 503);
    assert.ok((await w.json()).error);
    const r = await running;
    const { lines } = await readNdjson(r);
    assert.equal(lines.at(-1).done, true, 'the running stream completed');
    await closing;
  });
});
