// /v1/chat/completions and /v1/completions as Ollama's OpenAI layer prints
// them (ollama-wire.md §5, v0.32.6+ chat behaviour): SSE events exactly
// `data: <json>\n\n`, role only on the first chat chunk, a separate finish
// chunk with an empty delta, an optional usage chunk with choices:[], then
// `data: [DONE]`. Tool-call arguments are a JSON string here.

import type { Format, Outcome, Reply } from './reply.js';
import type { Rng } from './rng.js';
import type { ToolCall } from './text.js';
import { CT_JSON_BARE, CT_SSE, goJson } from './wire.js';

const DONE = 'data: [DONE]\n\n';
const BAD_EVENT = 'data: {"this event is not JSON\n\n';

function openAiCalls(call: ToolCall): string {
  return goJson([
    { id: call.id, index: call.index, type: 'function', function: { name: call.name, arguments: goJson(call.arguments) } },
  ]);
}

function usageJson(reply: Reply): string {
  const p = reply.promptTokens;
  const c = reply.evalCount;
  return `{"prompt_tokens":${p},"completion_tokens":${c},"total_tokens":${p + c}}`;
}

function finishReason(reply: Reply): string {
  return reply.toolCall ? 'tool_calls' : reply.doneReason;
}

const unixNow = () => Math.floor(Date.now() / 1000);

export function chatCompletionFormat(model: string, includeUsage: boolean, rng: Rng): Format {
  const id = `chatcmpl-${rng.int(999)}`;
  const modelJson = goJson(model);
  let head = ''; // pinned at the first chunk, `created` included
  let role = '"role":"assistant",';
  const event = (delta: string, finish: string) => {
    if (head === '') {
      head = `data: {"id":"${id}","object":"chat.completion.chunk","created":${unixNow()},"model":${modelJson},` +
        `"system_fingerprint":"fp_ollama","choices":`;
    }
    const withRole = role + delta;
    role = '';
    const body = withRole.endsWith(',') ? withRole.slice(0, -1) : withRole;
    return `${head}[{"index":0,"delta":{${body}},"finish_reason":${finish}}]}\n\n`;
  };
  return {
    contentType: CT_SSE,
    content: (t) => event('"content":' + t.json, 'null'),
    thinking: (t) => event('"reasoning":' + t.json, 'null'),
    toolCall: (call) => event('"tool_calls":' + openAiCalls(call), 'null'),
    done: (reply: Reply) => {
      let out = event('', `"${finishReason(reply)}"`);
      if (includeUsage) out += `${head}[],"usage":${usageJson(reply)}}\n\n`;
      return out + DONE;
    },
    // The converter does not recognise Ollama's {"error"} line: it becomes an
    // empty-delta chunk and the stream ends without a finish chunk or [DONE].
    errorMid: () => event('', 'null'),
    badLine: () => BAD_EVENT,
    whole: (o: Outcome) => {
      let message = `"role":"assistant","content":${goJson(o.content)}`;
      if (o.thinking) message += ',"reasoning":' + goJson(o.thinking);
      if (o.reply.toolCall) message += ',"tool_calls":' + openAiCalls(o.reply.toolCall);
      const body =
        `{"id":"${id}","object":"chat.completion","created":${unixNow()},"model":${modelJson},` +
        `"system_fingerprint":"fp_ollama","choices":[{"index":0,"message":{${message}},` +
        `"finish_reason":"${finishReason(o.reply)}"}],"usage":${usageJson(o.reply)}}\n`;
      return { contentType: CT_JSON_BARE, body };
    },
  };
}

export function completionFormat(model: string, includeUsage: boolean, rng: Rng): Format {
  const id = `cmpl-${rng.int(999)}`;
  const modelJson = goJson(model);
  // CompletionChunk's key order puts choices before model; each chunk is stamped afresh.
  const zeroUsage = includeUsage ? ',"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}' : '';
  const chunk = (choices: string, usage: string) =>
    `data: {"id":"${id}","object":"text_completion","created":${unixNow()},"choices":${choices},` +
    `"model":${modelJson},"system_fingerprint":"fp_ollama"${usage}}\n\n`;
  const choice = (text: string, finish: string) => `[{"text":${text},"index":0,"finish_reason":${finish}}]`;
  return {
    contentType: CT_SSE,
    content: (t) => chunk(choice(t.json, 'null'), zeroUsage),
    thinking: () => '', // /v1/completions drops thinking; routes plan none
    toolCall: () => chunk(choice('""', 'null'), zeroUsage),
    done: (reply: Reply) => {
      let out = chunk(choice('""', `"${reply.doneReason}"`), zeroUsage);
      if (includeUsage) out += chunk('[]', `,"usage":${usageJson(reply)}`);
      return out + DONE;
    },
    errorMid: () => chunk(choice('""', 'null'), zeroUsage),
    badLine: () => BAD_EVENT,
    whole: (o: Outcome) => {
      const body =
        `{"id":"${id}","object":"text_completion","created":${unixNow()},"model":${modelJson},` +
        `"system_fingerprint":"fp_ollama","choices":${choice(goJson(o.content), `"${o.reply.doneReason}"`)},` +
        `"usage":${usageJson(o.reply)}}\n`;
      return { contentType: CT_JSON_BARE, body };
    },
  };
}
