// Byte-level facts of Ollama's wire format that several routes share: Go's
// JSON escaping, content types, error bodies. See shared/ollama-wire.md §1, §3, §5.

/** Exact text, two spaces included (ollama-wire.md §3). */
export const BUSY_MESSAGE = 'server busy, please try again.  maximum pending requests exceeded';

export const CT_JSON = 'application/json; charset=utf-8';
export const CT_JSON_BARE = 'application/json';
export const CT_NDJSON = 'application/x-ndjson';
export const CT_SSE = 'text/event-stream';
export const CT_TEXT = 'text/plain; charset=utf-8';

const GO_ESCAPES: Record<string, string> = {
  '<': '\\u003c',
  '>': '\\u003e',
  '&': '\\u0026',
  '\u2028': '\\u2028',
  '\u2029': '\\u2029',
};

/** JSON as Go's encoding/json writes it: `<`, `>`, `&` and U+2028/9 escaped. */
export function goJson(value: unknown): string {
  const text = JSON.stringify(value) ?? 'null';
  return /[<>&\u2028\u2029]/.test(text) ? text.replace(/[<>&\u2028\u2029]/g, (c) => GO_ESCAPES[c] ?? c) : text;
}

/** Native error body: gin's c.JSON, no trailing newline. */
export function ollamaError(message: string): string {
  return goJson({ error: message });
}

/** OpenAI error body: Go encoder output, trailing newline (ollama-wire.md §5). */
export function openAiError(status: number, message: string): string {
  const type = status === 400 ? 'invalid_request_error' : status === 404 ? 'not_found_error' : 'api_error';
  return goJson({ error: { message, type, param: null, code: null } }) + '\n';
}

/** Anthropic's error type for a status, as anthropic.NewError maps it. */
function anthropicType(status: number): string {
  switch (status) {
    case 400: return 'invalid_request_error';
    case 401: return 'authentication_error';
    case 403: return 'permission_error';
    case 404: return 'not_found_error';
    case 429: return 'rate_limit_error';
    case 503: case 529: return 'overloaded_error';
    default: return 'api_error';
  }
}

/** Anthropic error body (ollama-wire.md §8): Go encoder output with a req_ id, trailing newline. */
export function anthropicError(status: number, message: string, requestId: string): string {
  return `{"type":"error","error":{"type":"${anthropicType(status)}","message":${goJson(message)}},"request_id":"${requestId}"}\n`;
}

/** A request error with the status Ollama would answer it with. */
export class SimError extends Error {
  readonly status: number;

  constructor(status: number, message: string) {
    super(message);
    this.name = 'SimError';
    this.status = status;
  }
}

export const notFoundGenerate = (name: string) => new SimError(404, `model '${name}' not found`);
export const notFoundEmbed = (name: string) => new SimError(404, `model "${name}" not found, try pulling it first`);
export const badRequest = (message: string) => new SimError(400, message);

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) out[key] = sortKeys((value as Record<string, unknown>)[key]);
  return out;
}

/** A Go map[string]any as encoding/json writes it: keys sorted at every level, Go's escaping. */
export function goMapJson(value: unknown): string {
  return goJson(sortKeys(value));
}
