// Durable submissions over HTTP: POST /jobs at concurrency 64 against a foreman in its own
// process. Each 202 means the job is fsynced in the journal (group commit). The first job
// stalls upstream, so the rest wait in the queue and the run measures submission alone.

import { Agent, request } from 'node:http';
import { startProcess, tempDir } from './procs.js';
import { getJson, percentile } from './load.js';
import { ms, num, type BenchReport } from './report.js';

const CONCURRENCY = 64;

function postJob(agent: Agent, base: URL, body: Buffer): Promise<{ status: number; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request({
      agent, host: base.hostname, port: base.port, path: '/jobs', method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': body.length },
    }, (res) => {
      res.resume();
      res.once('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - t0 }));
    });
    req.once('error', reject);
    req.setTimeout(30_000, () => req.destroy(new Error('no answer within 30 s')));
    req.end(body);
  });
}

export async function runSubmitBench(options: { quick?: boolean } = {}): Promise<BenchReport> {
  const total = options.quick ? 3_000 : 20_000;
  const sim = await startProcess('submit-sim', 'sim', ['--load-ms', '0', '--tokens-per-second', '0']);
  const foreman = await startProcess('submit-foreman', 'serve', [
    '--upstream', sim.url, '--data-dir', await tempDir('submit'), '--max-queue', String(total + 10),
  ]);
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  try {
    const base = new URL(foreman.url);
    const body = (i: number) => Buffer.from(JSON.stringify({
      model: 'llama3.2', prompt: `job ${i}: summarise the queue`, metadata: { n: i }, sim: { fault: 'stall_before' },
    }));
    const latencies: number[] = [];
    let next = 0;
    let accepted = 0;
    const t0 = performance.now();
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (next < total) {
        const r = await postJob(agent, base, body(next++));
        if (r.status === 202) accepted++;
        latencies.push(r.ms);
      }
    }));
    const elapsed = performance.now() - t0;
    const metrics = await getJson<string>(`${foreman.url}/metrics`);
    const fsyncs = Number(/^foreman_journal_fsync_seconds_count (\d+)/m.exec(String(metrics))?.[1] ?? NaN);
    const queue = await getJson<{ totals: { waiting: number } }>(`${foreman.url}/queue`);
    const rate = (accepted / elapsed) * 1000;
    return {
      title: 'Durable submissions over HTTP (spec/bench/submit-bench.ts)',
      tables: [{
        caption: `POST /jobs, concurrency ${CONCURRENCY}`,
        rows: [{
          submitted: total, accepted_202: accepted, waiting_after: queue.totals.waiting, seconds: ms(elapsed / 1000),
          per_s: num(rate), p50_ms: ms(percentile(latencies, 50)), p99_ms: ms(percentile(latencies, 99)),
          fsyncs, records_per_fsync: num(accepted / fsyncs, 1),
        }],
      }],
      notes: [
        'Each 202 is sent only after the submit record is fsynced (group commit: many records, one fsync).',
        'The first job stalls upstream (sim fault stall_before), so every other job stays queued: the run measures submission, not generation.',
      ],
      summary: [{
        target: 'durable submissions/s over HTTP at c=64 >= 5,000',
        measured: `${num(rate)}/s (${num(accepted / fsyncs, 1)} records per fsync)`,
        verdict: rate >= 5000 ? 'pass' : 'miss',
      }],
    };
  } finally {
    agent.destroy();
    await foreman.stop();
    await sim.stop();
  }
}
