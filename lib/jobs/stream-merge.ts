// Merges Ollama stream chunks into the one final response an async job keeps
// (response.json): content and thinking concatenated, tool calls gathered, the
// final chunk's fields and metrics on top — what Ollama itself returns for stream:false.

export const MAX_RESULT_BYTES = 64 * 1024 * 1024;

export class ResultTooLargeError extends Error {
  constructor() {
    super(`result exceeds ${MAX_RESULT_BYTES} bytes`);
    this.name = 'ResultTooLargeError';
  }
}

export class StreamMerger {
  readonly #kind: 'chat' | 'generate';
  #content: string[] = [];
  #thinking: string[] = [];
  #toolCalls: unknown[] = [];
  #bytes = 0;
  #final: Record<string, unknown> | null = null;
  #role = 'assistant';

  constructor(kind: 'chat' | 'generate') {
    this.#kind = kind;
  }

  get done(): boolean {
    return this.#final !== null;
  }

  /** Takes one parsed chunk; returns the error text when the chunk is an `{"error"}` line. */
  push(chunk: Record<string, unknown>): string | null {
    if (typeof chunk.error === 'string') return chunk.error;
    const part = (this.#kind === 'chat' ? chunk.message : chunk) as Record<string, unknown> | undefined;
    if (part && typeof part === 'object') {
      const text = this.#kind === 'chat' ? part.content : part.response;
      if (typeof text === 'string' && text) this.#add(this.#content, text);
      if (typeof part.thinking === 'string' && part.thinking) this.#add(this.#thinking, part.thinking);
      if (Array.isArray(part.tool_calls)) this.#toolCalls.push(...part.tool_calls);
      if (this.#kind === 'chat' && typeof part.role === 'string') this.#role = part.role;
    }
    if (chunk.done === true) this.#final = chunk;
    return null;
  }

  #add(list: string[], text: string): void {
    this.#bytes += text.length;
    if (this.#bytes > MAX_RESULT_BYTES) throw new ResultTooLargeError();
    list.push(text);
  }

  /** The merged response; null until a done chunk arrived. */
  result(): Record<string, unknown> | null {
    if (!this.#final) return null;
    const out: Record<string, unknown> = { ...this.#final };
    const content = this.#content.join('');
    const thinking = this.#thinking.join('');
    if (this.#kind === 'chat') {
      const message: Record<string, unknown> = { role: this.#role, content };
      if (thinking) message.thinking = thinking;
      if (this.#toolCalls.length) message.tool_calls = this.#toolCalls;
      out.message = message;
    } else {
      out.response = content;
      if (thinking) out.thinking = thinking;
      if (this.#toolCalls.length) out.tool_calls = this.#toolCalls;
    }
    return out;
  }
}
