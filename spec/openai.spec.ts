// The /v1 surface end to end: foreman in front of the simulator on loopback,
// SSE re-chunked one event per write, the queue shared with native requests,
// and every error foreman itself answers in the OpenAI shape (SPEC §7, ADR 0009).

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { startStack, TOKEN, type Stack } from './support/stack.js';
import { rawRequest } from './support/raw-http.js';
import { until } from './support/until.js';

type Json = Record<string, any>;

const json = async (res: Response): Promise<Json> => (await res.json()) as Json;

const chat = (content: string, extra: Json = {}): Json => ({
  model: 'llama3.2', messages: [{ role: 'user', content }], ...extra,
});

const WEATHER_TOOL = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather for a city',
    parameters: { type: 'object', required: ['city'], properties: { city: { type: 'string' } } },
  },
};

/** The data of every event, asserting the exact `data: X\n\n` framing Ollama's /v1 uses. */
function sseData(text: string): string[] {
  assert.ok(text.endsWith('\n\n'), `SSE body must end with a blank line: ${JSON.stringify(text.slice(-60))}`);
  return text.slice(0, -2).split('\n\n').map((event) => {
    assert.ok(event.startsWith('data: ') && !event.includes('\n'), `bad SSE event: ${JSON.stringify(event)}`);
    return event.slice(6);
  });
}

/** Ids and timestamps differ between two runs of the same request; everything else must not. */
const stable = (text: string) => text.replace(/"id":"(chatcmpl|cmpl)-\d+"/g, '"id":"$1-N"').replace(/"created":\d+/g, '"created":0');

/** A request through foreman on a raw socket, so each chunked-encoding frame is one write foreman made. */
function rawV1(stack: Stack, path: string, body: Json, headers: Record<string, string> = {}) {
  return rawRequest(stack.url, { path, headers: { authorization: `Bearer ${TOKEN}`, ...headers }, body: JSON.stringify(body) });
}

async function direct(stack: Stack, path: string, body: Json): Promise<Response> {
  return fetch(stack.sim.url + path, { method: 'POST', body: JSON.stringify(body) });
}

/** A request that foreman queues and that the test can abandon; never rejects. */
function pending(stack: Stack, path: string, body: Json) {
  const controller = new AbortController();
  const done = stack.call(path, { json: body, signal: controller.signal }).then(
    (res) => res.text().then((text) => ({ status: res.status, text }), () => ({ status: res.status, text: 'aborted' })),
    () => ({ status: 0, text: 'aborted' }),
  );
  return { abort: () => controller.abort(), done };
}

/** Holds foreman's one running slot with a request the simulator stalls. */
async function holdSlot(stack: Stack, model = 'mistral') {
  const held = pending(stack, '/v1/chat/completions', chat('hold', { model, stream: true, sim: { fault: 'stall', after: 1 } }));
  await until(() => stack.foreman.snapshot().running.length === 1 && stack.sim.stats().active === 1, 'the stalled job to reach upstream');
  return held;
}

function assertOpenAiError(body: Json, status: number, type: string): void {
  assert.deepEqual(Object.keys(body), ['error']);
  assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message', 'param', 'type']);
  assert.equal(typeof body.error.message, 'string', `status ${status}`);
  assert.ok(body.error.message.length > 0);
  assert.equal(body.error.type, type, `status ${status}`);
  assert.equal(body.error.param, null);
}

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('POST /v1/chat/completions', () => {
  it('streams SSE with one whole event per write, byte for byte what the simulator sends, ending in [DONE]', async (t) => {
    const stack = await startStack(t, { sim: { split: 'random', seed: 11 } });
    const body = chat('tell me about queues', { stream: true });
    const res = await rawV1(stack, '/v1/chat/completions', body);
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], 'text/event-stream');
    assert.match(res.headers['x-foreman-job-id'] ?? '', /^s_/);
    assert.match(res.headers['x-foreman-queue-ms'] ?? '', /^\d+$/);
    assert.ok(res.chunks.length > 3);
    for (const chunk of res.chunks) {
      const text = chunk.toString('utf8');
      assert.ok(text.startsWith('data: ') && text.indexOf('\n\n') === text.length - 2, `a write must be one event: ${JSON.stringify(text)}`);
    }
    const events = sseData(res.body.toString('utf8'));
    assert.equal(events.at(-1), '[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.model === 'llama3.2'));
    assert.equal(chunks[0].choices[0].delta.role, 'assistant');
    assert.equal(chunks.at(-1).choices[0].finish_reason, 'stop');

    const straight = await (await direct(stack, '/v1/chat/completions', body)).text();
    assert.equal(stable(res.body.toString('utf8')), stable(straight));
  });

  it('answers a non-streamed request (stream defaults to false) with upstream\'s JSON unchanged', async (t) => {
    const stack = await startStack(t);
    const body = chat('hello there');
    const res = await stack.call('/v1/chat/completions', { json: body });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/json');
    const text = await res.text();
    assert.ok(text.endsWith('}\n'));
    const reply = JSON.parse(text);
    assert.equal(reply.object, 'chat.completion');
    assert.equal(reply.choices[0].finish_reason, 'stop');
    assert.equal(typeof reply.usage.total_tokens, 'number');
    assert.equal(stable(text), stable(await (await direct(stack, '/v1/chat/completions', body)).text()));
  });

  it('passes tool-call deltas through intact: arguments a JSON string, finish_reason tool_calls', async (t) => {
    const stack = await startStack(t, { sim: { split: 'random', seed: 3 } });
    const body = chat('what is the weather in Tokyo?', { stream: true, tools: [WEATHER_TOOL] });
    const res = await stack.call('/v1/chat/completions', { json: body });
    const text = await res.text();
    const chunks = sseData(text).slice(0, -1).map((e) => JSON.parse(e));
    const calls = chunks.flatMap((c) => c.choices[0].delta.tool_calls ?? []);
    assert.equal(calls.length, 1);
    assert.equal(calls[0].type, 'function');
    assert.equal(calls[0].function.name, 'get_weather');
    assert.equal(typeof calls[0].function.arguments, 'string');
    assert.equal(typeof JSON.parse(calls[0].function.arguments).city, 'string');
    assert.equal(chunks.at(-1).choices[0].finish_reason, 'tool_calls');
    assert.equal(stable(text), stable(await (await direct(stack, '/v1/chat/completions', body)).text()));
  });

  it('passes the usage chunk (choices: []) before [DONE] with stream_options.include_usage', async (t) => {
    const stack = await startStack(t);
    const res = await stack.call('/v1/chat/completions', { json: chat('count me', { stream: true, stream_options: { include_usage: true } }) });
    const events = sseData(await res.text());
    assert.equal(events.at(-1), '[DONE]');
    const usage = JSON.parse(events.at(-2)!);
    assert.deepEqual(usage.choices, []);
    assert.equal(usage.usage.total_tokens, usage.usage.prompt_tokens + usage.usage.completion_tokens);
    assert.ok(events.slice(0, -2).every((e) => !('usage' in JSON.parse(e))), 'usage only on the usage chunk');
  });

  it('ends with one error event and no [DONE] when upstream fails mid-stream', async (t) => {
    const stack = await startStack(t, { sim: { split: 'random', seed: 5 } });
    for (const fault of ['error_mid', 'reset']) {
      const res = await stack.call('/v1/chat/completions', { json: chat(`fault ${fault}`, { stream: true, sim: { fault, after: 2 } }) });
      assert.equal(res.status, 200, fault);
      const events = sseData(await res.text());
      assert.ok(!events.includes('[DONE]'), fault);
      const errors = events.map((e) => JSON.parse(e)).filter((e) => 'error' in e);
      assert.equal(errors.length, 1, fault);
      assert.equal(events.at(-1), JSON.stringify(errors[0]), `${fault}: the error event is the last`);
      assertOpenAiError(errors[0], 502, 'api_error');
      assert.ok(events.length >= 3, `${fault}: the chunks before the failure came through`);
    }
  });

  it("passes upstream's own error status and body through, e.g. 404 for an unknown model", async (t) => {
    const stack = await startStack(t);
    const res = await stack.call('/v1/chat/completions', { json: chat('hi', { model: 'llama9' }) });
    assert.equal(res.status, 404);
    const body = await json(res);
    assertOpenAiError(body, 404, 'not_found_error');
    assert.match(body.error.message, /llama9/);
  });
});

describe('POST /v1/completions', () => {
  it('streams SSE one event per write, equal to the simulator\'s own stream', async (t) => {
    const stack = await startStack(t, { sim: { split: 'random', seed: 23 } });
    const body = { model: 'llama3.2', prompt: 'Once upon a time', stream: true, stream_options: { include_usage: true } };
    const res = await rawV1(stack, '/v1/completions', body);
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], 'text/event-stream');
    for (const chunk of res.chunks) assert.equal(sseData(chunk.toString('utf8')).length, 1);
    const events = sseData(res.body.toString('utf8'));
    assert.equal(events.at(-1), '[DONE]');
    assert.ok(events.slice(0, -1).every((e) => JSON.parse(e).object === 'text_completion'));
    assert.deepEqual(JSON.parse(events.at(-2)!).choices, []);
    assert.equal(stable(res.body.toString('utf8')), stable(await (await direct(stack, '/v1/completions', body)).text()));
  });

  it('answers a non-streamed completion with upstream\'s JSON', async (t) => {
    const stack = await startStack(t);
    const body = { model: 'llama3.2', prompt: 'Once upon a time', max_tokens: 5 };
    const res = await stack.call('/v1/completions', { json: body });
    assert.equal(res.status, 200);
    const text = await res.text();
    const reply = JSON.parse(text);
    assert.equal(reply.object, 'text_completion');
    assert.equal(reply.choices[0].finish_reason, 'length');
    assert.equal(stable(text), stable(await (await direct(stack, '/v1/completions', body)).text()));
  });
});

describe('/v1 models and embeddings', () => {
  it('proxies GET /v1/models and /v1/models/:id, and /v1/embeddings bypasses the queue', async (t) => {
    const stack = await startStack(t);
    const held = await holdSlot(stack);
    const models = await stack.call('/v1/models');
    assert.equal(models.status, 200);
    assert.deepEqual(await json(models), await json(await fetch(stack.sim.url + '/v1/models')));
    const one = await stack.call('/v1/models/llama3.2:latest');
    assert.equal(one.status, 200);
    assert.equal((await json(one)).id, 'llama3.2:latest');
    const embed = await stack.call('/v1/embeddings', { json: { model: 'nomic-embed-text', input: ['a', 'b'] } });
    assert.equal(embed.status, 200, 'answered while the only slot is held');
    const vectors = await json(embed);
    assert.equal(vectors.object, 'list');
    assert.equal(vectors.data.length, 2);
    held.abort();
    await held.done;
  });
});

describe('/v1 errors foreman answers itself', () => {
  it('401 without or with a wrong token, with WWW-Authenticate', async (t) => {
    const stack = await startStack(t);
    for (const headers of [{}, { authorization: 'Bearer wrong' }] as Array<Record<string, string>>) {
      const res = await fetch(stack.url + '/v1/chat/completions', { method: 'POST', headers, body: JSON.stringify(chat('hi')) });
      assert.equal(res.status, 401);
      assert.equal(res.headers.get('www-authenticate'), 'Bearer');
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
      assertOpenAiError(await json(res), 401, 'authentication_error');
    }
    assert.equal((await fetch(stack.url + '/v1/models')).status, 401);
  });

  it('400 for malformed JSON, a missing model or a mistyped field; 405 for a wrong method', async (t) => {
    const stack = await startStack(t);
    const malformed = await stack.call('/v1/chat/completions', { method: 'POST', body: '{"model": ' });
    assert.equal(malformed.status, 400);
    assertOpenAiError(await json(malformed), 400, 'invalid_request_error');
    const noModel = await stack.call('/v1/chat/completions', { json: { messages: [{ role: 'user', content: 'hi' }] } });
    assert.equal(noModel.status, 400);
    const body = await json(noModel);
    assertOpenAiError(body, 400, 'invalid_request_error');
    assert.equal(body.error.message, 'model is required');
    const mistyped = await stack.call('/v1/completions', { json: { model: 'llama3.2', prompt: 'x', stream: 'yes' } });
    assert.equal(mistyped.status, 400);
    assertOpenAiError(await json(mistyped), 400, 'invalid_request_error');
    const badEmbed = await stack.call('/v1/embeddings', { method: 'POST', body: 'nope' });
    assert.equal(badEmbed.status, 400);
    assertOpenAiError(await json(badEmbed), 400, 'invalid_request_error');
    const wrongMethod = await stack.call('/v1/chat/completions');
    assert.equal(wrongMethod.status, 405);
    assertOpenAiError(await json(wrongMethod), 405, 'api_error');
    const unknown = await stack.call('/v1/files', { json: chat('hi') });
    assert.equal(unknown.status, 404);
    assertOpenAiError(await json(unknown), 404, 'not_found_error');
    assert.deepEqual(stack.sim.stats().requests, {}, 'none of them reached upstream');
  });

  it('413 for a body over max_body', async (t) => {
    const stack = await startStack(t, { config: { max_body: 1024 } });
    const res = await stack.call('/v1/chat/completions', { json: chat('x'.repeat(5000)) });
    assert.equal(res.status, 413);
    const body = await json(res);
    assertOpenAiError(body, 413, 'invalid_request_error');
    assert.match(body.error.message, /max_body/);
  });

  it('503 busy beyond max_queue, with Retry-After', async (t) => {
    const stack = await startStack(t, { config: { max_queue: 1 } });
    const held = await holdSlot(stack);
    const waiting = pending(stack, '/v1/chat/completions', chat('second'));
    await until(() => stack.foreman.snapshot().totals.waiting === 1, 'the second request to queue');
    const res = await stack.call('/v1/chat/completions', { json: chat('third') });
    assert.equal(res.status, 503);
    assert.ok(res.headers.get('retry-after'));
    assertOpenAiError(await json(res), 503, 'api_error');
    waiting.abort();
    held.abort();
    await Promise.all([waiting.done, held.done]);
  });

  it('502 when upstream is unreachable', async (t) => {
    const stack = await startStack(t, { config: { upstream: `http://127.0.0.1:${await closedPort()}` } });
    for (const [path, payload] of [['/v1/chat/completions', chat('hi', { stream: true })], ['/v1/completions', { model: 'llama3.2', prompt: 'x' }]] as const) {
      const res = await stack.call(path, { json: payload });
      assert.equal(res.status, 502, path);
      const body = await json(res);
      assertOpenAiError(body, 502, 'api_error');
      assert.match(body.error.message, /^upstream unreachable: /);
    }
    const models = await stack.call('/v1/models');
    assert.equal(models.status, 502);
    assertOpenAiError(await json(models), 502, 'api_error');
  });
});

describe('/v1 through the queue', () => {
  it('aborts the upstream request when the client leaves while the job works, and runs the next job', async (t) => {
    const stack = await startStack(t);
    const controller = new AbortController();
    const res = await stack.call('/v1/chat/completions', {
      json: chat('leave early', { stream: true, sim: { fault: 'stall', after: 2 } }), signal: controller.signal,
    });
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    assert.equal((await reader.read()).done, false, 'the first event arrived');
    controller.abort();
    await until(() => stack.sim.stats().aborted === 1, 'upstream to see the abort');
    const next = await stack.call('/v1/chat/completions', { json: chat('next one') });
    assert.equal(next.status, 200);
    assert.equal((await json(next)).object, 'chat.completion');
    assert.equal(stack.foreman.snapshot().totals.cancelled, 1);
  });

  it('drops a queued job whose client leaves: it never reaches upstream', async (t) => {
    const stack = await startStack(t);
    const held = await holdSlot(stack);
    const before = { ...stack.sim.stats().requests };
    const queued = pending(stack, '/v1/chat/completions', chat('never sent', { stream: true }));
    await until(() => stack.foreman.snapshot().totals.waiting === 1, 'the request to queue');
    queued.abort();
    await until(() => stack.foreman.snapshot().totals.waiting === 0, 'the queued job to leave');
    held.abort();
    await Promise.all([queued.done, held.done]);
    await until(() => stack.foreman.snapshot().running.length === 0, 'the held job to end');
    assert.deepEqual(stack.sim.stats().requests, before);
    const after = await stack.call('/v1/chat/completions', { json: chat('afterwards') });
    assert.equal(after.status, 200);
    await after.text();
    assert.equal(stack.sim.stats().requests['llama3.2:latest'], (before['llama3.2:latest'] ?? 0) + 1);
  });

  it('keeps a waiting stream alive with SSE comments, then relays the events', async (t) => {
    const stack = await startStack(t, { config: { stream_heartbeat_ms: 1 } });
    const held = await holdSlot(stack);
    const res = await stack.call('/v1/chat/completions', { json: chat('wait for it', { stream: true }) });
    assert.equal(res.status, 200, 'headers go out while the job still waits');
    assert.equal(res.headers.get('content-type'), 'text/event-stream');
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = decoder.decode((await reader.read()).value, { stream: true });
    assert.ok(text.startsWith(': '), `a comment, which SSE clients skip: ${JSON.stringify(text)}`);
    held.abort();
    for (let r = await reader.read(); !r.done; r = await reader.read()) text += decoder.decode(r.value, { stream: true });
    const events = text.split('\n\n').filter((e) => e !== '' && !e.startsWith(': ')).map((e) => e + '\n\n').join('');
    const data = sseData(events);
    assert.equal(data.at(-1), '[DONE]');
    assert.equal(JSON.parse(data[0]!).object, 'chat.completion.chunk');
    await held.done;
  });

  it('puts a native /api/chat and a /v1/chat/completions for the same model in one group', async (t) => {
    const stack = await startStack(t);
    const held = await holdSlot(stack, 'mistral');
    const native = pending(stack, '/api/chat', chat('native', { stream: false }));
    const openai = pending(stack, '/v1/chat/completions', chat('openai', { model: 'llama3.2:latest', options: { num_ctx: 8192 } }));
    await until(() => stack.foreman.snapshot().totals.waiting === 2, 'both requests to queue');
    const queue = await json(await stack.call('/queue'));
    assert.deepEqual(queue.groups.map((g: Json) => [g.group, g.count]), [['llama3.2:latest', 2]]);
    held.abort();
    const [a, b] = await Promise.all([native.done, openai.done]);
    assert.equal(a.status, 200);
    assert.equal(b.status, 200);
    assert.equal(JSON.parse(b.text).object, 'chat.completion');
    await held.done;
  });
});
