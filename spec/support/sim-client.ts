// Test helpers for spec/sim.spec.ts: a simulator per test closed in t.after,
// fetch and raw node:http calls (to see the exact writes), NDJSON/SSE parsing,
// and waiting on stats without sleeping.

import { request } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import type { TestContext } from 'node:test';
import { startSim } from '../../lib/sim/index.js';
import type { Sim, SimOptions, SimStats } from '../../lib/sim/index.js';
import { until as pollUntil } from './until.js';

export async function simFor(t: TestContext, options: SimOptions = {}): Promise<Sim> {
  const sim = await startSim(options);
  t.after(() => sim.close());
  return sim;
}

export interface Reply {
  status: number;
  type: string | null;
  text: string;
}

export async function post(sim: Sim, path: string, body: unknown, method = 'POST'): Promise<Reply> {
  const res = await fetch(sim.url + path, {
    method,
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
}

export async function get(sim: Sim, path: string, method = 'GET'): Promise<Reply> {
  const res = await fetch(sim.url + path, { method });
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
}

export interface Raw {
  status: number;
  headers: IncomingHttpHeaders;
  chunks: Buffer[];
  body: Buffer;
}

/** One request over node:http; `chunks` are the HTTP chunks as the sim wrote them. */
export function raw(sim: Sim, path: string, body: unknown): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const req = request(sim.url + path, { method: 'POST' }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, chunks, body: Buffer.concat(chunks) }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

export function ndjson(text: string): Array<Record<string, unknown>> {
  if (text === '') return [];
  if (!text.endsWith('\n')) throw new Error(`NDJSON body does not end with a newline: ${text.slice(-40)}`);
  return text.slice(0, -1).split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** SSE events' data strings; asserts the exact `data: X\n\n` framing. */
export function sseData(text: string): string[] {
  if (!text.endsWith('\n\n')) throw new Error('SSE body does not end with a blank line');
  return text.slice(0, -2).split('\n\n').map((event) => {
    if (!event.startsWith('data: ') || event.includes('\n')) throw new Error(`bad SSE event: ${event}`);
    return event.slice(6);
  });
}

/** Polls the simulator's stats until `check` holds (spec/support/until.ts does the waiting). */
export async function until(sim: Sim, check: (s: SimStats) => boolean): Promise<SimStats> {
  await pollUntil(() => check(sim.stats()), () => `simulator stats to match; last: ${JSON.stringify(sim.stats())}`);
  return sim.stats();
}

/** A streaming fetch whose lines can be read one at a time, and aborted. */
export async function openStream(sim: Sim, path: string, body: unknown) {
  const controller = new AbortController();
  const res = await fetch(sim.url + path, { method: 'POST', body: JSON.stringify(body), signal: controller.signal });
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buffered = '';
  return {
    res,
    /** Reads until `n` complete lines have arrived; returns them. */
    async lines(n: number): Promise<string[]> {
      while (buffered.split('\n').length - 1 < n) {
        const { value, done } = await reader.read();
        if (done) break;
        buffered += decoder.decode(value, { stream: true });
      }
      const parts = buffered.split('\n');
      const out = parts.slice(0, n);
      buffered = parts.slice(n).join('\n');
      return out;
    },
    /** Reads to the end; rejects if the connection breaks. */
    async rest(): Promise<string> {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return buffered + decoder.decode();
        buffered += decoder.decode(value, { stream: true });
      }
    },
    abort: () => controller.abort(),
  };
}

export const CHAT = (model: string, content = 'hello there', extra: Record<string, unknown> = {}) => ({
  model,
  messages: [{ role: 'user', content }],
  ...extra,
});

export const WEATHER_TOOL = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather for a city',
    parameters: {
      type: 'object',
      required: ['city'],
      properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } },
    },
  },
};
