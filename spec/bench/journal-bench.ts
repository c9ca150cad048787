// Benchmark for lib/journal/journal.ts (SPEC §6): durable appends per second with and without group
// commit at concurrency 64, replay of a 100,000-job journal, its compaction to live records, and
// how long appends wait while that compaction runs (beside it, against waiting for it whole).
import { mkdir, mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { openJournal } from '../../lib/journal/journal.js';

type Row = Record<string, string | number>;

const CONCURRENCY = 64;
const GROUP_RECORDS = 20_000;
const SINGLE_RECORDS = 2_000;
const JOBS = 100_000;

function pad(text: string, bytes: number): string {
  return text.length >= bytes ? text : text + ' '.repeat(bytes - text.length);
}

// Three records per job of roughly 300 bytes each, shaped like what the jobs module writes.
function submitted(i: number): object {
  return {
    type: 'submitted',
    id: `job_${i.toString(36).padStart(8, '0')}`,
    at: '2025-01-01T00:00:00.000Z',
    model: 'llama3.2',
    kind: 'chat',
    priority: i % 10,
    metadata: { tenant: `t${i % 17}` },
    body: { messages: [{ role: 'user', content: pad(`summarise ticket ${i}`, 120) }] },
  };
}
function state(i: number): object {
  return { type: 'state', id: `job_${i.toString(36).padStart(8, '0')}`, state: 'working', at: '2025-01-01T00:00:01.000Z', attempts: 1, note: pad('', 170) };
}
function result(i: number): object {
  return {
    type: 'result',
    id: `job_${i.toString(36).padStart(8, '0')}`,
    state: 'completed',
    at: '2025-01-01T00:00:09.000Z',
    result: { content: pad(`answer ${i}`, 160), done_reason: 'stop', prompt_eval_count: 42, eval_count: 128, total_duration: 812345678 },
  };
}

async function appendRate(dir: string, groupCommit: boolean, total: number): Promise<{ perSecond: number; ms: number; fsyncs: number }> {
  const journal = await openJournal({ dir, groupCommit });
  const record = state(1);
  let issued = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (issued < total) {
        issued++;
        await journal.append(record);
      }
    }),
  );
  const ms = performance.now() - started;
  const { fsyncs } = journal.stats();
  await journal.close();
  return { perSecond: total / (ms / 1000), ms, fsyncs };
}

/** Write the replay fixture in slices, so the benchmark's own garbage does not weigh on replay. */
async function writeJobJournal(dir: string): Promise<number> {
  await mkdir(dir, { recursive: true });
  const fh = await open(join(dir, 'journal.jsonl'), 'w');
  let bytes = 0;
  try {
    for (let from = 0; from < JOBS; from += 10_000) {
      let text = '';
      for (let i = from; i < Math.min(from + 10_000, JOBS); i++) {
        text += `${JSON.stringify(submitted(i))}\n${JSON.stringify(state(i))}\n${JSON.stringify(result(i))}\n`;
      }
      const data = Buffer.from(text);
      await fh.write(data);
      bytes += data.length;
    }
  } finally {
    await fh.close();
  }
  return bytes;
}

/**
 * Compacts the 100k-job fixture while `writers` loops append one record each, and reports how
 * long each append waited. `maxCompactionTailBytes: 0` makes every append wait for the whole
 * compaction (the journal's behaviour before appends ran beside it): the baseline of the same run.
 */
async function appendsDuringCompaction(dir: string, beside: boolean, writers: number): Promise<{ compactMs: number; appends: number; p50: number; p99: number; max: number }> {
  await writeJobJournal(dir);
  const journal = await openJournal({ dir, ...(beside ? {} : { maxCompactionTailBytes: 0 }) });
  const live = (journal.replay.records as Array<{ type: string }>).filter((r) => r.type === 'result');
  const waits: number[] = [];
  let compacting = true;
  const record = state(7);
  const started = performance.now();
  const done = journal.compact(live).finally(() => (compacting = false));
  await Promise.all(Array.from({ length: writers }, async () => {
    while (compacting) {
      const at = performance.now();
      await journal.append(record);
      waits.push(performance.now() - at);
    }
  }));
  await done;
  const compactMs = performance.now() - started;
  await journal.close();
  waits.sort((a, b) => a - b);
  const at = (q: number) => waits[Math.min(waits.length - 1, Math.floor(q * waits.length))] ?? NaN;
  return { compactMs, appends: waits.length, p50: at(0.5), p99: at(0.99), max: waits.at(-1) ?? NaN };
}

export async function runJournalBench(): Promise<Row[]> {
  const root = await mkdtemp(join(tmpdir(), 'foreman-journal-bench-'));
  const rows: Row[] = [];
  try {
    const group = await appendRate(join(root, 'group'), true, GROUP_RECORDS);
    const single = await appendRate(join(root, 'single'), false, SINGLE_RECORDS);
    rows.push(
      { bench: 'journal append', case: `group commit, concurrency ${CONCURRENCY}`, records: GROUP_RECORDS, ms: Math.round(group.ms), per_s: Math.round(group.perSecond), detail: `${group.fsyncs} fsyncs, ${(GROUP_RECORDS / group.fsyncs).toFixed(1)} records/fsync` },
      { bench: 'journal append', case: `fsync per record, concurrency ${CONCURRENCY}`, records: SINGLE_RECORDS, ms: Math.round(single.ms), per_s: Math.round(single.perSecond), detail: `${single.fsyncs} fsyncs` },
      { bench: 'journal append', case: 'group commit speed-up', records: 0, ms: 0, per_s: 0, detail: `${(group.perSecond / single.perSecond).toFixed(1)}x` },
    );

    const dir = join(root, 'replay');
    const bytes = await writeJobJournal(dir);

    const opened = performance.now();
    const journal = await openJournal({ dir });
    const openMs = performance.now() - opened;
    const records = journal.replay.records.length;
    rows.push({ bench: 'journal replay', case: `${JOBS} jobs x 3 records`, records, ms: Math.round(journal.replay.durationMs), per_s: Math.round(records / (journal.replay.durationMs / 1000)), detail: `${(bytes / 1048576).toFixed(1)} MiB, open ${Math.round(openMs)} ms` });

    // Live state: one merged record per job, as the jobs module would hand over.
    const live = (journal.replay.records as Array<{ type: string }>).filter((r) => r.type === 'result');
    const compacting = performance.now();
    await journal.compact(live);
    const compactMs = performance.now() - compacting;
    const after = journal.stats();
    rows.push({ bench: 'journal compaction', case: `${records} -> ${live.length} records`, records: live.length, ms: Math.round(compactMs), per_s: Math.round(live.length / (compactMs / 1000)), detail: `${(bytes / 1048576).toFixed(1)} -> ${(after.bytes / 1048576).toFixed(1)} MiB` });
    await journal.close();

    // Appends while a compaction runs: waiting for it whole (before) vs beside it (now), one run.
    const writers = 8;
    for (const beside of [false, true]) {
      const r = await appendsDuringCompaction(join(root, beside ? 'beside' : 'blocking'), beside, writers);
      rows.push({
        bench: 'appends during compaction', case: beside ? 'appends beside the copy (now)' : 'appends wait for the compaction (before)',
        records: r.appends, ms: Math.round(r.compactMs), per_s: Math.round(r.appends / (r.compactMs / 1000)),
        detail: `${writers} writers; append wait p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms, max ${r.max.toFixed(1)} ms`,
      });
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
  return rows;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.table(await runJournalBench());
}
