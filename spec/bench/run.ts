// `npm run bench [-- --only streaming|realistic|pinned|scheduling|journal|submit|fair|hosts|store] [--quick]`: runs the benchmarks in
// sequence and prints each as a table with notes, then "target vs measured". Informational:
// the exit code is 0 unless a benchmark crashed. Child processes die on finish, error and SIGINT.

import { cpus, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { runJournalBench } from './journal-bench.js';
import { runRealisticBench, runStreamingBench } from './streaming-bench.js';
import { runPinnedBench } from './pinned-bench.js';
import { runSchedulingBench } from './scheduling-bench.js';
import { runSubmitBench } from './submit-bench.js';
import { runFairBench } from './fair-bench.js';
import { runHostsBench } from './hosts-bench.js';
import { runStoreBench } from './store-bench.js';
import { killAllNow, stopAll } from './procs.js';
import type { BenchReport, SummaryRow } from './report.js';

const BENCHES = ['streaming', 'realistic', 'pinned', 'scheduling', 'journal', 'submit', 'fair', 'hosts', 'store'] as const;
type BenchName = (typeof BENCHES)[number];

const { values } = parseArgs({
  options: { only: { type: 'string' }, quick: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' } },
  strict: true,
});
if (values.help) {
  console.log('Usage: npm run bench -- [--only streaming|realistic|pinned|scheduling|journal|submit|fair|hosts|store] [--quick]');
  process.exit(0);
}
if (values.only && !BENCHES.includes(values.only as BenchName)) {
  console.error(`--only: expected ${BENCHES.join(', ')}, got '${values.only}'`);
  process.exit(2);
}
const quick = values.quick ?? false;
// `realistic` is the streaming bench's last regime alone (quick A/B work): the full run has it already.
const selected: BenchName[] = values.only ? [values.only as BenchName] : BENCHES.filter((b) => b !== 'realistic');

// SIGINT/SIGTERM: kill the children now, then leave; 'exit' is the last resort for anything else.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`\nbench: ${signal}, stopping child processes`);
    killAllNow();
    void stopAll().finally(() => process.exit(130));
  });
}
process.once('exit', killAllNow);

async function journalReport(): Promise<BenchReport> {
  const rows = await runJournalBench();
  const summary: SummaryRow[] = [];
  const speedUp = rows.find((r) => r.case === 'group commit speed-up');
  if (speedUp) summary.push({ target: 'journal: group commit speed-up vs fsync per record', measured: String(speedUp.detail), verdict: 'info' });
  const replay = rows.find((r) => r.bench === 'journal replay');
  if (replay) summary.push({ target: `journal: replay ${replay.case}`, measured: `${replay.ms} ms`, verdict: 'info' });
  return {
    title: 'Journal (spec/bench/journal-bench.ts)',
    tables: [{ caption: 'appends, replay, compaction', rows }],
    notes: ['Durable appends at concurrency 64 with and without group commit; replay and compaction of a 100,000-job journal in the OS temp dir.'],
    summary,
  };
}

const runners: Record<BenchName, () => Promise<BenchReport>> = {
  streaming: () => runStreamingBench({ quick }),
  realistic: () => runRealisticBench({ quick }),
  pinned: () => runPinnedBench({ quick }),
  scheduling: () => runSchedulingBench({ quick }),
  journal: journalReport,
  submit: () => runSubmitBench({ quick }),
  fair: () => runFairBench({ quick }),
  hosts: () => runHostsBench({ quick }),
  store: () => runStoreBench({ quick }),
};

const machine = `${cpus().length} cores (${cpus()[0]?.model.trim() ?? 'unknown'}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB, node ${process.version}, ${process.platform}/${process.arch}`;
console.log(`foreman benchmarks${quick ? ' (quick)' : ''} — ${machine}`);
console.log('Measured side by side in one run; nothing is asserted. Other work on this machine shows up in the numbers.\n');

const summary: SummaryRow[] = [];
let crashed = false;
const started = Date.now();
try {
  for (const name of selected) {
    const t0 = Date.now();
    try {
      const report = await runners[name]();
      console.log(`== ${report.title} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
      for (const table of report.tables) {
        console.log(`-- ${table.caption}`);
        console.table(table.rows);
      }
      console.log(`notes: machine ${machine}`);
      for (const note of report.notes) console.log(`  - ${note}`);
      console.log('');
      summary.push(...report.summary);
    } catch (err) {
      crashed = true;
      console.error(`== ${name}: crashed after ${((Date.now() - t0) / 1000).toFixed(1)} s: ${(err as Error)?.stack ?? String(err)}\n`);
      summary.push({ target: `${name} benchmark`, measured: 'crashed (see above)', verdict: 'miss' });
      await stopAll();
    }
  }
} finally {
  await stopAll();
}

console.log(`== Summary: target vs measured (informational; ${((Date.now() - started) / 1000).toFixed(0)} s total)`);
console.table(summary);
process.exitCode = crashed ? 1 : 0;

// Everything is closed above; if some handle still holds the loop, say which and leave anyway.
setTimeout(() => {
  console.error(`bench: still open after finishing: ${process.getActiveResourcesInfo().join(', ')}; exiting`);
  process.exit(process.exitCode ?? 0);
}, 5_000).unref();
