// Errors with stable codes. The core (sched/, jobs/) throws ForemanError and
// aborts runs with a StopReason, neither knowing HTTP; HttpError is what http/
// answers, and toHttpError() is the one map from a domain code to a status.
// HttpError renders to the Ollama body {"error": message}, the OpenAI body
// {"error":{message,type,param,code}} or the Anthropic body {"type":"error","error":{type,message}}
// (SPEC §7). Messages are always safe to show to a client (no tokens, no prompts).

import { randomBytes } from 'node:crypto';

/** What the core refuses, by a code callers match on (never by message text). */
export type DomainCode =
  | 'queue_full'
  | 'too_many_queued'
  | 'shutting_down'
  | 'not_found'
  | 'conflict'
  | 'idempotency_mismatch'
  | 'journal_backlog'
  | 'journal_unavailable';

export class ForemanError extends Error {
  readonly code: DomainCode;
  constructor(code: DomainCode, message: string) {
    super(message);
    this.name = 'ForemanError';
    this.code = code;
  }
}

export const queueFull = (limit: string) => new ForemanError('queue_full', `queue is full (${limit})`);
export const keyQueueFull = (key: string, limit: number) =>
  new ForemanError('too_many_queued', `key '${key}' already has ${limit} jobs waiting (max_queued)`);
export const closing = () => new ForemanError('shutting_down', 'foreman is shutting down');

export function isForemanError(err: unknown, code?: DomainCode): err is ForemanError {
  return err instanceof ForemanError && (code === undefined || err.code === code);
}

/** Why a run was stopped; the abort reason of a scheduler job's signal. */
export type StopCode = 'shutdown' | 'cancelled' | 'client_gone';

export class StopReason extends Error {
  readonly code: StopCode;
  constructor(code: StopCode, message: string = code) {
    super(message);
    this.name = 'StopReason';
    this.code = code;
  }
}

/** The stop code of an aborted signal, or undefined when it was not stopped by foreman. */
export function stopCodeOf(signal: AbortSignal): StopCode | undefined {
  return signal.aborted && signal.reason instanceof StopReason ? signal.reason.code : undefined;
}


export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly headers: Readonly<Record<string, string>>;

  constructor(status: number, code: string, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.name = 'HttpError';
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}

/** Ollama's exact wording, two spaces included (ollama-wire.md §3). */
export const BUSY_MESSAGE = 'server busy, please try again.  maximum pending requests exceeded';

export const badRequest = (message: string) => new HttpError(400, 'bad_request', message);
export const unauthorized = () =>
  new HttpError(401, 'unauthorized', 'unauthorized', { 'www-authenticate': 'Bearer' });
export const notFound = (message = 'not found') => new HttpError(404, 'not_found', message);
export const methodNotAllowed = (allowed: readonly string[]) =>
  new HttpError(405, 'method_not_allowed', 'method not allowed', { allow: allowed.join(', ') });
export const conflict = (message: string) => new HttpError(409, 'conflict', message);
export const payloadTooLarge = (limit: number) =>
  new HttpError(413, 'payload_too_large', `request body exceeds max_body (${limit} bytes)`);
export const unprocessable = (message: string) => new HttpError(422, 'unprocessable', message);
export const busy = (retryAfterS = 1) =>
  new HttpError(503, 'busy', BUSY_MESSAGE, { 'retry-after': String(retryAfterS) });
export const forbidden = (message: string) => new HttpError(403, 'forbidden', message);
export const shuttingDown = () =>
  new HttpError(503, 'shutting_down', 'foreman is shutting down', { 'retry-after': '5' });
export const upstreamUnreachable = (detail: string) =>
  new HttpError(502, 'upstream_unreachable', `upstream unreachable: ${detail}`);
export const internal = () => new HttpError(500, 'internal', 'internal error');

export function isHttpError(err: unknown): err is HttpError {
  return err instanceof HttpError;
}

/** The status each domain code answers with; the core never picks one. */
function fromDomain(err: ForemanError): HttpError {
  switch (err.code) {
    case 'queue_full': return busy();
    case 'too_many_queued': return new HttpError(429, err.code, err.message, { 'retry-after': '5' });
    case 'shutting_down': return shuttingDown();
    case 'not_found': return notFound(err.message);
    case 'conflict': return conflict(err.message);
    case 'idempotency_mismatch': return unprocessable(err.message);
    case 'journal_backlog': return new HttpError(503, err.code, err.message, { 'retry-after': '1' });
    case 'journal_unavailable': return new HttpError(503, err.code, err.message, { 'retry-after': '5' });
  }
}

/** HttpError as is, a domain error by its code; anything else 500 'internal error' (callers log the detail once). */
export function toHttpError(err: unknown): HttpError {
  if (isHttpError(err)) return err;
  if (err instanceof ForemanError) return fromDomain(err);
  return internal();
}

export function ollamaErrorBody(err: HttpError): string {
  return JSON.stringify({ error: err.message });
}

/** OpenAI's type mapping as Ollama's /v1 layer does it: 400 invalid_request_error, 404 not_found_error, else api_error. */
export function openaiErrorType(status: number): string {
  if (status === 400 || status === 413 || status === 422) return 'invalid_request_error';
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 429) return 'rate_limit_error';
  if (status === 404) return 'not_found_error';
  return 'api_error';
}

export function openaiErrorBody(err: HttpError): string {
  return JSON.stringify({
    error: { message: err.message, type: openaiErrorType(err.status), param: null, code: err.code },
  });
}

/** Anthropic's error types by status, as Ollama's anthropic.NewError maps them (plus 413). */
export function anthropicErrorType(status: number): string {
  switch (status) {
    case 400: case 405: case 422: return 'invalid_request_error';
    case 401: return 'authentication_error';
    case 403: return 'permission_error';
    case 404: return 'not_found_error';
    case 413: return 'request_too_large';
    case 429: return 'rate_limit_error';
    case 503: case 529: return 'overloaded_error';
    default: return 'api_error';
  }
}

export function anthropicErrorBody(err: HttpError): string {
  return JSON.stringify({
    type: 'error',
    error: { type: anthropicErrorType(err.status), message: err.message },
    request_id: `req_${randomBytes(12).toString('hex')}`,
  });
}

/** Short description of a network failure for `upstream unreachable: …`. */
export function describeNetworkError(err: unknown): string {
  const e = err as { cause?: { code?: string; message?: string }; code?: string; message?: string };
  const code = e?.cause?.code ?? e?.code;
  const msg = e?.cause?.message ?? e?.message ?? String(err);
  return code && !msg.includes(code) ? `${code} ${msg}` : msg;
}
