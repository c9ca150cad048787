// The edge parsers of http/ (generation-request.ts, priority.ts) and the job ids of jobs/ids.ts.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isKeepAliveZero, validateGeneration } from '../lib/http/generation-request.js';
import { parsePriority } from '../lib/http/priority.js';
import { newJobId } from '../lib/jobs/ids.js';
import { HttpError } from '../lib/errors.js';

const badRequest = (message: RegExp) => (err: unknown) => {
  assert.ok(err instanceof HttpError);
  assert.equal(err.status, 400);
  assert.match(err.message, message);
  return true;
};

describe('validateGeneration', () => {
  it('reads model, options and stream, with Ollama\'s stream defaults per surface', () => {
    const chat = validateGeneration({ model: ' llama3.2 ', messages: [{ role: 'user', content: 'hi' }], options: { num_ctx: 8192 } }, 'chat');
    assert.equal(chat.model, 'llama3.2');
    assert.deepEqual(chat.options, { num_ctx: 8192 });
    assert.equal(chat.stream, true, 'native surfaces stream by default');
    assert.equal(chat.isLoadOnly, false);
    assert.equal(validateGeneration({ model: 'm', messages: [] }, 'openai-chat').stream, false, '/v1 does not');
    assert.equal(validateGeneration({ model: 'm', prompt: 'x', stream: false }, 'generate').stream, false);
  });

  it('marks an empty chat or generate as a load, and keep_alive 0 as an unload', () => {
    assert.equal(validateGeneration({ model: 'm' }, 'chat').isLoadOnly, true);
    assert.equal(validateGeneration({ model: 'm', prompt: '' }, 'generate').isLoadOnly, true);
    const unload = validateGeneration({ model: 'm', keep_alive: 0 }, 'generate');
    assert.equal(unload.isLoadOnly && unload.keepAliveZero, true);
    assert.equal(validateGeneration({ model: 'm', prompt: 'x', keep_alive: '5m' }, 'generate').keepAliveZero, false);
  });

  it('answers 400 naming the field for wrong types', () => {
    assert.throws(() => validateGeneration({}, 'chat'), badRequest(/model is required/));
    assert.throws(() => validateGeneration({ model: 3 }, 'chat'), badRequest(/^model: expected a string/));
    assert.throws(() => validateGeneration({ model: 'm', stream: 'yes' }, 'chat'), badRequest(/^stream:/));
    assert.throws(() => validateGeneration({ model: 'm', messages: 'hi' }, 'chat'), badRequest(/^messages: expected an array/));
    assert.throws(() => validateGeneration({ model: 'm', messages: ['hi'] }, 'chat'), badRequest(/every message must be an object/));
    assert.throws(() => validateGeneration({ model: 'm', prompt: 5 }, 'generate'), badRequest(/^prompt:/));
    assert.throws(() => validateGeneration({ model: 'm', options: [] }, 'generate'), badRequest(/^options:/));
    assert.throws(() => validateGeneration({ model: 'x'.repeat(513) }, 'generate'), badRequest(/too long/));
  });

  it('lets an OpenAI completion take a prompt array', () => {
    assert.equal(validateGeneration({ model: 'm', prompt: ['a', 'b'] }, 'openai-completion').model, 'm');
  });
});

describe('isKeepAliveZero', () => {
  it('reads 0 in the forms Ollama accepts', () => {
    for (const v of [0, '0', '0s', '0m', '0.0h', ' 0ms ']) assert.equal(isKeepAliveZero(v), true, String(v));
    for (const v of [1, '5m', '-1', null, undefined, '10s']) assert.equal(isKeepAliveZero(v), false, String(v));
  });
});

describe('parsePriority', () => {
  it('takes integers -100..100 as numbers or strings, and nothing as undefined', () => {
    assert.equal(parsePriority(7, 'priority'), 7);
    assert.equal(parsePriority(' -100 ', 'X-Foreman-Priority'), -100);
    assert.equal(parsePriority(undefined, 'priority'), undefined);
    assert.equal(parsePriority('', 'priority'), undefined);
  });

  it('refuses the rest with a 400 naming where it came from', () => {
    for (const v of [101, -101, 1.5, '1.5', 'high', true]) {
      assert.throws(() => parsePriority(v, 'X-Foreman-Priority'), badRequest(/^X-Foreman-Priority: expected an integer from -100 to 100/));
    }
  });
});

describe('newJobId', () => {
  it('sorts by creation order, even many in one millisecond, and never repeats', () => {
    const ids = Array.from({ length: 2000 }, () => newJobId('job_'));
    assert.equal(new Set(ids).size, ids.length);
    assert.deepEqual([...ids].sort(), ids);
    for (const id of ids) assert.match(id, /^job_[0-9a-z]{12}[0-9a-f]{8}$/);
  });
});
