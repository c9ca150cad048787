// Reading request bodies with a bound, and writing JSON answers and errors in
// the shape of the surface the request came in on (Ollama, OpenAI or Anthropic).

import type { IncomingMessage, ServerResponse } from 'node:http';
import { anthropicErrorBody, badRequest, HttpError, ollamaErrorBody, openaiErrorBody, payloadTooLarge } from '../errors.js';

export type Surface = 'ollama' | 'openai' | 'anthropic';

/**
 * A body read whole must arrive within this (408 after). It replaces node's server-wide
 * requestTimeout, which would also cut an upload (SPEC §14) that streams for longer.
 */
export const BODY_TIMEOUT_MS = 5 * 60_000;

/** Reads the whole body, refusing (413) as soon as it passes maxBytes. Events, not an async iterator: this is on every request's path. */
export function readBody(req: IncomingMessage, maxBytes: number, timeoutMs = BODY_TIMEOUT_MS): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) return Promise.reject(payloadTooLarge(maxBytes));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const timer = setTimeout(() => {
      req.pause();
      done(new HttpError(408, 'request_timeout', `the request body did not arrive within ${Math.round(timeoutMs / 1000)} s`));
    }, timeoutMs);
    const done = (err: unknown, body?: Buffer) => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
      if (err) reject(err);
      else resolve(body!);
    };
    const onData = (chunk: Buffer) => {
      total += chunk.length;
      if (total > maxBytes) {
        req.pause();
        return done(payloadTooLarge(maxBytes));
      }
      chunks.push(chunk);
    };
    const onEnd = () => done(null, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total));
    const onError = (err: Error) => done(err);
    const onClose = () => {
      if (!req.complete) done(new Error('client closed the connection before sending the whole body'));
    };
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', onError);
    req.once('close', onClose);
  });
}

/** SPEC §8: deeper JSON is a 400. Deep values parse fine but overflow the stack of every later JSON.stringify or structuredClone. */
export const MAX_JSON_DEPTH = 512;

/**
 * Nesting depth of a parsed value, counting each array or object as one level, capped: the walk
 * stops once it passes `limit`, so a hostile value costs at most `limit` frames. Walking the
 * parsed value (not the bytes) costs one step per node: a 60 MB base64 image is one string.
 */
export function jsonDepthExceeds(value: unknown, limit = MAX_JSON_DEPTH): boolean {
  const walk = (v: unknown, depth: number): boolean => {
    if (v === null || typeof v !== 'object') return false;
    if (depth > limit) return true;
    if (Array.isArray(v)) {
      for (const item of v) if (walk(item, depth + 1)) return true;
    } else {
      for (const key in v) if (walk((v as Record<string, unknown>)[key], depth + 1)) return true;
    }
    return false;
  };
  return walk(value, 1);
}

/** JSON whatever the Content-Type (curl -d sends a form type; Ollama ignores it); at most MAX_JSON_DEPTH deep. */
export function parseJsonBody(raw: Buffer): unknown {
  if (raw.length === 0) throw badRequest('missing request body');
  let value: unknown;
  try {
    // V8's JSON.parse is iterative: any depth parses; the walk below decides.
    value = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw badRequest(`invalid JSON: ${(err as Error).message}`);
  }
  if (jsonDepthExceeds(value)) throw badRequest(`invalid JSON: nested deeper than ${MAX_JSON_DEPTH} levels`);
  return value;
}

export function parseJsonObject(raw: Buffer): Record<string, unknown> {
  const value = parseJsonBody(raw);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw badRequest('request body must be a JSON object');
  }
  return value as Record<string, unknown>;
}

export function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(value);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    ...headers,
  });
  res.end(body);
}

export function sendText(res: ServerResponse, status: number, text: string, contentType = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Renders an HttpError; always a JSON body (Ollama's Go client reads an empty error body as success). */
export function sendError(res: ServerResponse, err: HttpError, surface: Surface): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = surface === 'openai' ? openaiErrorBody(err) : surface === 'anthropic' ? anthropicErrorBody(err) : ollamaErrorBody(err);
  res.writeHead(err.status, {
    'content-type': surface === 'ollama' ? 'application/json; charset=utf-8' : 'application/json',
    'content-length': Buffer.byteLength(body),
    ...err.headers,
  });
  res.end(body);
}
