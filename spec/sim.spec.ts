// The Ollama simulator against shared/ollama-wire.md: framing, shapes, residency,
// faults, splitting, /v1, stats and the CLI. Real loopback sockets, no sleeps.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { runSim } from '../lib/sim/cli-sim.js';
import { CHAT, WEATHER_TOOL, get, ndjson, openStream, post, raw, simFor, sseData, until } from './support/sim-client.js';

const BUSY = 'server busy, please try again.  maximum pending requests exceeded';
const CREATED_AT = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?Z$/;
const METRICS = ['total_duration', 'load_duration', 'prompt_eval_count', 'prompt_eval_duration', 'eval_count', 'eval_duration'];

describe('sim /api/chat and /api/generate', () => {
  it('streams chat as NDJSON in Go key order with metrics only on the final chunk', async (t) => {
    const sim = await simFor(t);
    const r = await post(sim, '/api/chat', CHAT('llama3.2'));
    assert.equal(r.status, 200);
    assert.equal(r.type, 'application/x-ndjson');
    const lines = ndjson(r.text);
    assert.equal(lines.length, 13); // 12 tokens + done
    for (const line of lines.slice(0, -1)) {
      assert.deepEqual(Object.keys(line), ['model', 'created_at', 'message', 'done']);
      assert.deepEqual(Object.keys(line['message'] as object), ['role', 'content']);
      assert.equal(line['model'], 'llama3.2'); // echoed as sent, not llama3.2:latest
      assert.match(line['created_at'] as string, CREATED_AT);
      assert.equal(line['done'], false);
    }
    const last = lines.at(-1)!;
    assert.deepEqual(Object.keys(last), ['model', 'created_at', 'message', 'done', 'done_reason', ...METRICS]);
    assert.deepEqual(last['message'], { role: 'assistant', content: '' });
    assert.equal(last['done_reason'], 'stop');
    assert.equal(last['eval_count'], 12);
    for (const key of METRICS) assert.ok(Number.isInteger(last[key]) && (last[key] as number) > 0, key);
  });

  it('answers stream:false with one aggregated object, charset, and no trailing newline', async (t) => {
    const sim = await simFor(t);
    const streamed = ndjson((await post(sim, '/api/chat', CHAT('llama3.2'))).text);
    const r = await post(sim, '/api/chat', CHAT('llama3.2', 'hello there', { stream: false }));
    assert.equal(r.type, 'application/json; charset=utf-8');
    assert.ok(!r.text.endsWith('\n'));
    const body = JSON.parse(r.text) as Record<string, unknown>;
    assert.deepEqual(Object.keys(body), ['model', 'created_at', 'message', 'done', 'done_reason', ...METRICS]);
    const text = streamed.map((l) => (l['message'] as { content: string }).content).join('');
    assert.equal((body['message'] as { content: string }).content, text); // deterministic reply
  });

  it('streams generate with context on the final chunk, and none when raw', async (t) => {
    const sim = await simFor(t);
    const lines = ndjson((await post(sim, '/api/generate', { model: 'llama3.2', prompt: 'Why?', options: { num_predict: 5 } })).text);
    assert.equal(lines.length, 6);
    assert.deepEqual(Object.keys(lines[0]!), ['model', 'created_at', 'response', 'done']);
    const last = lines.at(-1)!;
    assert.deepEqual(Object.keys(last), ['model', 'created_at', 'response', 'done', 'done_reason', 'context', ...METRICS]);
    assert.equal(last['done_reason'], 'length'); // num_predict reached
    assert.equal(last['eval_count'], 5);
    assert.ok((last['context'] as number[]).every(Number.isInteger));
    const rawLast = ndjson((await post(sim, '/api/generate', { model: 'llama3.2', prompt: 'Why?', raw: true })).text).at(-1)!;
    assert.equal('context' in rawLast, false);
    const whole = JSON.parse((await post(sim, '/api/generate', { model: 'llama3.2', prompt: 'Why?', stream: false })).text);
    assert.equal(typeof whole.response, 'string');
    assert.ok(Array.isArray(whole.context));
  });

  it('gives the same reply to the same request, with multi-byte text somewhere', async (t) => {
    const sim = await simFor(t);
    const body = CHAT('mistral', 'same question', { stream: false, options: { num_predict: 200, seed: 3 } });
    const a = JSON.parse((await post(sim, '/api/chat', body)).text).message.content as string;
    const b = JSON.parse((await post(sim, '/api/chat', body)).text).message.content as string;
    assert.equal(a, b);
    assert.ok(Buffer.byteLength(a) > a.length, 'expected some multi-byte UTF-8');
    const other = JSON.parse((await post(sim, '/api/chat', { ...body, options: { num_predict: 200, seed: 4 } })).text);
    assert.notEqual(other.message.content, a);
  });

  it('sends thinking before content for thinking models, unless think is false', async (t) => {
    const sim = await simFor(t);
    const lines = ndjson((await post(sim, '/api/chat', CHAT('qwen3'))).text);
    const messages = lines.slice(0, -1).map((l) => l['message'] as Record<string, string>);
    const firstContent = messages.findIndex((m) => m['content'] !== '');
    assert.ok(firstContent > 0);
    assert.ok(messages.slice(0, firstContent).every((m) => m['thinking'] && Object.keys(m).join() === 'role,content,thinking'));
    assert.ok(messages.slice(firstContent).every((m) => !('thinking' in m)));
    const off = ndjson((await post(sim, '/api/chat', CHAT('qwen3', 'hi', { think: false }))).text);
    assert.ok(off.every((l) => !('thinking' in (l['message'] as object))));
    const gen = ndjson((await post(sim, '/api/generate', { model: 'qwen3', prompt: 'hi' })).text);
    assert.deepEqual(Object.keys(gen[0]!), ['model', 'created_at', 'response', 'thinking', 'done']);
    const refused = await post(sim, '/api/chat', CHAT('llama3.2', 'hi', { think: true }));
    assert.equal(refused.status, 400);
    assert.equal(refused.text, '{"error":"\\"llama3.2\\" does not support thinking"}');
  });

  it('emits a tool call whole on a done:false chunk, then the done chunk', async (t) => {
    const sim = await simFor(t);
    const lines = ndjson((await post(sim, '/api/chat', CHAT('llama3.2', 'What is the weather in Tokyo?', { tools: [WEATHER_TOOL] }))).text);
    assert.equal(lines.length, 2);
    const call = lines[0]!;
    assert.equal(call['done'], false);
    const message = call['message'] as Record<string, unknown>;
    assert.deepEqual(Object.keys(message), ['role', 'content', 'tool_calls']);
    assert.equal(message['content'], '');
    const [tc] = message['tool_calls'] as Array<{ id: string; function: Record<string, unknown> }>;
    assert.match(tc!.id, /^call_[a-z0-9]{8}$/);
    assert.deepEqual(Object.keys(tc!), ['id', 'function']);
    assert.deepEqual(tc!.function, { index: 0, name: 'get_weather', arguments: { city: 'Tokyo' } });
    assert.equal(lines[1]!['done'], true);
    assert.equal(lines[1]!['done_reason'], 'stop');
    const whole = JSON.parse((await post(sim, '/api/chat', CHAT('llama3.2', 'weather?', { tools: [WEATHER_TOOL], stream: false }))).text);
    assert.equal(whole.message.content, '');
    assert.equal(whole.message.tool_calls[0].function.name, 'get_weather');
    // No trigger word, or no tools: plain text.
    const plain = ndjson((await post(sim, '/api/chat', CHAT('llama3.2', 'hello', { tools: [WEATHER_TOOL] }))).text);
    assert.ok(plain.every((l) => !('tool_calls' in (l['message'] as object))));
  });

  it('answers bad requests with Ollama statuses and texts', async (t) => {
    const sim = await simFor(t);
    const cases: Array<[string, unknown, number, string]> = [
      ['/api/chat', '', 400, 'missing request body'],
      ['/api/chat', 'xyz', 400, "invalid character 'x' looking for beginning of value"],
      ['/api/chat', '{"model":', 400, 'unexpected EOF'],
      // Nesting past Go's 10,000 levels is Go's error, not a stack overflow and a 500.
      ['/api/show', `{"model":${'['.repeat(100_000)}`, 400, "invalid character '[' exceeded max depth"],
      ['/api/show', `{"model":${'['.repeat(9_000)}`, 400, 'unexpected EOF'],
      ['/api/chat', { model: 5 }, 400, 'json: cannot unmarshal number into Go struct field ChatRequest.model of type string'],
      ['/api/chat', { messages: [] }, 400, 'model is required'],
      ['/api/generate', { prompt: 'x' }, 404, "model '' not found"],
      ['/api/chat', CHAT('llama9'), 404, "model 'llama9' not found"],
      ['/api/generate', { model: 'llama9', prompt: 'x' }, 404, "model 'llama9' not found"],
      ['/api/embed', { model: 'llama9', input: 'x' }, 404, 'model "llama9" not found, try pulling it first'],
      ['/api/chat', CHAT('nomic-embed-text'), 400, '"nomic-embed-text" does not support chat'],
      ['/api/generate', { model: 'nomic-embed-text', prompt: 'x' }, 400, '"nomic-embed-text" does not support generate'],
      ['/api/chat', CHAT('llama3.2', 'x', { keep_alive: '300' }), 400, 'time: missing unit in duration "300"'],
      ['/api/chat', CHAT('llama3.2', 'x', { options: { temperature: 'hot' } }), 500, 'option "temperature" must be of type float32'],
    ];
    for (const [path, body, status, message] of cases) {
      const r = await post(sim, path, body);
      assert.equal(r.status, status, `${path} ${JSON.stringify(body)}`);
      assert.equal(r.type, 'application/json; charset=utf-8');
      assert.deepEqual(JSON.parse(r.text), { error: message });
    }
    // Trailing bytes after the first JSON value are ignored, as by Go's json.Decoder.
    assert.equal((await post(sim, '/api/chat', JSON.stringify(CHAT('llama3.2', 'x', { stream: false })) + ' junk')).status, 200);
  });

  it('routes like gin: probes, 404 and 405 in text/plain', async (t) => {
    const sim = await simFor(t);
    assert.deepEqual(await get(sim, '/'), { status: 200, type: 'text/plain; charset=utf-8', text: 'Ollama is running' });
    const head = await fetch(sim.url + '/', { method: 'HEAD' });
    assert.equal(head.headers.get('content-length'), '17');
    assert.deepEqual(await get(sim, '/nope'), { status: 404, type: 'text/plain; charset=utf-8', text: '404 page not found' });
    assert.deepEqual(await get(sim, '/api/chat'), { status: 405, type: 'text/plain; charset=utf-8', text: '405 method not allowed' });
    assert.equal((await get(sim, '/api/ps', 'HEAD')).status, 405);
    assert.equal((await get(sim, '/api/tags', 'HEAD')).status, 200);
    assert.equal((await get(sim, '/api/version')).text, '{"version":"0.12.6"}');
  });
});

describe('sim models and residency', () => {
  it('preloads with done_reason load, lists it in /api/ps, and unloads with keep_alive 0', async (t) => {
    const sim = await simFor(t);
    const load = await post(sim, '/api/chat', { model: 'llama3.2', stream: true });
    assert.equal(load.type, 'application/json; charset=utf-8'); // one object whatever stream says
    const body = JSON.parse(load.text);
    assert.deepEqual(Object.keys(body), ['model', 'created_at', 'message', 'done', 'done_reason']);
    assert.equal(body.done_reason, 'load');
    const ps = JSON.parse((await get(sim, '/api/ps')).text);
    assert.equal(ps.models.length, 1);
    assert.deepEqual(Object.keys(ps.models[0]), ['name', 'model', 'size', 'digest', 'details', 'expires_at', 'size_vram', 'context_length']);
    assert.equal(ps.models[0].name, 'llama3.2:latest');
    assert.equal(ps.models[0].size, ps.models[0].size_vram);
    assert.equal(ps.models[0].context_length, 4096);
    const unload = JSON.parse((await post(sim, '/api/generate', { model: 'llama3.2', keep_alive: 0 })).text);
    assert.equal(unload.done_reason, 'unload');
    assert.deepEqual(Object.keys(unload), ['model', 'created_at', 'response', 'done', 'done_reason']);
    assert.equal((await get(sim, '/api/ps')).text, '{"models":[]}');
    const stats = sim.stats();
    assert.deepEqual(stats.loads, { 'llama3.2:latest': 1 });
    assert.deepEqual(stats.unloads, { 'llama3.2:latest': 1 });
    assert.deepEqual(stats.requests, {}); // preload and unload are not requests
  });

  it('unloads an idle model when its keep_alive runs out, and keeps it with -1', async (t) => {
    const sim = await simFor(t);
    await post(sim, '/api/chat', CHAT('llama3.2', 'x', { stream: false, keep_alive: '1ms' }));
    await until(sim, (s) => s.loaded.length === 0);
    await post(sim, '/api/chat', CHAT('llama3.2', 'x', { stream: false, keep_alive: -1 }));
    const ps = JSON.parse((await get(sim, '/api/ps')).text);
    assert.ok(Date.parse(ps.models[0].expires_at) > Date.now() + 200 * 365 * 86_400_000);
    assert.deepEqual(sim.stats().unloads, {}); // expiry is neither an unload request nor an eviction
  });

  it('lists and describes models; empty lists are [] natively and null on /v1', async (t) => {
    const sim = await simFor(t);
    const tags = JSON.parse((await get(sim, '/api/tags')).text);
    assert.deepEqual(tags.models.map((m: { name: string }) => m.name), [
      'llama3.2:latest', 'qwen3:latest', 'mistral:latest', 'gemma3:latest', 'nomic-embed-text:latest', 'gpt-oss:120b-cloud',
    ]);
    assert.equal(tags.models[5].remote_model, 'gpt-oss:120b');
    assert.match(tags.models[0].digest, /^[0-9a-f]{64}$/);
    const show = JSON.parse((await post(sim, '/api/show', { model: 'qwen3' })).text);
    assert.deepEqual(show.capabilities, ['completion', 'tools', 'thinking']);
    assert.equal(show.model_info['qwen3.context_length'], 40960);
    assert.equal((await post(sim, '/api/show', { model: 'nope' })).text, `{"error":"model 'nope:latest' not found"}`);
    const v1 = JSON.parse((await get(sim, '/v1/models')).text);
    assert.deepEqual(v1.data[0], { id: 'llama3.2:latest', object: 'model', created: v1.data[0].created, owned_by: 'library' });
    assert.equal(JSON.parse((await get(sim, '/v1/models/llama3.2')).text).id, 'llama3.2');

    const empty = await simFor(t, { models: [] });
    assert.equal((await get(empty, '/api/tags')).text, '{"models":[]}');
    assert.equal((await get(empty, '/v1/models')).text, '{"object":"list","data":null}\n');
  });

  it('pulls with progress lines ending in success, and deletes', async (t) => {
    const sim = await simFor(t, { models: [] });
    const lines = ndjson((await post(sim, '/api/pull', { model: 'phi4' })).text);
    assert.deepEqual(lines.at(-1), { status: 'success' });
    assert.ok(lines.length > 2);
    assert.equal(JSON.parse((await get(sim, '/api/tags')).text).models[0].name, 'phi4:latest');
    const del = await post(sim, '/api/delete', { model: 'phi4' }, 'DELETE');
    assert.deepEqual([del.status, del.text], [200, '']);
    assert.equal((await post(sim, '/api/delete', { model: 'phi4' }, 'DELETE')).status, 404);
  });

  it('loads on every model switch when requests alternate A,B,A,B', async (t) => {
    const sim = await simFor(t);
    for (const model of ['llama3.2', 'mistral', 'llama3.2', 'mistral']) {
      assert.equal((await post(sim, '/api/chat', CHAT(model, 'x', { stream: false }))).status, 200);
    }
    const stats = JSON.parse((await get(sim, '/sim/stats')).text);
    assert.deepEqual(stats.loads, { 'llama3.2:latest': 2, 'mistral:latest': 2 });
    assert.deepEqual(stats.evictions, { 'llama3.2:latest': 2, 'mistral:latest': 1 });
    assert.deepEqual(stats.loadOrder, ['llama3.2:latest', 'mistral:latest', 'llama3.2:latest', 'mistral:latest']);
    assert.deepEqual(stats.requests, { 'llama3.2:latest': 2, 'mistral:latest': 2 });
    assert.deepEqual(stats.loaded, ['mistral:latest']);
  });

  it('serves the loaded model on the fast path, and keeps the embedding slot apart', async (t) => {
    const sim = await simFor(t);
    await post(sim, '/api/chat', CHAT('gemma3', 'a', { stream: false }));
    await post(sim, '/api/embed', { model: 'nomic-embed-text', input: 'a' });
    await post(sim, '/api/chat', CHAT('gemma3', 'b', { stream: false, options: { num_ctx: 4096 } })); // the default
    const stats = sim.stats();
    assert.deepEqual(stats.loads, { 'gemma3:latest': 1, 'nomic-embed-text:latest': 1 });
    assert.deepEqual(stats.evictions, {});
    assert.deepEqual(stats.loaded, ['gemma3:latest', 'nomic-embed-text:latest']);
  });

  it('reloads the same model when num_ctx differs', async (t) => {
    const sim = await simFor(t);
    await post(sim, '/api/chat', CHAT('llama3.2', 'a', { stream: false }));
    await post(sim, '/api/chat', CHAT('llama3.2', 'a', { stream: false, options: { num_ctx: 8192 } }));
    assert.deepEqual(sim.stats().loads, { 'llama3.2:latest': 2 });
    assert.equal(JSON.parse((await get(sim, '/api/ps')).text).models[0].context_length, 8192);
  });

  it('runs numParallel requests at once and queues the rest FIFO without limit', async (t) => {
    const sim = await simFor(t, { numParallel: 2, maxQueue: 0 });
    await post(sim, '/api/chat', { model: 'llama3.2' }); // preload: later requests take the fast path
    const stall = CHAT('llama3.2', 'x', { sim: { fault: 'stall', after: 1 } });
    const a = await openStream(sim, '/api/chat', stall);
    const b = await openStream(sim, '/api/chat', stall);
    await Promise.all([a.lines(1), b.lines(1)]);
    const third = post(sim, '/api/chat', CHAT('llama3.2', 'y', { stream: false })); // waits: no 503 on the fast path
    await until(sim, (s) => s.active === 3);
    assert.equal(sim.stats().maxConcurrent, 2);
    a.abort();
    assert.equal((await third).status, 200);
    b.abort();
    await until(sim, (s) => s.active === 0 && s.aborted === 2);
  });

  it('answers 503 busy when more than maxQueue requests wait for a load', async (t) => {
    const sim = await simFor(t, { maxQueue: 1 });
    const holder = await openStream(sim, '/api/chat', CHAT('llama3.2', 'x', { sim: { fault: 'stall', after: 1 } }));
    await holder.lines(1); // llama3.2 loaded and busy
    const second = post(sim, '/api/chat', CHAT('qwen3', 'x', { stream: false })); // dequeued: waits to evict
    await until(sim, (s) => s.active === 2);
    const third = post(sim, '/api/chat', CHAT('qwen3', 'y', { stream: false })); // fills the queue
    await until(sim, (s) => s.active === 3);
    const busy = await post(sim, '/api/chat', CHAT('mistral', 'z'));
    assert.equal(busy.status, 503);
    assert.equal(busy.type, 'application/json; charset=utf-8');
    assert.equal(busy.text.includes('  maximum'), true); // two spaces
    assert.equal(busy.text, JSON.stringify({ error: BUSY }));
    holder.abort(); // the eviction can proceed now
    assert.equal((await second).status, 200);
    assert.equal((await third).status, 200);
    const stats = sim.stats();
    assert.deepEqual(stats.loadOrder, ['llama3.2:latest', 'qwen3:latest']);
    assert.deepEqual(stats.evictions, { 'llama3.2:latest': 1 });
  });
});

describe('sim faults', () => {
  it('not_found and error_before answer before any chunk', async (t) => {
    const sim = await simFor(t);
    const nf = await post(sim, '/api/chat', CHAT('llama3.2', 'x', { sim: { fault: 'not_found' } }));
    assert.deepEqual([nf.status, nf.text], [404, `{"error":"model 'llama3.2' not found"}`]);
    const nfEmbed = await post(sim, '/api/embed', { model: 'nomic-embed-text', input: 'x', sim: { fault: 'not_found' } });
    assert.equal(JSON.parse(nfEmbed.text).error, 'model "nomic-embed-text" not found, try pulling it first');
    const eb = await post(sim, '/api/chat', CHAT('llama3.2', 'x', { sim: { fault: 'error_before', status: 429, message: 'slow down' } }));
    assert.deepEqual([eb.status, eb.type, eb.text], [429, 'application/json', '{"error":"slow down"}']);
    const v1 = await post(sim, '/v1/chat/completions', CHAT('llama3.2', 'x', { sim: { fault: 'error_before' } }));
    assert.equal(v1.status, 500);
    assert.deepEqual(JSON.parse(v1.text), { error: { message: 'simulated error', type: 'api_error', param: null, code: null } });
  });

  it('error_mid writes an error line after N chunks and no done chunk', async (t) => {
    const sim = await simFor(t);
    const r = await post(sim, '/api/chat', CHAT('llama3.2', 'x', { sim: { fault: 'error_mid', after: 3, message: 'runner died' } }));
    assert.equal(r.status, 200);
    const lines = ndjson(r.text);
    assert.equal(lines.length, 4);
    assert.deepEqual(lines[3], { error: 'runner died' });
    assert.ok(lines.every((l) => l['done'] !== true));
    const whole = await post(sim, '/api/chat', CHAT('llama3.2', 'x', { stream: false, sim: { fault: 'error_mid' } }));
    assert.deepEqual([whole.status, whole.text], [500, '{"error":"simulated error"}']);
  });

  it('error_mid on /v1 ends the SSE stream without [DONE]', async (t) => {
    const sim = await simFor(t);
    const r = await post(sim, '/v1/chat/completions', CHAT('llama3.2', 'x', { stream: true, sim: { fault: 'error_mid', after: 2 } }));
    const events = sseData(r.text);
    assert.equal(events.length, 3);
    assert.ok(!events.includes('[DONE]'));
    assert.deepEqual(JSON.parse(events[2]!).choices[0], { index: 0, delta: {}, finish_reason: null });
  });

  it('stall sends N chunks then nothing until the client leaves, which frees the slot', async (t) => {
    const sim = await simFor(t);
    const s = await openStream(sim, '/api/chat', CHAT('llama3.2', 'x', { sim: { fault: 'stall', after: 2 } }));
    const lines = await s.lines(2);
    assert.equal(lines.length, 2);
    assert.equal(sim.stats().active, 1);
    s.abort();
    await until(sim, (st) => st.aborted === 1 && st.active === 0);
    assert.equal((await post(sim, '/api/chat', CHAT('llama3.2', 'y', { stream: false }))).status, 200);
  });

  it('stall_before holds the slot without sending headers', async (t) => {
    const sim = await simFor(t);
    const controller = new AbortController();
    const pending = fetch(sim.url + '/api/chat', {
      method: 'POST',
      body: JSON.stringify(CHAT('llama3.2', 'x', { sim: { fault: 'stall_before' } })),
      signal: controller.signal,
    });
    await until(sim, (st) => st.active === 1 && st.loaded.length === 1);
    controller.abort();
    await assert.rejects(pending, { name: 'AbortError' });
    await until(sim, (st) => st.aborted === 1 && st.active === 0);
  });

  it('reset destroys the socket after N chunks', async (t) => {
    const sim = await simFor(t);
    const s = await openStream(sim, '/api/chat', CHAT('llama3.2', 'x', { sim: { fault: 'reset', after: 2 } }));
    const lines = await s.lines(2);
    assert.equal(JSON.parse(lines[1]!).done, false);
    await assert.rejects(s.rest());
    await until(sim, (st) => st.active === 0);
    assert.equal(sim.stats().aborted, 0); // the server reset it, the client did not leave
  });

  it('bad_line writes a non-JSON line after N chunks and carries on', async (t) => {
    const sim = await simFor(t);
    const r = await post(sim, '/api/chat', CHAT('llama3.2', 'x', { sim: { fault: 'bad_line', after: 1 } }));
    const lines = r.text.slice(0, -1).split('\n');
    assert.equal(lines.length, 14);
    assert.throws(() => JSON.parse(lines[1]!));
    assert.equal(JSON.parse(lines.at(-1)!).done, true);
  });

  it('delay_ms holds the slot before the first byte; unknown faults are a 400', async (t) => {
    const sim = await simFor(t);
    let answered = false;
    const controller = new AbortController();
    const slow = fetch(sim.url + '/api/chat', {
      method: 'POST',
      body: JSON.stringify(CHAT('llama3.2', 'x', { sim: { delay_ms: 600_000 } })),
      signal: controller.signal,
    }).finally(() => (answered = true));
    slow.catch(() => {});
    await until(sim, (st) => st.active === 1 && st.loaded.length === 1);
    assert.equal(answered, false);
    controller.abort();
    await until(sim, (st) => st.active === 0 && st.aborted === 1);
    assert.equal((await post(sim, '/api/chat', CHAT('llama3.2', 'x', { stream: false, sim: { delay_ms: 1 } }))).status, 200);
    const bad = await post(sim, '/api/chat', CHAT('llama3.2', 'x', { sim: { fault: 'meltdown' } }));
    assert.equal(bad.status, 400);
    assert.match(JSON.parse(bad.text).error, /unknown fault "meltdown"/);
  });
});

describe('sim split', () => {
  it("'random' cuts inside lines and inside UTF-8 sequences; the bytes are unchanged", async (t) => {
    const sim = await simFor(t, { seed: 42 });
    const body = CHAT('llama3.2', 'split me', { options: { num_predict: 100 } });
    const cut = await raw(sim, '/api/chat', { ...body, sim: { split: 'random' } });
    const whole = await raw(sim, '/api/chat', body);
    assert.ok(whole.chunks.every((c) => c.at(-1) === 10), 'split none writes whole lines');
    assert.ok(cut.chunks.length > whole.chunks.length);
    assert.ok(cut.chunks.some((c) => c.at(-1) !== 10), 'a cut inside a line');
    assert.ok(cut.chunks.some((c) => c[0]! >= 0x80 && c[0]! < 0xc0), 'a cut inside a multi-byte character');
    const content = (b: Buffer) => ndjson(b.toString('utf8')).map((l) => JSON.stringify(l['message']));
    assert.deepEqual(content(cut.body), content(whole.body)); // same bytes apart from timings
  });

  it('N cuts the body every N bytes, JSON bodies and SSE included', async (t) => {
    const sim = await simFor(t, { split: 7 });
    const r = await raw(sim, '/api/chat', CHAT('llama3.2'));
    assert.ok(r.chunks.every((c) => c.length <= 7));
    assert.equal(ndjson(r.body.toString()).length, 13);
    const sse = await raw(sim, '/v1/chat/completions', CHAT('llama3.2', 'x', { stream: true, sim: { split: 5 } }));
    assert.ok(sse.chunks.every((c) => c.length <= 5));
    assert.equal(sseData(sse.body.toString()).at(-1), '[DONE]');
  });
});

describe('sim /v1', () => {
  it('streams chat completions as SSE: role first, finish chunk, usage chunk, [DONE]', async (t) => {
    const sim = await simFor(t);
    const r = await post(sim, '/v1/chat/completions', CHAT('llama3.2', 'x', { stream: true, max_tokens: 4, stream_options: { include_usage: true } }));
    assert.equal(r.type, 'text/event-stream');
    const events = sseData(r.text);
    assert.equal(events.at(-1), '[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    assert.equal(chunks.length, 6); // 4 tokens, finish, usage
    assert.deepEqual(Object.keys(chunks[0]), ['id', 'object', 'created', 'model', 'system_fingerprint', 'choices']);
    assert.match(chunks[0].id, /^chatcmpl-\d+$/);
    assert.equal(chunks[0].choices[0].delta.role, 'assistant');
    assert.ok(chunks.slice(1).every((c) => c.choices.length === 0 || !('role' in c.choices[0].delta)));
    assert.deepEqual(chunks[4].choices[0], { index: 0, delta: {}, finish_reason: 'length' });
    assert.deepEqual(chunks[5].choices, []);
    assert.deepEqual(chunks[5].usage, { prompt_tokens: chunks[5].usage.prompt_tokens, completion_tokens: 4, total_tokens: chunks[5].usage.prompt_tokens + 4 });
    assert.ok(chunks.slice(0, 5).every((c) => !('usage' in c)));
  });

  it('answers non-stream chat completions with a trailing newline, tool calls as JSON strings', async (t) => {
    const sim = await simFor(t);
    const r = await post(sim, '/v1/chat/completions', CHAT('llama3.2', 'weather in Paris?', { tools: [WEATHER_TOOL] }));
    assert.equal(r.type, 'application/json');
    assert.ok(r.text.endsWith('}\n'));
    const body = JSON.parse(r.text);
    assert.equal(body.object, 'chat.completion');
    assert.equal(body.choices[0].finish_reason, 'tool_calls');
    const call = body.choices[0].message.tool_calls[0];
    assert.deepEqual(Object.keys(call), ['id', 'index', 'type', 'function']);
    assert.equal(call.function.arguments, '{"city":"Tokyo"}');
    const s = sseData((await post(sim, '/v1/chat/completions', CHAT('llama3.2', 'weather?', { tools: [WEATHER_TOOL], stream: true }))).text);
    assert.equal(JSON.parse(s.at(-2)!).choices[0].finish_reason, 'tool_calls');
  });

  it('serves completions and embeddings, and errors in the OpenAI shape', async (t) => {
    const sim = await simFor(t);
    const c = JSON.parse((await post(sim, '/v1/completions', { model: 'llama3.2', prompt: 'x', max_tokens: 3 })).text);
    assert.equal(c.object, 'text_completion');
    assert.equal(c.choices[0].finish_reason, 'length');
    const e = JSON.parse((await post(sim, '/v1/embeddings', { model: 'nomic-embed-text', input: ['a', 'b'] })).text);
    assert.equal(e.data.length, 2);
    assert.equal(e.data[1].index, 1);
    const norm = Math.hypot(...(e.data[0].embedding as number[]));
    assert.ok(Math.abs(norm - 1) < 1e-5);
    const nf = await post(sim, '/v1/chat/completions', CHAT('llama9'));
    assert.equal(nf.status, 404);
    assert.equal(nf.text, '{"error":{"message":"model \'llama9\' not found","type":"not_found_error","param":null,"code":null}}\n');
    const empty = await post(sim, '/v1/chat/completions', { model: 'llama3.2', messages: [] });
    assert.equal(JSON.parse(empty.text).error.type, 'invalid_request_error');
  });
});

describe('sim embeddings, stats and CLI', () => {
  it('embeds natively with normalised vectors; empty input only loads', async (t) => {
    const sim = await simFor(t);
    const r = JSON.parse((await post(sim, '/api/embed', { model: 'nomic-embed-text', input: 'hello' })).text);
    assert.deepEqual(Object.keys(r), ['model', 'embeddings', 'total_duration', 'load_duration', 'prompt_eval_count']);
    assert.equal(r.embeddings[0].length, 8);
    const legacy = JSON.parse((await post(sim, '/api/embeddings', { model: 'nomic-embed-text', prompt: 'hello' })).text);
    assert.deepEqual(legacy.embedding, r.embeddings[0]);
    const load = await post(sim, '/api/embed', { model: 'nomic-embed-text' });
    assert.equal(load.text, '{"model":"nomic-embed-text","embeddings":[]}');
    assert.deepEqual(sim.stats().requests, { 'nomic-embed-text:latest': 2 });
  });

  it('POST /sim/reset unloads everything and zeroes the counters', async (t) => {
    const sim = await simFor(t);
    await post(sim, '/api/chat', CHAT('llama3.2', 'x', { stream: false }));
    const after = JSON.parse((await post(sim, '/sim/reset', '')).text);
    assert.deepEqual(after.loaded, []);
    assert.deepEqual(after.loads, {});
    assert.equal((await get(sim, '/api/ps')).text, '{"models":[]}');
  });

  it('runSim prints its URL, serves, and exits 0 when stopped; bad flags exit 2', async () => {
    const stderr = new PassThrough();
    const stdout = new PassThrough();
    const stop = new AbortController();
    let said = '';
    const listening = new Promise<string>((resolve) =>
      stderr.on('data', (c: Buffer) => {
        said += c.toString();
        const m = /foreman sim listening on (http:\/\/\S+)\n/.exec(said);
        if (m) resolve(m[1]!);
      }),
    );
    const done = runSim(['--listen', '127.0.0.1:0', '--load-ms', '0', '--tokens-per-second', '0', '--models', 'a,b-embed'], { stdout, stderr }, stop.signal);
    const url = await listening;
    const tags = (await (await fetch(url + '/api/tags')).json()) as { models: Array<{ name: string }> };
    assert.deepEqual(tags.models.map((m) => m.name), ['a:latest', 'b-embed:latest']);
    stop.abort();
    assert.equal(await done, 0);

    let errors = '';
    const bad = new PassThrough();
    bad.on('data', (c: Buffer) => (errors += c.toString()));
    assert.equal(await runSim(['--load-ms', 'soon', '--split', 'x'], { stdout, stderr: bad }), 2);
    assert.match(errors, /--load-ms: expected a number >= 0, got 'soon'/);
    assert.match(errors, /--split/);
    assert.equal(await runSim(['--bogus'], { stdout, stderr: bad }), 2);
    let help = '';
    stdout.on('data', (c: Buffer) => (help += c.toString()));
    assert.equal(await runSim(['--help'], { stdout, stderr }), 0);
    assert.match(help, /--num-parallel/);
  });
});
