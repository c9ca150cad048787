// The coding-agent surfaces end to end (SPEC §7): /v1/messages, /v1/responses
// and /v1/audio/transcriptions through foreman in front of the simulator, on
// loopback: events relayed one per write and unchanged, foreman's own errors
// in each surface's shape, a failure mid-stream ending in that surface's error
// event, heartbeats while queued, and one drain-by-model queue for all of them.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, TOKEN, type Stack } from './support/stack.js';
import { rawRequest } from './support/raw-http.js';
import { until } from './support/until.js';
import { ArrivalMemory } from '../lib/http/arrival-memory.js';

type Json = Record<string, any>;

const WEATHER = { name: 'get_weather', description: 'Current weather', input_schema: { type: 'object', required: ['city'], properties: { city: { type: 'string' } } } };
const FN_WEATHER = { type: 'function', name: 'get_weather', description: 'Current weather', parameters: WEATHER.input_schema };

const message = (content: string, extra: Json = {}): Json => ({
  model: 'llama3.2', max_tokens: 1024, messages: [{ role: 'user', content }], ...extra,
});

interface Event {
  event: string;
  data: Json;
}

/** Parses `event: X\ndata: {…}\n\n` events, asserting the framing Ollama uses on these surfaces. */
function events(text: string): Event[] {
  assert.ok(text.endsWith('\n\n'), `SSE body must end with a blank line: ${JSON.stringify(text.slice(-60))}`);
  return text.slice(0, -2).split('\n\n').map((raw) => {
    const m = /^event: ([^\n]+)\ndata: ([^\n]+)$/.exec(raw);
    assert.ok(m, `bad SSE event: ${JSON.stringify(raw)}`);
    return { event: m[1]!, data: JSON.parse(m[2]!) };
  });
}

/** Ids and timestamps differ between two runs of one request; nothing else may. */
const stable = (text: string) =>
  text
    .replace(/(msg|req|resp|rs|fc)_[0-9a-f]+(_\d+)?/g, '$1_N')
    .replace(/"(created_at|completed_at)":\d+/g, '"$1":0');

function raw(stack: Stack, path: string, body: Json, headers: Record<string, string> = { 'x-api-key': TOKEN }) {
  return rawRequest(stack.url, { path, headers, body: JSON.stringify(body) });
}

const direct = async (stack: Stack, path: string, body: Json) =>
  (await fetch(stack.sim.url + path, { method: 'POST', body: JSON.stringify(body) })).text();

/** Each chunked-encoding frame foreman wrote is exactly one SSE event. */
function assertOneEventPerWrite(chunks: Buffer[]): void {
  for (const chunk of chunks) {
    const text = chunk.toString('utf8');
    assert.ok(/^event: /.test(text) && text.indexOf('\n\n') === text.length - 2, `a write must be one event: ${JSON.stringify(text)}`);
  }
}

/** A request foreman queues and the test can abandon; never rejects. */
function pending(stack: Stack, path: string, init: RequestInit & { json?: unknown }) {
  const controller = new AbortController();
  const done = stack.call(path, { ...init, signal: controller.signal }).then(
    (res) => res.text().then((text) => ({ status: res.status, text }), () => ({ status: res.status, text: 'aborted' })),
    () => ({ status: 0, text: 'aborted' }),
  );
  return { abort: () => controller.abort(), done };
}

/** Holds foreman's one running slot with a stream the simulator stalls. */
async function holdSlot(stack: Stack, model = 'mistral') {
  const held = pending(stack, '/v1/messages', { json: message('hold', { model, stream: true, sim: { fault: 'stall', after: 1 } }) });
  await until(() => stack.foreman.snapshot().running.length === 1 && stack.sim.stats().active === 1, 'the stalled job to reach upstream');
  return held;
}

function assertAnthropicError(body: Json, type: string): void {
  assert.equal(body.type, 'error');
  assert.equal(body.error.type, type);
  assert.equal(typeof body.error.message, 'string');
  assert.ok(body.error.message.length > 0);
}

describe('POST /v1/messages', () => {
  it('streams Anthropic events one per write, byte for byte what upstream sent, thinking block first', async (t) => {
    const stack = await startStack(t, { sim: { split: 'random', seed: 7 } });
    const body = message('tell me about queues', { model: 'qwen3', stream: true });
    const res = await raw(stack, '/v1/messages?beta=true', body);
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], 'text/event-stream');
    assert.match(res.headers['x-foreman-job-id'] ?? '', /^s_/);
    assertOneEventPerWrite(res.chunks);
    const text = res.body.toString('utf8');
    const evs = events(text);
    assert.deepEqual(evs.map((e) => e.event).filter((e, i, all) => e !== all[i - 1]), [
      'message_start', 'content_block_start', 'content_block_delta', 'content_block_stop',
      'content_block_start', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop',
    ]);
    assert.equal(evs[0]!.data.message.model, 'qwen3');
    assert.equal(evs[1]!.data.content_block.type, 'thinking');
    assert.equal(evs.find((e) => e.data.delta?.type === 'text_delta')!.data.index, 1);
    assert.equal(evs.at(-2)!.data.delta.stop_reason, 'end_turn');
    assert.equal(stable(text), stable(await direct(stack, '/v1/messages', body)));
  });

  it('answers a non-streamed message (stream defaults to false) with upstream\'s JSON', async (t) => {
    const stack = await startStack(t);
    const body = message('hello there');
    const res = await stack.call('/v1/messages', { json: body, headers: { 'x-api-key': TOKEN } });
    assert.equal(res.status, 200);
    const text = await res.text();
    const reply = JSON.parse(text) as Json;
    assert.equal(reply.type, 'message');
    assert.equal(reply.content[0].type, 'text');
    assert.equal(reply.stop_reason, 'end_turn');
    assert.equal(stable(text), stable(await direct(stack, '/v1/messages', body)));
  });

  it('relays a tool call: a tool_use block whose input arrives whole in one input_json_delta', async (t) => {
    const stack = await startStack(t, { sim: { split: 'random', seed: 3 } });
    const res = await raw(stack, '/v1/messages', message('what is the weather in Tokyo?', { stream: true, tools: [WEATHER] }));
    const evs = events(res.body.toString('utf8'));
    const start = evs.find((e) => e.event === 'content_block_start')!;
    assert.equal(start.data.content_block.type, 'tool_use');
    assert.equal(start.data.content_block.name, 'get_weather');
    assert.deepEqual(start.data.content_block.input, {});
    const deltas = evs.filter((e) => e.data.delta?.type === 'input_json_delta');
    assert.equal(deltas.length, 1);
    assert.deepEqual(JSON.parse(deltas[0]!.data.delta.partial_json), { city: 'Tokyo' });
    assert.equal(evs.at(-2)!.data.delta.stop_reason, 'tool_use');

    const whole = (await (await stack.call('/v1/messages', { json: message('weather in Oslo?', { tools: [WEATHER] }) })).json()) as Json;
    assert.equal(whole.stop_reason, 'tool_use');
    assert.deepEqual(whole.content.map((b: Json) => b.type), ['tool_use']);
    assert.equal(typeof whole.content[0].input.city, 'string');
  });

  it("answers foreman's own errors in Anthropic's shape and passes upstream's through", async (t) => {
    const stack = await startStack(t);
    const missing = await stack.call('/v1/messages', { json: { max_tokens: 5, messages: [{ role: 'user', content: 'x' }] } });
    assert.equal(missing.status, 400);
    assertAnthropicError((await missing.json()) as Json, 'invalid_request_error');
    const malformed = await stack.call('/v1/messages', { method: 'POST', body: '{"model":' });
    assert.equal(malformed.status, 400);
    assertAnthropicError((await malformed.json()) as Json, 'invalid_request_error');
    const unknown = await stack.call('/v1/messages', { json: message('hi', { model: 'llama9', stream: true }) });
    assert.equal(unknown.status, 404);
    const body = (await unknown.json()) as Json;
    assertAnthropicError(body, 'not_found_error');
    assert.match(body.error.message, /llama9/);
    const noMax = await stack.call('/v1/messages', { json: { model: 'llama3.2', messages: [{ role: 'user', content: 'x' }] } });
    assert.equal(noMax.status, 400, "upstream's own check");
    assert.equal(((await noMax.json()) as Json).error.message, 'max_tokens is required and must be positive');
  });

  it('passes fields Ollama ignores on this surface (options, keep_alive, format) instead of refusing them', async (t) => {
    const stack = await startStack(t);
    const odd = { options: 'x', keep_alive: true, format: 7 };
    const res = await stack.call('/v1/messages', { json: message('hi', odd) });
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as Json).type, 'message');
    const responses = await stack.call('/v1/responses', { json: { model: 'llama3.2', input: 'hi', ...odd } });
    assert.equal(responses.status, 200);
  });

  it('answers 503 overloaded_error in Anthropic\'s shape when the queue is full', async (t) => {
    const stack = await startStack(t, { config: { max_queue: 1 } });
    const held = await holdSlot(stack);
    const waiting = pending(stack, '/v1/messages', { json: message('one') });
    await until(() => stack.foreman.snapshot().totals.waiting === 1, 'one waiting job');
    const refused = await stack.call('/v1/messages', { json: message('two') });
    assert.equal(refused.status, 503);
    assert.ok(refused.headers.get('retry-after'));
    assertAnthropicError((await refused.json()) as Json, 'overloaded_error');
    held.abort();
    assert.equal((await waiting.done).status, 200);
  });

  it('ends a stream that fails mid-way with one Anthropic error event, so SDKs raise', async (t) => {
    const stack = await startStack(t, { sim: { split: 'random', seed: 5 } });
    for (const fault of ['error_mid', 'reset']) {
      const res = await raw(stack, '/v1/messages', message(`fault ${fault}`, { stream: true, sim: { fault, after: 3 } }));
      assert.equal(res.status, 200, fault);
      assertOneEventPerWrite(res.chunks);
      const evs = events(res.body.toString('utf8'));
      assert.equal(evs.at(-1)!.event, 'error', fault);
      assertAnthropicError(evs.at(-1)!.data, 'api_error');
      assert.ok(!evs.some((e) => e.event === 'message_stop'), fault);
      assert.equal(evs.filter((e) => e.event === 'error').length, 1);
      assert.equal(evs[0]!.event, 'message_start', `${fault}: what came before the failure came through`);
    }
  });

  it('keeps a waiting stream alive with Anthropic ping events, then relays the message', async (t) => {
    const stack = await startStack(t, { config: { stream_heartbeat_ms: 1 } });
    const held = await holdSlot(stack);
    const res = await stack.call('/v1/messages', { json: message('wait for it', { stream: true }), headers: { 'x-api-key': TOKEN } });
    assert.equal(res.status, 200, 'headers go out while the job still waits');
    assert.equal(res.headers.get('content-type'), 'text/event-stream');
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = decoder.decode((await reader.read()).value, { stream: true });
    assert.ok(text.startsWith('event: ping\ndata: {"type": "ping"}\n\n'), JSON.stringify(text));
    held.abort();
    for (let r = await reader.read(); !r.done; r = await reader.read()) text += decoder.decode(r.value, { stream: true });
    const evs = events(text).filter((e) => e.event !== 'ping');
    assert.equal(evs[0]!.event, 'message_start');
    assert.equal(evs.at(-1)!.event, 'message_stop');
    await held.done;
  });
});

describe('POST /v1/messages after heartbeats began', () => {
  it("ends with one error event typed from upstream's status when upstream then refuses (404 not_found_error)", async (t) => {
    const stack = await startStack(t, { config: { stream_heartbeat_ms: 1 } });
    const held = await holdSlot(stack);
    const res = await stack.call('/v1/messages', { json: message('hi', { model: 'llama9', stream: true }) });
    assert.equal(res.status, 200, 'the heartbeats had already sent 200');
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = decoder.decode((await reader.read()).value, { stream: true });
    held.abort();
    for (let r = await reader.read(); !r.done; r = await reader.read()) text += decoder.decode(r.value, { stream: true });
    const evs = events(text).filter((e) => e.event !== 'ping');
    assert.equal(evs.length, 1);
    assert.equal(evs[0]!.event, 'error');
    assertAnthropicError(evs[0]!.data, 'not_found_error');
    assert.match(evs[0]!.data.error.message, /llama9/);
    await held.done;
  });
});

describe('POST /v1/responses', () => {
  it('streams Responses events one per write, unchanged, ending in response.completed', async (t) => {
    const stack = await startStack(t, { sim: { split: 'random', seed: 13 } });
    const body = { model: 'qwen3', input: 'tell me about queues', stream: true };
    const res = await raw(stack, '/v1/responses', body, { authorization: `Bearer ${TOKEN}` });
    assert.equal(res.status, 200);
    assertOneEventPerWrite(res.chunks);
    const text = res.body.toString('utf8');
    const evs = events(text);
    assert.deepEqual(evs.slice(0, 2).map((e) => e.event), ['response.created', 'response.in_progress']);
    assert.ok(evs.some((e) => e.event === 'response.reasoning_summary_text.delta'));
    assert.ok(evs.some((e) => e.event === 'response.output_text.delta'));
    assert.equal(evs.at(-1)!.event, 'response.completed');
    assert.deepEqual(evs.map((e) => e.data.sequence_number), evs.map((_, i) => i));
    assert.equal(stable(text), stable(await direct(stack, '/v1/responses', body)));
  });

  it('relays a function call as a function_call item, streamed and not', async (t) => {
    const stack = await startStack(t);
    const body = { model: 'llama3.2', input: [{ role: 'user', content: 'weather in Tokyo?' }], tools: [FN_WEATHER] };
    const res = await raw(stack, '/v1/responses', { ...body, stream: true });
    const evs = events(res.body.toString('utf8'));
    const done = evs.find((e) => e.event === 'response.function_call_arguments.done')!;
    assert.deepEqual(JSON.parse(done.data.arguments), { city: 'Tokyo' });
    const completed = evs.at(-1)!.data.response;
    assert.deepEqual(completed.output.map((o: Json) => o.type), ['function_call']);
    const whole = (await (await stack.call('/v1/responses', { json: body })).json()) as Json;
    assert.equal(whole.object, 'response');
    assert.equal(whole.output[0].type, 'function_call');
    assert.equal(whole.output[0].name, 'get_weather');
  });

  it("answers errors in the OpenAI shape and ends a failing stream with a Responses error event", async (t) => {
    const stack = await startStack(t, { sim: { split: 'random', seed: 17 } });
    const missing = await stack.call('/v1/responses', { json: { input: 'x' } });
    assert.equal(missing.status, 400);
    const err = (await missing.json()) as Json;
    assert.equal(err.error.type, 'invalid_request_error');
    const res = await raw(stack, '/v1/responses', { model: 'llama3.2', input: 'x', stream: true, sim: { fault: 'error_mid', after: 2 } });
    assertOneEventPerWrite(res.chunks);
    const evs = events(res.body.toString('utf8'));
    assert.equal(evs.at(-1)!.event, 'error');
    assert.equal(evs.at(-1)!.data.type, 'error');
    assert.equal(typeof evs.at(-1)!.data.message, 'string');
    assert.equal(evs.at(-1)!.data.error.type, 'api_error');
    assert.ok(!evs.some((e) => e.event === 'response.completed'));
  });

  it('keeps a waiting stream alive with SSE comments', async (t) => {
    const stack = await startStack(t, { config: { stream_heartbeat_ms: 1 } });
    const held = await holdSlot(stack);
    const res = await stack.call('/v1/responses', { json: { model: 'llama3.2', input: 'wait', stream: true } });
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = decoder.decode((await reader.read()).value, { stream: true });
    assert.ok(text.startsWith(': '), JSON.stringify(text));
    held.abort();
    for (let r = await reader.read(); !r.done; r = await reader.read()) text += decoder.decode(r.value, { stream: true });
    const evs = events(text.split('\n\n').filter((e) => e !== '' && !e.startsWith(': ')).map((e) => e + '\n\n').join(''));
    assert.equal(evs.at(-1)!.event, 'response.completed');
    await held.done;
  });
});

describe('heartbeats for Codex', () => {
  it('sends Codex (originator codex_*) Responses keepalive events, which reset its idle timer, then the response', async (t) => {
    const stack = await startStack(t, { config: { stream_heartbeat_ms: 1 } });
    const held = await holdSlot(stack);
    const res = await stack.call('/v1/responses', {
      json: { model: 'llama3.2', input: 'wait', stream: true }, headers: { originator: 'codex_exec' },
    });
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = decoder.decode((await reader.read()).value, { stream: true });
    assert.ok(text.startsWith('event: keepalive\ndata: {"type":"keepalive","sequence_number":0}\n\n'), JSON.stringify(text));
    held.abort();
    for (let r = await reader.read(); !r.done; r = await reader.read()) text += decoder.decode(r.value, { stream: true });
    const evs = events(text).filter((e) => e.event !== 'keepalive');
    assert.equal(evs[0]!.event, 'response.created');
    assert.equal(evs.at(-1)!.event, 'response.completed');
    await held.done;
  });
});

describe('POST /v1/audio/transcriptions', () => {
  const form = (model: string, extra: Record<string, string> = {}) => {
    const fd = new FormData();
    fd.set('model', model);
    fd.set('file', new Blob([new Uint8Array([82, 73, 70, 70, 1, 2, 3, 4])]), 'clip.wav');
    for (const [k, v] of Object.entries(extra)) fd.set(k, v);
    return fd;
  };

  it('queues the multipart form and relays upstream\'s transcription, JSON or text', async (t) => {
    const stack = await startStack(t);
    const res = await stack.call('/v1/audio/transcriptions', { method: 'POST', body: form('llama3.2') });
    assert.equal(res.status, 200);
    const answer = (await res.json()) as Json;
    assert.deepEqual(Object.keys(answer), ['text']);
    assert.ok(answer.text.length > 0);
    const plain = await stack.call('/v1/audio/transcriptions', { method: 'POST', body: form('llama3.2', { response_format: 'text' }) });
    assert.equal(plain.headers.get('content-type'), 'text/plain');
    assert.equal(await plain.text(), answer.text);
    assert.equal(stack.sim.stats().requests['llama3.2:latest'], 2);
  });

  it('refuses a form without a model in the OpenAI shape, and passes upstream\'s 404', async (t) => {
    const stack = await startStack(t);
    const fd = new FormData();
    fd.set('file', new Blob([new Uint8Array([1])]), 'a.wav');
    const res = await stack.call('/v1/audio/transcriptions', { method: 'POST', body: fd });
    assert.equal(res.status, 400);
    assert.equal(((await res.json()) as Json).error.message, 'model is required');
    const unknown = await stack.call('/v1/audio/transcriptions', { method: 'POST', body: form('whisper9') });
    assert.equal(unknown.status, 404);
    assert.equal(((await unknown.json()) as Json).error.type, 'not_found_error');
    assert.deepEqual(stack.sim.stats().requests, {});
  });

  it('applies an alias inside the form', async (t) => {
    const stack = await startStack(t, { config: { aliases: [{ pattern: 'whisper-*', target: 'gemma3' }] } });
    const res = await stack.call('/v1/audio/transcriptions', { method: 'POST', body: form('whisper-1') });
    assert.equal(res.status, 200);
    assert.deepEqual(stack.sim.stats().requests, { 'gemma3:latest': 1 });
  });
});

describe('metrics of agent turns', () => {
  it('counts the tokens of streamed Anthropic and Responses answers', async (t) => {
    const stack = await startStack(t);
    const anthropic = events(await (await stack.call('/v1/messages', { json: message('count me', { stream: true }) })).text());
    const responses = events(await (await stack.call('/v1/responses', { json: { model: 'llama3.2', input: 'and me', stream: true } })).text());
    const expected = anthropic.at(-2)!.data.usage.output_tokens + responses.at(-1)!.data.response.usage.output_tokens;
    assert.ok(expected > 0);
    const text = await (await stack.call('/metrics')).text();
    const line = text.split('\n').find((l) => l.startsWith('foreman_tokens_generated_total{') && l.includes('llama3.2'));
    assert.ok(line, text);
    assert.equal(Number(line.slice(line.lastIndexOf(' ') + 1)), expected);
  });
});

describe('the agent surfaces in the queue', () => {
  it('groups every surface with native requests by model: two models interleaved load once each', async (t) => {
    const stack = await startStack(t, { config: { aliases: [{ pattern: 'claude-*', target: 'llama3.2' }] } });
    const held = await holdSlot(stack, 'mistral');
    const fd = new FormData();
    fd.set('model', 'gemma3');
    fd.set('file', new Blob([new Uint8Array([1, 2])]), 'a.wav');
    const jobs = [
      pending(stack, '/v1/messages?beta=true', { json: message('a', { model: 'claude-sonnet-4-5', stream: true }), headers: { 'x-api-key': TOKEN } }),
      pending(stack, '/v1/responses', { json: { model: 'gemma3', input: 'b', stream: true } }),
      pending(stack, '/api/chat', { json: { model: 'llama3.2', messages: [{ role: 'user', content: 'c' }], stream: false } }),
      pending(stack, '/v1/audio/transcriptions', { method: 'POST', body: fd }),
      pending(stack, '/v1/responses', { json: { model: 'llama3.2', input: 'd' } }),
      pending(stack, '/v1/messages', { json: message('e', { model: 'gemma3' }) }),
    ];
    await until(() => stack.foreman.snapshot().totals.waiting === jobs.length, 'every job to queue');
    const queue = (await (await stack.call('/queue')).json()) as Json;
    assert.deepEqual(queue.groups.map((g: Json) => [g.group, g.count]).sort(), [['gemma3:latest', 3], ['llama3.2:latest', 3]]);
    held.abort();
    for (const job of jobs) assert.equal((await job.done).status, 200);
    const stats = stack.sim.stats();
    assert.equal(stats.loads['llama3.2:latest'], 1);
    assert.equal(stats.loads['gemma3:latest'], 1);
    assert.deepEqual(stats.requests, { 'mistral:latest': 1, 'llama3.2:latest': 3, 'gemma3:latest': 3 });
  });
});

describe('a request sent again after its caller gave up in the queue', () => {
  it('queues at the place the first one had (an agent retrying after its own timeout)', async (t) => {
    const stack = await startStack(t);
    const held = await holdSlot(stack, 'mistral');
    const first = pending(stack, '/v1/messages', { json: message('turn', { model: 'gemma3', stream: true }) });
    await until(() => stack.foreman.snapshot().totals.waiting === 1, 'the turn to queue');
    const other = pending(stack, '/v1/responses', { json: { model: 'llama3.2', input: 'later work', stream: true } });
    await until(() => stack.foreman.snapshot().totals.waiting === 2, 'the later job to queue');
    first.abort();
    await first.done;
    await until(() => stack.foreman.snapshot().totals.waiting === 1, 'the abandoned turn to leave the queue');
    const retry = pending(stack, '/v1/messages', { json: message('turn', { model: 'gemma3', stream: true }) });
    await until(() => stack.foreman.snapshot().totals.waiting === 2, 'the retry to queue');
    held.abort();
    assert.equal((await retry.done).status, 200);
    assert.equal((await other.done).status, 200);
    assert.deepEqual(stack.sim.stats().loadOrder, ['mistral:latest', 'gemma3:latest', 'llama3.2:latest'], 'the retry ran before the later job');
  });

  it('remembers an arrival once, for a while, and only so many', () => {
    const memory = new ArrivalMemory(1000, 2);
    const key = (s: string) => ArrivalMemory.keyOf('ci', '/v1/messages', Buffer.from(s));
    assert.notEqual(key('a'), ArrivalMemory.keyOf('other-key', '/v1/messages', Buffer.from('a')));
    memory.remember(key('a'), 100, 500);
    assert.equal(memory.take(key('a'), 600), 100);
    assert.equal(memory.take(key('a'), 600), undefined, 'taken once');
    memory.remember(key('b'), 100, 500);
    assert.equal(memory.take(key('b'), 1500), undefined, 'expired');
    memory.remember(key('c'), 1, 2000);
    memory.remember(key('d'), 2, 2000);
    memory.remember(key('e'), 3, 2000);
    assert.equal(memory.size, 2);
    assert.equal(memory.take(key('c'), 2000), undefined, 'the oldest made room');
    assert.equal(memory.take(key('e'), 2000), 3);
  });
});
