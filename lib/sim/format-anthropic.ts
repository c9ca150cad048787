// /v1/messages as Ollama's Anthropic middleware prints it (ollama-wire.md §8,
// anthropic.StreamConverter): `event: X\ndata: {…}\n\n` per event, Go struct key
// order, message_start on the first chunk with the estimated input tokens and
// no stop_reason, one block per kind (thinking, text, each tool_use whole in
// one input_json_delta), then message_delta and message_stop. No ping events.

import type { Format, Metrics, Outcome, Reply } from './reply.js';
import type { ToolCall } from './text.js';
import { CT_JSON_BARE, CT_SSE, goJson } from './wire.js';

/** Ollama done_reason -> Anthropic stop_reason (mapStopReason). */
function stopReason(reply: Reply): string {
  if (reply.toolCall) return 'tool_use';
  return reply.doneReason === 'length' ? 'max_tokens' : 'end_turn';
}

const sse = (event: string, data: string) => `event: ${event}\ndata: ${data}\n\n`;

function toolUseBlock(call: ToolCall, input: string): string {
  return `{"type":"tool_use","id":${goJson(call.id)},"name":${goJson(call.name)},"input":${input}}`;
}

/** `id` is msg_ + 24 hex; `estimatedInputTokens` is what message_start shows before the real count exists. */
export function anthropicFormat(model: string, id: string, estimatedInputTokens: number): Format {
  const modelJson = goJson(model);
  let started = false;
  let index = 0;
  let open: 'thinking' | 'text' | null = null;

  const start = (inputTokens: number): string => {
    if (started) return '';
    started = true;
    return sse(
      'message_start',
      `{"type":"message_start","message":{"id":"${id}","type":"message","role":"assistant","model":${modelJson},` +
        `"content":[],"usage":{"input_tokens":${inputTokens},"output_tokens":0}}}`,
    );
  };
  const stopOpen = (): string => {
    if (open === null) return '';
    const out = sse('content_block_stop', `{"type":"content_block_stop","index":${index}}`);
    open = null;
    index++;
    return out;
  };
  const openBlock = (kind: 'thinking' | 'text'): string => {
    if (open === kind) return '';
    const out = stopOpen();
    open = kind;
    const block = kind === 'thinking' ? '{"type":"thinking","thinking":""}' : '{"type":"text","text":""}';
    return out + sse('content_block_start', `{"type":"content_block_start","index":${index},"content_block":${block}}`);
  };
  const delta = (body: string) => sse('content_block_delta', `{"type":"content_block_delta","index":${index},"delta":${body}}`);

  return {
    contentType: CT_SSE,
    thinking: (t) => start(estimatedInputTokens) + openBlock('thinking') + delta(`{"type":"thinking_delta","thinking":${t.json}}`),
    content: (t) => start(estimatedInputTokens) + openBlock('text') + delta(`{"type":"text_delta","text":${t.json}}`),
    toolCall: (call) => {
      let out = start(estimatedInputTokens) + stopOpen();
      out += sse('content_block_start', `{"type":"content_block_start","index":${index},"content_block":${toolUseBlock(call, '{}')}}`);
      out += delta(`{"type":"input_json_delta","partial_json":${goJson(goJson(call.arguments))}}`);
      out += sse('content_block_stop', `{"type":"content_block_stop","index":${index}}`);
      index++;
      return out;
    },
    done: (reply: Reply, m: Metrics) =>
      // A first chunk that is already the done chunk carries the real prompt count.
      start(m.promptEvalCount) + stopOpen() +
      sse(
        'message_delta',
        `{"type":"message_delta","delta":{"stop_reason":"${stopReason(reply)}"},` +
          `"usage":{"input_tokens":${m.promptEvalCount},"output_tokens":${m.evalCount}}}`,
      ) +
      sse('message_stop', '{"type":"message_stop"}'),
    // The native {"error"} line converts to no event at all: the stream just ends.
    errorMid: () => start(estimatedInputTokens),
    badLine: () => 'event: content_block_delta\ndata: {"this event is not JSON\n\n',
    whole: (o: Outcome) => {
      const blocks: string[] = [];
      if (o.thinking) blocks.push(`{"type":"thinking","thinking":${goJson(o.thinking)}}`);
      if (o.content) blocks.push(`{"type":"text","text":${goJson(o.content)}}`);
      if (o.reply.toolCall) blocks.push(toolUseBlock(o.reply.toolCall, goJson(o.reply.toolCall.arguments)));
      const body =
        `{"id":"${id}","type":"message","role":"assistant","model":${modelJson},` +
        `"content":${blocks.length ? `[${blocks.join(',')}]` : 'null'},"stop_reason":"${stopReason(o.reply)}",` +
        `"usage":{"input_tokens":${o.metrics.promptEvalCount},"output_tokens":${o.metrics.evalCount}}}\n`;
      return { contentType: CT_JSON_BARE, body };
    },
  };
}
