import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { jsonDepthExceeds, MAX_JSON_DEPTH, parseJsonBody } from '../lib/http/body.js';
import { HttpError } from '../lib/errors.js';

const nested = (depth: number, open = '[', close = ']') => `${open.repeat(depth)}${close.repeat(depth)}`;

describe('request body parsing: nesting depth (SPEC §8)', () => {
  it('accepts exactly 512 levels and refuses 513 with a 400', () => {
    assert.equal(MAX_JSON_DEPTH, 512);
    assert.deepEqual(JSON.stringify(parseJsonBody(Buffer.from(nested(512)))).length, 1024);
    assert.throws(() => parseJsonBody(Buffer.from(nested(513))), (err: unknown) => {
      assert.ok(err instanceof HttpError);
      assert.equal(err.status, 400);
      assert.match(err.message, /nested deeper than 512 levels/);
      return true;
    });
  });

  it('counts objects and arrays alike, anywhere in the value', () => {
    const deepObject = `{"a":${'{"b":'.repeat(600)}1${'}'.repeat(600)}}`;
    assert.equal(jsonDepthExceeds(JSON.parse(deepObject)), true);
    const mixed = { model: 'x', options: { list: [1, 2, { deeper: JSON.parse(nested(520)) }] } };
    assert.equal(jsonDepthExceeds(mixed), true);
    assert.equal(jsonDepthExceeds({ a: [1, { b: 'x'.repeat(1000) }] }), false);
    assert.equal(jsonDepthExceeds('plain string'), false);
  });

  it('walks a very deep value without overflowing the stack', () => {
    assert.equal(jsonDepthExceeds(JSON.parse(nested(200_000))), true);
  });
});
