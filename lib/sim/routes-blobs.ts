// Uploads as Ollama takes them (ollama-wire.md §8, SPEC §14): HEAD/POST /api/blobs/:digest
// hashes the body as it streams in and keeps only its digest and size (never the bytes, so
// a test can push gigabytes through); /api/create refers to blobs by digest; /api/push
// reports progress. The body of a blob upload is read here, not by server.ts.

import { createHash } from 'node:crypto';
import type { Socket } from 'node:net';
import type { Exchange } from './exchange.js';
import { checkTypes } from './body.js';
import { modelFromName } from './catalog.js';
import { CT_NDJSON, SimError, badRequest, goJson } from './wire.js';

type Body = Record<string, unknown>;

const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** What the simulator "has on disk" as blobs: digest -> size, and what arrived in total. */
export class BlobStore {
  readonly #sizes = new Map<string, number>();
  receivedBytes = 0;
  uploads = 0;

  has(digest: string): boolean {
    return this.#sizes.has(digest);
  }
  add(digest: string, size: number): void {
    this.#sizes.set(digest, size);
  }
  reset(): void {
    this.receivedBytes = 0;
    this.uploads = 0;
  }
  snapshot() {
    return { stored: this.#sizes.size, received_bytes: this.receivedBytes, uploads: this.uploads };
  }
}

function digestParam(ex: Exchange): string {
  const url = ex.req.url ?? '';
  const path = url.split('?')[0]!;
  return decodeURIComponent(path.slice('/api/blobs/'.length));
}

export function handleBlobHead(ex: Exchange): void {
  const digest = digestParam(ex);
  if (!DIGEST.test(digest)) return ex.sendError(400, 'invalid digest format', 'ollama');
  ex.send(ex.core.blobs.has(digest) ? 200 : 404, 'text/plain; charset=utf-8', '');
}

/** Streams the body into a SHA-256; 201 when it matches, 400 otherwise; 200 at once for a known blob. */
export async function handleBlobPost(ex: Exchange): Promise<void> {
  const { req } = ex;
  const digest = digestParam(ex);
  const blobs = ex.core.blobs;
  if (!DIGEST.test(digest)) {
    req.resume();
    return ex.sendError(400, 'invalid digest format', 'ollama');
  }
  if (blobs.has(digest)) {
    // Go answers without reading the body, then closes a connection with much left unread:
    // `Connection: close`, FIN, and the close 500 ms later (net/http's rstAvoidanceDelay).
    if (!req.complete) {
      const socket = req.socket as Socket & { destroySoon?: () => void };
      socket.destroySoon = () => {
        req.resume();
        socket.end();
        setTimeout(() => socket.destroy(), 500).unref();
      };
    }
    return ex.send(200, 'text/plain; charset=utf-8', '', req.complete ? {} : { Connection: 'close' });
  }
  const hash = createHash('sha256');
  let size = 0;
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      hash.update(chunk);
      size += chunk.length;
      blobs.receivedBytes += chunk.length;
    }
  } catch {
    return; // the client left mid-upload: nothing is stored
  }
  if (!req.complete) return;
  blobs.uploads++;
  const got = `sha256:${hash.digest('hex')}`;
  if (got !== digest) return ex.sendError(400, `digest mismatch, expected "${digest}", got "${got}"`, 'ollama');
  blobs.add(digest, size);
  ex.send(201, 'text/plain; charset=utf-8', '');
}

async function progress(ex: Exchange, lines: Array<Record<string, unknown>>): Promise<void> {
  ex.res.writeHead(200, { 'Content-Type': CT_NDJSON });
  for (const line of lines) {
    const p = ex.writer.write(goJson(line) + '\n');
    if (p) await p;
    if (!ex.open) return;
  }
  ex.writer.end();
}

/** POST /api/create: from a model, or from uploaded files (`files`: name -> digest). */
export async function handleCreate(ex: Exchange, body: Body): Promise<void> {
  checkTypes(body, 'api.CreateRequest', { model: 'string', from: 'string', files: 'object', stream: 'bool' });
  const model = typeof body['model'] === 'string' ? body['model'] : '';
  if (model === '') throw badRequest('model is required');
  const files = (body['files'] ?? {}) as Record<string, unknown>;
  const from = typeof body['from'] === 'string' ? body['from'] : '';
  const lines: Array<Record<string, unknown>> = [];
  for (const [name, digest] of Object.entries(files)) {
    if (typeof digest !== 'string' || !DIGEST.test(digest)) throw badRequest('invalid digest format');
    if (!ex.core.blobs.has(digest)) throw badRequest(`${name}: blob ${digest} not found, upload it with POST /api/blobs/${digest}`);
    lines.push({ status: `using existing layer ${digest}` });
  }
  if (Object.keys(files).length === 0) {
    if (from === '') throw badRequest('neither \'from\' or \'files\' was specified');
    if (!ex.core.catalog.find(from)) throw new SimError(404, `model '${from}' not found`);
  }
  ex.core.catalog.add(modelFromName(model), Date.now());
  if (body['stream'] === false) return ex.sendJson(200, '{"status":"success"}');
  await progress(ex, [{ status: 'parsing GGUF' }, ...lines, { status: 'writing manifest' }, { status: 'success' }]);
}

/** POST /api/push: progress for a model the simulator has. */
export async function handlePush(ex: Exchange, body: Body): Promise<void> {
  checkTypes(body, 'api.PushRequest', { model: 'string', name: 'string', stream: 'bool' });
  const model = (body['model'] as string | undefined) || (body['name'] as string | undefined) || '';
  if (model === '') throw badRequest('model is required');
  const entry = ex.core.catalog.find(model);
  if (!entry) throw new SimError(404, `model '${model}' not found`);
  if (body['stream'] === false) return ex.sendJson(200, '{"status":"success"}');
  await progress(ex, [
    { status: 'retrieving manifest' },
    { status: `pushing ${entry.digest.slice(0, 12)}`, digest: `sha256:${entry.digest}`, total: entry.sizeBytes, completed: entry.sizeBytes },
    { status: 'pushing manifest' },
    { status: 'success' },
  ]);
}
