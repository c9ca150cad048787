// /v1/responses as Ollama's ResponsesStreamConverter and ToResponse print it
// (ollama-wire.md §8): streamed events are Go maps (keys sorted, each with a
// sequence_number): response.created, response.in_progress, a reasoning item,
// a message item with output_text deltas or function_call items, then
// response.completed. The whole reply is a struct in its field order.

import type { Format, Metrics, Outcome, Reply } from './reply.js';
import type { Rng } from './rng.js';
import type { ToolCall } from './text.js';
import { CT_JSON_BARE, CT_SSE, goJson, goMapJson } from './wire.js';

type Body = Record<string, unknown>;

/** What the response object echoes from the request. */
export interface ResponsesEcho {
  instructions: string;
  truncation: string | null;
  tools: Body[];
  textFormat: Body | null;
  effort: string;
  summary: string;
  temperature: number | null;
  topP: number | null;
  maxOutputTokens: number | null;
  background: boolean;
}

const unixNow = () => Math.floor(Date.now() / 1000);

/** buildResponseObject: every key the stream's response objects carry (sorted on output). */
function responseObject(id: string, model: string, echo: ResponsesEcho, status: string, output: unknown[], usage: Body | null): Body {
  const reasoning = echo.effort || echo.summary ? { effort: echo.effort || null, summary: echo.summary || null } : null;
  return {
    id, object: 'response', created_at: unixNow(), completed_at: null, status, incomplete_details: null, model,
    previous_response_id: null, instructions: echo.instructions || null, output, error: null,
    tools: echo.tools.map((t) => ({ type: t['type'], name: t['name'], description: t['description'] ?? null, strict: t['strict'] ?? null, parameters: t['parameters'] ?? null })),
    tool_choice: 'auto', truncation: echo.truncation ?? 'disabled', parallel_tool_calls: true,
    text: { format: echo.textFormat ?? { type: 'text' } }, top_p: echo.topP ?? 1, presence_penalty: 0, frequency_penalty: 0,
    top_logprobs: 0, temperature: echo.temperature ?? 1, reasoning, usage, max_output_tokens: echo.maxOutputTokens,
    max_tool_calls: null, store: false, background: echo.background, service_tier: 'default', metadata: {},
    safety_identifier: null, prompt_cache_key: null,
  };
}

function usageOf(m: { promptEvalCount: number; evalCount: number }): Body {
  return {
    input_tokens: m.promptEvalCount, output_tokens: m.evalCount, total_tokens: m.promptEvalCount + m.evalCount,
    input_tokens_details: { cached_tokens: 0 }, output_tokens_details: { reasoning_tokens: 0 },
  };
}

const textPart = (text: string) => ({ type: 'output_text', text, annotations: [], logprobs: [] });

export function responsesFormat(model: string, echo: ResponsesEcho, rng: Rng): Format {
  const responseId = `resp_${rng.int(999999)}`;
  const itemId = `msg_${rng.int(999999)}`;
  let seq = 0;
  let started = false;
  let outputIndex = 0;
  let reasoningId = '';
  let thinking = '';
  let text = '';
  let contentStarted = false;
  let toolCallsSent = false;
  const completed: Body[] = [];

  const event = (type: string, data: Body): string =>
    `event: ${type}\ndata: ${goMapJson({ ...data, type, sequence_number: seq++ })}\n\n`;
  const start = (): string => {
    if (started) return '';
    started = true;
    return (
      event('response.created', { response: responseObject(responseId, model, echo, 'in_progress', [], null) }) +
      event('response.in_progress', { response: responseObject(responseId, model, echo, 'in_progress', [], null) })
    );
  };
  const finishReasoning = (): string => {
    if (!reasoningId) return '';
    const item = { id: reasoningId, type: 'reasoning', summary: [{ type: 'summary_text', text: thinking }], encrypted_content: thinking };
    completed.push(item);
    const out =
      event('response.reasoning_summary_text.done', { item_id: reasoningId, output_index: outputIndex, summary_index: 0, text: thinking }) +
      event('response.output_item.done', { output_index: outputIndex, item });
    reasoningId = '';
    thinking = '';
    outputIndex++;
    return out;
  };
  const messageItem = (status: string, content: unknown[]) => ({ id: itemId, type: 'message', status, role: 'assistant', content });

  return {
    contentType: CT_SSE,
    thinking: (t) => {
      let out = start();
      if (!reasoningId) {
        reasoningId = `rs_${rng.int(999999)}`;
        out += event('response.output_item.added', { output_index: outputIndex, item: { id: reasoningId, type: 'reasoning', summary: [] } });
      }
      thinking += t.text;
      return out + event('response.reasoning_summary_text.delta', { item_id: reasoningId, output_index: outputIndex, summary_index: 0, delta: t.text });
    },
    content: (t) => {
      let out = start();
      if (toolCallsSent) return out; // text is dropped once a tool call was made
      out += finishReasoning();
      if (!contentStarted) {
        contentStarted = true;
        out += event('response.output_item.added', { output_index: outputIndex, item: messageItem('in_progress', []) });
        out += event('response.content_part.added', { item_id: itemId, output_index: outputIndex, content_index: 0, part: textPart('') });
      }
      text += t.text;
      return out + event('response.output_text.delta', { item_id: itemId, output_index: outputIndex, content_index: 0, delta: t.text, logprobs: [] });
    },
    toolCall: (call: ToolCall) => {
      let out = start() + finishReasoning();
      const fcId = `fc_${rng.int(999999)}_0`;
      const args = goJson(call.arguments);
      const item = { id: fcId, type: 'function_call', status: 'completed', call_id: call.id, name: call.name, arguments: args };
      completed.push(item);
      out += event('response.output_item.added', { output_index: outputIndex, item: { ...item, status: 'in_progress', arguments: '' } });
      out += event('response.function_call_arguments.delta', { item_id: fcId, output_index: outputIndex, delta: args });
      out += event('response.function_call_arguments.done', { item_id: fcId, output_index: outputIndex, arguments: args });
      out += event('response.output_item.done', { output_index: outputIndex, item });
      outputIndex++;
      toolCallsSent = true;
      return out;
    },
    done: (_reply: Reply, m: Metrics) => {
      let out = start() + finishReasoning();
      const output: Body[] = [...completed];
      if (!toolCallsSent && contentStarted) {
        const item = messageItem('completed', [textPart(text)]);
        out += event('response.output_text.done', { item_id: itemId, output_index: outputIndex, content_index: 0, text, logprobs: [] });
        out += event('response.content_part.done', { item_id: itemId, output_index: outputIndex, content_index: 0, part: textPart(text) });
        out += event('response.output_item.done', { output_index: outputIndex, item });
      }
      if (contentStarted) output.push(messageItem('completed', [textPart(text)]));
      const response = responseObject(responseId, model, echo, 'completed', output, usageOf(m));
      response['completed_at'] = unixNow();
      return out + event('response.completed', { response });
    },
    // The native {"error"} line converts to no event: the stream ends without response.completed.
    errorMid: () => start(),
    badLine: () => 'event: response.output_text.delta\ndata: {"this event is not JSON\n\n',
    whole: (o: Outcome) => wholeResponse(responseId, itemId, model, echo, o),
  };
}

/** ToResponse: struct field order, a reasoning item, then function calls or the one message. */
function wholeResponse(responseId: string, itemId: string, model: string, echo: ResponsesEcho, o: Outcome): { contentType: string; body: string } {
  const output: string[] = [];
  if (o.thinking) {
    output.push(
      `{"id":"rs_${responseId}","type":"reasoning","summary":[{"type":"summary_text","text":${goJson(o.thinking)}}],` +
        `"encrypted_content":${goJson(o.thinking)}}`,
    );
  }
  const call = o.reply.toolCall;
  if (call) {
    output.push(
      `{"id":"fc_${responseId}_0","type":"function_call","status":"completed","call_id":${goJson(call.id)},` +
        `"name":${goJson(call.name)},"arguments":${goJson(goJson(call.arguments))}}`,
    );
  } else {
    output.push(
      `{"id":"${itemId}","type":"message","status":"completed","role":"assistant","content":[` +
        `{"type":"output_text","text":${goJson(o.content)},"annotations":[],"logprobs":[]}]}`,
    );
  }
  const tools = echo.tools.map((t) => {
    let s = `{"type":${goJson(t['type'] ?? '')},"name":${goJson(t['name'] ?? '')},"description":${goJson(t['description'] ?? null)},` +
      `"strict":${goJson(t['strict'] ?? null)},"parameters":${goMapJson(t['parameters'] ?? null)}`;
    if (Array.isArray(t['tools']) && t['tools'].length > 0) s += `,"tools":${goJson(t['tools'])}`;
    return s + '}';
  });
  let reasoning = 'null';
  if (echo.effort || echo.summary) {
    const parts: string[] = [];
    if (echo.effort) parts.push(`"effort":${goJson(echo.effort)}`);
    if (echo.summary) parts.push(`"summary":${goJson(echo.summary)}`);
    reasoning = `{${parts.join(',')}}`;
  }
  const m = o.metrics;
  const now = unixNow();
  const body =
    `{"id":"${responseId}","object":"response","created_at":${now},"completed_at":${now},"status":"completed",` +
    `"incomplete_details":null,"model":${goJson(model)},"previous_response_id":null,` +
    `"instructions":${echo.instructions ? goJson(echo.instructions) : 'null'},"output":[${output.join(',')}],"error":null,` +
    `"tools":[${tools.join(',')}],"tool_choice":"auto","truncation":${goJson(echo.truncation ?? 'disabled')},` +
    `"parallel_tool_calls":true,"text":{"format":${goJson(echo.textFormat ?? { type: 'text' })}},"top_p":${echo.topP ?? 1},` +
    `"presence_penalty":0,"frequency_penalty":0,"top_logprobs":0,"temperature":${echo.temperature ?? 1},` +
    `"reasoning":${reasoning},"usage":{"input_tokens":${m.promptEvalCount},"output_tokens":${m.evalCount},` +
    `"total_tokens":${m.promptEvalCount + m.evalCount},"input_tokens_details":{"cached_tokens":0},` +
    `"output_tokens_details":{"reasoning_tokens":0}},"max_output_tokens":${echo.maxOutputTokens ?? 'null'},` +
    `"max_tool_calls":null,"store":false,"background":${echo.background},"service_tier":"default","metadata":{},` +
    `"safety_identifier":null,"prompt_cache_key":null}\n`;
  return { contentType: CT_JSON_BARE, body };
}
