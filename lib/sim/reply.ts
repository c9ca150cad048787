// What a simulated model will say for one request (how many thinking and
// content tokens, whether it calls a tool, why it stops), and the interface
// each wire surface implements to print it. Pure planning, no I/O.

import type { ModelEntry } from './catalog.js';
import { numPredict } from './options.js';
import { countPromptTokens, planToolCall, replySeed, TOOL_TRIGGER } from './text.js';
import type { TokenSource, ToolCall } from './text.js';

export interface Reply {
  readonly seed: number;
  readonly thinking: number;
  readonly content: number;
  readonly toolCall: ToolCall | null;
  readonly doneReason: 'stop' | 'length';
  readonly promptTokens: number;
  readonly evalCount: number;
  /** format:"json" or a schema: the content is one JSON object. */
  readonly jsonMode: boolean;
}

/** Integer nanoseconds, as Go's time.Duration marshals. */
export interface Metrics {
  readonly totalNs: number;
  readonly loadNs: number;
  readonly promptEvalCount: number;
  readonly promptEvalNs: number;
  readonly evalCount: number;
  readonly evalNs: number;
}

/** Everything a non-stream reply aggregates. */
export interface Outcome {
  readonly content: string;
  readonly thinking: string;
  readonly reply: Reply;
  readonly metrics: Metrics;
}

/** One wire surface (native chat, native generate, /v1 chat, /v1 completions). */
export interface Format {
  readonly contentType: string;
  thinking(token: TokenSource): string;
  content(token: TokenSource): string;
  toolCall(call: ToolCall): string;
  /** The closing bytes: done chunk, or finish + usage + [DONE] events. */
  done(reply: Reply, metrics: Metrics): string;
  /** The mid-stream error as this surface passes it on. */
  errorMid(message: string): string;
  badLine(): string;
  /** The non-stream body and its content type. */
  whole(outcome: Outcome): { contentType: string; body: string };
}

export interface ReplyInput {
  entry: ModelEntry;
  /** The text the reply is derived from (messages or prompt), also sizes prompt_eval_count. */
  prompt: string;
  options: Record<string, unknown>;
  think: boolean | undefined;
  tools: unknown[];
  /** Text of the last message when it is the user's; tool calls trigger on it. */
  lastUserText: string;
  jsonMode: boolean;
  defaultTokens: number;
  /** Template tokens around the prompt (chat roles, BOS...). */
  overhead: number;
}

/**
 * Length: options.num_predict when set (done_reason "length"), else
 * defaultTokens (done_reason "stop"). Thinking models spend a third of it
 * thinking. A tool call happens when tools were given and the last message is
 * the user's and contains the word "weather".
 */
export function planReply(input: ReplyInput): Reply {
  const { entry, options } = input;
  const seed = replySeed(entry.name, input.prompt, options['seed']);
  const limit = numPredict(options);
  const total = limit ?? input.defaultTokens;
  const thinks = entry.thinking && input.think !== false;
  const call =
    entry.tools && input.tools.length > 0 && TOOL_TRIGGER.test(input.lastUserText)
      ? planToolCall(input.tools, seed)
      : null;
  const thinking = thinks ? Math.max(total >= 2 || call ? 1 : 0, Math.floor(total / 3)) : 0;
  const content = call ? 0 : total - thinking;
  const callTokens = call ? Math.max(1, Math.ceil(JSON.stringify(call.arguments).length / 4) + 6) : 0;
  return {
    seed,
    thinking,
    content,
    toolCall: call,
    doneReason: !call && limit !== undefined ? 'length' : 'stop',
    promptTokens: countPromptTokens(input.prompt, input.overhead),
    evalCount: thinking + content + callTokens,
    jsonMode: input.jsonMode && !call,
  };
}

/** The six metrics in Go's key order, as a JSON fragment without braces. */
export function metricsJson(m: Metrics): string {
  return (
    `"total_duration":${m.totalNs},"load_duration":${m.loadNs},` +
    `"prompt_eval_count":${m.promptEvalCount},"prompt_eval_duration":${m.promptEvalNs},` +
    `"eval_count":${m.evalCount},"eval_duration":${m.evalNs}`
  );
}
