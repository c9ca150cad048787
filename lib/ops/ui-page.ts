// GET /ui: one self-contained HTML page (inline CSS and JS, no assets) that
// polls /queue with a Bearer token and shows it as text. It knows the /queue
// JSON shape and nothing of the server; server data only ever reaches textContent.

import { createHash } from 'node:crypto';

// Kept free of backticks and `${`, since they live inside template literals.
const STYLE = String.raw`
:root {
  color-scheme: light dark;
  --bg: #f5f6f8; --card: #ffffff; --text: #1b2230; --muted: #5f6b7c; --line: #e2e6ec;
  --accent: #2563eb; --accent-soft: #dbe6fd; --box: #b9c8e8; --ok: #16803c; --warn: #a15c00; --bad: #c8252c;
  --ok-soft: #ddf3e4; --warn-soft: #fdf0d8; --bad-soft: #fbe1e2;
  --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0e1116; --card: #161b22; --text: #e6e9ee; --muted: #8d96a5; --line: #262d38;
    --accent: #6ea2ff; --accent-soft: #1b2b4a; --box: #3a4d73; --ok: #4cc76f; --warn: #e3a33b; --bad: #ff6b6b;
    --ok-soft: #14301e; --warn-soft: #3a2a10; --bad-soft: #3d1719;
  }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text); font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
  font-variant-numeric: tabular-nums; }
header { display: flex; align-items: center; gap: 14px; padding: 12px 24px; border-bottom: 1px solid var(--line); background: var(--card); }
h1 { margin: 0; font-size: 18px; letter-spacing: .02em; }
#upstream { color: var(--muted); font-family: var(--mono); font-size: 12px; }
#status { margin-left: auto; padding: 3px 10px; border-radius: 999px; font-size: 12px; font-weight: 600;
  background: var(--accent-soft); color: var(--accent); }
#status[data-state="ok"] { background: var(--ok-soft); color: var(--ok); }
#status[data-state="unreachable"], #status[data-state="error"] { background: var(--bad-soft); color: var(--bad); }
#status[data-state="unauthorized"] { background: var(--warn-soft); color: var(--warn); }
button { font: inherit; border: 1px solid var(--line); background: var(--card); color: var(--text); border-radius: 6px;
  padding: 4px 12px; cursor: pointer; }
button.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
main { max-width: 1280px; margin: 0 auto; padding: 18px 24px 32px; display: grid; gap: 16px; }
main.stale { opacity: .55; }
.row { display: grid; grid-template-columns: minmax(260px, 1fr) 2fr; gap: 16px; }
.row.even { grid-template-columns: 1fr 1fr; }
@media (max-width: 860px) { .row, .row.even { grid-template-columns: 1fr; } }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 14px 16px; min-width: 0; }
h2 { margin: 0 0 10px; font-size: 12px; font-weight: 600; text-transform: uppercase; letter-spacing: .06em; color: var(--muted); }
h2 .n { color: var(--text); margin-left: 6px; }
.empty { color: var(--muted); font-style: italic; margin: 4px 0; }
.mono { font-family: var(--mono); font-size: 12.5px; }
.muted { color: var(--muted); }
#loaded-model { font-size: 22px; font-weight: 650; overflow-wrap: anywhere; }
#loaded-model[data-empty] { color: var(--muted); font-weight: 400; }
.loaded-hosts { font-size: 14px; font-weight: 400; }
#loaded-group { margin-top: 2px; }
#loaded-since { margin-top: 8px; font-size: 13px; }
#totals { display: grid; grid-template-columns: repeat(auto-fill, minmax(92px, 1fr)); gap: 10px; margin: 0; }
#totals div { border-left: 3px solid var(--line); padding-left: 10px; }
#totals dt { font-size: 12px; color: var(--muted); }
#totals dd { margin: 0; font-size: 20px; font-weight: 600; }
#totals dd small { font-size: 12px; color: var(--muted); font-weight: 400; }
#totals [data-total="failed"] { border-color: var(--bad); }
#store-alert { border-left: 4px solid var(--bad); color: var(--bad); font-weight: 600; }
#totals [data-total="completed"] { border-color: var(--ok); }
#totals [data-total="waiting"], #totals [data-total="running"] { border-color: var(--accent); }
.job { display: grid; grid-template-columns: minmax(120px, 1.2fr) minmax(140px, 2fr) auto 90px 70px 64px 80px; gap: 12px;
  align-items: center; padding: 6px 0; border-top: 1px solid var(--line); }
.job:first-child { border-top: 0; }
.job .badges { display: flex; gap: 4px; flex-wrap: wrap; }
.job .badges .badge { max-width: 160px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.elapsed { text-align: right; font-weight: 600; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 11.5px; font-weight: 600;
  background: var(--accent-soft); color: var(--accent); justify-self: start; }
.badge.async { background: var(--warn-soft); color: var(--warn); }
.badge.completed { background: var(--ok-soft); color: var(--ok); }
.badge.failed { background: var(--bad-soft); color: var(--bad); }
.badge.cancelled, .badge.requeued { background: var(--warn-soft); color: var(--warn); }
.lane { display: grid; grid-template-columns: minmax(180px, 1.1fr) 70px minmax(160px, 2fr) minmax(250px, 1.2fr); gap: 14px;
  align-items: center; padding: 9px 10px; border-radius: 8px; border: 1px solid transparent; }
.lane + .lane { margin-top: 6px; }
.lane.loaded { border-color: var(--ok); background: var(--ok-soft); }
.lane-name { font-weight: 600; overflow-wrap: anywhere; }
.lane-name .badge { margin-left: 8px; background: var(--ok); color: var(--card); }
.lane-count { font-size: 22px; font-weight: 700; text-align: right; }
.boxes { display: flex; flex-wrap: wrap; gap: 3px; align-items: center; }
.box { width: 11px; height: 11px; border-radius: 2px; background: var(--box); }
.box.head { background: var(--accent); }
.more { font-size: 12px; color: var(--muted); margin-left: 4px; }
.lane-meta { display: flex; gap: 14px; font-size: 12.5px; color: var(--muted); justify-content: flex-end; }
.lane-meta strong { color: var(--text); font-weight: 600; }
#switches { list-style: none; margin: 0; padding: 0; }
#switches li { display: grid; grid-template-columns: 96px 1fr 80px; gap: 10px; padding: 5px 0; border-top: 1px solid var(--line); }
#switches li:first-child { border-top: 0; }
.arrow { color: var(--muted); margin: 0 6px; }
table { width: 100%; border-collapse: collapse; }
th { text-align: left; font-size: 11.5px; font-weight: 600; color: var(--muted); padding: 0 8px 6px 0; }
td { padding: 5px 8px 5px 0; border-top: 1px solid var(--line); overflow-wrap: anywhere; }
.num { text-align: right; }
#token-panel { max-width: 420px; margin: 64px auto; }
#token-form { display: grid; gap: 10px; }
#token-form input { font: inherit; font-family: var(--mono); padding: 7px 10px; border-radius: 6px;
  border: 1px solid var(--line); background: var(--bg); color: var(--text); }
#token-message { margin: 0; color: var(--warn); min-height: 1.4em; }
[hidden] { display: none !important; }
`;

const SCRIPT = String.raw`
(() => {
  'use strict';
  const KEY = 'foreman.token';
  const MAX_BOXES = 60;
  // /ui -> /queue, and /prefix/ui -> /prefix/queue behind a path-mounting proxy.
  const QUEUE_URL = location.pathname.replace(/\/ui\/?$/, '/') + 'queue';
  const KEYS_URL = location.pathname.replace(/\/ui\/?$/, '/') + 'keys';
  const $ = (id) => document.getElementById(id);
  let token = null;
  let timer = null;
  let generation = 0;
  let receivedAt = 0;
  let stale = false;

  const store = {
    get() { try { return sessionStorage.getItem(KEY); } catch { return null; } },
    set(v) { try { v === null ? sessionStorage.removeItem(KEY) : sessionStorage.setItem(KEY, v); } catch { /* private mode */ } },
  };

  // Server data becomes text nodes or attribute values, never markup.
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') el.className = v; else el.setAttribute(k, String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function fmt(ms) {
    if (!Number.isFinite(ms) || ms < 0) return '-';
    if (ms < 1000) return Math.round(ms) + 'ms';
    if (ms < 60000) return (Math.floor(ms / 100) / 10).toFixed(1) + 's';
    const s = Math.floor(ms / 1000);
    if (s < 3600) return Math.floor(s / 60) + 'm' + String(s % 60).padStart(2, '0') + 's';
    return Math.floor(s / 3600) + 'h' + String(Math.floor(s / 60) % 60).padStart(2, '0') + 'm';
  }
  const prio = (p) => (Number.isInteger(p) ? String(p) : Number(p).toFixed(1));
  // Measured load times (xN loads), then the estimates the pick uses until one is measured, marked ~.
  function loadTimes(x) {
    const parts = x.loads.map((l) => l.group + ' ' + fmt(l.load_ms) + ' \u00d7' + l.loads);
    for (const e of x.estimated_loads || []) parts.push(e.group + ' ~' + fmt(e.load_ms));
    return parts.length === 0 ? '-' : parts.join(', ');
  }

  // A duration that keeps counting between polls: base from the snapshot plus local time since.
  function tick(baseMs, suffix) {
    return h('span', { class: 'tick', 'data-base': baseMs, 'data-suffix': suffix || '' }, fmt(baseMs) + (suffix || ''));
  }
  function retick() {
    if (stale) return;
    const since = performance.now() - receivedAt;
    for (const el of document.querySelectorAll('.tick')) {
      el.textContent = fmt(Number(el.dataset.base) + since) + el.dataset.suffix;
    }
  }

  function setStatus(state, text) {
    const el = $('status');
    el.dataset.state = state;
    el.textContent = text;
  }

  function showTokenForm(message) {
    generation += 1;
    clearTimeout(timer);
    token = null;
    store.set(null);
    $('dashboard').hidden = true;
    $('forget').hidden = true;
    $('token-panel').hidden = false;
    $('token-message').textContent = message || '';
    setStatus('unauthorized', 'token needed');
    $('token-input').focus();
  }

  function connect(t) {
    token = t;
    store.set(t);
    $('token-panel').hidden = true;
    $('forget').hidden = false;
    setStatus('connecting', 'connecting\u2026');
    generation += 1;
    clearTimeout(timer);
    poll(generation);
  }

  function schedule(gen) {
    clearTimeout(timer);
    timer = setTimeout(() => poll(gen), document.visibilityState === 'hidden' ? 5000 : 1000);
  }

  async function poll(gen) {
    const abort = new AbortController();
    const limit = setTimeout(() => abort.abort(), 5000);
    try {
      const res = await fetch(QUEUE_URL, {
        headers: { Authorization: 'Bearer ' + token, Accept: 'application/json' },
        cache: 'no-store', signal: abort.signal,
      });
      if (gen !== generation) return;
      if (res.status === 401 || res.status === 403) {
        showTokenForm('The token was rejected (HTTP ' + res.status + '). Enter a valid one.');
        return;
      }
      if (!res.ok) throw Object.assign(new Error('HTTP ' + res.status), { http: true });
      const snapshot = await res.json();
      if (gen !== generation) return;
      render(snapshot);
      await pollKeys(gen, abort.signal, snapshot.key);
      stale = false;
      $('dashboard').classList.remove('stale');
      setStatus('ok', 'live \u00b7 ' + new Date().toLocaleTimeString());
    } catch (err) {
      if (gen !== generation) return;
      stale = true;
      $('dashboard').classList.add('stale');
      if (err && err.http) setStatus('error', 'foreman error: ' + err.message + ' \u00b7 retrying');
      else setStatus('unreachable', 'foreman unreachable \u00b7 retrying');
    } finally {
      clearTimeout(limit);
    }
    if (gen === generation) schedule(gen);
  }

  // Named keys and their usage (SPEC §15): an admin sees every key, any other key itself.
  // Best effort: an older foreman without /keys leaves the panel hidden.
  async function pollKeys(gen, signal, me) {
    let body = null;
    try {
      const res = await fetch(KEYS_URL, { headers: { Authorization: 'Bearer ' + token, Accept: 'application/json' }, cache: 'no-store', signal });
      if (res.ok) body = await res.json();
    } catch { /* the queue view above is what matters */ }
    if (gen !== generation) return;
    $('keys-card').hidden = body === null;
    if (body === null) return;
    const you = me ? me.name : '';
    const of = (n, cap) => String(n) + (cap === null || cap === undefined ? '' : ' / ' + cap);
    $('keys-rows').replaceChildren(...body.keys.map((k) => {
      const u = k.usage;
      const requests = Object.values(u.requests).reduce((a, b) => a + b, 0);
      return h('tr', { 'data-key': k.name, 'data-source': k.source },
        h('td', {}, k.name, k.name === you && h('span', { class: 'badge' }, 'you'), k.admin && h('span', { class: 'badge' }, 'admin'),
          k.source === 'removed' && h('span', { class: 'badge failed' }, 'removed')),
        h('td', { class: 'num' }, String(k.weight)),
        h('td', { class: 'num', 'data-field': 'running' }, of(k.running, k.max_running)),
        h('td', { class: 'num', 'data-field': 'waiting' }, of(k.waiting, k.max_queued)),
        h('td', { class: 'num' }, String(requests)),
        h('td', { class: 'num', 'data-field': 'jobs' }, (u.jobs.completed || 0) + ' / ' + (u.jobs.failed || 0) + ' / ' + (u.jobs.cancelled || 0)),
        h('td', { class: 'num', 'data-field': 'tokens' }, u.prompt_tokens + ' / ' + u.completion_tokens),
        h('td', { class: 'num' }, fmt(u.run_seconds * 1000)),
        h('td', { class: 'num' }, fmt(u.queue_wait_seconds * 1000)));
    }));
  }

  const newestFirst = (list, key) => list.slice().sort((a, b) => (a[key] < b[key] ? 1 : a[key] > b[key] ? -1 : 0));
  const since = (now, at) => Math.max(0, now - Date.parse(at));

  function render(s) {
    receivedAt = performance.now();
    const now = Date.parse(s.at);
    const t = s.totals;
    document.title = 'foreman \u00b7 ' + t.waiting + ' waiting \u00b7 ' + t.running + ' running';
    $('dashboard').hidden = false;
    $('upstream').textContent = 'upstream ' + s.upstream;
    // SPEC §6: a journal that cannot write holds async work; the banner says why.
    const store = s.store;
    $('store-alert').hidden = !store || store.writable;
    $('store-alert').textContent = store && !store.writable
      ? store.reason + '. New jobs get 503 and queued jobs wait until the disk works again.' : '';

    // Several Ollama hosts (SPEC §17): what each group is loaded on; one host: the loaded model.
    const hosts = s.hosts || [];
    const loadedOn = new Map();
    for (const x of hosts) if (x.loaded_group !== null) loadedOn.set(x.loaded_group, (loadedOn.get(x.loaded_group) || []).concat(x.name));
    const loaded = $('loaded-model');
    if (hosts.length > 0) {
      $('loaded-title').textContent = 'Loaded models';
      loaded.replaceChildren(...(loadedOn.size === 0 ? ['none'] : [...loadedOn].map(([group, names]) =>
        h('div', { 'data-loaded': group }, group, h('span', { class: 'loaded-hosts muted' }, ' on ' + names.join(', '))))));
      loaded.toggleAttribute('data-empty', loadedOn.size === 0);
      $('loaded-group').textContent = '';
      $('loaded-since').replaceChildren();
    } else {
      $('loaded-title').textContent = 'Loaded model';
      loaded.textContent = s.loaded_model === null ? 'none' : s.loaded_model;
      loaded.toggleAttribute('data-empty', s.loaded_model === null);
      $('loaded-group').textContent = s.loaded_group && s.loaded_group !== s.loaded_model ? s.loaded_group : '';
      const last = newestFirst(s.switches, 'at').find((w) => s.loaded_group !== null && (w.to === s.loaded_group || w.to === s.loaded_model));
      $('loaded-since').replaceChildren(...(last ? ['loaded ', tick(since(now, last.at), ' ago'),
        last.load_ms === null ? '' : ' \u00b7 load took ' + fmt(last.load_ms)] : []));
    }

    // One row per host, with what it has loaded and what its loads took.
    $('hosts-card').hidden = hosts.length === 0;
    $('hosts-count').textContent = hosts.filter((x) => x.state === 'up').length + ' / ' + hosts.length + ' up';
    $('hosts-rows').replaceChildren(...hosts.map((x) => h('tr', { 'data-host': x.name, 'data-state': x.state },
      h('td', { class: 'mono', title: x.url }, x.name),
      h('td', {}, h('span', { class: 'badge ' + (x.state === 'up' ? 'completed' : 'failed') }, x.state), x.retiring ? h('span', { class: 'muted' }, ' retiring') : '', x.error ? h('span', { class: 'muted' }, ' ' + x.error) : ''),
      h('td', { 'data-field': 'loaded' }, x.loaded_group === null ? h('span', { class: 'muted' }, 'none') : x.loaded_group),
      h('td', { class: 'num', 'data-field': 'running' }, x.running + ' / ' + x.parallel),
      h('td', { class: 'num' }, String(x.switches)),
      h('td', { class: 'muted', 'data-field': 'loads' }, loadTimes(x)))));
    const runningOf = hosts.length > 0 ? hosts.reduce((a, x) => a + x.parallel, 0) : t.parallel;
    $('running-count').textContent = t.running + ' / ' + runningOf;
    $('running').replaceChildren(...(s.running.length === 0 ? [h('p', { class: 'empty' }, 'nothing running')] :
      s.running.map((r) => h('div', { class: 'job', 'data-job': r.id },
        h('span', { class: 'mono' }, r.id),
        h('span', { class: 'model' }, r.group),
        // One cell for the badges and an always-present key cell keep the grid's columns aligned.
        h('span', { class: 'badges' },
          r.lane && r.lane !== 'local' && h('span', { class: 'badge lane-badge', 'data-lane': r.lane }, r.lane),
          h('span', { class: 'badge ' + r.origin }, r.origin)),
        h('span', { class: 'muted', 'data-field': 'key' }, r.key || ''),
        h('span', { class: 'muted' }, r.kind),
        h('span', { class: 'muted' }, 'prio ' + r.priority),
        h('span', { class: 'elapsed' }, tick(r.elapsed_ms))))));

    $('waiting-count').textContent = t.waiting + ' / ' + t.max_queue;
    $('groups').replaceChildren(...(s.groups.length === 0 ? [h('p', { class: 'empty' }, 'queue empty')] :
      s.groups.map((g) => {
        const isLoaded = hosts.length > 0 ? loadedOn.has(g.group) : g.group === s.loaded_group;
        const boxes = [];
        for (let i = 0; i < Math.min(g.count, MAX_BOXES); i++) boxes.push(h('span', { class: i === 0 ? 'box head' : 'box' }));
        if (g.count > MAX_BOXES) boxes.push(h('span', { class: 'more' }, '+' + (g.count - MAX_BOXES)));
        return h('div', { class: isLoaded ? 'lane loaded' : 'lane', 'data-group': g.group, 'data-model': g.model },
          h('div', { class: 'lane-name' }, g.group, isLoaded && h('span', { class: 'badge' }, 'loaded'),
            // Only a lane beside the hosts' shared queue (the cloud lane) is worth a badge.
            g.lane && g.lane !== 'local' && g.lane !== 'hosts' && h('span', { class: 'badge lane-badge', 'data-lane': g.lane }, g.lane)),
          h('div', { class: 'lane-count', 'data-count': g.count, title: 'waiting' }, String(g.count)),
          h('div', { class: 'boxes', 'aria-hidden': 'true' }, boxes),
          h('div', { class: 'lane-meta' },
            h('span', { 'data-field': 'head-priority' }, 'head prio ', h('strong', {}, prio(g.head_priority))),
            h('span', { 'data-field': 'head-wait' }, 'waited ', h('strong', {}, tick(g.head_wait_ms))),
            h('span', { 'data-field': 'effective-priority' }, 'eff. prio ', h('strong', {}, prio(g.head_effective_priority)))));
      })));

    const totals = [
      ['waiting', t.waiting, ' / ' + t.max_queue], ['running', t.running, ' / ' + runningOf],
      ['completed', t.completed], ['failed', t.failed], ['cancelled', t.cancelled], ['switches', t.switches],
      ['embeddings', s.embeddings.in_flight, ' / ' + s.embeddings.max],
    ];
    // Lanes beside the local model (cloud models, SPEC §12): running of their own parallel, and waiting.
    for (const lane of s.lanes || []) {
      if (lane.kind !== 'local' && !hosts.some((x) => x.name === lane.name)) totals.push([lane.name, lane.running, ' / ' + lane.parallel + ' \u00b7 ' + lane.waiting + ' waiting']);
    }
    $('totals').replaceChildren(...totals.map(([k, v, of]) =>
      h('div', { 'data-total': k, 'data-value': v }, h('dt', {}, k), h('dd', {}, String(v), of && h('small', {}, of)))));

    const switches = newestFirst(s.switches, 'at').slice(0, 8);
    $('switches').replaceChildren(...(switches.length === 0 ? [h('li', { class: 'empty' }, 'no switches yet')] :
      switches.map((w) => h('li', { 'data-switch': w.to },
        h('span', { class: 'muted' }, tick(since(now, w.at), ' ago')),
        h('span', {}, w.host ? h('span', { class: 'muted mono' }, w.host + ': ') : '', w.from === null ? h('span', { class: 'muted' }, 'nothing') : w.from, h('span', { class: 'arrow' }, '\u2192'), h('strong', {}, w.to)),
        h('span', { class: 'num' }, w.load_ms === null ? '-' : 'load ' + fmt(w.load_ms))))));

    const recent = newestFirst(s.recent, 'finished_at').slice(0, 12);
    $('recent-rows').replaceChildren(...(recent.length === 0 ? [h('tr', {}, h('td', { class: 'empty', colspan: 6 }, 'no finished jobs yet'))] :
      recent.map((j) => h('tr', { 'data-job': j.id, 'data-state': j.state },
        h('td', {}, h('span', { class: 'badge ' + j.state }, j.state)),
        h('td', { class: 'mono' }, j.id),
        h('td', {}, j.model),
        h('td', { class: 'muted' }, j.origin),
        h('td', { class: 'num' }, fmt(j.queue_ms)),
        h('td', { class: 'num' }, fmt(j.run_ms))))));
  }

  $('token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const value = $('token-input').value.trim();
    $('token-input').value = '';
    if (value) connect(value);
  });
  $('forget').addEventListener('click', () => showTokenForm('Token forgotten.'));
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible' && token !== null) { generation += 1; poll(generation); }
  });
  setInterval(retick, 250);

  // A fragment never reaches the server or its logs; take the token, then drop it from the address bar.
  const fragment = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (fragment) {
    let value = fragment[1];
    try { value = decodeURIComponent(value); } catch { /* keep it raw */ }
    store.set(value);
    history.replaceState(null, '', location.pathname + location.search);
  }
  const saved = store.get();
  if (saved) connect(saved); else showTokenForm('');
})();
`;

const BODY = `
<header>
  <h1>foreman</h1>
  <span id="upstream"></span>
  <span id="status" data-state="connecting" role="status">starting\u2026</span>
  <button id="forget" type="button" hidden>Forget token</button>
</header>
<section id="token-panel" class="card" hidden>
  <h2>Connect</h2>
  <form id="token-form">
    <label for="token-input">Bearer token for this foreman</label>
    <input id="token-input" type="password" autocomplete="off" spellcheck="false" required>
    <button class="primary" type="submit">Connect</button>
    <p id="token-message" role="alert"></p>
    <p class="muted">Kept in this tab's sessionStorage only. Tip: open <span class="mono">/ui#token=\u2026</span></p>
  </form>
</section>
<main id="dashboard" hidden>
  <p id="store-alert" class="card" role="alert" hidden></p>
  <div class="row">
    <section class="card"><h2 id="loaded-title">Loaded model</h2><div id="loaded-model">none</div><div id="loaded-group" class="muted mono"></div><div id="loaded-since" class="muted"></div></section>
    <section class="card"><h2>Totals</h2><dl id="totals"></dl></section>
  </div>
  <section class="card" id="hosts-card" hidden><h2>Hosts<span class="n" id="hosts-count"></span></h2>
    <table id="hosts"><thead><tr><th>host</th><th>state</th><th>loaded</th><th class="num">running</th><th class="num">switches</th><th>load times</th></tr></thead>
    <tbody id="hosts-rows"></tbody></table></section>
  <section class="card"><h2>Running<span class="n" id="running-count"></span></h2><div id="running"></div></section>
  <section class="card"><h2>Waiting by group<span class="n" id="waiting-count"></span></h2><div id="groups"></div></section>
  <div class="row even">
    <section class="card"><h2>Model switches</h2><ol id="switches"></ol></section>
    <section class="card"><h2>Recent jobs</h2>
      <table id="recent"><thead><tr><th>state</th><th>id</th><th>model</th><th>origin</th><th class="num">queue</th><th class="num">run</th></tr></thead>
      <tbody id="recent-rows"></tbody></table>
    </section>
  </div>
  <section class="card" id="keys-card" hidden><h2>Keys</h2>
    <table id="keys"><thead><tr><th>key</th><th class="num">weight</th><th class="num">running</th><th class="num">waiting</th><th class="num">requests</th>
      <th class="num">ok / failed / cancelled</th><th class="num">tokens in / out</th><th class="num">run</th><th class="num">queue wait</th></tr></thead>
    <tbody id="keys-rows"></tbody></table>
  </section>
</main>
`;

const sha256 = (text: string) => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;

/**
 * Inline code runs under a hash-pinned CSP: nothing but this exact script and
 * style may execute, and fetch may reach only this origin.
 */
export const UI_CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  `script-src ${sha256(SCRIPT)}`,
  `style-src ${sha256(STYLE)}`,
  "connect-src 'self'",
  "img-src data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>foreman</title>
<style>${STYLE}</style>
</head>
<body>${BODY}<script>${SCRIPT}</script>
</body>
</html>
`;

export function renderUiPage(): string {
  return PAGE;
}

/** Headers for GET /ui; the page needs no auth, it asks for a token itself. */
export function uiPageHeaders(): Record<string, string> {
  return {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'content-security-policy': UI_CONTENT_SECURITY_POLICY,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'x-frame-options': 'DENY',
  };
}
