// lib/h1-frames.ts: which upstream chunk frames may go to the client as they came.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeLineFrames, scanLineFrames } from '../lib/h1-frames.js';
import { chunkFrames } from '../lib/http/unit-writer.js';

// the second line's length, 0x13a, has a hex letter (for the upper-case case)
const LINES = ['{"a":1}\n', `{"b":"${'x'.repeat(305)}"}\n`, '{"done":true}\n'].map((l) => Buffer.from(l));

describe('h1 line frames', () => {
  it('takes whole frames of one JSON-object line each, framed as node frames a write', () => {
    const frames = chunkFrames(LINES);
    const scan = scanLineFrames(frames, 0, frames.length);
    assert.equal(scan.stop, frames.length);
    assert.equal(scan.count, 3);
    assert.equal(frames.subarray(scan.lastStart, scan.lastEnd).toString(), '{"done":true}\n');
    assert.equal(decodeLineFrames(frames).toString(), LINES.join(''));
  });

  it('stops before a partial frame, the last chunk, or any frame node would not have written', () => {
    const good = chunkFrames([LINES[0]!]);
    const cases: [string, Buffer][] = [
      ['partial frame', Buffer.concat([good, chunkFrames([LINES[1]!]).subarray(0, 20)])],
      ['last chunk', Buffer.concat([good, Buffer.from('0\r\n\r\n')])],
      ['upper-case hex', Buffer.concat([good, Buffer.from(`${LINES[1]!.length.toString(16).toUpperCase()}\r\n${LINES[1]}\r\n`)])],
      ['leading zero', Buffer.concat([good, Buffer.from(`08\r\n${LINES[0]}\r\n`)])],
      ['extension', Buffer.concat([good, Buffer.from(`8;x=1\r\n${LINES[0]}\r\n`)])],
      ['two lines', Buffer.concat([good, chunkFrames([Buffer.concat([LINES[0]!, LINES[0]!])])])],
      ['half a line', Buffer.concat([good, chunkFrames([Buffer.from('{"a":')])])],
      ['not an object', Buffer.concat([good, chunkFrames([Buffer.from('[1,2]\n')])])],
      ['no CRLF after data', Buffer.concat([good, Buffer.from(`8\r\n${LINES[0]}\n\n`)])],
    ];
    for (const [name, buf] of cases) {
      const scan = scanLineFrames(buf, 0, buf.length);
      assert.equal(scan.stop, good.length, name);
      assert.equal(scan.count, 1, name);
    }
    assert.equal(scanLineFrames(Buffer.from('0\r\n\r\n'), 0, 5).count, 0);
  });
});
