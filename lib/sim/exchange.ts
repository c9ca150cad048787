// One HTTP request/response pair: client-disconnect detection (an
// AbortSignal), the split-aware body writer, and the plain responses every
// route needs (JSON, text, errors in the Ollama or OpenAI shape).

import type { IncomingMessage, ServerResponse } from 'node:http';
import { nowMs } from './clock.js';
import type { Core } from './core.js';
import { NO_DIRECTIVE } from './directive.js';
import type { Directive } from './types.js';
import { CT_JSON, CT_JSON_BARE, CT_TEXT, anthropicError, ollamaError, openAiError } from './wire.js';
import { BodyWriter } from './writer.js';

export type Surface = 'ollama' | 'openai' | 'anthropic';

/** `prefix_` + 24 hex digits, as Ollama's generateID draws them (here from the seeded request rng). */
export function hexId(core: Core, prefix: string): string {
  const rng = core.requestRng();
  let out = '';
  for (let i = 0; i < 24; i++) out += '0123456789abcdef'[rng.int(16)];
  return `${prefix}_${out}`;
}

export class Exchange {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly core: Core;
  /** Request start, for total_duration and load_duration. */
  readonly startMs = nowMs();
  directive: Directive = NO_DIRECTIVE;
  #controller = new AbortController();
  #tracked = false;
  #resetByServer = false;
  #writer: BodyWriter | undefined;

  constructor(req: IncomingMessage, res: ServerResponse, core: Core) {
    this.req = req;
    this.res = res;
    this.core = core;
    res.socket?.setNoDelay(true);
    // 'close' before the response finished = the client went away (or we reset it).
    res.once('close', () => {
      if (!res.writableFinished && this.#tracked && !this.#resetByServer) core.stats.aborted++;
      this.#controller.abort();
    });
  }

  /** Aborts when the client disconnects (or the simulator closes its socket). */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Counts this request as in flight until the returned function is called. */
  track(): () => void {
    this.#tracked = true;
    this.core.stats.active++;
    if (this.#controller.signal.aborted && !this.#resetByServer) this.core.stats.aborted++; // left before we counted it
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.core.stats.active--;
    };
  }

  get writer(): BodyWriter {
    if (!this.#writer) {
      const split = this.directive.split ?? this.core.settings.split;
      this.#writer = new BodyWriter(this.res, split, this.core.requestRng(), this.core.stats.backpressure);
    }
    return this.#writer;
  }

  get open(): boolean {
    return !this.#controller.signal.aborted && !this.res.destroyed;
  }

  /** A complete body with Content-Length (Ollama's non-stream replies). */
  send(status: number, contentType: string, body: string, extra: Record<string, string> = {}): void {
    if (!this.open || this.res.headersSent) return;
    this.res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body), ...extra });
    if (this.req.method === 'HEAD') this.res.end();
    else this.writer.end(body);
  }

  sendJson(status: number, body: string, contentType = CT_JSON): void {
    this.send(status, contentType, body);
  }

  sendText(status: number, text: string): void {
    this.send(status, CT_TEXT, text);
  }

  /**
   * An error before any byte of the body. `streaming` mirrors Ollama: once a
   * handler chose to stream, its early errors go out as bare application/json.
   */
  sendError(status: number, message: string, surface: Surface, streaming = false): void {
    if (surface === 'openai') this.send(status, CT_JSON_BARE, openAiError(status, message));
    else if (surface === 'anthropic') this.send(status, CT_JSON_BARE, anthropicError(status, message, hexId(this.core, 'req')));
    else this.send(status, streaming ? CT_JSON_BARE : CT_JSON, ollamaError(message));
  }

  /**
   * The `reset` fault: drop the connection without a proper end. Node corks
   * a response's socket until the next tick, so let the chunks already
   * written reach the kernel first; otherwise the client would see none.
   */
  async reset(): Promise<void> {
    this.#resetByServer = true;
    const socket = this.res.socket;
    while (socket && socket.writableCorked > 0) socket.uncork();
    await new Promise((resolve) => setImmediate(resolve));
    socket?.destroy();
    this.res.destroy();
  }
}
