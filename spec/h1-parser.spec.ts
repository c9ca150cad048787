// lib/h1-parser.ts as a pure unit: responses fed in every possible cut, odd framings, and the bounds.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_CHUNK_LINE_BYTES, MAX_HEAD_BYTES, MAX_TRAILER_BYTES, ProtocolError, ResponseParser, type ResponseHead } from '../lib/h1-parser.js';

interface Seen {
  head: ResponseHead | null;
  body: Buffer[];
  completed: number;
  parser: ResponseParser;
}

function parser(options: { noBody?: boolean } = {}): Seen {
  const seen = { head: null, body: [], completed: 0 } as unknown as Seen;
  seen.parser = new ResponseParser({
    head: (h) => (seen.head = h),
    body: (piece) => seen.body.push(Buffer.from(piece)),
    complete: () => seen.completed++,
  }, options);
  return seen;
}

function feed(pieces: (string | Buffer)[], options: { noBody?: boolean; end?: boolean } = {}): Seen {
  const seen = parser(options);
  for (const p of pieces) seen.parser.push(typeof p === 'string' ? Buffer.from(p, 'latin1') : p);
  if (options.end) seen.parser.end();
  return seen;
}

const bodyOf = (seen: Seen) => Buffer.concat(seen.body).toString('utf8');

const LINES = '{"a":1}\n{"b":"é ü"}\n{"done":true}\n';
const CHUNKED =
  'HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\nKeep-Alive: timeout=5\r\n\r\n' +
  `8\r\n{"a":1}\n\r\n` +
  `${Buffer.byteLength('{"b":"é ü"}\n').toString(16).toUpperCase()};name=value;x="q"\r\n{"b":"é ü"}\n\r\n` +
  `e \r\n{"done":true}\n\r\n` +
  '0\r\nX-Trailer: 1\r\nX-Other: two\r\n\r\n';

describe('h1 response parser', () => {
  it('reads a chunked body with extensions and trailers, cut at every byte position', () => {
    const whole = Buffer.from(CHUNKED, 'utf8');
    for (let cut = 0; cut <= whole.length; cut++) {
      const seen = feed([whole.subarray(0, cut), whole.subarray(cut)]);
      assert.equal(bodyOf(seen), LINES, `cut at ${cut}`);
      assert.equal(seen.completed, 1, `cut at ${cut}`);
      assert.equal(seen.parser.reusable, true, `cut at ${cut}`);
    }
    const bytes = feed([...whole].map((b) => Buffer.from([b])));
    assert.equal(bodyOf(bytes), LINES);
    assert.equal(bytes.head?.status, 200);
    assert.equal(bytes.head?.headers['content-type'], 'application/x-ndjson');
    assert.equal(bytes.head?.keepAliveMs, 5000);
  });

  it('hands out body pieces as views of the read, one per chunk, nothing held back', () => {
    const seen = feed([Buffer.from(CHUNKED, 'utf8')]);
    assert.deepEqual(seen.body.map((b) => b.toString()), ['{"a":1}\n', '{"b":"é ü"}\n', '{"done":true}\n']);
  });

  it('reads a content-length body cut anywhere, and a zero-length one', () => {
    const text = 'HTTP/1.1 404 Not Found\r\ncontent-length: 24\r\n\r\n{"error":"no such model"}';
    for (let cut = 0; cut <= text.length; cut++) {
      const seen = feed([text.slice(0, cut), text.slice(cut)]);
      assert.equal(bodyOf(seen), '{"error":"no such model"', `cut at ${cut}`);
      assert.equal(seen.parser.extraBytes, 1, 'the byte past the length is not body');
      assert.equal(seen.completed, 1);
      assert.equal(seen.parser.reusable, false, 'bytes past the end: not reused');
    }
    const exact = feed(['HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc']);
    assert.equal(bodyOf(exact), 'abc');
    assert.equal(exact.parser.reusable, true);
    const empty = feed(['HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n']);
    assert.equal(empty.completed, 1);
    assert.equal(empty.body.length, 0);
  });

  it('reads a close-delimited body to the end of the connection, and never reuses it', () => {
    const seen = feed(['HTTP/1.1 200 OK\r\n\r\nabc', 'def'], { end: false });
    assert.equal(seen.completed, 0);
    seen.parser.end();
    assert.equal(bodyOf(seen), 'abcdef');
    assert.equal(seen.completed, 1);
    assert.equal(seen.parser.reusable, false);
  });

  it('reuses only what upstream allows: not after Connection: close, an HTTP/1.0 answer, or bytes past the end', () => {
    assert.equal(feed(['HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx']).parser.reusable, false);
    assert.equal(feed(['HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx']).parser.reusable, false);
    assert.equal(feed(['HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx']).parser.reusable, true);
    assert.equal(feed(['HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxy']).parser.reusable, false);
    assert.equal(feed(['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n1\r\nx\r\n0\r\n\r\n']).parser.reusable, false);
  });

  it('skips an interim 100 Continue, and reads no body for HEAD, 204 and 304', () => {
    const seen = feed(['HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok']);
    assert.equal(seen.head?.status, 201);
    assert.equal(bodyOf(seen), 'ok');
    const head = feed(['HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n'], { noBody: true });
    assert.equal(head.completed, 1);
    assert.equal(head.parser.reusable, true);
    assert.equal(feed(['HTTP/1.1 204 No Content\r\n\r\n']).completed, 1);
    assert.equal(feed(['HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n']).completed, 1);
  });

  it('joins repeated headers, keeps the first of a single-valued one, and refuses conflicting lengths', () => {
    const seen = feed(['HTTP/1.1 200 OK\r\nX-A: 1\r\nx-a: 2\r\nContent-Type: a\r\nContent-Type: b\r\nContent-Length: 0\r\n\r\n']);
    assert.equal(seen.head?.headers['x-a'], '1, 2');
    assert.equal(seen.head?.headers['content-type'], 'a');
    assert.throws(() => feed(['HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n']), ProtocolError);
    assert.throws(() => feed(['HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n']), ProtocolError);
  });

  it('refuses a bad status line, header line, chunk size or chunk end', () => {
    assert.throws(() => feed(['HTTP/2 200 OK\r\n\r\n']), ProtocolError);
    assert.throws(() => feed(['HTTP/1.1 200 OK\r\nno colon here\r\n\r\n']), ProtocolError);
    assert.throws(() => feed(['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n']), ProtocolError);
    assert.throws(() => feed(['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX']), ProtocolError);
    assert.throws(() => feed(['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1111111111111\r\n']), /too large/);
  });

  it('says the body was cut short when the connection ends mid-body or before the head', () => {
    assert.throws(() => feed(['HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab'], { end: true }), /mid-body/);
    assert.throws(() => feed(['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab'], { end: true }), /mid-body/);
    assert.throws(() => feed(['HTTP/1.1 20'], { end: true }), /before the response head/);
  });

  it('holds no more than its bounds: an endless header block, chunk-size line or trailer is an error', () => {
    const seen = parser();
    const kib = Buffer.alloc(1024, 'a');
    seen.parser.push(Buffer.from('HTTP/1.1 200 OK\r\nX-Big: '));
    assert.throws(() => {
      for (let i = 0; i <= MAX_HEAD_BYTES / 1024; i++) seen.parser.push(kib);
    }, /header block over/);

    const line = parser();
    line.parser.push(Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;ext='));
    assert.throws(() => {
      for (let i = 0; i <= MAX_CHUNK_LINE_BYTES / 1024; i++) line.parser.push(kib);
    }, /chunk-size line over/);

    const trailer = parser();
    trailer.parser.push(Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n'));
    assert.throws(() => {
      for (let i = 0; i <= MAX_TRAILER_BYTES / 1024; i++) trailer.parser.push(Buffer.from('X-T: ' + 'b'.repeat(1000) + '\r\n'));
    }, /trailer section over/);
  });
});
