// Test helpers for the async job surface: a real webhook receiver on 127.0.0.1:0 that verifies
// every delivery's Standard Webhooks signature, and small HTTP helpers over a Stack.

import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';
import { verifySignature } from '../../lib/webhooks/dispatcher.js';
import type { Stack } from './stack.js';

export const newSecret = () => `whsec_${randomBytes(24).toString('base64')}`;

export interface Delivery {
  id: string;
  timestamp: string;
  verified: boolean;
  raw: string;
  body: { type: string; job_id: string; seq: number; state: string; previous_state: string | null; at: string; job: any };
  headers: IncomingHttpHeaders;
}

/** Decides the status of one delivery (0 = leave it unanswered); `nth` counts earlier deliveries with the same webhook-id. */
export type Answer = (d: Delivery, nth: number) => number;

export interface Receiver {
  url: string;
  deliveries: Delivery[];
  answer: Answer;
  /** Resolves with the deliveries so far once `done(deliveries)` holds; checked on every delivery. */
  until(done: (all: Delivery[]) => boolean): Promise<Delivery[]>;
  /** Deliveries of one job, in arrival order. */
  of(jobId: string): Delivery[];
  close(): Promise<void>;
}

export async function startReceiver(t: Pick<TestContext, 'after'>, secret: string | null, answer: Answer = () => 200): Promise<Receiver> {
  const deliveries: Delivery[] = [];
  const waiters: Array<{ done: (all: Delivery[]) => boolean; resolve: (all: Delivery[]) => void }> = [];
  const check = () => {
    for (const w of [...waiters]) {
      if (w.done(deliveries)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve([...deliveries]);
      }
    }
  };
  const receiver: Receiver = {
    url: '',
    deliveries,
    answer,
    until(done) {
      return new Promise((resolve) => {
        waiters.push({ done, resolve });
        check();
      });
    },
    of: (jobId) => deliveries.filter((d) => d.body.job_id === jobId),
    close: async () => {},
  };
  const server = createServer((req, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const id = String(req.headers['webhook-id'] ?? '');
      const timestamp = String(req.headers['webhook-timestamp'] ?? '');
      const signature = String(req.headers['webhook-signature'] ?? '');
      const verified = secret === null
        ? true
        : verifySignature(secret, { 'webhook-id': id, 'webhook-timestamp': timestamp, 'webhook-signature': signature }, raw);
      const d: Delivery = { id, timestamp, verified, raw, body: JSON.parse(raw), headers: req.headers };
      const nth = deliveries.filter((x) => x.id === id).length;
      deliveries.push(d);
      const status = receiver.answer(d, nth);
      if (status === 0) return check(); // 0: never answer (a hung receiver)
      res.writeHead(status, { 'content-type': 'application/json' }).end('{}');
      check();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  receiver.url = `http://127.0.0.1:${port}/hook`;
  receiver.close = async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  };
  t.after(() => receiver.close());
  return receiver;
}

export async function postJob(stack: Stack, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; job: any; location: string | null }> {
  const res = await stack.call('/jobs', { method: 'POST', json: body, headers });
  return { status: res.status, job: await res.json(), location: res.headers.get('location') };
}

/** Long-polls until the job is terminal (the server caps each poll; loop for slow jobs). */
export async function waitJob(stack: Stack, id: string): Promise<any> {
  for (;;) {
    const res = await stack.call(`/jobs/${id}?wait=30`);
    const job = (await res.json()) as any;
    if (res.status !== 200) throw new Error(`GET /jobs/${id}: ${res.status} ${JSON.stringify(job)}`);
    if (['completed', 'failed', 'cancelled'].includes(job.state)) return job;
  }
}

export async function getJson(stack: Stack, path: string, init: RequestInit & { json?: unknown } = {}): Promise<{ status: number; body: any }> {
  const res = await stack.call(path, init);
  return { status: res.status, body: await res.json() };
}

/** Every job, following next_cursor. */
export async function allJobs(stack: Stack, query = ''): Promise<any[]> {
  const out: any[] = [];
  let cursor: string | null = null;
  do {
    const sep = query ? '&' : '';
    const { status, body } = await getJson(stack, `/jobs?${query}${sep}limit=500${cursor ? `&cursor=${cursor}` : ''}`);
    if (status !== 200) throw new Error(`GET /jobs: ${status}`);
    out.push(...body.jobs);
    cursor = body.next_cursor;
  } while (cursor);
  return out;
}
