// The simulator's agent surfaces on their own (SPEC §11, ollama-wire.md §8):
// /v1/messages, /v1/responses and /v1/audio/transcriptions as Ollama's
// middleware prints them, with its checks and error texts.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { post, simFor } from './support/sim-client.js';
import { estimateInputTokens } from '../lib/token-estimate.js';

type Json = Record<string, any>;

const sse = (text: string) =>
  text.slice(0, -2).split('\n\n').map((raw) => {
    const [eventLine, dataLine] = raw.split('\n');
    return { event: eventLine!.slice('event: '.length), data: JSON.parse(dataLine!.slice('data: '.length)) as Json };
  });

describe('sim /v1/messages', () => {
  it("checks what Ollama's middleware checks, with its texts, in Anthropic's error shape", async (t) => {
    const sim = await simFor(t);
    const cases: [Json, number, string][] = [
      [{ max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }, 400, 'model is required'],
      [{ model: 'llama3.2', messages: [{ role: 'user', content: 'x' }] }, 400, 'max_tokens is required and must be positive'],
      [{ model: 'llama3.2', max_tokens: 5, messages: [] }, 400, 'messages is required'],
      [{ model: 'llama3.2', max_tokens: 5, messages: [{ role: 'assistant', content: [{ type: 'tool_use', name: 'f' }] }] }, 400, "tool_use block missing required 'id' field"],
      [{ model: 'llama9', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }, 404, "model 'llama9' not found"],
    ];
    for (const [body, status, message] of cases) {
      const reply = await post(sim, '/v1/messages', body);
      assert.equal(reply.status, status, message);
      assert.equal(reply.type, 'application/json');
      const err = JSON.parse(reply.text) as Json;
      assert.equal(err.type, 'error');
      assert.equal(err.error.message, message);
      assert.equal(err.error.type, status === 404 ? 'not_found_error' : 'invalid_request_error');
      assert.match(err.request_id, /^req_[0-9a-f]{24}$/);
    }
  });

  it('starts with the estimated input tokens and ends with the real counts; max_tokens below the natural length stops at max_tokens', async (t) => {
    const sim = await simFor(t);
    const body = { model: 'llama3.2', max_tokens: 3, stream: true, system: 'Be brief.', messages: [{ role: 'user', content: 'Why is the sky blue at noon?' }] };
    const evs = sse((await post(sim, '/v1/messages', body)).text);
    assert.equal(evs[0]!.data.message.usage.input_tokens, estimateInputTokens(body));
    assert.ok(!('stop_reason' in evs[0]!.data.message), 'message_start leaves stop_reason out');
    const delta = evs.at(-2)!.data;
    assert.equal(delta.delta.stop_reason, 'max_tokens');
    assert.equal(delta.usage.output_tokens, 3);
    assert.equal(evs.filter((e) => e.data.delta?.type === 'text_delta').length, 3);
    assert.ok(!evs.some((e) => e.event === 'ping'), 'Ollama sends no pings');
  });

  it('ignores thinking asked of a model that cannot think, and thinks when asked on one that can', async (t) => {
    const sim = await simFor(t);
    const ask = (model: string) => ({ model, max_tokens: 100, thinking: { type: 'enabled', budget_tokens: 50 }, messages: [{ role: 'user', content: 'x' }] });
    const plain = JSON.parse((await post(sim, '/v1/messages', ask('llama3.2'))).text) as Json;
    assert.deepEqual(plain.content.map((b: Json) => b.type), ['text']);
    const thinker = JSON.parse((await post(sim, '/v1/messages', ask('qwen3'))).text) as Json;
    assert.deepEqual(thinker.content.map((b: Json) => b.type), ['thinking', 'text']);
    assert.ok(!('signature' in thinker.content[0]), 'thinking blocks carry no signature');
  });

  it('converts a user turn of tool results to tool messages: no tool call is triggered again', async (t) => {
    const sim = await simFor(t);
    const tools = [{ name: 'get_weather', input_schema: { type: 'object', properties: { city: { type: 'string' } } } }];
    const messages = [
      { role: 'user', content: 'weather in Tokyo?' },
      { role: 'assistant', content: [{ type: 'tool_use', id: 'call_1', name: 'get_weather', input: { city: 'Tokyo' } }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'call_1', content: 'sunny' }] },
    ];
    const reply = JSON.parse((await post(sim, '/v1/messages', { model: 'llama3.2', max_tokens: 100, tools, messages })).text) as Json;
    assert.equal(reply.stop_reason, 'end_turn');
    assert.equal(reply.content[0].type, 'text');
  });
});

describe('sim max_tokens on /v1', () => {
  it('is a cap: 32000 (what agents send) gives the natural length and stop, a small one cuts with length', async (t) => {
    const sim = await simFor(t, { defaultTokens: 6 });
    const ask = (max_tokens: number) => post(sim, '/v1/chat/completions', { model: 'llama3.2', max_tokens, messages: [{ role: 'user', content: 'x' }] });
    const big = JSON.parse((await ask(32000)).text) as Json;
    assert.equal(big.choices[0].finish_reason, 'stop');
    assert.equal(big.usage.completion_tokens, 6);
    const small = JSON.parse((await ask(2)).text) as Json;
    assert.equal(small.choices[0].finish_reason, 'length');
    assert.equal(small.usage.completion_tokens, 2);
  });
});

describe('sim /v1/responses', () => {
  it('checks reasoning effort and input items as Ollama does', async (t) => {
    const sim = await simFor(t);
    const bad = await post(sim, '/v1/responses', { model: 'llama3.2', input: 'x', reasoning: { effort: 'huge' } });
    assert.equal(bad.status, 400);
    assert.match((JSON.parse(bad.text) as Json).error.message, /^invalid reasoning value: "huge"/);
    const noThink = await post(sim, '/v1/responses', { model: 'llama3.2', input: 'x', reasoning: { effort: 'high' } });
    assert.equal(noThink.status, 400);
    assert.equal((JSON.parse(noThink.text) as Json).error.message, '"llama3.2" does not support thinking');
    const item = await post(sim, '/v1/responses', { model: 'llama3.2', input: [{ type: 'bogus' }] });
    assert.equal(item.status, 400);
    assert.equal((JSON.parse(item.text) as Json).error.message, 'input[0]: unknown input item type: "bogus"');
  });

  it('answers a whole response in struct order with usage, and echoes the request', async (t) => {
    const sim = await simFor(t);
    const reply = await post(sim, '/v1/responses', { model: 'llama3.2', instructions: 'Be brief.', input: 'hello', temperature: 0.5 });
    assert.equal(reply.status, 200);
    assert.ok(reply.text.endsWith('}\n'));
    const body = JSON.parse(reply.text) as Json;
    assert.deepEqual(Object.keys(body).slice(0, 5), ['id', 'object', 'created_at', 'completed_at', 'status']);
    assert.equal(body.instructions, 'Be brief.');
    assert.equal(body.temperature, 0.5);
    assert.equal(body.output[0].type, 'message');
    assert.equal(body.usage.total_tokens, body.usage.input_tokens + body.usage.output_tokens);
  });

  it('streams events whose keys are sorted (Go maps) and end the stream without response.completed on a mid-stream error', async (t) => {
    const sim = await simFor(t);
    const evs = sse((await post(sim, '/v1/responses', { model: 'llama3.2', input: 'x', stream: true, sim: { fault: 'error_mid', after: 2 } })).text);
    for (const e of evs) assert.deepEqual(Object.keys(e.data), Object.keys(e.data).sort());
    assert.equal(evs[0]!.event, 'response.created');
    assert.ok(!evs.some((e) => e.event === 'response.completed'));
  });
});

describe('sim /v1/audio/transcriptions', () => {
  it("refuses what Ollama's middleware refuses", async (t) => {
    const sim = await simFor(t);
    const send = async (fd: FormData | string) => {
      const res = await fetch(sim.url + '/v1/audio/transcriptions', { method: 'POST', body: fd });
      return { status: res.status, body: (await res.json()) as Json };
    };
    const noModel = new FormData();
    noModel.set('file', new Blob([new Uint8Array([1])]), 'a.wav');
    assert.deepEqual(await send(noModel).then((r) => [r.status, r.body.error.message]), [400, 'model is required']);
    const empty = new FormData();
    empty.set('model', 'llama3.2');
    empty.set('file', new Blob([]), 'a.wav');
    assert.deepEqual(await send(empty).then((r) => [r.status, r.body.error.message]), [400, 'audio file is empty']);
    const notForm = await send('{"model":"llama3.2"}');
    assert.equal(notForm.status, 400);
    assert.match(notForm.body.error.message, /^failed to parse multipart form/);
  });
});
