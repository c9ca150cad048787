// What foreman itself writes into a relayed stream, per surface (SPEC §2, §7):
// the keep-alive unit while a streamed caller waits in the queue, the one error
// unit that ends a stream foreman saw fail, and how to tell a stream that ended
// properly. Upstream's own units pass through untouched; these are the only additions.

import type { IncomingHttpHeaders } from 'node:http';
import type { GenerationKind } from './generation-request.js';
import { anthropicErrorType } from '../errors.js';

const SSE_KINDS: ReadonlySet<GenerationKind> = new Set([
  'openai-chat', 'openai-completion', 'openai-responses', 'anthropic-messages', 'openai-transcription',
]);

export function isSseKind(kind: GenerationKind): boolean {
  return SSE_KINDS.has(kind);
}

const ANTHROPIC_PING = Buffer.from('event: ping\ndata: {"type": "ping"}\n\n');
const SSE_COMMENT = Buffer.from(': ping\n\n');
const RESPONSES_KEEPALIVE = Buffer.from('event: keepalive\ndata: {"type":"keepalive","sequence_number":0}\n\n');

/** Codex names itself in `originator` (codex_exec, codex_cli_rs, codex_vscode …). */
function isCodex(headers: IncomingHttpHeaders): boolean {
  const originator = headers.originator;
  return typeof originator === 'string' && originator.toLowerCase().startsWith('codex');
}

/**
 * A unit the surface's clients read as "nothing yet" (measured with the real
 * clients, ADR 0018). Native: an empty done:false chunk (a blank line breaks
 * the official clients). Anthropic: the `ping` event Anthropic's own API sends.
 * OpenAI SSE: a comment line, which every SSE parser skips. Responses to Codex:
 * a `keepalive` event (OpenAI's own type), because Codex's idle timer ignores
 * comments and gives up after stream_idle_timeout_ms; openai-node's
 * responses.stream() helper, on the other hand, throws on any event before
 * response.created, so everyone else gets the comment.
 */
export function heartbeatUnit(kind: GenerationKind, model: string, headers: IncomingHttpHeaders = {}): Uint8Array {
  if (kind === 'anthropic-messages') return ANTHROPIC_PING;
  if (kind === 'openai-responses' && isCodex(headers)) return RESPONSES_KEEPALIVE;
  if (isSseKind(kind)) return SSE_COMMENT;
  const created_at = new Date().toISOString();
  const body = kind === 'chat'
    ? { model, created_at, message: { role: 'assistant', content: '' }, done: false }
    : { model, created_at, response: '', done: false };
  return Buffer.from(JSON.stringify(body) + '\n');
}

/**
 * The error unit that ends a stream foreman saw fail, in a form the surface's
 * SDKs raise on: Anthropic's `event: error`; the Responses `error` event
 * (with an `error` object too, which is what openai-node throws on);
 * `data: {"error":…}` for chat completions; `{"error":…}` for NDJSON.
 */
export function errorUnit(kind: GenerationKind, message: string, status = 502): Uint8Array {
  if (kind === 'anthropic-messages') {
    // The status the error would have had before the stream began picks its type (overloaded_error, not_found_error …).
    const data = { type: 'error', error: { type: anthropicErrorType(status), message } };
    return Buffer.from(`event: error\ndata: ${JSON.stringify(data)}\n\n`);
  }
  if (kind === 'openai-responses') {
    const data = { type: 'error', code: 'api_error', message, param: null, error: { type: 'api_error', code: 'api_error', message } };
    return Buffer.from(`event: error\ndata: ${JSON.stringify(data)}\n\n`);
  }
  if (isSseKind(kind)) {
    return Buffer.from(`data: ${JSON.stringify({ error: { message, type: 'api_error', param: null, code: null } })}\n\n`);
  }
  return Buffer.from(JSON.stringify({ error: message }) + '\n');
}

const ANTHROPIC_ENDS = ['event: message_stop', 'event: error'];
const RESPONSES_ENDS = ['event: response.completed', 'event: response.failed', 'event: response.incomplete', 'event: error'];

function startsWithAny(unit: Uint8Array, marks: readonly string[]): boolean {
  const head = Buffer.from(unit.buffer, unit.byteOffset, Math.min(unit.byteLength, 40)).toString('latin1');
  return marks.some((m) => head.startsWith(m));
}

/**
 * How a proper end looks where it is not chat completions' `[DONE]`: an
 * Anthropic stream ends with `message_stop`, a Responses stream with its
 * terminal response event. Undefined: the relay's default (NDJSON done/error,
 * SSE `[DONE]`).
 */
export function endOfStream(kind: GenerationKind): ((last: Uint8Array) => boolean) | undefined {
  if (kind === 'anthropic-messages') return (last) => startsWithAny(last, ANTHROPIC_ENDS);
  if (kind === 'openai-responses') return (last) => startsWithAny(last, RESPONSES_ENDS);
  return undefined;
}
