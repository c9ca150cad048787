// lib/h1-client.ts through createUpstream on real loopback sockets: the simulator (bytes split
// anywhere), and raw net servers sending odd framings, resets and oversized heads.
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { createUpstream, type Upstream } from '../lib/upstream.js';
import { HttpError, StopReason } from '../lib/errors.js';
import { simFor } from './support/sim-client.js';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Readable } from 'node:stream';
import { until } from './support/until.js';

function client(t: TestContext, url: string, idleMs?: number): Upstream {
  const u = createUpstream(url, undefined, idleMs);
  t.after(() => u.close());
  return u;
}

interface RawRequest {
  head: string;
  body: Buffer;
  /** 1 for the first request on its connection */
  onConnection: number;
  /** 1 for the first connection the server accepted */
  connection: number;
}

/**
 * A server that reads requests (head + content-length body) and lets the test answer with any
 * bytes. It counts connections, so reuse is seen from the server's side.
 */
async function rawServer(t: TestContext, answer: (socket: Socket, req: RawRequest) => void): Promise<{ url: string; connections: () => number; requests: RawRequest[] }> {
  let connections = 0;
  const requests: RawRequest[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    const connection = ++connections;
    let onConnection = 0;
    let held = Buffer.alloc(0);
    socket.on('error', () => {});
    socket.on('data', (buf) => {
      held = Buffer.concat([held, buf]);
      for (;;) {
        const end = held.indexOf('\r\n\r\n');
        if (end === -1) return;
        const head = held.subarray(0, end).toString('latin1');
        const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
        if (held.length < end + 4 + length) return;
        const req = { head, body: held.subarray(end + 4, end + 4 + length), onConnection: ++onConnection, connection };
        held = held.subarray(end + 4 + length);
        requests.push(req);
        answer(socket, req);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.after(() => new Promise<void>((r) => {
    server.close(() => r());
    for (const s of sockets) s.destroy();
  }));
  const port = (server.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}`, connections: () => connections, requests };
}

/** Writes each piece on its own, a turn apart, so the client sees them as separate reads (as far as loopback allows). */
async function writePieces(socket: Socket, pieces: (string | Buffer)[]): Promise<void> {
  for (const p of pieces) {
    if (socket.destroyed) return;
    socket.write(p);
    await new Promise((r) => setImmediate(r));
  }
}

async function collect(body: AsyncIterable<Uint8Array>): Promise<string> {
  const parts: Uint8Array[] = [];
  for await (const part of body) parts.push(part);
  return Buffer.concat(parts).toString('utf8');
}

const CHUNKED_HEAD = 'HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n';

describe('h1 client (plain-http upstreams)', () => {
  it('streams a simulator response whose bytes are cut at random positions, line for line as node:http reads it', async (t) => {
    const sim = await simFor(t, { loadMs: 0, tokensPerSecond: 0 });
    const up = client(t, sim.url);
    const body = JSON.stringify({ model: 'llama3.2', prompt: 'tell me a story', options: { num_predict: 200, seed: 7 }, sim: { split: 'random' } });
    const res = await up.send('/api/generate', { body });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('Content-Type'), 'application/x-ndjson');
    const text = await collect(res.body);
    const direct = await (await fetch(sim.url + '/api/generate', { method: 'POST', body })).text();
    // The same text as fetch reads, but for the clock: timestamps and durations differ per run.
    const timeless = (s: string) => s.replace(/"created_at":"[^"]*"/g, '').replace(/"(\w+_duration)":\d+/g, '"$1"');
    assert.equal(timeless(text), timeless(direct), 'the same bytes as read by fetch');
    const lines = text.trimEnd().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines.length, 201);
    assert.equal(lines.at(-1).done, true);
  });

  it('reads chunk extensions, upper-case sizes and trailers, split anywhere', async (t) => {
    const frames = '3;ext=1\r\nab\n\r\nA\r\n{"k":"vv"}\r\n0\r\nX-Trailer: yes\r\n\r\n';
    const server = await rawServer(t, (socket) => {
      const bytes = Buffer.from(CHUNKED_HEAD + frames);
      void writePieces(socket, [...bytes].map((b) => Buffer.from([b])));
    });
    const up = client(t, server.url);
    const res = await up.send('/api/x', { body: '{}' });
    assert.equal(await collect(res.body), 'ab\n{"k":"vv"}');
    assert.equal(await (await up.send('/api/x', { body: '{}' })).text(), 'ab\n{"k":"vv"}');
    assert.equal(server.connections(), 1, 'the connection was reused after a complete response');
  });

  it('retired (its host moved): idle connections close at once, busy ones when their answer ends, on both clients', async (t) => {
    // Answers at once, except a request for /hold, answered when the test says.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const open = new Set<Socket>();
    const server = await rawServer(t, (socket, req) => {
      open.add(socket);
      socket.once('close', () => open.delete(socket));
      const answer = () => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      if (req.head.startsWith('POST /hold ')) void held.then(answer);
      else answer();
    });
    const up = client(t, server.url);
    const upload = (path: string, text: string) => up.send(path, { body: Readable.from([Buffer.from(text)]), bodyLength: text.length }); // node's agent
    const busy = [up.send('/hold', { body: 'z' }), upload('/hold', 'w')];
    await until(() => server.requests.length === 2, 'the held requests arrived');
    assert.equal(await (await up.send('/a', { body: 'x' })).text(), 'ok'); // our own reader's pool
    assert.equal(await (await upload('/b', 'y')).text(), 'ok');
    assert.equal(open.size, 4, 'two idle kept-alive connections and two busy ones');
    up.retire();
    await until(() => open.size === 2, 'the idle connections closed');
    release();
    for (const res of await Promise.all(busy)) assert.equal(await res.text(), 'ok', 'a busy request finished on its connection');
    await until(() => open.size === 0, 'the busy connections closed once their answers ended');
    assert.equal(server.connections(), 4);
  });

  it('reads content-length bodies and keeps the connection for the next request', async (t) => {
    const server = await rawServer(t, (socket, req) => {
      const body = `{"n":${req.onConnection},"got":${req.body.length}}`;
      void writePieces(socket, [`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 5)}`, body.slice(5)]);
    });
    const up = client(t, server.url);
    assert.deepEqual(JSON.parse(await (await up.send('/a', { body: 'x'.repeat(100_000) })).text()), { n: 1, got: 100_000 });
    assert.deepEqual(JSON.parse(await (await up.send('/b', { body: 'yy' })).text()), { n: 2, got: 2 });
    assert.equal(server.connections(), 1);
    assert.match(server.requests[1]!.head, /^POST \/b HTTP\/1\.1\r\n/);
    assert.match(server.requests[1]!.head, /\r\nHost: 127\.0\.0\.1:\d+\r\n/);
  });

  it('reads a close-delimited body to the end, and opens a new connection after it', async (t) => {
    const server = await rawServer(t, (socket) => {
      socket.end('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end');
    });
    const up = client(t, server.url);
    assert.equal(await (await up.send('/a')).text(), 'until the end');
    assert.equal(await (await up.send('/a')).text(), 'until the end');
    assert.equal(server.connections(), 2);
  });

  it('does not reuse a connection whose response was left incomplete', async (t) => {
    const server = await rawServer(t, (socket, req) => {
      if (req.connection === 1) socket.write(CHUNKED_HEAD + '2\r\na\n\r\n'); // and never ends
      else socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    });
    const up = client(t, server.url);
    const first = await up.send('/a');
    const it = first.body[Symbol.asyncIterator]();
    assert.deepEqual(Buffer.from((await it.next()).value!).toString(), 'a\n');
    first.discard();
    await assert.rejects(it.next(), /discarded/);
    assert.equal(await (await up.send('/b')).text(), 'ok');
    assert.equal(server.connections(), 2);
  });

  it('does not reuse a connection after Connection: close or bytes past the end of a body', async (t) => {
    const server = await rawServer(t, (socket, req) => {
      if (req.connection === 1) socket.write('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok'); // and stays open
      else if (req.connection === 2) socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokXX');
      else socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    });
    const up = client(t, server.url);
    for (let i = 0; i < 3; i++) assert.equal(await (await up.send('/a')).text(), 'ok');
    assert.equal(server.connections(), 3);
    assert.deepEqual(server.requests.map((r) => r.connection), [1, 2, 3]);
  });

  it('fails the body when upstream resets mid-body, and the next request gets a new connection', async (t) => {
    const server = await rawServer(t, (socket, req) => {
      if (req.connection === 1) {
        socket.write(CHUNKED_HEAD + '2\r\na\n\r\n5\r\nab', () => socket.resetAndDestroy());
      } else socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    });
    const up = client(t, server.url);
    const res = await up.send('/a');
    const parts: string[] = [];
    await assert.rejects(async () => {
      for await (const p of res.body) parts.push(Buffer.from(p).toString());
    }, (err: Error & { code?: string }) => err.code === 'ECONNRESET');
    assert.equal(parts.join(''), 'a\nab', 'what arrived before the reset was delivered');
    assert.equal(await (await up.send('/b')).text(), 'ok');
    assert.equal(server.connections(), 2);
  });

  it('retries once on a new connection when a kept-alive one is closed under its request', async (t) => {
    const server = await rawServer(t, (socket, req) => {
      if (req.onConnection === 2) socket.destroy(); // as if its idle timer fired just as the request arrived
      else socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    });
    const up = client(t, server.url);
    assert.equal(await (await up.send('/a', { body: '{}' })).text(), 'ok');
    assert.equal(await (await up.send('/b', { body: '{}' })).text(), 'ok');
    assert.equal(server.connections(), 2);
    assert.deepEqual(server.requests.map((r) => r.head.split(' ')[1]), ['/a', '/b', '/b']);
  });

  it('turns a header block past the bound into 502 upstream_unreachable, not memory', async (t) => {
    const server = await rawServer(t, (socket) => {
      socket.write('HTTP/1.1 200 OK\r\n');
      const line = `X-Filler: ${'f'.repeat(1000)}\r\n`;
      void writePieces(socket, Array.from({ length: 100 }, () => line));
    });
    const up = client(t, server.url);
    await assert.rejects(up.send('/a'), (err: unknown) => {
      assert.ok(err instanceof HttpError);
      assert.equal(err.status, 502);
      assert.match(err.message, /^upstream unreachable: .*header block over 65536 bytes/);
      return true;
    });
  });

  it('refuses a path or header that would break the request head, as node:http does, sending nothing', async (t) => {
    const server = await rawServer(t, (socket) => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
    const up = client(t, server.url);
    await assert.rejects(up.send('/a b'), (err: Error & { code?: string }) => err.code === 'ERR_UNESCAPED_CHARACTERS');
    await assert.rejects(up.send('/a\r\nX-Injected: 1'), (err: Error & { code?: string }) => err.code === 'ERR_UNESCAPED_CHARACTERS');
    await assert.rejects(up.send('/h', { headers: { 'user-agent': 'ua\r\nX-Injected: 1' } }), (err: Error & { code?: string }) => err.code === 'ERR_INVALID_CHAR');
    assert.equal(await (await up.send('/fine')).text(), 'ok');
    assert.deepEqual(server.requests.map((r) => r.head.split('\r\n')[0]), ['GET /fine HTTP/1.1']);
  });

  it('turns a refused connection into 502 upstream_unreachable', async (t) => {
    const server = await rawServer(t, () => {});
    const url = server.url;
    const up = client(t, url.replace(/:\d+$/, ':1'));
    await assert.rejects(up.send('/api/version'), /^HttpError: upstream unreachable: .*ECONNREFUSED|upstream unreachable: .*ECONNREFUSED/);
  });

  it('aborts before the head with the signal’s reason, and mid-body by failing the body', async (t) => {
    const server = await rawServer(t, (socket, req) => {
      if (req.head.startsWith('POST /body')) socket.write(CHUNKED_HEAD + '2\r\na\n\r\n');
      // else: no answer at all
    });
    const up = client(t, server.url);
    const early = new AbortController();
    const pending = up.send('/nothing', { body: '{}', signal: early.signal });
    await new Promise<void>((r) => {
      const check = () => (server.requests.length > 0 ? r() : setImmediate(check));
      check();
    });
    const reason = new StopReason('cancelled');
    early.abort(reason);
    await assert.rejects(pending, (err: unknown) => err === reason);

    const late = new AbortController();
    const res = await up.send('/body', { body: '{}', signal: late.signal });
    const it = res.body[Symbol.asyncIterator]();
    assert.equal(Buffer.from((await it.next()).value!).toString(), 'a\n');
    late.abort(new StopReason('cancelled'));
    await assert.rejects(it.next());
  });

  it('gives up on silence after idleMs and says why', async (t) => {
    const server = await rawServer(t, (socket) => socket.write(CHUNKED_HEAD + '2\r\na\n\r\n'));
    const up = client(t, server.url, 50);
    const res = await up.send('/a');
    await assert.rejects(res.text(), /upstream sent nothing for 50 ms/);
    assert.equal(res.failureReason(), 'upstream sent nothing for 50 ms');
  });

  it('keeps a body that arrives more often than idleMs going for longer than idleMs in all', async (t) => {
    // 40 pieces 25 ms apart (about 1 s) against an idleMs of 800: silence is counted from the last
    // read. The gap is about a thirtieth of idleMs, so a stalled event loop on a busy machine cannot fake silence.
    const server = await rawServer(t, (socket) => {
      socket.write(CHUNKED_HEAD);
      let sent = 0;
      const timer = setInterval(() => {
        if (socket.destroyed) return clearInterval(timer);
        if (++sent <= 40) socket.write('2\r\na\n\r\n');
        else {
          clearInterval(timer);
          socket.write('0\r\n\r\n');
        }
      }, 25);
    });
    const up = client(t, server.url, 800);
    const res = await up.send('/a');
    assert.equal(await res.text(), 'a\n'.repeat(40));
  });

  it('gives a reader that stops and goes on the whole body, in order (reading pauses and resumes)', async (t) => {
    // Larger than what the kernel may buffer between the two (here up to 32 MiB received plus
    // 4 MiB sent): with 4 MiB the whole body could sit in kernel buffers and the server never wait.
    const size = 64 * 1024 * 1024;
    const block = 64 * 1024;
    let drainWaits = 0;
    let sent = 0;
    const server = await rawServer(t, (socket) => {
      const blocks = [Buffer.alloc(block, 'q'), Buffer.alloc(block, 'r')];
      socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${size}\r\n\r\n`);
      const more = () => {
        while (sent < size) {
          const next = blocks[(sent / block) % 2]!;
          sent += next.length;
          if (!socket.write(next)) {
            drainWaits++;
            socket.once('drain', more);
            return;
          }
        }
      };
      more();
    });
    const up = client(t, server.url);
    const res = await up.send('/big');
    const it = res.body[Symbol.asyncIterator]();
    const first = await it.next();
    // The reader stops; the client must stop reading too, so the server is held back once the
    // kernel's buffers (at most ~36 MiB here) are full. Had the client read on into memory, the
    // server would send all 64 MiB: wait until it sends no more, then it must be short of the end.
    for (let last = -1; sent !== last && sent < size;) {
      last = sent;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(drainWaits > 0 && sent < size, `the server is held by the paused client (${sent} of ${size} bytes sent)`);
    // Checked as it comes (64 MiB is not kept): every byte of block n is q or r by n's parity.
    let at = 0;
    const take = (part: Uint8Array) => {
      for (let i = 0; i < part.length; i += 4096) assert.equal(part[i], Math.floor((at + i) / block) % 2 ? 0x72 : 0x71, `byte ${at + i}`);
      at += part.length;
    };
    take(first.value!);
    for (;;) {
      const r = await it.next();
      if (r.done) break;
      take(r.value);
    }
    assert.equal(at, size);
  });

  it('lets the process exit with a kept-alive socket in its pool', async (t) => {
    const server = await rawServer(t, (socket) => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
    const upstreamModule = fileURLToPath(new URL('../lib/upstream.ts', import.meta.url));
    // The child never calls close(): only an unref'd free socket lets it end by itself.
    const code = `const { createUpstream } = await import(${JSON.stringify(upstreamModule)});
      const up = createUpstream(${JSON.stringify(server.url)});
      process.stdout.write(await (await up.send('/a')).text());`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.after(() => child.kill('SIGKILL')); // only if it hung: the test has failed then
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    const exitCode = await new Promise((r) => child.once('exit', r));
    assert.equal(out, 'ok');
    assert.equal(exitCode, 0);
    assert.equal(server.connections(), 1);
  });

  it('refuses a body past text(maxBytes) and does not reuse that connection', async (t) => {
    const server = await rawServer(t, (socket, req) => {
      if (req.connection === 1) socket.write(`HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n${'z'.repeat(200_000)}`);
      else socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    });
    const up = client(t, server.url);
    await assert.rejects((await up.send('/a')).text(1000), /exceeds 1000 bytes/);
    assert.equal(await (await up.send('/b')).text(), 'ok');
    assert.equal(server.connections(), 2);
  });
});
