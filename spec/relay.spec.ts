import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';
import { chunkFrames, writeIfRoom, writeUnits } from '../lib/http/unit-writer.js';
import { startStack, TOKEN } from './support/stack.js';
import { createServer as createNetServer, type Socket } from 'node:net';
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

/**
 * foreman in front of a raw upstream: on the first request bytes it sends a chunked NDJSON head,
 * then `body` writes the frames as the test wants them (odd framings, backpressure).
 */
async function rawUpstreamStack(t: TestContext, body: (socket: Socket) => Promise<void>) {
  const sockets = new Set<Socket>();
  const upstream = createNetServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.once('data', () => {
      socket.write('HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\ntransfer-encoding: chunked\r\n\r\n');
      void body(socket);
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
  t.after(() => new Promise<void>((r) => {
    for (const s of sockets) s.destroy();
    upstream.close(() => r());
  }));
  return startStack(t, { config: { upstream: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}` } });
}

/**
 * Sends `request` as written and resolves the raw bytes after the response head (the request asks
 * for close). With `readAfter`, nothing is read until it settles (a client that stops reading).
 */
function rawExchange(url: string, request: string, readAfter?: Promise<unknown>): Promise<Buffer> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    const parts: Buffer[] = [];
    if (readAfter) {
      socket.pause();
      void readAfter.then(() => socket.resume());
    }
    socket.on('data', (d) => parts.push(d));
    socket.on('error', reject);
    socket.on('end', () => {
      const all = Buffer.concat(parts);
      resolve(all.subarray(all.indexOf('\r\n\r\n') + 4));
    });
    socket.write(request);
  });
}

const rawBody = (url: string, path: string) => rawExchange(url, `GET ${path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`);

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

  it('sends one-line frames as node frames them, whether upstream framed them that way or any other', async (t) => {
    // Upstream frames: canonical one-line frames (passed on as they are), then upper-case hex,
    // an extension, a leading zero, two lines in one chunk, a line cut across chunks: all re-framed.
    const line = (i: number, extra = '') => `{"model":"m","message":{"role":"assistant","content":"t${i}${extra}"},"done":false}\n`;
    // line 3's length needs hex letters (0x..a-f) for its upper-case framing to differ
    let pad = '';
    while (!/[a-f]/.test(Buffer.byteLength(line(3, pad)).toString(16))) pad += 'p';
    const lines = [line(1), line(2, 'é'.repeat(40)), line(3, pad), line(4), line(5), line(6), line(7), line(8), line(9)];
    const done = '{"model":"m","message":{"role":"assistant","content":""},"done":true,"eval_count":9}\n';
    const frame = (text: string, size = Buffer.byteLength(text).toString(16)) => `${size}\r\n${text}\r\n`;
    const writes = [
      frame(lines[0]!) + frame(lines[1]!),
      frame(lines[2]!, Buffer.byteLength(lines[2]!).toString(16).toUpperCase()),
      `${Buffer.byteLength(lines[3]!).toString(16)};x=y\r\n${lines[3]}\r\n`,
      frame(lines[4]!, '0' + Buffer.byteLength(lines[4]!).toString(16)),
      frame(lines[5]! + lines[6]!),
      frame(lines[7]!.slice(0, 20)), frame(lines[7]!.slice(20)),
      frame(lines[8]!),
      frame(done) + '0\r\n\r\n',
    ];
    const stack = await rawUpstreamStack(t, async (socket) => {
      for (const w of writes) {
        await new Promise((r) => setImmediate(r));
        socket.write(w);
      }
    });
    const body = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'x' }] });
    const raw = await rawExchange(stack.url,
      `POST /api/chat HTTP/1.1\r\nhost: ${new URL(stack.url).host}\r\nconnection: close\r\nauthorization: Bearer ${TOKEN}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    const expected = Buffer.concat([chunkFrames([...lines, done].map((l) => Buffer.from(l))), Buffer.from('0\r\n\r\n')]);
    assert.equal(raw.toString('utf8'), expected.toString('utf8'));
  });

  it('gives a client that stops reading every frame in order once it reads again (frames wait for the socket to drain)', async (t) => {
    // 20,000 canonical one-line frames of ~1 KB (20 MB): far past the loopback socket buffers, so
    // foreman's direct socket writes fill up and it must wait for the socket's drain, and upstream for foreman.
    const line = (i: number) => `{"model":"m","message":{"role":"assistant","content":"${String(i).padStart(6, '0')}${'z'.repeat(1000)}"},"done":false}\n`;
    const lines = Array.from({ length: 20_000 }, (_, i) => line(i));
    const done = '{"model":"m","message":{"role":"assistant","content":""},"done":true}\n';
    const frame = (text: string) => `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`;
    let upstreamBlocked!: () => void;
    let blockedOnce = false;
    const blocked = new Promise<void>((r) => (upstreamBlocked = () => ((blockedOnce = true), r())));
    let upstreamEnded!: () => void;
    const ended = new Promise<void>((r) => (upstreamEnded = r));
    const stack = await rawUpstreamStack(t, async (socket) => {
      for (let i = 0; i < lines.length; i++) {
        if (!socket.write(frame(lines[i]!))) {
          upstreamBlocked();
          await new Promise((r) => socket.once('drain', r));
        }
        if (i % 10 === 0) await new Promise((r) => setImmediate(r));
      }
      socket.write(frame(done) + '0\r\n\r\n');
      upstreamEnded();
    });
    const body = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'x' }] });
    // Reads nothing until upstream itself is held back (or, should the buffers hold it all, has sent it all).
    const raw = await rawExchange(stack.url,
      `POST /api/chat HTTP/1.1\r\nhost: ${new URL(stack.url).host}\r\nconnection: close\r\nauthorization: Bearer ${TOKEN}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      Promise.race([blocked, ended]));
    const expected = Buffer.concat([chunkFrames([...lines, done].map((l) => Buffer.from(l))), Buffer.from('0\r\n\r\n')]);
    assert.ok(blockedOnce, 'upstream never had to wait: the test sent too little to fill the buffers');
    assert.equal(raw.length, expected.length);
    assert.ok(raw.equals(expected));
  });
});
