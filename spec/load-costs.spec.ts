// The load and run time estimator (sched/load-costs.ts, pure) and the file that keeps it across
// restarts (hosts/load-times-file.ts), on a real temp dir.

import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_LOAD_MS, DEFAULT_RUN_MS, GROUP_LIMIT, LoadCosts } from '../lib/sched/load-costs.js';
import { LoadTimesSaver, loadTimesPath, readLoadTimes } from '../lib/hosts/load-times-file.js';
import { createLogger } from '../lib/log.js';

const GB = 1_000_000_000;

describe('load costs: priors before a measurement', () => {
  it('takes an unmeasured model\'s load on a host from the same model measured on another host', () => {
    const c = new LoadCosts();
    c.recordLoad('fast', 'qwen3', 800);
    assert.deepEqual(c.estimate('slow', 'qwen3'), { ms: 800, source: 'model' });
    assert.deepEqual(c.estimate('fast', 'qwen3'), { ms: 800, source: 'measured' });
  });

  it('scales it by how the two hosts compare on a model both measured', () => {
    const c = new LoadCosts();
    c.recordLoad('fast', 'llama3.2', 500);
    c.recordLoad('slow', 'llama3.2', 1_500);
    c.recordLoad('fast', 'qwen3', 800);
    assert.deepEqual(c.estimate('slow', 'qwen3'), { ms: 2_400, source: 'model' }, 'slow loads 3x slower than fast');
  });

  it('sizes a model by its host\'s bytes per second of load when nobody measured it', () => {
    const c = new LoadCosts();
    c.recordLoad('h', 'small', 1_000, 2 * GB);
    assert.deepEqual(c.estimate('h', 'big', 6 * GB), { ms: 3_000, source: 'host' });
    assert.deepEqual(c.estimate('h', 'unsized'), { ms: 1_000, source: 'host' }, 'no size: the host\'s average');
    assert.deepEqual(c.estimate('other', 'big', 4 * GB), { ms: 2_000, source: 'any' }, 'an unmeasured host: every host\'s rate');
  });

  it('uses the fixed defaults only with nothing measured', () => {
    const c = new LoadCosts();
    assert.deepEqual(c.estimate('h', 'a', 4 * GB), { ms: DEFAULT_LOAD_MS, source: 'default' });
    assert.equal(c.runMs('a'), DEFAULT_RUN_MS);
    c.recordRun('b', 100);
    assert.equal(c.runMs('a'), 100, 'a model with no run of its own: the runs of other models');
    c.recordRun('a', 300);
    assert.equal(c.runMs('a'), 300);
  });

  it('keeps at most GROUP_LIMIT groups per host, the least recently measured dropped', () => {
    const c = new LoadCosts();
    for (let i = 0; i <= GROUP_LIMIT; i++) c.recordLoad('h', `m${i}`, 10);
    assert.equal(c.measured('h').length, GROUP_LIMIT);
    assert.equal(c.measuredLoad('h', 'm0'), undefined);
    assert.equal(c.measuredLoad('h', `m${GROUP_LIMIT}`), 10);
  });
});

describe('load costs: snapshot and restore', () => {
  it('restores what it measured, and skips entries that are not measurements', () => {
    const a = new LoadCosts();
    a.recordLoad('h1', 'qwen3', 800, 5 * GB);
    a.recordRun('qwen3', 120);
    const b = new LoadCosts();
    assert.equal(b.restore(JSON.parse(JSON.stringify(a.snapshot()))), 2);
    assert.deepEqual(b.measured('h1'), [{ group: 'qwen3', loadMs: 800, loads: 1 }]);
    assert.equal(b.runMs('qwen3'), 120);
    assert.deepEqual(b.estimate('h1', 'big', 10 * GB), { ms: 1_600, source: 'host' }, 'the size came back too');
    const c = new LoadCosts();
    assert.equal(c.restore({ version: 1, loads: { h: { a: { ms: -1, n: 1 }, b: 'x', c: { ms: 5, n: 0 } }, x: 3 }, runs: { a: { ms: 'no' } } }), 0);
    assert.throws(() => c.restore({ loads: {} }), /not a load-times snapshot/);
    assert.throws(() => c.restore([]), /not a load-times snapshot/);
  });
});

describe('load times file', () => {
  async function dir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
    const d = await mkdtemp(join(tmpdir(), 'foreman-load-times-'));
    t.after(() => rm(d, { recursive: true, force: true }));
    return d;
  }
  function logger() {
    const lines: string[] = [];
    return { lines, log: createLogger('text', { write: (l: string) => lines.push(l) }) };
  }

  it('writes the costs atomically and reads them back into a new estimator', async (t) => {
    const d = await dir(t);
    const path = loadTimesPath(d);
    const costs = new LoadCosts();
    const { log } = logger();
    const saver = new LoadTimesSaver({ path, costs, log });
    costs.recordLoad('h1', 'qwen3:latest', 640);
    saver.changed(); // the first change is written at once, later ones at most every few seconds
    costs.recordLoad('h2', 'qwen3:latest', 900);
    saver.changed();
    await saver.close(); // writes what is left
    assert.deepEqual(await readdir(d), ['load-times.json'], 'no temp file left behind');
    const again = new LoadCosts();
    assert.equal(await readLoadTimes(path, again, log), 2);
    assert.equal(again.measuredLoad('h1', 'qwen3:latest'), 640);
    assert.equal(again.measuredLoad('h2', 'qwen3:latest'), 900);
    assert.match(await readFile(path, 'utf8'), /^\{"version":1,/);
  });

  it('ignores a damaged file with a log line, and a missing one quietly', async (t) => {
    const d = await dir(t);
    const path = loadTimesPath(d);
    const { lines, log } = logger();
    const costs = new LoadCosts();
    assert.equal(await readLoadTimes(path, costs, log), 0);
    assert.deepEqual(lines, []);
    await writeFile(path, '{"version":1,"loads":{"h1":{"qwen3');
    assert.equal(await readLoadTimes(path, costs, log), 0);
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /load times file damaged, ignored/);
    assert.deepEqual(costs.estimate('h1', 'qwen3'), { ms: DEFAULT_LOAD_MS, source: 'default' });
  });
});
