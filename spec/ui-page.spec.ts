import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { QueueSnapshot } from '../lib/ops/queue-view.js';
import { renderUiPage, UI_CONTENT_SECURITY_POLICY, uiPageHeaders } from '../lib/ops/ui-page.js';
import { chromiumDumpDom } from './support/chromium.js';

// A real headless Chromium loads the page from a real server and we read the
// DOM it dumps. No skipping: CI installs chromium (apt-get install -y chromium).

const EVIL = 'evil<b>bold</b>';
const snapshot: QueueSnapshot = {
  at: '2025-01-02T10:00:00.000Z',
  upstream: 'http://127.0.0.1:11434',
  loaded_group: 'llama3.2',
  loaded_model: 'llama3.2',
  running: [{
    id: 'j_running1', model: 'llama3.2', group: 'llama3.2', origin: 'sync', kind: 'chat',
    priority: 10, started_at: '2025-01-02T09:59:48.000Z', elapsed_ms: 12_000, queue_ms: 800,
  }],
  groups: [
    { group: 'qwen2.5:14b', model: 'qwen2.5:14b', count: 12, head_priority: 0, head_wait_ms: 125_000, head_effective_priority: 4.25, lane: 'hosts' },
    { group: EVIL, model: EVIL, count: 5, head_priority: 3, head_wait_ms: 900, head_effective_priority: 3 },
    { group: 'gpt-oss:120b-cloud', model: 'gpt-oss:120b-cloud', count: 2, head_priority: 0, head_wait_ms: 10, head_effective_priority: 0, lane: 'cloud' },
    { group: 'llama3.2', model: 'llama3.2', count: 1, head_priority: 10, head_wait_ms: 50, head_effective_priority: 10, lane: 'hosts' },
  ],
  lanes: [
    { name: 'local', kind: 'local', parallel: 2, running: 1, waiting: 15, loaded_group: 'llama3.2:latest' },
    { name: 'cloud', kind: 'cloud', parallel: 4, running: 0, waiting: 0, loaded_group: null },
  ],
  totals: { waiting: 17, running: 1, max_queue: 1000, parallel: 2, completed: 40, failed: 2, cancelled: 1, requeued: 0, switches: 7 },
  switches: [{ at: '2025-01-02T09:59:30.000Z', from: 'qwen2.5:14b', to: 'llama3.2', load_ms: 2_500 }],
  recent: [{ id: 'j_done1', model: 'qwen2.5:14b', origin: 'async', state: 'failed', queue_ms: 3_000, run_ms: 450,
    finished_at: '2025-01-02T09:59:00.000Z' }],
  embeddings: { in_flight: 0, max: 4 },
  key: { name: 'token-1', admin: true, waiting: 0, running: 1 },
  hosts: [
    { name: 'studio', url: 'http://studio.lan:11434', state: 'up', error: null, version: '0.12.6', parallel: 2, running: 1,
      loaded_group: 'llama3.2', loaded_model: 'llama3.2', switches: 3, loads: [{ group: 'llama3.2', load_ms: 4_200, loads: 2 }],
      estimated_loads: [{ group: 'qwen3:latest', load_ms: 6_100, from: 'model' }], models: ['llama3.2:latest'], embeddings: { in_flight: 0, max: 4, loaded: null } },
    { name: 'mini', url: 'http://mini.lan:11434', state: 'down', error: 'connect ECONNREFUSED', version: null, parallel: 1, running: 0,
      loaded_group: null, loaded_model: null, switches: 0, loads: [], estimated_loads: [], models: null, embeddings: { in_flight: 0, max: 4, loaded: null } },
  ],
};

const usage = (completed: number, prompt: number, completion: number) => ({
  requests: { ollama: 3, openai: 1, anthropic: 0, jobs: 2, ops: 0 }, jobs: { completed, failed: 1, cancelled: 0, requeued: 0 },
  prompt_tokens: prompt, completion_tokens: completion, run_seconds: 12.5, queue_wait_seconds: 3,
});
const keysBody = {
  keys: [
    { name: 'token-1', admin: true, source: 'tokens', sync_priority: null, max_priority: null, max_running: null, max_queued: null,
      weight: 1, models: null, waiting: 0, running: 1, usage: usage(5, 10, 20) },
    { name: 'ci', admin: false, source: 'keys_file', sync_priority: 5, max_priority: 0, max_running: 1, max_queued: 200,
      weight: 3, models: ['llama3.2*'], waiting: 7, running: 1, usage: usage(40, 1234, 5678) },
  ],
};

interface Seen { url: string; authorization: string | undefined }

let server: Server;
let base: string;
let queueMode: 'ok' | 'drop' = 'ok';
const seen: Seen[] = [];

before(async () => {
  server = createServer((req, res) => {
    seen.push({ url: req.url ?? '', authorization: req.headers.authorization });
    if (req.url === '/ui') {
      res.writeHead(200, uiPageHeaders()).end(renderUiPage());
    } else if (req.url === '/keys' && req.headers.authorization === 'Bearer t0k') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(keysBody));
    } else if (req.url === '/queue' && queueMode === 'drop') {
      req.socket.destroy();
    } else if (req.url === '/queue') {
      if (req.headers.authorization !== 'Bearer t0k') {
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"unauthorized"}');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(snapshot));
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(() => {
  server.closeAllConnections();
  server.close();
});

/** Loads `path` in headless Chromium and returns the DOM after 5 s of virtual time, plus the requests it made. */
async function dumpDom(path: string): Promise<{ dom: string; requests: Seen[] }> {
  seen.length = 0;
  const dom = await chromiumDumpDom(base + path);
  return { dom, requests: seen.filter((r) => r.url === '/queue') };
}

const isHidden = (dom: string, id: string) => new RegExp(`<[a-z]+ id="${id}"[^>]*\\shidden(=""|\\s|>)`).test(dom);
const textOf = (dom: string, id: string) => new RegExp(`id="${id}"[^>]*>([^<]*)<`).exec(dom)?.[1];
const laneCount = (dom: string, group: string) =>
  new RegExp(`data-group="${group}"[^>]*>.*?class="lane-count" data-count="(\\d+)"[^>]*>(\\d+)<`, 's').exec(dom)?.slice(1);

describe('ui-page', () => {
  it('is one self-contained page whose inline script and style match its CSP hashes', () => {
    const page = renderUiPage();
    assert.doesNotMatch(page, /\s(src|href)="(?!data:)/, 'no external assets');
    assert.doesNotMatch(page, /innerHTML|outerHTML|insertAdjacentHTML|document\.write/);
    const script = /<script>([\s\S]*)<\/script>/.exec(page)![1]!;
    const style = /<style>([\s\S]*)<\/style>/.exec(page)![1]!;
    const hash = (s: string) => createHash('sha256').update(s).digest('base64');
    assert.ok(UI_CONTENT_SECURITY_POLICY.includes(`script-src 'sha256-${hash(script)}'`));
    assert.ok(UI_CONTENT_SECURITY_POLICY.includes(`style-src 'sha256-${hash(style)}'`));
    assert.equal(uiPageHeaders()['content-security-policy'], UI_CONTENT_SECURITY_POLICY);
  });

  it('renders /queue as text, fetched with the Bearer token from the fragment', async () => {
    queueMode = 'ok';
    const { dom, requests } = await dumpDom('/ui#token=t0k');
    assert.ok(requests.length >= 2, `polled /queue ${requests.length} times in 5 s`);
    assert.ok(requests.every((r) => r.authorization === 'Bearer t0k'), JSON.stringify(requests));
    assert.ok(seen.every((r) => !r.url.includes('t0k')), 'the token never appears in a URL');

    // With several hosts the card lists each loaded group with the hosts that have it (SPEC §17).
    assert.equal(textOf(dom, 'loaded-title'), 'Loaded models');
    // A group loaded on some host is marked loaded; only the cloud lane gets a lane badge (every group is in the hosts' queue).
    assert.match(dom, /data-group="llama3\.2"[^>]*><div class="lane-name">llama3\.2<span class="badge">loaded<\/span><\/div>/);
    assert.match(dom, /data-group="qwen2\.5:14b"[^>]*><div class="lane-name">qwen2\.5:14b<\/div>/);
    assert.doesNotMatch(dom, /data-lane="hosts"/);
    assert.match(dom, /data-lane="cloud">cloud</);
    assert.match(dom, /id="loaded-model"[^>]*><div data-loaded="llama3\.2">llama3\.2<span class="loaded-hosts muted"> on studio<\/span><\/div><\/div>/);
    assert.deepEqual(laneCount(dom, 'qwen2.5:14b'), ['12', '12']);
    assert.deepEqual(laneCount(dom, 'evil&lt;b&gt;bold&lt;/b&gt;'), ['5', '5']);
    assert.match(dom, /<div class="lane-name">evil&lt;b&gt;bold&lt;\/b&gt;<\/div>/);
    assert.doesNotMatch(dom, /<b>/, 'a model name never becomes markup');
    assert.match(dom, /id="running".*data-job="j_running1".*llama3\.2/s);
    assert.match(dom, /data-total="waiting" data-value="17"/);
    assert.match(dom, /data-total="cloud" data-value="0"><dt>cloud<\/dt><dd>0<small> \/ 4 · 0 waiting<\/small>/); // the cloud lane (SPEC §12)
    assert.match(dom, /id="switches".*qwen2\.5:14b.*llama3\.2.*load 2\.5s/s);
    assert.match(dom, /id="recent-rows".*data-job="j_done1" data-state="failed"/s);
    assert.match(dom, /id="status" data-state="ok"/);
    // Several hosts (SPEC §17): one row per host with its state, loaded model, slots and load times.
    assert.ok(!isHidden(dom, 'hosts-card'));
    assert.equal(textOf(dom, 'hosts-count'), '1 / 2 up');
    assert.match(dom, /data-host="studio" data-state="up">.*?data-field="loaded">llama3\.2<.*?data-field="running">1 \/ 2<.*?data-field="loads">llama3\.2 4\.2s ×2, qwen3:latest ~6\.1s</s);
    assert.match(dom, /data-host="mini" data-state="down">.*?connect ECONNREFUSED/s);
    // Keys and their usage (SPEC §15), from GET /keys with the same token.
    assert.ok(!isHidden(dom, 'keys-card'));
    assert.match(dom, /data-key="token-1"[^>]*><td>token-1<span class="badge">you<\/span><span class="badge">admin<\/span>/);
    assert.match(dom, /data-key="ci".*?data-field="running">1 \/ 1<.*?data-field="waiting">7 \/ 200<.*?data-field="jobs">40 \/ 1 \/ 0<.*?data-field="tokens">1234 \/ 5678</s);
    assert.ok(isHidden(dom, 'token-panel'));
    assert.ok(!isHidden(dom, 'dashboard'));
  });

  it('shows the token form with a message when /queue answers 401', async () => {
    queueMode = 'ok';
    const { dom, requests } = await dumpDom('/ui#token=wrong');
    assert.equal(requests.length, 1, 'stops polling until a new token is entered');
    assert.equal(requests[0]!.authorization, 'Bearer wrong');
    assert.ok(!isHidden(dom, 'token-panel'));
    assert.ok(isHidden(dom, 'dashboard'));
    assert.match(textOf(dom, 'token-message') ?? '', /rejected \(HTTP 401\)/);
  });

  it('asks for a token and calls nothing when none is given', async () => {
    const { dom, requests } = await dumpDom('/ui');
    assert.equal(requests.length, 0);
    assert.ok(!isHidden(dom, 'token-panel'));
    assert.match(dom, /id="status" data-state="unauthorized"/);
  });

  it('says foreman is unreachable and keeps polling on network errors', async () => {
    queueMode = 'drop';
    const { dom, requests } = await dumpDom('/ui#token=t0k');
    assert.ok(requests.length >= 2, `kept polling: ${requests.length} requests`);
    assert.match(textOf(dom, 'status') ?? '', /foreman unreachable/);
    assert.match(dom, /id="status" data-state="unreachable"/);
  });
});
