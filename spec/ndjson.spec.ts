import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventSplitter, LineSplitter, LineTooLongError, looksLikeJsonObjectLine } from '../lib/ndjson.js';

/** Seeded PRNG so that failures reproduce. */
function prng(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

function cutAt(bytes: Buffer, positions: number[]): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  for (const p of [...positions].sort((a, b) => a - b)) {
    out.push(bytes.subarray(start, p));
    start = p;
  }
  out.push(bytes.subarray(start));
  return out;
}

const SAMPLE = [
  { model: 'llama3.2', message: { role: 'assistant', content: 'Café → 🚀 naïve' }, done: false },
  { model: 'llama3.2', message: { role: 'assistant', content: '' }, done: false, tool_calls: [{ function: { name: 'f', arguments: { a: 'é' } } }] },
  { model: 'llama3.2', message: { role: 'assistant', content: '' }, done: true, eval_count: 3 },
].map((o) => JSON.stringify(o) + '\n');

describe('LineSplitter', () => {
  it('yields exactly the original lines whatever the byte boundaries', () => {
    const whole = Buffer.from(SAMPLE.join(''));
    const rand = prng(7);
    for (let trial = 0; trial < 500; trial++) {
      const cuts = Array.from({ length: Math.floor(rand() * 12) }, () => Math.floor(rand() * whole.length));
      const splitter = new LineSplitter();
      const lines = cutAt(whole, cuts).flatMap((c) => splitter.push(c));
      assert.equal(splitter.flush(), null);
      assert.deepEqual(lines.map((l) => Buffer.from(l).toString('utf8')), SAMPLE);
    }
  });

  it('keeps a multi-byte character intact when a cut falls inside it', () => {
    const line = Buffer.from('{"c":"🚀"}\n');
    const rocket = line.indexOf(0xf0);
    for (let k = 1; k < 4; k++) {
      const splitter = new LineSplitter();
      const out = [...splitter.push(line.subarray(0, rocket + k)), ...splitter.push(line.subarray(rocket + k))];
      assert.equal(out.length, 1);
      assert.equal(JSON.parse(Buffer.from(out[0]!).toString('utf8')).c, '🚀');
    }
  });

  it('flushes an unterminated last line with a newline added', () => {
    const splitter = new LineSplitter();
    assert.deepEqual(splitter.push(Buffer.from('{"a":1}\n{"b"')).map((l) => Buffer.from(l).toString()), ['{"a":1}\n']);
    splitter.push(Buffer.from(':2}'));
    assert.equal(Buffer.from(splitter.flush()!).toString(), '{"b":2}\n');
    assert.equal(splitter.flush(), null);
  });

  it('refuses a line longer than its bound instead of buffering it', () => {
    const splitter = new LineSplitter(16);
    splitter.push(Buffer.from('{"a":"0123456'));
    assert.throws(() => splitter.push(Buffer.from('789abcdef"}')), LineTooLongError);
    assert.equal(splitter.pendingBytes, 0);
  });

  it('emits many lines from one chunk', () => {
    const splitter = new LineSplitter();
    const chunk = Buffer.from('{"i":1}\n{"i":2}\n{"i":3}\n');
    assert.equal(splitter.push(chunk).length, 3);
  });
});

describe('EventSplitter', () => {
  it('groups SSE lines into whole events across arbitrary cuts', () => {
    const events = ['data: {"a":"é"}\n\n', 'data: {"b":2}\n\n', 'data: [DONE]\n\n'];
    const whole = Buffer.from(events.join(''));
    const rand = prng(3);
    for (let trial = 0; trial < 300; trial++) {
      const cuts = Array.from({ length: Math.floor(rand() * 8) }, () => Math.floor(rand() * whole.length));
      const splitter = new EventSplitter();
      const out = cutAt(whole, cuts).flatMap((c) => splitter.push(c)).map((e) => Buffer.from(e).toString('utf8'));
      assert.equal(splitter.flush(), null);
      assert.deepEqual(out, events);
    }
  });

  it('completes an event missing its blank line at the end of the stream', () => {
    const splitter = new EventSplitter();
    assert.deepEqual(splitter.push(Buffer.from('data: {"a":1}\n')), []);
    assert.equal(Buffer.from(splitter.flush()!).toString(), 'data: {"a":1}\n\n');
  });
});

describe('looksLikeJsonObjectLine', () => {
  it('accepts object lines and rejects others', () => {
    assert.equal(looksLikeJsonObjectLine(Buffer.from('{"a":1}\n')), true);
    assert.equal(looksLikeJsonObjectLine(Buffer.from(' {"a":1} \r\n')), true);
    assert.equal(looksLikeJsonObjectLine(Buffer.from('not json\n')), false);
    assert.equal(looksLikeJsonObjectLine(Buffer.from('\n')), false);
    assert.equal(looksLikeJsonObjectLine(Buffer.from('[1]\n')), false);
  });
});
