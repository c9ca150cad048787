// Native /api/chat and /api/generate chunks, byte for byte as Ollama prints
// them (ollama-wire.md §1a, §1b, §2): Go's key order, metrics on the final
// chunk only, one NDJSON line each. Hot path: strings are concatenated from
// pre-encoded pieces; no objects are built per token.

import { createdAt } from './clock.js';
import type { Format, Metrics, Outcome, Reply } from './reply.js';
import { metricsJson } from './reply.js';
import { contextIds } from './text.js';
import type { ToolCall } from './text.js';
import { CT_JSON, CT_NDJSON, goJson } from './wire.js';

const BAD_LINE = 'this line is not JSON {"done":\n';

/** Native tool-call shape: id, then function {index, name, arguments object}. */
function nativeCalls(call: ToolCall): string {
  return goJson([{ id: call.id, function: { index: call.index, name: call.name, arguments: call.arguments } }]);
}

/** `model` is echoed exactly as the client sent it. */
export function chatFormat(model: string): Format {
  const head = `{"model":${goJson(model)},"created_at":"`;
  const msg = `","message":{"role":"assistant","content":`;
  return {
    contentType: CT_NDJSON,
    content: (t) => head + createdAt() + msg + t.json + '},"done":false}\n',
    thinking: (t) => head + createdAt() + msg + '"","thinking":' + t.json + '},"done":false}\n',
    // Rendered path: the call arrives whole on a done:false chunk with empty content.
    toolCall: (call) => head + createdAt() + msg + '"","tool_calls":' + nativeCalls(call) + '},"done":false}\n',
    done: (reply: Reply, m: Metrics) =>
      head + createdAt() + msg + `""},"done":true,"done_reason":"${reply.doneReason}",${metricsJson(m)}}\n`,
    errorMid: (message) => goJson({ error: message }) + '\n',
    badLine: () => BAD_LINE,
    whole: (o: Outcome) => {
      let message = msg + goJson(o.content);
      if (o.thinking) message += ',"thinking":' + goJson(o.thinking);
      if (o.reply.toolCall) message += ',"tool_calls":' + nativeCalls(o.reply.toolCall);
      const body =
        head + createdAt() + message + `},"done":true,"done_reason":"${o.reply.doneReason}",${metricsJson(o.metrics)}}`;
      return { contentType: CT_JSON, body };
    },
  };
}

/** `raw` drops `context`; the context holds prompt + reply ids, capped at num_ctx. */
export function generateFormat(model: string, raw: boolean, numCtx: number): Format {
  const head = `{"model":${goJson(model)},"created_at":"`;
  const context = (reply: Reply) =>
    raw ? '' : `,"context":[${contextIds(reply.seed, Math.min(numCtx, reply.promptTokens + reply.evalCount)).join(',')}]`;
  return {
    contentType: CT_NDJSON,
    content: (t) => head + createdAt() + '","response":' + t.json + ',"done":false}\n',
    thinking: (t) => head + createdAt() + '","response":"","thinking":' + t.json + ',"done":false}\n',
    toolCall: () => head + createdAt() + '","response":"","done":false}\n', // generate takes no tools
    done: (reply: Reply, m: Metrics) =>
      head + createdAt() + `","response":"","done":true,"done_reason":"${reply.doneReason}"` +
      context(reply) + `,${metricsJson(m)}}\n`,
    errorMid: (message) => goJson({ error: message }) + '\n',
    badLine: () => BAD_LINE,
    whole: (o: Outcome) => {
      let body = head + createdAt() + '","response":' + goJson(o.content);
      if (o.thinking) body += ',"thinking":' + goJson(o.thinking);
      body += `,"done":true,"done_reason":"${o.reply.doneReason}"` + context(o.reply) + `,${metricsJson(o.metrics)}}`;
      return { contentType: CT_JSON, body };
    },
  };
}
