import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';
import { chunkFrames, writeIfRoom, writeUnits } from '../lib/http/unit-writer.js';
import { startStack } from './support/stack.js';
import { rawRequest } from './support/raw-http.js';

/** A server whose one handler is `handle`; closed when the test ends. */
async function serve(t: TestContext, handle: (res: ServerResponse, path: string) => void): Promise<string> {
  const server = createServer((req, res) => {
    req.resume();
    handle(res, req.url ?? '/');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** The raw bytes after the response head, over a connection that asks for close. */
function rawBody(url: string, path: string): Promise<Buffer> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    const parts: Buffer[] = [];
    socket.on('data', (d) => parts.push(d));
    socket.on('error', reject);
    socket.on('end', () => {
      const all = Buffer.concat(parts);
      resolve(all.subarray(all.indexOf('\r\n\r\n') + 4));
    });
    socket.write(`GET ${path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`);
  });
}

const UNITS = [
  Buffer.from('{"a":1}\n'),
  Buffer.from(`{"text":"${'é'.repeat(20)}"}\n`),
  Buffer.from(`{"pad":"${'w'.repeat(500)}"}\n`), // three hex digits of length
  Buffer.from(`{"pad":"${'x'.repeat(5_000)}"}\n`), // four
  Buffer.from(`{"pad":"${'y'.repeat(70_000)}"}\n`), // five
  Buffer.from('{"done":true}\n'),
];

describe('unit writer', () => {
  it('frames a batch exactly as node frames one write() per unit', async (t) => {
    const url = await serve(t, (res, path) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      if (path === '/batched') writeUnits(res, UNITS);
      else for (const unit of UNITS) res.write(unit);
      res.end();
    });
    const [batched, single] = await Promise.all([rawBody(url, '/batched'), rawBody(url, '/single')]);
    assert.ok(single.length > 75_000);
    assert.deepEqual(batched, single);
    const parsed = await rawRequest(url, { method: 'GET', path: '/batched' });
    assert.deepEqual(parsed.chunks, UNITS, 'one HTTP chunk per unit');
  });

  it('chunkFrames writes lowercase hex lengths', () => {
    assert.equal(chunkFrames([Buffer.alloc(255, 0x61), Buffer.from('z')]).toString('latin1'), `ff\r\n${'a'.repeat(255)}\r\n1\r\nz\r\n`);
  });

  it('writes the bytes alone when the body is not chunked', async (t) => {
    const url = await serve(t, (res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson', 'content-length': String(UNITS.reduce((n, u) => n + u.length, 0)) });
      writeUnits(res, UNITS);
      res.end();
    });
    const res = await fetch(url);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), Buffer.concat(UNITS));
  });

  it('skips a heartbeat while the socket buffer is full instead of queueing it', async (t) => {
    let checked!: (r: { wrote: boolean[]; before: number; after: number; fresh: boolean }) => void;
    const result = new Promise<{ wrote: boolean[]; before: number; after: number; fresh: boolean }>((r) => (checked = r));
    const url = await serve(t, (res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      const fresh = writeIfRoom(res, Buffer.from('{"done":false}\n'));
      res.write(Buffer.alloc(1024 * 1024, 0x20)); // far past the high-water mark: the socket needs a drain
      const before = res.writableLength;
      const wrote = Array.from({ length: 50 }, () => writeIfRoom(res, Buffer.from('{"done":false}\n')));
      checked({ wrote, before, after: res.writableLength, fresh });
      res.destroy();
    });
    const { port } = new URL(url);
    const socket = connect(Number(port), '127.0.0.1');
    t.after(() => socket.destroy());
    socket.on('error', () => {});
    socket.pause(); // a client that does not read
    socket.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
    const r = await result;
    assert.equal(r.fresh, true, 'a socket with room takes the beat');
    assert.ok(r.wrote.every((w) => w === false), 'no beat queued behind a full buffer');
    assert.equal(r.after, r.before);
  });
});

describe('relayed streams', () => {
  it("drop upstream's content-length, so foreman's own error line reaches the client", async (t) => {
    const body = '{"model":"m","message":{"role":"assistant","content":"hi"},"done":false}\n';
    const upstream = await serve(t, (res, path) => {
      if (path !== '/api/chat') return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'application/x-ndjson', 'content-length': String(Buffer.byteLength(body)) });
      res.end(body); // no done line: foreman must append one error line
    });
    const stack = await startStack(t, { config: { upstream } });
    const res = await stack.call('/api/chat', { json: { model: 'm', messages: [{ role: 'user', content: 'x' }] } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-length'), null);
    const lines = (await res.text()).trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines.length, 2);
    assert.equal(lines[0].message.content, 'hi');
    assert.equal(lines[1].error, 'upstream ended the stream early');
  });
});
