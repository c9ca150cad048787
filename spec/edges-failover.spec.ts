// Several hosts and a journal that cannot write at once (SPEC §6, §17): an async job whose host
// dies fails over through its owner (jobs/service.ts) only, never straight back into the scheduler
// while its 'queued' is not durable. Two simulators and foreman on loopback, an injected write layer.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import type { Config } from '../lib/config.js';
import { faultyJournalIo, type JournalIo } from '../lib/journal/io.js';
import { startHosts } from './support/hosts-stack.js';
import { until } from './support/until.js';

const chat = { model: 'llama3.2', messages: [{ role: 'user', content: 'hold' }], sim: { fault: 'stall_before' } };

describe('async failover while the journal cannot write', () => {
  it('does not start the job again while it still says working; it runs on the other host once the disk heals', async (t) => {
    const disk = faultyJournalIo();
    let armed = true;
    // The disk fails exactly when the failed-over job's 'queued' is written: the outcome is parked.
    const io: JournalIo = {
      write: async (fh, data) => {
        if (armed && data.includes('"state":"queued"')) {
          armed = false;
          disk.failing = true;
        }
        return disk.write(fh, data);
      },
      datasync: (fh) => disk.datasync(fh),
    };
    const both = [{ name: 'llama3.2' }];
    const stack = await startHosts(t, [{ models: both }, { models: both }], { deps: { journalIo: io, journalProbeMs: 10 } });
    await until(() => stack.foreman.hosts.hosts.every((h) => h.catalogueKnown), 'catalogues read');
    const created = await stack.call('/jobs', { json: chat });
    assert.equal(created.status, 202);
    const id = (await created.json()).id as string;
    const lanes = () => stack.foreman.scheduler.fleet!.state();
    await until(() => lanes().some((l) => l.running === 1), 'the job running on a host');
    const home = lanes().findIndex((l) => l.running === 1);
    const sched = stack.foreman.scheduler;
    await stack.kill(home);
    // The run returned (booked 'requeued') while its outcome waits for the disk.
    await until(() => sched.state().counts.requeued >= 1, () => JSON.stringify({ c: sched.state().counts, r: sched.runningCount, has: sched.has(id), f: disk.failing, h: stack.foreman.hosts.hosts.map((x) => x.state) }));
    assert.equal(disk.failing, true, 'the disk failed at the queued record');
    assert.equal(sched.has(id), false, 'the scheduler did not put the job back by itself');
    assert.equal(sched.state().counts.requeued, 1, 'nor ran it again');
    assert.equal(sched.runningCount, 0);
    const view = await (await stack.call(`/jobs/${id}`)).json();
    assert.equal(view.state, 'working', 'no undurable queued is shown');
    assert.equal(stack.sims[1 - home]!.stats().requests['llama3.2:latest'], undefined, 'the other host got nothing yet');

    disk.failing = false;
    // Back in the queue through its owner, without the retry backoff: the other host takes it.
    await until(() => stack.sims[1 - home]!.stats().requests['llama3.2:latest'] === 1, 'the job to run on the other host');
    const again = await (await stack.call(`/jobs/${id}`)).json();
    assert.equal(again.state, 'working');
    assert.equal(again.attempts, 2);
    const cancelled = await stack.call(`/jobs/${id}/cancel`, { method: 'POST' });
    assert.equal(cancelled.status, 200);
    assert.equal((await (await stack.call(`/jobs/${id}`)).json()).state, 'cancelled');
  });
});

describe('a failed-over async job cancelled before it runs again', () => {
  it('leaves no failover count behind in the fleet', async (t) => {
    // llama3.2 only on host 0: once host 0 dies the job waits for it, and is cancelled there.
    const stack = await startHosts(t, [{ models: [{ name: 'llama3.2' }] }, { models: [{ name: 'qwen3' }] }]);
    await until(() => stack.foreman.hosts.hosts.every((h) => h.catalogueKnown), 'catalogues read');
    const created = await stack.call('/jobs', { json: chat });
    const id = (await created.json()).id as string;
    const fleet = stack.foreman.scheduler.fleet!;
    await until(() => fleet.state()[0]!.running === 1, 'the job running on host 0');
    await stack.kill(0);
    await until(() => stack.foreman.scheduler.has(id) && fleet.failedOver === 1, 'the job back in the queue, waiting for host 0');
    const cancelled = await stack.call(`/jobs/${id}/cancel`, { method: 'POST' });
    assert.equal(cancelled.status, 200);
    assert.equal((await (await stack.call(`/jobs/${id}`)).json()).state, 'cancelled');
    assert.equal(fleet.failedOver, 0);
  });
});

describe('a host answering 5xx before the first byte', () => {
  /** A host that has llama3.2 loaded and answers every generation 503; after that its probe fails too. */
  async function busyHost(t: TestContext): Promise<{ url: string; chats: number }> {
    const state = { url: '', chats: 0 };
    const server = createServer((req, res) => {
      req.resume();
      const json = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
        res.end(JSON.stringify(body));
      };
      if (req.url === '/api/version') return state.chats > 0 ? json(500, { error: 'down' }) : json(200, { version: '0.12.0' });
      if (req.url === '/api/tags') return json(200, { models: [{ name: 'llama3.2:latest', model: 'llama3.2:latest' }] });
      if (req.url === '/api/ps') return json(200, { models: [{ name: 'llama3.2:latest', model: 'llama3.2:latest' }] });
      if (req.url === '/api/show') return json(200, { capabilities: ['completion'] });
      if (req.url === '/api/chat') {
        state.chats++;
        return json(503, { error: 'server busy, please try again.  maximum pending requests exceeded' });
      }
      json(200, {});
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    t.after(() => new Promise<void>((r) => {
      server.close(() => r());
      server.closeAllConnections();
    }));
    state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return state;
  }

  async function stackWithBusyHost(t: TestContext) {
    const busy = await busyHost(t);
    const config: Partial<Config> = {};
    const stack = await startHosts(t, [{ models: [{ name: 'llama3.2' }] }], {
      config, before: async (sims) => void (config.upstream = `${busy.url},${sims[0]!.url}`),
    });
    await until(() => stack.foreman.hosts.hosts.every((h) => h.catalogueKnown), 'catalogues read');
    await until(() => stack.foreman.scheduler.fleet!.state()[0]!.loadedGroup !== null, 'the busy host\'s residency read');
    return { busy, stack, simHost: stack.foreman.hosts.hosts[1]!.name };
  }

  it('serves a sync request on another host, unseen by the caller', async (t) => {
    const { busy, stack, simHost } = await stackWithBusyHost(t);
    const r = await stack.call('/api/chat', { json: { ...chat, sim: undefined } });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-foreman-host'), simHost);
    const lines = (await r.text()).trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines.at(-1).done, true);
    assert.equal(busy.chats, 1, 'the busy host was tried first');
    assert.equal(stack.foreman.hosts.hosts[0]!.state, 'down');
  });

  it('runs an async job again on another host, one attempt used', async (t) => {
    const { busy, stack } = await stackWithBusyHost(t);
    const created = await stack.call('/jobs', { json: { ...chat, sim: undefined } });
    const id = (await created.json()).id as string;
    await until(async () => (await (await stack.call(`/jobs/${id}`)).json()).state === 'completed', 'the job to complete elsewhere');
    const job = await (await stack.call(`/jobs/${id}`)).json();
    assert.equal(job.attempts, 2);
    assert.equal(busy.chats, 1);
    assert.equal(stack.sims[0]!.stats().requests['llama3.2:latest'], 1);
  });
});
