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
