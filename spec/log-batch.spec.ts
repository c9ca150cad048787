// The batched stderr sink: one write per event-loop turn (or per few ms), bounded, nothing lost or reordered.
import { mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { batchedSink, createLogger } from '../lib/log.js';

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

test('lines of one turn leave in one write, in order, after the turn', async () => {
  const writes: string[] = [];
  const sink = batchedSink({ write: (text: string) => writes.push(text) });
  const log = createLogger('text', sink, () => new Date(0));
  log.info('job working', { job: 's_1' });
  log.info('job completed', { job: 's_1' });
  log.info('request', { status: 200 });
  assert.deepEqual(writes, [], 'nothing is written synchronously');
  await nextTurn();
  assert.equal(writes.length, 1);
  assert.match(writes[0]!, /job working job=s_1\n.*job completed job=s_1\n.*request status=200\n$/);
  log.warn('later');
  await nextTurn();
  assert.equal(writes.length, 2);
  assert.match(writes[1]!, /warn  later\n$/);
});

test('past the bound the batch is written at once', async () => {
  const writes: string[] = [];
  const sink = batchedSink({ write: (text: string) => writes.push(text) }, 100);
  sink.write('a'.repeat(60) + '\n');
  assert.equal(writes.length, 0);
  sink.write('b'.repeat(60) + '\n');
  assert.equal(writes.length, 1, 'written synchronously once over the bound');
  assert.equal(writes[0], 'a'.repeat(60) + '\n' + 'b'.repeat(60) + '\n');
  sink.write('c\n');
  sink.flush();
  assert.deepEqual(writes.slice(1), ['c\n']);
  await nextTurn();
  assert.equal(writes.length, 2, 'an empty turn writes nothing');
});

test('with a delay, the lines of several turns share one write once the delay has passed', async (t) => {
  mock.timers.enable({ apis: ['setTimeout'] });
  t.after(() => mock.timers.reset());
  const writes: string[] = [];
  const sink = batchedSink({ write: (text: string) => writes.push(text) }, 1000, 10);
  sink.write('job working\n');
  await nextTurn();
  sink.write('job completed\n');
  sink.write('request\n');
  await nextTurn();
  assert.deepEqual(writes, [], 'held while the delay runs, across turns');
  mock.timers.tick(10);
  assert.deepEqual(writes, ['job working\njob completed\nrequest\n']);
  sink.write('later\n');
  mock.timers.tick(9);
  assert.equal(writes.length, 1);
  mock.timers.tick(1);
  assert.deepEqual(writes.slice(1), ['later\n']);
});
