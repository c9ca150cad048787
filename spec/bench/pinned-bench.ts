// The streaming bench's c=32 regime with the proxy on a core of its own (Linux, taskset): the
// simulator and the load generator share core 0, foreman or nginx gets core 1. On 2 cores shared
// by all three, a proxy's every CPU cycle is taken from the simulator and the client; here it is
// not, so this shows whether the proxy itself keeps up. Informational; skipped without taskset.

import { execFileSync } from 'node:child_process';
import { startProcess } from './procs.js';
import { findNginx, startNginx } from './nginx.js';
import { closedLoop, createAgent, percentile, streamPost } from './load.js';
import { ms, num, type BenchReport, type Row } from './report.js';

const CORE_SHARED = 0;
const CORE_PROXY = 1;

function hasTaskset(): boolean {
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Pins every thread of `pid` (and of its children: nginx's workers) to `core`. */
function pin(pid: number, core: number): void {
  execFileSync('sh', ['-c', `for p in ${pid} $(pgrep -P ${pid}); do taskset -a -p -c ${core} $p; done`], { stdio: 'ignore' });
}

const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function runPinnedBench(options: { quick?: boolean } = {}): Promise<BenchReport> {
  const title = 'Streaming, proxy on its own core (spec/bench/pinned-bench.ts)';
  if (!hasTaskset()) return { title, tables: [], notes: ['skipped: taskset (util-linux) not found'], summary: [] };
  const rounds = options.quick ? 1 : 3;
  const before = execFileSync('taskset', ['-p', '-c', String(process.pid)]).toString().trim().split(':').pop()!.trim();
  pin(process.pid, CORE_SHARED);
  try {
    const sim = await startProcess('pinned-sim', 'sim', ['--load-ms', '0', '--tokens-per-second', '0', '--num-parallel', '64']);
    const foreman = await startProcess('pinned-foreman', 'serve', ['--upstream', sim.url, '--parallel', '64', '--max-queue', '4096']);
    const paths: Record<string, string> = { direct: sim.url, foreman: foreman.url };
    const nginxBinary = findNginx();
    const nginx = nginxBinary ? await startNginx(nginxBinary, sim.url) : null;
    if (nginx) paths.nginx = nginx.url;
    pin(sim.pid, CORE_SHARED);
    pin(foreman.pid, CORE_PROXY);
    if (nginx) pin(nginx.pid, CORE_PROXY);

    const body = { model: 'llama3.2', messages: [{ role: 'user', content: 'stream' }], options: { num_predict: 2000 } };
    const names = Object.keys(paths);
    const agents = Object.fromEntries(names.map((n) => [n, createAgent(32)]));
    const sample = async (name: string) => {
      const run = await closedLoop({
        concurrency: 32, durationMs: options.quick ? 1_500 : 3_000, minRequests: 32, maxRequests: 20_000,
        send: () => streamPost(paths[name]!, '/api/chat', body, { agent: agents[name]! }),
      });
      const lines = run.results.reduce((a, r) => a + r.lines, 0);
      const errors = run.results.filter((r) => r.error).length;
      return { lps: lines / (run.wallMs / 1000), ttfb: percentile(run.results.map((r) => r.ttfbMs), 50), errors };
    };
    for (const name of names) await sample(name); // warm-up: JIT and keep-alive pools
    const got: Record<string, Array<{ lps: number; ttfb: number; errors: number }>> = Object.fromEntries(names.map((n) => [n, []]));
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < names.length; i++) {
        const name = names[(i + round) % names.length]!;
        got[name]!.push(await sample(name));
      }
    }
    const direct = got.direct!;
    const rows: Row[] = names.map((name) => {
      const s = got[name]!;
      return {
        path: name, 'lines/s': num(median(s.map((x) => x.lps))),
        'x direct': name === 'direct' ? '' : median(s.map((x, i) => x.lps / direct[i]!.lps)).toFixed(3),
        'TTFB p50 ms': ms(median(s.map((x) => x.ttfb))),
        'added p50 ms': name === 'direct' ? '' : ms(median(s.map((x, i) => x.ttfb - direct[i]!.ttfb))),
        errors: s.reduce((a, x) => a + x.errors, 0),
      };
    });
    const fm = rows.find((r) => r.path === 'foreman')!;
    return {
      title,
      tables: [{ caption: `c=32, 2,000 tokens per response, no delay; medians of ${rounds} rounds, paths rotated`, rows }],
      notes: [
        `simulator and load generator pinned to core ${CORE_SHARED}, the proxy (foreman --parallel 64, or nginx) to core ${CORE_PROXY} (taskset).`,
        'Compare with the streaming bench, where all three share both cores: there the ratio is bounded by the proxy\'s CPU per line.',
      ],
      summary: [{ target: 'streaming, proxy on its own core: throughput x direct at c=32', measured: String(fm['x direct']), verdict: 'info' }],
    };
  } finally {
    execFileSync('taskset', ['-p', '-c', before, String(process.pid)], { stdio: 'ignore' });
  }
}
