// Several hosts as lanes of one queue (SPEC §17), end to end on real sockets: a model on one
// host only, session affinity, a host killed mid-burst, a host coming back.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import type { Sim } from '../lib/sim/index.js';
import assert from 'node:assert/strict';
import { catalogues, startHosts, type HostsStack } from './support/hosts-stack.js';
import { TOKEN } from './support/stack.js';
import { until } from './support/until.js';
import { modelOfGroup } from '../lib/sched/model-group.js';

const chat = (model: string, content = 'hi', extra: Record<string, unknown> = {}) => ({
  model, messages: [{ role: 'user', content }], options: { num_predict: 3 }, ...extra,
});

async function ndjson(res: Response): Promise<any[]> {
  return (await res.text()).trim().split('\n').map((l) => JSON.parse(l));
}

function lanes(stack: HostsStack) {
  return stack.foreman.scheduler.fleet!.state();
}

/** A hosts_file in a temp dir (removed after the test) and a writer of [name, sim, extra fields] entries. */
async function hostsFile(t: TestContext) {
  const dir = await mkdtemp(join(tmpdir(), 'foreman-hosts-file-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'hosts.json');
  const write = (hosts: Array<[string, Sim, Record<string, unknown>?]>) =>
    writeFile(file, JSON.stringify({ hosts: hosts.map(([name, sim, extra]) => ({ name, url: sim.url, ...extra })) }));
  return { file, write };
}

describe('host lanes', () => {
  it('runs a model only on the host that has it, even while another host is idle', async (t) => {
    const stack = await startHosts(t, [{ models: [{ name: 'llama3.2' }] }, { models: [{ name: 'qwen3' }] }]);
    await catalogues(stack);
    const names = stack.foreman.hosts.hosts.map((h) => h.name);
    const answers = await Promise.all([1, 2, 3, 4].map(() => stack.call('/api/chat', { json: chat('qwen3') })));
    for (const r of answers) {
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('x-foreman-host'), names[1]);
      assert.equal((await ndjson(r)).at(-1).done, true);
    }
    assert.equal(stack.sims[1]!.stats().requests['qwen3:latest'], 4);
    assert.equal(stack.sims[0]!.stats().requests['qwen3:latest'], undefined);
    // A model no host has goes to a host that is up and gets its 404 at once, without a switch:
    // every lane keeps what it had loaded, no switch is booked and nothing is unloaded.
    const before = lanes(stack).map((l) => l.loadedGroup);
    const switches = stack.foreman.scheduler.fleet!.switches().length;
    const missing = await stack.call('/api/chat', { json: chat('nosuchmodel') });
    assert.equal(missing.status, 404);
    assert.deepEqual(lanes(stack).map((l) => l.loadedGroup), before);
    assert.equal(stack.foreman.scheduler.fleet!.switches().length, switches);
    for (const sim of stack.sims) assert.deepEqual(sim.stats().unloads, {});
  });

  it('keeps a session on the host that served its last turn while that host has the model', async (t) => {
    const both = [{ name: 'llama3.2' }, { name: 'qwen3' }];
    const stack = await startHosts(t, [{ models: both }, { models: both }], {
      // Both hosts have llama3.2 loaded before foreman starts.
      before: async (sims) => {
        for (const sim of sims) await fetch(sim.url + '/api/generate', { method: 'POST', body: JSON.stringify({ model: 'llama3.2' }) }).then((r) => r.text());
      },
    });
    await until(() => lanes(stack).every((l) => l.loadedGroup !== null && modelOfGroup(l.loadedGroup) === 'llama3.2:latest'), 'residency read');
    const session = { 'x-claude-code-session-id': 'sess-1' };
    const first = await stack.call('/api/chat', { json: chat('llama3.2'), headers: session });
    const home = first.headers.get('x-foreman-host')!;
    await first.text();
    const homeIndex = stack.foreman.hosts.hosts.findIndex((h) => h.name === home);
    const other = stack.foreman.hosts.hosts[1 - homeIndex]!.name;
    // The session's home is busy with a turn that holds it (no byte until aborted).
    const blocker = new AbortController();
    const held = stack.call('/api/chat', { json: chat('llama3.2', 'long', { sim: { fault: 'stall_before' } }), headers: session, signal: blocker.signal }).catch(() => null);
    await until(() => lanes(stack).find((l) => l.name === home)!.running === 1, 'blocker running on the home host');
    // The next turn waits for its home although the other host is idle with the model loaded...
    const turn = stack.call('/api/chat', { json: chat('llama3.2', 'turn 2'), headers: session });
    await until(() => stack.foreman.scheduler.waiting === 1, 'turn 2 queued');
    assert.equal(lanes(stack).find((l) => l.name === other)!.running, 0);
    // ...while another session's request takes the idle host at once.
    const stranger = await stack.call('/api/chat', { json: chat('llama3.2', 'other'), headers: { 'session-id': 'sess-2' } });
    assert.equal(stranger.headers.get('x-foreman-host'), other);
    await stranger.text();
    blocker.abort();
    await held;
    const second = await turn;
    assert.equal(second.status, 200);
    assert.equal(second.headers.get('x-foreman-host'), home);
    assert.equal((await ndjson(second)).at(-1).done, true);
  });

  it('loses no job when a host dies mid-burst: a sync request not yet answered is served by another host', async (t) => {
    // Host a takes an hour to load llama3.2: a request there gets no byte before the host dies.
    const stack = await startHosts(t, [
      { models: [{ name: 'llama3.2', loadMs: 3_600_000 }, { name: 'qwen3' }] },
      { models: [{ name: 'llama3.2' }, { name: 'qwen3' }] },
    ]);
    await catalogues(stack);
    const [a, b] = stack.foreman.hosts.hosts.map((h) => h.name);
    const held = stack.call('/api/chat', { json: chat('llama3.2', 'held') });
    await until(() => lanes(stack).find((l) => l.name === a)!.running === 1, 'held request running on host a');
    // The burst: sync requests for the held model, async jobs for another.
    const sync = [1, 2, 3].map((i) => stack.call('/api/chat', { json: chat('llama3.2', `sync ${i}`) }));
    const jobs = await Promise.all([1, 2, 3].map(async (i) => (await (await stack.call('/jobs', { json: chat('qwen3', `async ${i}`) })).json()).id as string));
    await stack.kill(0);
    const heldRes = await held;
    assert.equal(heldRes.status, 200, 'the caller never saw host a fail');
    assert.equal(heldRes.headers.get('x-foreman-host'), b);
    const lines = await ndjson(heldRes);
    assert.equal(lines.at(-1).done, true);
    assert.ok(lines.every((l) => l.error === undefined));
    for (const r of await Promise.all(sync)) {
      assert.equal(r.status, 200);
      assert.equal((await ndjson(r)).at(-1).done, true);
    }
    for (const id of jobs) {
      const job = await (await stack.call(`/jobs/${id}?wait=30`)).json();
      assert.equal(job.state, 'completed', JSON.stringify(job.error));
    }
    assert.equal(stack.foreman.hosts.hosts[0]!.state, 'down');
    const health: any = await (await fetch(stack.foreman.url + '/health')).json();
    assert.equal(health.status, 'degraded');
    assert.match(health.upstream.error, new RegExp(`host ${a} down`));
  });

  it('keeps queued work for a host that is down and runs it when the host comes back', async (t) => {
    const stack = await startHosts(t, [
      { models: [{ name: 'llama3.2' }, { name: 'gemma3' }] },
      { models: [{ name: 'llama3.2' }] },
    ]);
    await catalogues(stack);
    await stack.kill(0);
    await until(() => stack.foreman.hosts.hosts[0]!.state === 'down', 'probe marks host 0 down');
    // gemma3 is on host 0 only: the job waits instead of failing on host 1.
    const created = await (await stack.call('/jobs', { json: chat('gemma3') })).json();
    const plain = await stack.call('/api/chat', { json: chat('llama3.2') });
    assert.equal(plain.headers.get('x-foreman-host'), stack.foreman.hosts.hosts[1]!.name);
    await plain.text();
    assert.equal((await (await stack.call(`/jobs/${created.id}`)).json()).state, 'queued');
    await stack.revive(0);
    const done = await (await stack.call(`/jobs/${created.id}?wait=30`)).json();
    assert.equal(done.state, 'completed');
    assert.equal(stack.foreman.hosts.hosts[0]!.state, 'up');
    assert.equal(stack.sims[0]!.stats().requests['gemma3:latest'], 1);
  });
});

void TOKEN;

describe('hosts in the operator views', () => {
  it('shows each host in /queue, /metrics and foreman status', async (t) => {
    const { renderStatus } = await import('../lib/ops/status-render.js');
    const stack = await startHosts(t, [{ models: [{ name: 'llama3.2' }] }, { models: [{ name: 'qwen3' }] }]);
    await catalogues(stack);
    await (await stack.call('/api/chat', { json: chat('qwen3') })).text();
    const q = await (await stack.call('/queue')).json();
    assert.equal(q.hosts.length, 2);
    const second = q.hosts.find((h: { name: string }) => h.name === stack.foreman.hosts.hosts[1]!.name);
    assert.equal(second.state, 'up');
    assert.equal(second.loaded_model, 'qwen3:latest');
    assert.deepEqual(second.models, ['qwen3:latest']);
    assert.equal(second.loads.length, 1, 'one measured load');
    assert.equal(second.loads[0].group, 'qwen3:latest');
    assert.equal(q.switches[0].host, second.name);
    const metrics = await (await stack.call('/metrics')).text();
    assert.match(metrics, new RegExp(`foreman_host_up\\{host="${second.name}"\\} 1`));
    assert.match(metrics, new RegExp(`foreman_host_model_loaded\\{host="${second.name}",model="qwen3:latest"\\} 1`));
    assert.match(metrics, new RegExp(`foreman_host_load_seconds\\{group="qwen3:latest",host="${second.name}"\\} `));
    const text = renderStatus(q, { width: 160 });
    assert.match(text, /hosts\s+2\/2 up/);
    assert.ok(text.includes(second.name) && text.includes('qwen3:latest'));
    assert.match(text, new RegExp(`HOST\\s+WHEN\\s+FROM\\s+TO\\s+LOAD\\n\\s+${second.name.replaceAll('.', '\\.')}\\s`), 'switches name their host');
    await stack.kill(0);
    await until(() => stack.foreman.hosts.hosts[0]!.state === 'down', 'host 0 down');
    const after = await (await stack.call('/queue')).json();
    assert.equal(after.hosts[0].state, 'down');
    assert.match(renderStatus(after, { width: 160 }), /hosts\s+1\/2 up/);
  });
});

describe('cloud models with several hosts', () => {
  it('run through a host that is up and has the cloud stub', async (t) => {
    const stack = await startHosts(t, [
      { models: [{ name: 'llama3.2' }, { name: 'gpt-oss:120b-cloud', cloud: true }] },
      { models: [{ name: 'qwen3' }, { name: 'gpt-oss:120b-cloud', cloud: true }] },
    ]);
    await catalogues(stack);
    await stack.kill(0);
    await until(() => stack.foreman.hosts.hosts[0]!.state === 'down', 'host 0 down');
    const r = await stack.call('/api/chat', { json: chat('gpt-oss:120b-cloud') });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-foreman-host'), stack.foreman.hosts.hosts[1]!.name);
    assert.equal((await ndjson(r)).at(-1).done, true);
  });
});

describe('measured load times', () => {
  // The prompt's evaluation (the simulator's delay_ms, after the load) comes before the first
  // answer: the time to it overstates the load; Ollama's load_duration does not.
  const slowPrompt = { sim: { delay_ms: 400 } };

  it('books Ollama\'s load_duration for the switch a sync or async job paid', async (t) => {
    const stack = await startHosts(t, [{ models: [{ name: 'llama3.2', loadMs: 30 }] }, { models: [{ name: 'qwen3', loadMs: 30 }] }]);
    await catalogues(stack);
    const r = await stack.call('/api/chat', { json: chat('llama3.2', 'hi', slowPrompt) });
    assert.equal(r.status, 200);
    const syncReported = (await ndjson(r)).at(-1).load_duration as number;
    const created = await stack.call('/jobs', { json: chat('qwen3', 'hi', slowPrompt) });
    assert.equal(created.status, 202);
    const id = (await created.json()).id as string;
    let job: any;
    await until(async () => (job = await (await stack.call(`/jobs/${id}`)).json()).state === 'completed', 'the async job');
    const asyncReported = job.result.load_duration as number;
    const loads = lanes(stack).map((l) => l.loads);
    assert.equal(loads[0]!.length, 1);
    assert.equal(loads[1]!.length, 1);
    // What is booked is the load_duration each answer reported (ns), not the time to the first
    // answer, which also holds the 400 ms prompt delay: compared with the answers themselves, so
    // however the machine stalls, no bound on elapsed time is needed.
    for (const [[load], reported] of [[loads[0]!, syncReported], [loads[1]!, asyncReported]] as const) {
      assert.ok(typeof reported === 'number' && reported >= 25e6, `load_duration ${reported} ns reported`);
      assert.ok(Math.abs(load!.loadMs - reported / 1e6) < 1, `load ${load!.loadMs} ms booked, ${reported / 1e6} ms reported`);
    }
  });

  it('falls back to the time to the first answer where no load_duration comes back (OpenAI surface)', async (t) => {
    const stack = await startHosts(t, [{ models: [{ name: 'llama3.2', loadMs: 30 }] }, { models: [{ name: 'qwen3', loadMs: 30 }] }]);
    await catalogues(stack);
    const r = await stack.call('/v1/chat/completions', { json: { model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3, ...slowPrompt } });
    assert.equal(r.status, 200);
    await r.text();
    const [load] = lanes(stack)[0]!.loads;
    assert.ok(load && load.loadMs >= 400, `load ${load?.loadMs} ms includes the prompt's evaluation`);
  });
});

describe('hosts_file reloaded (SIGHUP)', () => {
  it('adds and removes hosts by name; a job running on a removed host finishes there; a bad file changes nothing', async (t) => {
    const { file, write } = await hostsFile(t);
    const stack = await startHosts(t, [
      { models: [{ name: 'llama3.2' }] }, { models: [{ name: 'qwen3' }] }, { models: [{ name: 'mistral' }] },
    ], { config: { hosts_file: file }, before: (sims) => write([['a', sims[0]!], ['b', sims[1]!]]) });
    await catalogues(stack);
    const names = () => stack.foreman.hosts.hosts.map((h) => h.name);
    assert.deepEqual(names(), ['a', 'b']);
    // A job holding host b (its prompt takes a while) while b is removed and c added.
    const held = stack.call('/api/chat', { json: chat('qwen3', 'hold', { sim: { delay_ms: 1_500 } }) });
    await until(() => lanes(stack).find((l) => l.name === 'b')?.running === 1, 'the job running on b');
    await write([['a', stack.sims[0]!], ['c', stack.sims[2]!]]);
    assert.equal(stack.foreman.reloadHosts('test'), true);
    assert.deepEqual(names(), ['a', 'c']);
    const queue = await (await stack.call('/queue')).json();
    const b = queue.hosts.find((h: any) => h.name === 'b');
    assert.equal(b.retiring, true, '/queue shows b finishing its job');
    assert.equal(b.running, 1);
    const answer = await held;
    assert.equal(answer.status, 200);
    assert.equal(answer.headers.get('x-foreman-host'), 'b');
    assert.equal((await ndjson(answer)).at(-1).done, true, 'the running job finished on the removed host');
    await until(() => lanes(stack).every((l) => l.name !== 'b'), 'b\'s lane to end');
    // c takes work at once (its catalogue read when it was added).
    await until(() => stack.foreman.hosts.hosts.every((h) => h.catalogueKnown), 'c\'s catalogue');
    const onC = await stack.call('/api/chat', { json: chat('mistral') });
    assert.equal(onC.status, 200);
    assert.equal(onC.headers.get('x-foreman-host'), 'c');
    await onC.text();
    // A file that does not parse: logged, hosts kept.
    await writeFile(file, '{"hosts": 3}');
    assert.equal(stack.foreman.reloadHosts('test'), false);
    assert.deepEqual(names(), ['a', 'c']);
  });

  it('takes back a removed host listed again while it still finishes its job: the same lane, no second one', async (t) => {
    const { file, write } = await hostsFile(t);
    const stack = await startHosts(t, [{ models: [{ name: 'llama3.2' }] }, { models: [{ name: 'qwen3' }] }],
      { config: { hosts_file: file }, before: (sims) => write([['a', sims[0]!], ['b', sims[1]!]]) });
    await catalogues(stack);
    const held = stack.call('/api/chat', { json: chat('qwen3', 'hold', { sim: { delay_ms: 1_500 } }) });
    await until(() => lanes(stack).find((l) => l.name === 'b')?.running === 1, 'the job running on b');
    await write([['a', stack.sims[0]!]]);
    assert.equal(stack.foreman.reloadHosts('test'), true);
    assert.equal(lanes(stack).find((l) => l.name === 'b')?.retiring, true, 'b finishing its job');
    // Listed again before its job ended: b is back at once, as the same host with the same lane.
    await write([['a', stack.sims[0]!], ['b', stack.sims[1]!]]);
    assert.equal(stack.foreman.reloadHosts('test'), true);
    assert.deepEqual(stack.foreman.hosts.hosts.map((h) => h.name), ['a', 'b']);
    assert.deepEqual(lanes(stack).map((l) => [l.name, l.retiring]), [['a', false], ['b', false]]);
    // b takes new work (its model is on b only) and keeps its lane after the held job ends.
    const next = await stack.call('/api/chat', { json: chat('qwen3') });
    assert.equal(next.status, 200);
    assert.equal(next.headers.get('x-foreman-host'), 'b');
    assert.equal((await ndjson(next)).at(-1).done, true);
    assert.equal((await held).status, 200);
    assert.deepEqual(lanes(stack).map((l) => l.name), ['a', 'b']);
  });

  it('applies a changed parallel, embed_parallel and url at once; what runs finishes where it started', async (t) => {
    const { file, write: writeHosts } = await hostsFile(t);
    const write = (a: Sim, b: Sim, parallel: number, embedParallel: number) =>
      writeHosts([['a', a, { parallel, embed_parallel: embedParallel }], ['b', b]]);
    const stack = await startHosts(t, [
      { models: [{ name: 'llama3.2' }], numParallel: 4 }, { models: [{ name: 'qwen3' }] }, { models: [{ name: 'qwen3' }] },
    ], { config: { hosts_file: file }, before: (sims) => write(sims[0]!, sims[1]!, 1, 1) });
    await catalogues(stack);
    const lane = (name: string) => lanes(stack).find((l) => l.name === name)!;
    // Two slow jobs for a's model (with parallel 1 the second waits) and one running on b.
    const slow = (model: string) => stack.call('/api/chat', { json: chat(model, 'hold', { sim: { delay_ms: 1_500 } }) });
    const onA = [slow('llama3.2'), slow('llama3.2')];
    const onB = slow('qwen3');
    await until(() => lane('a').running === 1 && lane('b').running === 1 && stack.foreman.scheduler.waiting === 1, 'a and b busy, one waiting');
    // a gets parallel 2 and embed_parallel 3; b moves to the third simulator.
    await write(stack.sims[0]!, stack.sims[2]!, 2, 3);
    assert.equal(stack.foreman.reloadHosts('test'), true);
    // b takes no work until a probe at its new address has read what is installed there.
    assert.equal(stack.foreman.hosts.find('b')!.state, 'down');
    // The waiting job starts at once, beside the first, without waiting for it to end (checked
    // first: the first job's 1.5 s must not run out while b is probed).
    await until(() => lane('a').running === 2, 'the second job running on a');
    assert.equal(stack.foreman.scheduler.waiting, 0);
    await until(() => stack.foreman.hosts.find('b')!.state === 'up', 'b probed at its new address');
    const queue = await (await stack.call('/queue')).json();
    assert.equal(queue.hosts.find((h: any) => h.name === 'a').parallel, 2);
    assert.equal(stack.foreman.hosts.find('a')!.embeddings.max, 3);
    assert.equal(stack.foreman.hosts.find('b')!.url, stack.sims[2]!.url);
    // b's new request goes to its new address while the one that started there before ends on the old.
    const moved = await stack.call('/api/chat', { json: chat('qwen3') });
    assert.equal(moved.status, 200);
    assert.equal(moved.headers.get('x-foreman-host'), 'b');
    assert.equal((await ndjson(moved)).at(-1).done, true);
    const before = await onB;
    assert.equal(before.status, 200);
    assert.equal((await ndjson(before)).at(-1).done, true, 'the job running at b\'s old address finished there');
    assert.equal(stack.sims[1]!.stats().requests['qwen3:latest'], 1, 'the old address served only the job that started there');
    assert.equal(stack.sims[2]!.stats().requests['qwen3:latest'], 1, 'the new address served the new job');
    for (const r of await Promise.all(onA)) {
      assert.equal(r.status, 200);
      assert.equal((await ndjson(r)).at(-1).done, true);
    }
  });
});
