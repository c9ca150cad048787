// Token auth as agents present it (Bearer or x-api-key, SPEC §8), unknown paths
// hidden from callers without a good token, model aliases applied before
// grouping, and /v1/messages/count_tokens answered by foreman (SPEC §7).

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, TOKEN } from './support/stack.js';
import { estimateInputTokens } from '../lib/token-estimate.js';
import { createAliasResolver } from '../lib/http/aliases.js';
import { multipartField, replaceMultipartField } from '../lib/http/multipart.js';
import { tokensOfFinalUnit } from '../lib/ops/foreman-metrics.js';

type Json = Record<string, any>;

const noAuth = (url: string, path: string, init: RequestInit = {}) => fetch(url + path, init);

describe('token auth', () => {
  it('accepts the token as x-api-key as well as Bearer, and refuses a wrong one either way', async (t) => {
    const stack = await startStack(t);
    const body = JSON.stringify({ model: 'llama3.2', prompt: 'hi', stream: false });
    const viaKey = await noAuth(stack.url, '/api/generate', { method: 'POST', body, headers: { 'x-api-key': TOKEN } });
    assert.equal(viaKey.status, 200);
    assert.equal(((await viaKey.json()) as Json).done, true);
    const viaBearer = await noAuth(stack.url, '/api/tags', { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(viaBearer.status, 200);
    const wrong: Record<string, string>[] = [{ 'x-api-key': 'wrong' }, { authorization: 'Bearer wrong' }, { authorization: TOKEN }];
    for (const headers of wrong) {
      const res = await noAuth(stack.url, '/api/tags', { headers });
      assert.equal(res.status, 401, JSON.stringify(headers));
      assert.equal(res.headers.get('www-authenticate'), 'Bearer');
      assert.deepEqual(await res.json(), { error: 'unauthorized' });
    }
  });

  it('answers 401 for an unknown path without a good token, 404 only with one', async (t) => {
    const stack = await startStack(t);
    for (const path of ['/nothing/here', '/v1/unknown', '/api']) {
      assert.equal((await noAuth(stack.url, path)).status, 401, path);
      assert.equal((await noAuth(stack.url, path, { headers: { 'x-api-key': TOKEN } })).status, 404, path);
    }
    // A known path with the wrong method says so only to a caller with a token.
    assert.equal((await noAuth(stack.url, '/v1/messages')).status, 401);
    assert.equal((await stack.call('/v1/messages')).status, 405);
  });

  it("renders foreman's 401 in each surface's shape: Anthropic's under /v1/messages, OpenAI's under /v1", async (t) => {
    const stack = await startStack(t);
    const anthropic = await noAuth(stack.url, '/v1/messages?beta=true', { method: 'POST', body: '{}' });
    assert.equal(anthropic.status, 401);
    const a = (await anthropic.json()) as Json;
    assert.equal(a.type, 'error');
    assert.deepEqual(a.error, { type: 'authentication_error', message: 'unauthorized' });
    assert.match(a.request_id, /^req_[0-9a-f]{24}$/);
    const responses = await noAuth(stack.url, '/v1/responses', { method: 'POST', body: '{}' });
    assert.equal(responses.status, 401);
    assert.equal(((await responses.json()) as Json).error.type, 'authentication_error');
  });
});

describe('POST /v1/messages/count_tokens', () => {
  it('answers the estimate at once without asking upstream', async (t) => {
    const stack = await startStack(t);
    const body = {
      model: 'claude-sonnet-4-5',
      system: 'You are terse.',
      messages: [{ role: 'user', content: 'What is the weather in Tokyo today, please?' }],
      tools: [{ name: 'get_weather', description: 'Weather', input_schema: { type: 'object', properties: { city: { type: 'string' } } } }],
    };
    const res = await stack.call('/v1/messages/count_tokens?beta=true', { json: body, headers: { 'x-api-key': TOKEN } });
    assert.equal(res.status, 200);
    const answer = (await res.json()) as Json;
    assert.deepEqual(Object.keys(answer), ['input_tokens']);
    assert.equal(answer.input_tokens, estimateInputTokens(body));
    assert.equal(stack.sim.stats().requests['claude-sonnet-4-5'] ?? 0, 0);
    assert.deepEqual(stack.foreman.snapshot().recent, []);
  });

  it('estimates like Ollama: bytes of system, roles, text and tool blocks over four, at least one', () => {
    // 'user' (4) + 'hello world!' (12) = 16 bytes -> 4 tokens
    assert.equal(estimateInputTokens({ messages: [{ role: 'user', content: 'hello world!' }] }), 4);
    // a system prompt as blocks counts only its text
    assert.equal(estimateInputTokens({ system: [{ type: 'text', text: '12345678', cache_control: { type: 'ephemeral' } }] }), 2);
    assert.equal(estimateInputTokens({ messages: [{ role: 'u', content: '' }] }), 1);
    assert.equal(estimateInputTokens({}), 0);
    // a tool_use block counts as Go re-marshals it: {"type":"tool_use","id":"t1","name":"f","input":{"a":"<"}}
    const marshalled = '{"type":"tool_use","id":"t1","name":"f","input":{"a":"\\u003c"}}';
    const block = { type: 'tool_use', id: 't1', name: 'f', input: { a: '<' }, cache_control: { type: 'ephemeral' } };
    assert.equal(estimateInputTokens({ messages: [{ role: 'assistant', content: [block] }] }), Math.floor((9 + marshalled.length) / 4));
  });

  it("refuses malformed JSON in Anthropic's error shape", async (t) => {
    const stack = await startStack(t);
    const res = await stack.call('/v1/messages/count_tokens', { method: 'POST', body: '{nope' });
    assert.equal(res.status, 400);
    const body = (await res.json()) as Json;
    assert.equal(body.type, 'error');
    assert.equal(body.error.type, 'invalid_request_error');
  });
});

describe('aliases', () => {
  it('maps names by glob, case-insensitively, first match winning', () => {
    const resolve = createAliasResolver([
      { pattern: 'claude-*-haiku*', target: 'llama3.2' },
      { pattern: 'claude-*', target: 'qwen3-coder:30b' },
      { pattern: 'gpt-4o', target: 'mistral' },
    ]);
    assert.equal(resolve('claude-3-5-haiku-20241022'), 'llama3.2');
    assert.equal(resolve('Claude-Sonnet-4-5'), 'qwen3-coder:30b');
    assert.equal(resolve('gpt-4o'), 'mistral');
    assert.equal(resolve('gpt-4o-mini'), null);
    assert.equal(resolve('llama3.2'), null);
  });

  it('sends and groups an aliased request as its target, next to native requests for that model', async (t) => {
    const stack = await startStack(t, { config: { aliases: [{ pattern: 'claude-*', target: 'llama3.2' }] } });
    const res = await stack.call('/api/chat', { json: { model: 'claude-opus-4', messages: [{ role: 'user', content: 'hi' }], stream: false } });
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as Json).model, 'llama3.2', 'upstream saw the target name');
    await (await stack.call('/api/generate', { json: { model: 'llama3.2', prompt: 'hi', stream: false } })).text();
    assert.deepEqual(stack.sim.stats().requests, { 'llama3.2:latest': 2 });
    assert.equal(stack.sim.stats().loads['llama3.2:latest'], 1);
    assert.ok(stack.foreman.snapshot().recent.every((r: Json) => r.model === 'llama3.2'));
  });
});

describe('aliases on async jobs', () => {
  it('records, groups and sends an aliased job as its target', async (t) => {
    const stack = await startStack(t, { config: { aliases: [{ pattern: 'gpt-*', target: 'llama3.2' }] } });
    const submitted = await stack.call('/jobs', { json: { model: 'gpt-5', prompt: 'hello' } });
    assert.equal(submitted.status, 202);
    const job = (await submitted.json()) as Json;
    assert.equal(job.model, 'llama3.2');
    const done = (await (await stack.call(`/jobs/${job.id}?wait=30`)).json()) as Json;
    assert.equal(done.state, 'completed');
    assert.deepEqual(stack.sim.stats().requests, { 'llama3.2:latest': 1 });
  });
});

describe('multipart fields', () => {
  const boundary = 'XyZ';
  const form = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-x\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\n\u0000\u0001RIFF\r\n` +
      `--${boundary}--\r\n`,
  );
  const type = `multipart/form-data; boundary=${boundary}`;

  it('reads a text field and replaces it, leaving every other byte alone', () => {
    assert.equal(multipartField(form, type, 'model'), 'whisper-x');
    assert.equal(multipartField(form, type, 'language'), undefined);
    const replaced = replaceMultipartField(form, type, 'model', 'gemma3');
    assert.equal(multipartField(replaced, type, 'model'), 'gemma3');
    assert.equal(replaced.toString('latin1').replace('gemma3', 'whisper-x'), form.toString('latin1'));
  });

  it('refuses a body that is not multipart', () => {
    assert.throws(() => multipartField(form, 'application/json', 'model'), /multipart/);
  });
});

describe('token counts of agent answers', () => {
  it('reads output_tokens from a Responses completion and an Anthropic message, not max_output_tokens', () => {
    const completed = 'event: response.completed\ndata: {"response":{"max_output_tokens":null,"usage":{"input_tokens":9,"output_tokens":12}}}\n\n';
    assert.equal(tokensOfFinalUnit(Buffer.from(completed)), 12);
    assert.equal(tokensOfFinalUnit(Buffer.from('{"type":"message","usage":{"input_tokens":3,"output_tokens":7}}\n')), 7);
    assert.equal(tokensOfFinalUnit(Buffer.from('event: message_stop\ndata: {"type":"message_stop"}\n\n')), null);
  });
});
