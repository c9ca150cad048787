// Request bodies as Ollama's gin handlers see them: JSON whatever the
// Content-Type, decoded like Go's json.Decoder (first value only, its error
// texts), with Go's "cannot unmarshal" messages for wrongly typed fields.

import type { IncomingMessage } from 'node:http';
import { SimError, badRequest } from './wire.js';

/** Ollama has no limit; the simulator bounds what it buffers. */
export const MAX_BODY_BYTES = 64 * 1024 * 1024;

export function readBody(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.off('data', onData);
        req.resume(); // drain and discard the rest
        reject(new SimError(413, `request body exceeds ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)));
    req.once('error', reject);
    req.once('close', () => {
      if (!req.complete) reject(new SimError(499, 'request canceled'));
    });
  });
}

/** The body as an object; `struct` names the Go type for error texts, e.g. 'api.ChatRequest'. */
export function decodeBody(buf: Buffer, struct: string): Record<string, unknown> {
  const text = buf.toString('utf8');
  if (text.trim() === '') throw badRequest('missing request body');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = JSON.parse(text.slice(0, scanFirstValue(text))); // throws Go's text if invalid
  }
  if (value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw badRequest(`json: cannot unmarshal ${jsonKind(value)} into Go value of type ${struct}`);
  }
  return value as Record<string, unknown>;
}

export type GoKind = 'string' | 'bool' | 'array' | 'object' | 'number';

const GO_TYPE: Record<GoKind, string> = {
  string: 'string',
  bool: 'bool',
  array: '[]interface {}',
  object: 'map[string]interface {}',
  number: 'float64',
};

/** Checks typed fields (null passes, as in Go); `goTypes` overrides the printed type. */
export function checkTypes(
  body: Record<string, unknown>,
  struct: string,
  fields: Record<string, GoKind>,
  goTypes: Record<string, string> = {},
): void {
  for (const [field, want] of Object.entries(fields)) {
    const value = body[field];
    if (value === undefined || value === null) continue;
    const have = jsonKind(value);
    if (have === want) continue;
    const shortStruct = struct.slice(struct.lastIndexOf('.') + 1);
    throw badRequest(
      `json: cannot unmarshal ${have} into Go struct field ${shortStruct}.${field} of type ${goTypes[field] ?? GO_TYPE[want]}`,
    );
  }
}

export function jsonKind(value: unknown): string {
  if (Array.isArray(value)) return 'array';
  if (value === null) return 'null';
  if (typeof value === 'boolean') return 'bool';
  return typeof value; // string, number, object
}

const MAX_DEPTH = 10_000;

/**
 * Where the first JSON value ends, or throws Go's decoder error for it.
 * Only runs after JSON.parse failed, so speed does not matter here. Iterative, with Go's
 * 10,000-level limit, so deep nesting is Go's error and never a stack overflow.
 */
function scanFirstValue(text: string): number {
  let i = 0;
  const open: Array<'{' | '['> = [];
  const fail = (context: string): never => {
    if (i >= text.length) throw badRequest('unexpected EOF');
    throw badRequest(`invalid character ${goChar(text[i]!)} ${context}`);
  };
  const ws = () => {
    while (i < text.length && ' \t\r\n'.includes(text[i]!)) i++;
  };
  const string = () => {
    i++;
    for (;;) {
      if (i >= text.length) fail('');
      const c = text.charCodeAt(i);
      if (c === 34) return void i++;
      if (c < 0x20) fail('in string literal');
      i += c === 92 ? 2 : 1;
    }
  };
  const key = () => {
    ws();
    if (text[i] !== '"') fail('looking for beginning of object key string');
    string();
    ws();
    if (text[i] !== ':') fail('after object key');
    i++;
  };
  for (;;) {
    // A value: a scalar, or a container opened (its first key read for an object).
    ws();
    const c = text[i];
    if (c === '{' || c === '[') {
      if (open.length >= MAX_DEPTH) fail('exceeded max depth');
      i++;
      ws();
      if (text[i] === (c === '{' ? '}' : ']')) i++;
      else {
        open.push(c);
        if (c === '{') key();
        continue;
      }
    } else if (c === '"') string();
    else {
      const literal = /^(?:-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)/.exec(text.slice(i, i + 400));
      if (!literal) fail('looking for beginning of value');
      i += literal![0].length;
      if (open.length === 0 && i < text.length && /[A-Za-z0-9.]/.test(text[i]!)) fail('after top-level value');
    }
    // After a value: a separator for the next one, or the end of enclosing containers.
    for (;;) {
      const top = open[open.length - 1];
      if (top === undefined) return i;
      ws();
      if (text[i] === ',') {
        i++;
        if (top === '{') key();
        break;
      }
      if (text[i] === (top === '{' ? '}' : ']')) {
        i++;
        open.pop();
        continue;
      }
      fail(top === '{' ? 'after object key:value pair' : 'after array element');
    }
  }
}

function goChar(c: string): string {
  if (c === "'") return "'\\''";
  if (c === '"') return `'"'`;
  return `'${JSON.stringify(c).slice(1, -1)}'`;
}
