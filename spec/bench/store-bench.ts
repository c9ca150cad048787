// The job store at size (SPEC §6, §16): RSS with 100,000 retained finished jobs, RSS with 70 queued
// 60 MB async jobs and the time to restart with them after a kill -9, and a soak of submissions
// with retention 10 s (journal size and RSS over time). foreman runs in its own process.

import { execFile, spawn } from 'node:child_process';
import { Agent, request } from 'node:http';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { access, mkdir, open, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startProcess, tempDir } from './procs.js';
import { getJson, sleep } from './load.js';
import { mib, ms, num, type BenchReport, type Row, type SummaryRow } from './report.js';

function post(agent: Agent, base: string, path: string, body: Buffer, timeoutMs = 120_000): Promise<{ status: number; text: string }> {
  const url = new URL(path, base);
  return new Promise((resolve, reject) => {
    const req = request({
      agent, host: url.hostname, port: url.port, path: url.pathname, method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': body.length },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.once('error', reject);
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.end(body);
  });
}

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

interface Served {
  url: string;
  pid: number;
  rss(): Promise<number>;
  kill9(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * `node bin/foreman.js serve` from the build (npm run build first), as users run it: memory is
 * measured on the product, not under the tsx loader. RSS comes from ps (Linux and macOS).
 */
async function serve(name: string, flags: string[]): Promise<Served> {
  await access(join(ROOT, 'dist', 'cli', 'cli.js')).catch(() => {
    throw new Error('store bench: run `npm run build` first (it measures bin/foreman.js)');
  });
  const logPath = join(await tempDir(`${name}-log`), 'foreman.log');
  const fd = openSync(logPath, 'w');
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'foreman.js'), 'serve', '--listen', '127.0.0.1:0', ...flags], {
    cwd: ROOT, stdio: ['ignore', fd, fd], env: { ...process.env, FOREMAN_TOKENS: '' },
  });
  closeSync(fd);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let url = '';
  for (let i = 0; i < 1200 && !url; i++) {
    url = /listening (?:on |url=)(http:\/\/\S+)/.exec(readFileSync(logPath, 'utf8'))?.[1] ?? '';
    if (!url) await sleep(50);
    if (child.exitCode !== null) throw new Error(`${name} exited:\n${readFileSync(logPath, 'utf8').slice(-2000)}`);
  }
  if (!url) throw new Error(`${name} did not start:\n${readFileSync(logPath, 'utf8').slice(-2000)}`);
  const rss = () => new Promise<number>((resolve, reject) => {
    execFile('ps', ['-o', 'rss=', '-p', String(child.pid)], (err, out) => (err ? reject(err) : resolve(Number(out.trim()) * 1024)));
  });
  return {
    url, pid: child.pid!, rss,
    async kill9() {
      child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const late = setTimeout(() => child.kill('SIGKILL'), 8_000);
      await exited;
      clearTimeout(late);
    },
  };
}

async function settledRss(p: Served): Promise<number> {
  // A few samples a moment apart: the lowest is what the process holds once the last request's garbage is gone.
  let low = Infinity;
  for (let i = 0; i < 5; i++) {
    low = Math.min(low, await p.rss());
    await sleep(200);
  }
  return low;
}

/** A data dir holding `count` finished jobs as foreman writes them after a compaction: snapshots plus result files. */
export async function writeRetained(dir: string, count: number): Promise<void> {
  await mkdir(join(dir, 'results'), { recursive: true });
  const now = Date.now();
  const journal = await open(join(dir, 'journal.jsonl'), 'w');
  const response = (i: number) => ({
    model: 'llama3.2:latest', created_at: new Date(now).toISOString(), done: true, done_reason: 'stop',
    message: { role: 'assistant', content: `answer number ${i}: `.padEnd(400, 'lorem ipsum ') },
    total_duration: 123456789, load_duration: 1234, prompt_eval_count: 26, prompt_eval_duration: 12345, eval_count: 80, eval_duration: 987654,
  });
  let lines: string[] = [];
  const pending: Array<Promise<void>> = [];
  for (let i = 0; i < count; i++) {
    const id = `job_${(now - count + i).toString(36).padStart(9, '0')}000${i.toString(16).padStart(8, '0')}`;
    const result = JSON.stringify(response(i));
    const content = Buffer.byteLength(JSON.parse(result).message.content);
    const at = now - 60_000;
    const job = {
      id, model: 'llama3.2:latest', kind: 'chat', priority: 0, key: 'token-1', createdAt: at, startedAt: at + 5, finishedAt: at + 900,
      attempts: 1, state: 'completed', metadata: { ticket: i }, webhookUrl: null, idempotency: null, group: 'llama3.2:latest',
      bodyBytes: 120, bodyFile: false, result: { bytes: result.length, artifacts: [{ name: 'content.txt', bytes: content }, { name: 'response.json', bytes: result.length }] },
      error: null,
      transitions: [
        { seq: 1, state: 'queued', prev: null, at, attempts: 0 },
        { seq: 2, state: 'working', prev: 'queued', at: at + 5, attempts: 1 },
        { seq: 3, state: 'completed', prev: 'working', at: at + 900, attempts: 1 },
      ],
      webhook: { settledSeq: 0, delivered: 0, gone: false, lastError: null, retry: null },
    };
    lines.push(JSON.stringify({ t: 'job', job }));
    pending.push(writeFile(join(dir, 'results', `${id}.json`), result));
    if (pending.length >= 256) await Promise.all(pending.splice(0));
    if (lines.length >= 5_000) {
      await journal.write(lines.join('\n') + '\n');
      lines = [];
    }
  }
  await Promise.all(pending);
  if (lines.length) await journal.write(lines.join('\n') + '\n');
  await journal.close();
}

async function retained(count: number, baseline: number, rows: Row[], summary: SummaryRow[]): Promise<void> {
  const dir = await tempDir('retained');
  const t0 = performance.now();
  await writeRetained(dir, count);
  const written = performance.now() - t0;
  const t1 = performance.now();
  const foreman = await serve('retained-foreman', ['--upstream', 'http://127.0.0.1:9', '--data-dir', dir, '--retention', '7d']);
  const startMs = performance.now() - t1;
  try {
    const health = await getJson<{ journal: { jobs: { completed: number } } }>(`${foreman.url}/health`, 30_000);
    const rss = await settledRss(foreman);
    rows.push({
      case: `${num(count)} retained finished jobs`, jobs_seen: health.journal.jobs.completed, start_ms: ms(startMs, 0),
      rss_mib: mib(rss), over_empty_mib: mib(rss - baseline), bytes_per_job: num((rss - baseline) / count), setup_s: ms(written / 1000, 1),
    });
    summary.push({ target: `RSS with ${num(count)} retained finished jobs < 200 MB`, measured: `${mib(rss)} MiB`, verdict: rss < 200 * 1048576 ? 'pass' : 'miss' });
  } finally {
    await foreman.stop();
  }
}

async function bigQueued(count: number, mb: number, rows: Row[], summary: SummaryRow[]): Promise<void> {
  const sim = await startProcess('big-sim', 'sim', ['--load-ms', '0', '--tokens-per-second', '0']);
  const dir = await tempDir('big');
  const flags = ['--upstream', sim.url, '--data-dir', dir, '--max-body', `${mb + 8}MiB`, '--max-queue-bytes', `${count * (mb + 2)}MiB`];
  const foreman = await serve('big-foreman', flags);
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  let again: Served | null = null;
  try {
    const blocker = await post(agent, foreman.url, '/jobs', Buffer.from(JSON.stringify({ model: 'llama3.2', prompt: 'hold', sim: { fault: 'stall_before' } })));
    if (blocker.status !== 202) throw new Error(`blocker: ${blocker.status} ${blocker.text}`);
    const image = 'A'.repeat(mb * 1024 * 1024);
    let peak = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        peak = Math.max(peak, await foreman.rss());
        await sleep(100);
      }
    })();
    const t0 = performance.now();
    let accepted = 0;
    // Two at a time, as a script uploading images would.
    let next = 0;
    await Promise.all([0, 1].map(async () => {
      while (next < count) {
        const i = next++;
        const body = Buffer.from(JSON.stringify({ model: 'llama3.2', prompt: `describe image ${i}`, images: [image] }));
        const r = await post(agent, foreman.url, '/jobs', body);
        if (r.status === 202) accepted++;
        else throw new Error(`job ${i}: ${r.status} ${r.text.slice(0, 200)}`);
      }
    }));
    const submitMs = performance.now() - t0;
    sampling = false;
    await sampler;
    const rss = await settledRss(foreman);
    rows.push({ case: `${count} queued ${mb} MB async jobs`, phase: 'after submitting', accepted, seconds: ms(submitMs / 1000, 1), rss_mib: mib(rss), peak_rss_mib: mib(peak) });
    summary.push({ target: `RSS with ${count} queued ${mb} MB async jobs < 300 MB`, measured: `${mib(rss)} MiB (peak while uploading ${mib(peak)} MiB)`, verdict: rss < 300 * 1048576 ? 'pass' : 'miss' });

    // kill -9, then start again on the same data dir.
    await foreman.kill9();
    const journalBytes = (await stat(join(dir, 'journal.jsonl'))).size;
    const t1 = performance.now();
    again = await serve('big-foreman-2', flags);
    const readyMs = performance.now() - t1;
    let waiting = 0;
    for (let i = 0; i < 600 && waiting < count; i++) {
      waiting = (await getJson<{ totals: { waiting: number } }>(`${again.url}/queue`)).totals.waiting;
      if (waiting < count) await sleep(50);
    }
    const queuedMs = performance.now() - t1;
    const rss2 = await settledRss(again);
    rows.push({
      case: `${count} queued ${mb} MB async jobs`, phase: 'restart after kill -9', accepted: waiting, seconds: ms(queuedMs / 1000, 2),
      rss_mib: mib(rss2), peak_rss_mib: '-', ready_ms: ms(readyMs, 0), journal_kib: num(journalBytes / 1024),
    });
    summary.push({ target: `restart with ${count} queued ${mb} MB jobs (was 100 s)`, measured: `${ms(queuedMs / 1000, 2)} s to all queued again; journal ${num(journalBytes / 1024)} KiB`, verdict: 'info' });
  } finally {
    agent.destroy();
    await again?.stop();
    await foreman.stop();
    await sim.stop();
  }
}

async function soak(seconds: number, rows: Row[], summary: SummaryRow[]): Promise<void> {
  const sim = await startProcess('soak-sim', 'sim', ['--load-ms', '0', '--tokens-per-second', '0']);
  const dir = await tempDir('soak');
  const foreman = await serve('soak-foreman', ['--upstream', sim.url, '--data-dir', dir, '--retention', '10s', '--parallel', '8', '--max-queue', '4000']);
  const agent = new Agent({ keepAlive: true, maxSockets: 32 });
  try {
    let submitted = 0;
    let refused = 0;
    let running = true;
    const body = (i: number) => Buffer.from(JSON.stringify({ model: 'llama3.2', prompt: `soak ${i}`, options: { num_predict: 4 }, metadata: { i } }));
    const workers = Array.from({ length: 32 }, async () => {
      while (running) {
        const r = await post(agent, foreman.url, '/jobs', body(submitted + refused), 30_000).catch(() => ({ status: 0, text: '' }));
        if (r.status === 202) submitted++;
        else {
          refused++;
          await sleep(20);
        }
      }
    });
    const t0 = performance.now();
    const samples: Array<{ s: number; bytes: number; rss: number; jobs: number; submitted: number }> = [];
    for (let s = 0; s <= seconds; s += 10) {
      const wait = t0 + s * 1000 - performance.now();
      if (wait > 0) await sleep(wait);
      const h = await getJson<{ journal: { bytes: number; jobs: Record<string, number> } }>(`${foreman.url}/health`, 10_000);
      const jobs = Object.values(h.journal.jobs).reduce((a, b) => a + b, 0);
      samples.push({ s, bytes: h.journal.bytes, rss: await foreman.rss(), jobs, submitted });
    }
    running = false;
    await Promise.all(workers);
    for (const x of samples) {
      rows.push({ case: 'soak, retention 10 s', at_s: x.s, submitted: x.submitted, jobs_in_memory: x.jobs, journal_mib: mib(x.bytes), rss_mib: mib(x.rss) });
    }
    const late = samples.filter((x) => x.s >= 30);
    const maxBytes = Math.max(...late.map((x) => x.bytes));
    const maxRss = Math.max(...late.map((x) => x.rss));
    const first = late[0]!;
    const last = late.at(-1)!;
    const rate = last.submitted / seconds;
    summary.push({
      target: `soak ${seconds} s, retention 10 s: journal and RSS flat`,
      measured: `${num(last.submitted)} jobs (${num(rate)}/s, ${num(refused)} refused busy); journal ${mib(first.bytes)}→${mib(last.bytes)} MiB (max ${mib(maxBytes)}), RSS ${mib(first.rss)}→${mib(last.rss)} MiB (max ${mib(maxRss)})`,
      verdict: 'info',
    });
  } finally {
    agent.destroy();
    await foreman.stop();
    await sim.stop();
  }
}

export async function runStoreBench(options: { quick?: boolean } = {}): Promise<BenchReport> {
  const quick = options.quick ?? false;
  const rows: Row[] = [];
  const big: Row[] = [];
  const soakRows: Row[] = [];
  const summary: SummaryRow[] = [];
  // What an empty foreman holds, measured the same way (tsx loader included).
  const emptyDir = await tempDir('empty');
  const empty = await serve('empty-foreman', ['--upstream', 'http://127.0.0.1:9', '--data-dir', emptyDir]);
  const baseline = await settledRss(empty);
  await empty.stop();
  rows.push({ case: 'empty foreman', rss_mib: mib(baseline) });
  await retained(quick ? 10_000 : 100_000, baseline, rows, summary);
  await bigQueued(quick ? 10 : 70, 60, big, summary);
  await soak(quick ? 30 : 120, soakRows, summary);
  return {
    title: 'Job store at size (spec/bench/store-bench.ts)',
    tables: [
      { caption: 'retained finished jobs (RSS after start-up replay)', rows },
      { caption: 'queued large async jobs, then kill -9 and restart', rows: big },
      { caption: 'soak: submissions with retention 10 s, sampled every 10 s', rows: soakRows },
    ],
    notes: [
      'foreman runs as users run it (node bin/foreman.js from the build, no tsx); RSS from ps; the empty-foreman row is the baseline.',
      'Retained jobs are written as a compacted journal plus result files, as foreman leaves them; RSS is the lowest of five samples 200 ms apart.',
      'Large jobs: a /api/generate body with one 60 MB base64 image, two uploads at a time, behind a job that stalls upstream so all stay queued.',
      'Soak: 32 submitters, parallel 8, simulator with no load time and instant tokens; 503 busy answers are counted as refused and retried.',
    ],
    summary,
  };
}
