// Several Ollama hosts behind one foreman (SPEC §17): configuration, the simulated hosts of
// `foreman sim --hosts`, merged listings, X-Foreman-Host and embeddings routing.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, parseConfig } from '../lib/config.js';
import { parseHostsJson, resolveHosts } from '../lib/hosts/specs.js';
import { hostVariants } from '../lib/sim/hosts.js';
import { DEFAULT_MODELS } from '../lib/sim/catalog.js';
import { compareVersions, mergeListing } from '../lib/http/hosts-routing.js';
import { startHosts } from './support/hosts-stack.js';
import { until } from './support/until.js';

const DEFAULTS = { token: 'up', parallel: 1, embedParallel: 4 };

describe('hosts configuration', () => {
  it('takes upstream as a comma list, one host per URL named host:port', () => {
    const c = parseConfig(['--upstream', 'http://10.0.0.2:11434/, http://10.0.0.3:11434'], {});
    assert.equal(c.upstream, 'http://10.0.0.2:11434,http://10.0.0.3:11434');
    const hosts = resolveHosts(c);
    assert.deepEqual(hosts.map((h) => [h.name, h.url, h.parallel]), [['10.0.0.2:11434', 'http://10.0.0.2:11434', 1], ['10.0.0.3:11434', 'http://10.0.0.3:11434', 1]]);
  });

  it('reports every bad URL of the list', () => {
    assert.throws(() => parseConfig(['--upstream', 'http://ok:1,ftp://x,nope'], {}), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.problems.length, 2);
      assert.match(err.problems.join('\n'), /ftp:\/\/x/);
      return true;
    });
  });

  it('reads a hosts file with names, tokens and per-host limits, defaults from the config', () => {
    const hosts = parseHostsJson(JSON.stringify({ hosts: [
      { name: 'studio', url: 'http://studio.lan:11434', token: 't1', parallel: 2, embed_parallel: 8 },
      { name: 'mini', url: 'http://mini.lan:11434' },
    ] }), DEFAULTS, []);
    assert.deepEqual(hosts, [
      { name: 'studio', url: 'http://studio.lan:11434', token: 't1', parallel: 2, embedParallel: 8 },
      { name: 'mini', url: 'http://mini.lan:11434', token: 'up', parallel: 1, embedParallel: 4 },
    ]);
  });

  it('refuses a hosts file with bad entries or duplicate names, naming each problem', () => {
    const problems: string[] = [];
    parseHostsJson(JSON.stringify({ hosts: [
      { name: 'a', url: 'http://a:1', parallel: 0 }, { name: 'a', url: 'http://b:1' }, { url: 'gopher://c' },
    ] }), DEFAULTS, problems);
    assert.equal(problems.length, 3, problems.join('\n'));
    assert.match(problems.join('\n'), /parallel/);
    assert.match(problems.join('\n'), /appears twice/);
    assert.match(problems.join('\n'), /url/);
  });

  it('stops at start on an unreadable hosts file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'foreman-hostsfile-'));
    try {
      await writeFile(join(dir, 'hosts.json'), '{"hosts": 3}');
      assert.throws(() => parseConfig(['--hosts-file', join(dir, 'hosts.json')], {}), /hosts_file/);
      assert.throws(() => parseConfig(['--hosts-file', join(dir, 'missing.json')], {}), /cannot read/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('sim --hosts', () => {
  it('gives each host its own catalogue and load times, every model somewhere', () => {
    const variants = hostVariants(3, { loadMs: 1000, models: [...DEFAULT_MODELS], port: 11434 });
    assert.deepEqual(variants.map((v) => v.options.port), [11434, 11435, 11436]);
    const catalogues = variants.map((v) => v.options.models!.map((m) => m.name));
    for (const c of catalogues) assert.ok(c.length < DEFAULT_MODELS.length, 'no host has every model');
    for (const m of DEFAULT_MODELS) assert.ok(catalogues.some((c) => c.includes(m.name)), `${m.name} is somewhere`);
    for (const c of catalogues) assert.ok(c.includes('nomic-embed-text:latest'), 'embedding models are everywhere');
    const loads = variants.flatMap((v) => v.options.models!.map((m) => m.loadMs!));
    assert.ok(loads.every((ms) => ms >= 500 && ms <= 2000));
    assert.ok(new Set(loads).size > 3, 'load times differ');
    assert.deepEqual(hostVariants(3, { loadMs: 1000, models: [...DEFAULT_MODELS] }), hostVariants(3, { loadMs: 1000, models: [...DEFAULT_MODELS] }));
  });

  it('with one host is the plain simulator', () => {
    const [only] = hostVariants(1, { loadMs: 700, models: [...DEFAULT_MODELS] });
    assert.equal(only!.options.models!.length, DEFAULT_MODELS.length);
    assert.ok(only!.options.models!.every((m) => m.loadMs === 700));
  });
});

describe('merged listings', () => {
  it('compares versions numerically', () => {
    assert.ok(compareVersions('0.9.0', '0.12.6') < 0);
    assert.equal(compareVersions('0.12.6', '0.12.6'), 0);
    assert.deepEqual(mergeListing('version', [{ version: '0.12.6' }, { version: '0.9.1' }]), { version: '0.9.1' });
  });

  it('lists the union of the catalogues once each, the union of loaded models, the lowest version', async (t) => {
    const stack = await startHosts(t, [
      { models: [{ name: 'llama3.2' }, { name: 'qwen3' }], version: '0.12.6' },
      { models: [{ name: 'qwen3' }, { name: 'mistral' }], version: '0.11.0' },
    ]);
    const tags = await (await stack.call('/api/tags')).json();
    assert.deepEqual(tags.models.map((m: { name: string }) => m.name).sort(), ['llama3.2:latest', 'mistral:latest', 'qwen3:latest']);
    assert.equal((await (await stack.call('/api/version')).json()).version, '0.11.0');
    const v1 = await (await stack.call('/v1/models')).json();
    assert.equal(v1.data.length, 3);
    // Load a model on each host directly, then /api/ps shows both.
    await fetch(stack.sims[0]!.url + '/api/generate', { method: 'POST', body: JSON.stringify({ model: 'llama3.2' }) }).then((r) => r.text());
    await fetch(stack.sims[1]!.url + '/api/generate', { method: 'POST', body: JSON.stringify({ model: 'mistral' }) }).then((r) => r.text());
    const ps = await (await stack.call('/api/ps')).json();
    assert.deepEqual(ps.models.map((m: { name: string }) => m.name).sort(), ['llama3.2:latest', 'mistral:latest']);
  });

  it('sends model management to the host X-Foreman-Host names, else the first; an unknown name is a 400', async (t) => {
    const stack = await startHosts(t, [{ models: [{ name: 'llama3.2' }] }, { models: [{ name: 'qwen3' }] }]);
    const second = stack.foreman.hosts.hosts[1]!.name;
    const pulled = await stack.call('/api/pull', { json: { model: 'gemma3', stream: false }, headers: { 'x-foreman-host': second } });
    assert.equal(pulled.status, 200);
    await pulled.text();
    const names = async (i: number) => ((await (await fetch(stack.sims[i]!.url + '/api/tags')).json()) as { models: { name: string }[] }).models.map((m) => m.name);
    assert.ok((await names(1)).includes('gemma3:latest'));
    assert.ok(!(await names(0)).includes('gemma3:latest'));
    const plain = await stack.call('/api/pull', { json: { model: 'phi4', stream: false } });
    await plain.text();
    assert.ok((await names(0)).includes('phi4:latest'));
    const bad = await stack.call('/api/delete', { method: 'DELETE', json: { model: 'phi4' }, headers: { 'x-foreman-host': 'nowhere' } });
    assert.equal(bad.status, 400);
    assert.match((await bad.json()).error, /no host named 'nowhere'/);
    // The catalogue foreman keeps follows the change.
    await until(() => stack.foreman.hosts.hosts[1]!.hasModel('gemma3') === true, 'catalogue refresh');
  });

  it('sends an embedding to the host that has the embedding model installed', async (t) => {
    const stack = await startHosts(t, [
      { models: [{ name: 'llama3.2' }] },
      { models: [{ name: 'qwen3' }, { name: 'nomic-embed-text', kind: 'embedding' }] },
    ]);
    await until(() => stack.foreman.hosts.hosts.every((h) => h.catalogueKnown), 'catalogues');
    const r = await stack.call('/api/embed', { json: { model: 'nomic-embed-text', input: 'hello' } });
    assert.equal(r.status, 200);
    assert.equal((await r.json()).embeddings.length, 1);
    assert.equal(stack.sims[1]!.stats().requests['nomic-embed-text:latest'], 1);
    assert.equal(stack.sims[0]!.stats().requests['nomic-embed-text:latest'], undefined);
    assert.equal(stack.foreman.hosts.hosts[1]!.embedLoaded, 'nomic-embed-text:latest');
  });
});

describe('foreman sim --hosts', () => {
  it('starts N simulated hosts with different catalogues and prints the upstream list', async () => {
    const { PassThrough } = await import('node:stream');
    const { runSim } = await import('../lib/sim/cli-sim.js');
    const stderr = new PassThrough();
    const stdout = new PassThrough();
    const stop = new AbortController();
    let said = '';
    const listed = new Promise<string>((resolve) =>
      stderr.on('data', (c: Buffer) => {
        said += c.toString();
        const m = /foreman serve --upstream (\S+)\n/.exec(said);
        if (m) resolve(m[1]!);
      }),
    );
    const done = runSim(['--listen', '127.0.0.1:0', '--hosts', '3', '--load-ms', '100', '--tokens-per-second', '0'], { stdout, stderr }, stop.signal);
    const urls = (await listed).split(',');
    assert.equal(urls.length, 3);
    const catalogues = await Promise.all(urls.map(async (u) => ((await (await fetch(u + '/api/tags')).json()) as { models: { name: string }[] }).models.map((m) => m.name).sort().join(',')));
    assert.equal(new Set(catalogues).size, 3, 'three different catalogues');
    assert.match(said, /host-1 listening on http:\/\/127\.0\.0\.1:\d+: .*ms/);
    stop.abort();
    assert.equal(await done, 0);
    const bad = new PassThrough();
    assert.equal(await runSim(['--hosts', '0'], { stdout, stderr: bad }), 2);
  });
});

describe('embeddings with several hosts', () => {
  it('fall over to another host when the one that has the model loaded cannot be reached', async (t) => {
    const embed = { name: 'nomic-embed-text', kind: 'embedding' as const };
    const stack = await startHosts(t, [{ models: [{ name: 'llama3.2' }, embed] }, { models: [{ name: 'qwen3' }, embed] }]);
    await until(() => stack.foreman.hosts.hosts.every((h) => h.catalogueKnown), 'catalogues');
    const first = await stack.call('/api/embed', { json: { model: 'nomic-embed-text', input: 'a' } });
    assert.equal(first.status, 200);
    await first.text();
    const home = stack.foreman.hosts.hosts.findIndex((h) => h.embedLoaded === 'nomic-embed-text:latest');
    assert.ok(home >= 0);
    await stack.kill(home);
    const again = await stack.call('/api/embed', { json: { model: 'nomic-embed-text', input: 'b' } });
    assert.equal(again.status, 200);
    assert.equal((await again.json()).embeddings.length, 1);
    assert.equal(stack.foreman.hosts.hosts[home]!.state, 'down');
    assert.equal(stack.sims[1 - home]!.stats().requests['nomic-embed-text:latest'], 1);
  });
});
