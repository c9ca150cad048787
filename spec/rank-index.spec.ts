import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RankIndex } from '../lib/sched/rank-index.js';
import { seededRandom } from './support/prng.js';

describe('RankIndex', () => {
  it('counts the elements before any element, through random inserts and removals', () => {
    const rand = seededRandom(99);
    const index = new RankIndex<number>((a, b) => a < b, seededRandom(5));
    const held: number[] = [];
    const unique = new Set<number>();
    for (let step = 0; step < 5000; step++) {
      if (held.length === 0 || rand() < 0.6) {
        let v = Math.floor(rand() * 1e9);
        while (unique.has(v)) v++;
        unique.add(v);
        held.push(v);
        index.insert(v);
      } else {
        const at = Math.floor(rand() * held.length);
        const [v] = held.splice(at, 1);
        unique.delete(v!);
        index.remove(v!);
      }
      assert.equal(index.size, held.length);
      if (step % 50 === 0) {
        const sorted = [...held].sort((a, b) => a - b);
        for (const v of held) assert.equal(index.rank(v), sorted.indexOf(v), `rank of ${v}`);
      }
    }
  });

  it('ranks an element that is not held by where it would go', () => {
    const index = new RankIndex<number>((a, b) => a < b);
    for (const v of [10, 20, 30]) index.insert(v);
    assert.equal(index.rank(5), 0);
    assert.equal(index.rank(25), 2);
    assert.equal(index.rank(99), 3);
  });
});
