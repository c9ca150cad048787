// Tests for lib/journal/journal.ts (SPEC §6): durable group-committed appends, replay of torn and bad
// files, compaction, and the data-dir lock, on real files in temp dirs and real child processes.
import { after, afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { access, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { JournalError, JournalLockedError, openJournal } from '../lib/journal/journal.js';
import { faultyJournalIo, realJournalIo } from '../lib/journal/io.js';
import type { JournalIo } from '../lib/journal/io.js';
import type { FileHandle } from 'node:fs/promises';
import type { Journal, JournalOptions } from '../lib/journal/journal.js';
import type { LogFields, Logger } from '../lib/log.js';

// The built module (npm test builds first): a child on plain node starts without compiling TypeScript.
const JOURNAL_MODULE = pathToFileURL(fileURLToPath(new URL('../dist/journal/journal.js', import.meta.url))).href;

const dirs: string[] = [];
const journals: Journal[] = [];
const children: ChildProcess[] = [];

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'foreman-journal-'));
  dirs.push(dir);
  return dir;
}

async function openTracked(options: JournalOptions): Promise<Journal> {
  const journal = await openJournal(options);
  journals.push(journal);
  return journal;
}

interface LogEntry {
  level: string;
  event: string;
  fields: LogFields | undefined;
}

function recordingLogger(): Logger & { entries: LogEntry[] } {
  const entries: LogEntry[] = [];
  const at = (level: string) => (event: string, fields?: LogFields) => void entries.push({ level, event, fields });
  return { entries, info: at('info'), warn: at('warn'), error: at('error') };
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(() => true, () => false);
}

afterEach(async () => {
  for (const journal of journals.splice(0)) await journal.close();
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill();
});

after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe('journal appends', () => {
  it('gives back the same records in order after a reopen', async () => {
    const dir = await tempDir();
    const first = await openJournal({ dir });
    const written = Array.from({ length: 50 }, (_, i) => ({ type: 'state', id: `job-${i}`, n: i, text: 'line\nbreak "quoted"' }));
    for (const record of written) await first.append(record);
    assert.equal(first.stats().records, 50);
    await first.close();
    const second = await openTracked({ dir });
    assert.deepEqual(second.replay.records, written);
    assert.equal(second.replay.tornTail, false);
    assert.equal(second.replay.badLines, 0);
    assert.equal(second.replay.copiedAside, null);
  });

  it('commits 64 concurrent appends with fewer fsyncs than records, and all resolve', async () => {
    const dir = await tempDir();
    const synced: number[] = [];
    const journal = await openTracked({ dir, onFsync: (_ms, records) => synced.push(records) });
    await Promise.all(Array.from({ length: 64 }, (_, i) => journal.append({ i })));
    const stats = journal.stats();
    assert.equal(stats.records, 64);
    assert.ok(stats.fsyncs < 64, `expected fewer than 64 fsyncs, got ${stats.fsyncs}`);
    assert.equal(synced.length, stats.fsyncs);
    assert.equal(synced.reduce((a, b) => a + b, 0), 64);
    const lines = (await readFile(journal.path, 'utf8')).split('\n');
    assert.equal(lines.pop(), '');
    assert.deepEqual(lines.map((line) => JSON.parse(line).i), Array.from({ length: 64 }, (_, i) => i));
  });

  it('does one fsync per record when group commit is off', async () => {
    const journal = await openTracked({ dir: await tempDir(), groupCommit: false });
    await Promise.all(Array.from({ length: 20 }, (_, i) => journal.append({ i })));
    assert.equal(journal.stats().fsyncs, 20);
    assert.equal(journal.stats().records, 20);
  });

  it('cuts batches at maxBatchBytes', async () => {
    const journal = await openTracked({ dir: await tempDir(), maxBatchBytes: 100 });
    // Each line is 41 bytes: two fit in a batch, a third would pass 100.
    await Promise.all(Array.from({ length: 10 }, (_, i) => journal.append({ pad: 'x'.repeat(30), i })));
    assert.equal(journal.stats().fsyncs, 5);
  });

  it('refuses appends beyond maxPendingBytes with a clear error while earlier ones land', async () => {
    const journal = await openTracked({ dir: await tempDir(), maxPendingBytes: 100 });
    const results = await Promise.allSettled(Array.from({ length: 4 }, (_, i) => journal.append({ pad: 'x'.repeat(30), i })));
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'fulfilled', 'rejected', 'rejected']);
    const reason = (results[2] as PromiseRejectedResult).reason;
    assert.ok(reason instanceof JournalError);
    assert.equal(reason.code, 'JOURNAL_BACKLOG');
    assert.match(reason.message, /maxPendingBytes \(100 bytes\)/);
    await journal.append({ after: true });
    assert.equal(journal.stats().records, 3);
  });

  it('rejects a record that cannot be serialised and keeps going', async () => {
    const journal = await openTracked({ dir: await tempDir() });
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    await assert.rejects(journal.append(circular), TypeError);
    await journal.append({ ok: 1 });
    assert.equal(journal.stats().records, 1);
  });

  it('waits for pending appends on close, then refuses new ones and releases the lock', async () => {
    const dir = await tempDir();
    const journal = await openJournal({ dir });
    let resolved = 0;
    const pending = Array.from({ length: 200 }, (_, i) => journal.append({ i }).then(() => void resolved++));
    await journal.close();
    assert.equal(resolved, 200);
    await Promise.all(pending);
    await assert.rejects(journal.append({ late: true }), { code: 'JOURNAL_CLOSED' });
    assert.equal(await exists(join(dir, 'foreman.lock')), false);
    const again = await openTracked({ dir });
    assert.equal(again.replay.records.length, 200);
  });
});

describe('journal replay', () => {
  it('replays a missing file, and an empty one, to zero records', async () => {
    const dir = await tempDir();
    const missing = await openJournal({ dir: join(dir, 'nested', 'data') });
    assert.deepEqual(missing.replay.records, []);
    assert.equal(missing.replay.bytes, 0);
    await missing.close();
    await writeFile(join(dir, 'journal.jsonl'), '');
    const empty = await openTracked({ dir });
    assert.deepEqual(empty.replay.records, []);
    assert.equal(empty.replay.tornTail, false);
    assert.equal(empty.replay.copiedAside, null);
  });

  it('cuts a torn tail, logs it, copies the file aside, and appends on a clean line', async () => {
    const dir = await tempDir();
    const path = join(dir, 'journal.jsonl');
    const original = '{"a":1}\n{"a":2}\n{"a":3,"half":"wri';
    await writeFile(path, original);
    const log = recordingLogger();
    const journal = await openJournal({ dir, log });
    assert.deepEqual(journal.replay.records, [{ a: 1 }, { a: 2 }]);
    assert.equal(journal.replay.tornTail, true);
    assert.equal(journal.replay.badLines, 0);
    assert.equal(journal.replay.bytes, Buffer.byteLength(original));
    assert.ok(journal.replay.copiedAside);
    assert.match(journal.replay.copiedAside, /journal\.jsonl\.damaged-/);
    assert.equal(await readFile(journal.replay.copiedAside, 'utf8'), original);
    assert.ok(log.entries.some((e) => e.level === 'warn' && e.event === 'journal.torn_tail'));
    await journal.append({ a: 4 });
    await journal.close();
    assert.equal(await readFile(path, 'utf8'), '{"a":1}\n{"a":2}\n{"a":4}\n');
    const again = await openTracked({ dir });
    assert.deepEqual(again.replay.records, [{ a: 1 }, { a: 2 }, { a: 4 }]);
    assert.equal(again.replay.copiedAside, null);
  });

  it('treats an unparseable last line as a torn tail even with its newline', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'journal.jsonl'), '{"a":1}\n{"a":\n');
    const journal = await openTracked({ dir });
    assert.deepEqual(journal.replay.records, [{ a: 1 }]);
    assert.equal(journal.replay.tornTail, true);
    assert.equal(journal.replay.badLines, 0);
    assert.equal(await readFile(journal.path, 'utf8'), '{"a":1}\n');
  });

  it('skips and counts a bad middle line, keeps the rest, and repairs the file once', async () => {
    const dir = await tempDir();
    const path = join(dir, 'journal.jsonl');
    const original = '{"a":1}\n\u0000\u0000garbage\n{"a":2}\n[1,2]\n{"a":"é"}\n';
    await writeFile(path, original);
    const log = recordingLogger();
    const journal = await openJournal({ dir, log });
    assert.deepEqual(journal.replay.records, [{ a: 1 }, { a: 2 }, { a: 'é' }]);
    assert.equal(journal.replay.badLines, 2);
    assert.equal(journal.replay.tornTail, false);
    assert.ok(journal.replay.copiedAside);
    assert.equal(await readFile(journal.replay.copiedAside, 'utf8'), original);
    assert.ok(log.entries.some((e) => e.event === 'journal.bad_lines' && e.fields?.count === 2));
    await journal.append({ a: 3 });
    await journal.close();
    const again = await openTracked({ dir });
    assert.deepEqual(again.replay.records, [{ a: 1 }, { a: 2 }, { a: 'é' }, { a: 3 }]);
    assert.equal(again.replay.badLines, 0);
    assert.equal(again.replay.copiedAside, null);
  });

  it('handles bad middle lines and a torn tail together', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'journal.jsonl'), '{"a":1}\nnot json\n{"a":2}\n{"a":3');
    const journal = await openTracked({ dir });
    assert.deepEqual(journal.replay.records, [{ a: 1 }, { a: 2 }]);
    assert.equal(journal.replay.badLines, 1);
    assert.equal(journal.replay.tornTail, true);
    assert.equal(await readFile(journal.path, 'utf8'), '{"a":1}\n{"a":2}\n');
  });

  it('replays lines longer than one read chunk', async () => {
    const dir = await tempDir();
    const big = { blob: 'y'.repeat(9 * 1024 * 1024) };
    await writeFile(join(dir, 'journal.jsonl'), `{"a":1}\n${JSON.stringify(big)}\n{"a":2}\n`);
    const journal = await openTracked({ dir });
    assert.equal(journal.replay.records.length, 3);
    assert.deepEqual(journal.replay.records[1], big);
  });
});

describe('journal compaction', () => {
  it('keeps exactly the live records plus those appended during compaction', async () => {
    const dir = await tempDir();
    const journal = await openJournal({ dir });
    for (let i = 0; i < 20; i++) await journal.append({ id: i, state: 'queued' });
    const live = [{ id: 3, state: 'completed' }, { id: 7, state: 'queued' }];
    const compaction = journal.compact(live);
    // Appended while the compaction is queued or running: must land in the new file.
    const during = [journal.append({ id: 21 }), journal.append({ id: 22 })];
    await Promise.all([compaction, ...during]);
    await journal.append({ id: 23 });
    const stats = journal.stats();
    assert.equal(stats.compactions, 1);
    assert.equal(stats.records, 5);
    const expected = [...live, { id: 21 }, { id: 22 }, { id: 23 }];
    const text = await readFile(journal.path, 'utf8');
    assert.equal(stats.bytes, Buffer.byteLength(text));
    assert.equal(text, expected.map((r) => JSON.stringify(r) + '\n').join(''));
    assert.equal(await exists(`${journal.path}.tmp`), false);
    await journal.close();
    const again = await openTracked({ dir });
    assert.deepEqual(again.replay.records, expected);
  });

  it('writes appends made before compact() to the old file first, in order', async () => {
    const journal = await openTracked({ dir: await tempDir() });
    const before = journal.append({ id: 'before' });
    await journal.compact([{ id: 'live' }]);
    await before;
    assert.equal(await readFile(journal.path, 'utf8'), '{"id":"live"}\n');
  });

  it('rejects a failed compaction and leaves the journal intact and usable', async () => {
    const dir = await tempDir();
    const journal = await openTracked({ dir, log: recordingLogger() });
    await journal.append({ id: 1 });
    const circular: Record<string, unknown> = { id: 2 };
    circular.self = circular;
    await assert.rejects(journal.compact([{ id: 1 }, circular]), TypeError);
    await journal.append({ id: 3 });
    assert.equal(await readFile(journal.path, 'utf8'), '{"id":1}\n{"id":3}\n');
    assert.deepEqual(await readdir(dir).then((names) => names.sort()), ['foreman.sock', 'journal.jsonl']);
  });
});

/**
 * A JournalIo that holds every write to a file other than the journal's own (the compaction's
 * temp file) until released, and logs which file each write went to.
 */
function heldCompactionIo() {
  let journalFh: FileHandle | undefined;
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const writes: Array<{ file: 'journal' | 'new'; text: string }> = [];
  const io: JournalIo = {
    async write(fh, data) {
      journalFh ??= fh;
      const file = fh === journalFh ? 'journal' : 'new';
      writes.push({ file, text: data.toString() });
      if (file === 'new') await released;
      await realJournalIo.write(fh, data);
    },
    datasync: (fh) => realJournalIo.datasync(fh),
  };
  return { io, release, writes };
}

describe('journal compaction beside appends', () => {
  it('makes appends durable while a compaction copies, and carries them and their kept lines into the new file', async () => {
    const dir = await tempDir();
    const held = heldCompactionIo();
    const journal = await openJournal({ dir, io: held.io });
    await journal.append({ id: 'old', n: 1 });
    let compacted = false;
    const compaction = journal.compact([{ id: 'live' }]).then(() => (compacted = true));
    // The copy's first write is held; these appends must not wait for it.
    await journal.append({ id: 'during', n: 2 });
    await journal.append({ t: 'submit', id: 'k', body: 'kept while copying' }, 'k');
    assert.equal(compacted, false, 'the compaction is still copying');
    assert.equal(JSON.parse((await journal.readKept('k'))!.toString()).body, 'kept while copying');
    held.release();
    await compaction;
    await journal.append({ id: 'after', n: 3 });
    const expected = [{ id: 'live' }, { id: 'during', n: 2 }, { t: 'submit', id: 'k', body: 'kept while copying' }, { id: 'after', n: 3 }];
    const text = await readFile(journal.path, 'utf8');
    assert.equal(text, expected.map((r) => JSON.stringify(r) + '\n').join(''));
    assert.equal(journal.stats().bytes, Buffer.byteLength(text));
    assert.equal(journal.stats().records, 4);
    // The kept line now lives at its offset in the new file.
    assert.equal(JSON.parse((await journal.readKept('k'))!.toString()).body, 'kept while copying');
    await journal.close();
    const again = await openTracked({ dir });
    assert.deepEqual(again.replay.records, expected);
  });

  it('past maxCompactionTailBytes, an append waits for the compaction and is written once, to the new file', async () => {
    const held = heldCompactionIo();
    const journal = await openTracked({ dir: await tempDir(), io: held.io, maxCompactionTailBytes: 20 });
    await journal.append({ id: 'old' });
    const compaction = journal.compact([{ id: 'live' }]);
    await journal.append({ n: 1 }); // 8 bytes: fits the tail
    const big = journal.append({ n: 'x'.repeat(40) }); // past the bound
    held.release();
    await Promise.all([compaction, big]);
    const bigWrites = held.writes.filter((w) => w.text.includes('xxxx'));
    assert.deepEqual(bigWrites.map((w) => w.file), ['new'], 'written once, after the swap');
    const small = held.writes.filter((w) => w.text.includes('{"n":1}'));
    assert.deepEqual(small.map((w) => w.file), ['journal', 'new'], 'durable in the old file, then carried over');
    assert.equal(await readFile(journal.path, 'utf8'), `{"id":"live"}\n{"n":1}\n{"n":"${'x'.repeat(40)}"}\n`);
  });

  it('keeps every append when the disk fails during the copy: the old file stays in charge', async () => {
    const dir = await tempDir();
    const held = heldCompactionIo();
    const faulty = faultyJournalIo(held.io);
    const journal = await openJournal({ dir, io: faulty, probeMs: 5, log: recordingLogger() });
    await journal.append({ id: 1 });
    const compaction = journal.compact([{ id: 'live' }]);
    await journal.append({ id: 2 });
    faulty.failing = true;
    held.release();
    await assert.rejects(compaction, /disk full|no space/);
    faulty.failing = false;
    await journal.whenWritable();
    await journal.append({ id: 3 });
    assert.equal(await readFile(journal.path, 'utf8'), '{"id":1}\n{"id":2}\n{"id":3}\n');
    assert.equal(await exists(`${journal.path}.tmp`), false);
    await journal.close();
  });
});

describe('journal kept lines (job bodies)', () => {
  it('reads a kept line back, carries it over compactions verbatim, and drops it once released', async () => {
    const dir = await tempDir();
    const journal = await openJournal({ dir });
    await journal.append({ t: 'noise' });
    await journal.append({ t: 'submit', id: 'a', body: { prompt: 'é'.repeat(10) } }, 'a');
    await journal.append({ t: 'submit', id: 'b', body: { prompt: 'bee' } }, 'b');
    assert.deepEqual(JSON.parse((await journal.readKept('a'))!.toString()), { t: 'submit', id: 'a', body: { prompt: 'é'.repeat(10) } });
    await journal.compact([{ t: 'snapshot' }]);
    assert.equal(journal.stats().kept, 2);
    assert.deepEqual(JSON.parse((await journal.readKept('b'))!.toString()).body, { prompt: 'bee' });
    journal.release('a');
    assert.equal(await journal.readKept('a'), null);
    await journal.compact(() => [{ t: 'snapshot', n: 2 }]);
    await journal.append({ t: 'after' });
    const lines = (await readFile(journal.path, 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((r) => r.t), ['submit', 'snapshot', 'after'], 'b, then the snapshot; a is gone');
    await journal.close();
    // A visitor that keeps submit lines finds them again at the next open.
    const seen: string[] = [];
    const again = await openTracked({
      dir, visit: (r) => {
        const rec = r as { t: string; id?: string };
        seen.push(rec.t);
        return rec.t === 'submit' ? rec.id! : true;
      },
    });
    assert.deepEqual(seen, ['submit', 'snapshot', 'after']);
    assert.deepEqual(again.replay.records, [], 'a visitor sees the records; none are held');
    assert.deepEqual(JSON.parse((await again.readKept('b'))!.toString()).body, { prompt: 'bee' });
  });

  it('counts records the visitor rejects as bad lines, copies the file aside, and keeps offsets right after the repair', async () => {
    const dir = await tempDir();
    const path = join(dir, 'journal.jsonl');
    await writeFile(path, ['{"t":"job"}', '{"t":"submit","id":"x","body":{"p":1}}', '{"t":"ok"}', ''].join('\n'));
    const journal = await openTracked({
      dir, log: recordingLogger(), visit: (r) => {
        const rec = r as { t: string; id?: string };
        if (rec.t === 'job') return false; // not a well-formed record of its type
        return rec.t === 'submit' ? rec.id! : true;
      },
    });
    assert.equal(journal.replay.badLines, 1);
    assert.ok(journal.replay.copiedAside);
    assert.equal(journal.replay.count, 2);
    assert.deepEqual(JSON.parse((await journal.readKept('x'))!.toString()), { t: 'submit', id: 'x', body: { p: 1 } });
    assert.equal(await readFile(path, 'utf8'), '{"t":"submit","id":"x","body":{"p":1}}\n{"t":"ok"}\n');
  });
});

describe('journal write failures', () => {
  it('refuses appends while the disk fails, says why, and takes appends again once a probe succeeds', async () => {
    const dir = await tempDir();
    const io = faultyJournalIo();
    const changes: boolean[] = [];
    const journal = await openTracked({ dir, io, probeMs: 5, log: recordingLogger(), onHealth: (h) => changes.push(h.writable) });
    await journal.append({ n: 1 });
    io.failing = true;
    await assert.rejects(journal.append({ n: 2 }), (e: unknown) => e instanceof JournalError && e.code === 'JOURNAL_UNAVAILABLE' && /disk full/.test(e.message));
    assert.equal(journal.health().writable, false);
    assert.match(journal.health().reason!, /disk full/);
    await assert.rejects(journal.append({ n: 3 }), /journal cannot write: disk full/);
    await assert.rejects(journal.compact([{ n: 1 }]), /disk full/);
    const back = journal.whenWritable();
    io.failing = false;
    await back;
    assert.deepEqual(changes, [false, true]);
    assert.equal(journal.health().writable, true);
    await journal.append({ n: 4 });
    assert.equal(await readFile(journal.path, 'utf8'), '{"n":1}\n{"n":4}\n', 'nothing of the failed writes is left');
    assert.deepEqual(await readdir(dir).then((names) => names.sort()), ['foreman.sock', 'journal.jsonl'], 'no probe file left');
  });

  it('treats a failure reported by another writer (a result file) like its own', async () => {
    const io = faultyJournalIo();
    const journal = await openTracked({ dir: await tempDir(), io, probeMs: 5 });
    io.failing = true;
    journal.reportFailure(Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' }));
    assert.match(journal.health().reason!, /I\/O error/);
    await assert.rejects(journal.append({ n: 1 }), /I\/O error/);
    io.failing = false;
    await journal.whenWritable();
    await journal.append({ n: 2 });
  });
});

describe('journal lock', () => {
  it('refuses a second open of the same dir from the same process, then allows it after close', async () => {
    const dir = await tempDir();
    const first = await openJournal({ dir });
    await assert.rejects(openJournal({ dir }), (error: unknown) => {
      assert.ok(error instanceof JournalLockedError);
      assert.equal(error.pid, process.pid);
      assert.equal(error.message, `another foreman (pid ${process.pid}) is using ${dir}; stop it or choose another --data-dir`);
      return true;
    });
    await first.close();
    await openTracked({ dir });
  });

  it('refuses while another live process holds the dir, and opens once it has closed', async () => {
    const dir = await tempDir();
    const code = [
      `const { openJournal } = await import(${JSON.stringify(JOURNAL_MODULE)});`,
      `const journal = await openJournal({ dir: ${JSON.stringify(dir)} });`,
      `await journal.append({ from: 'child' });`,
      `console.log('ready');`,
      `process.stdin.resume();`,
      `process.stdin.on('end', async () => { await journal.close(); console.log('closed'); });`,
    ].join('\n');
    const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['pipe', 'pipe', 'inherit'] });
    children.push(child);
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    assert.equal((await lines.next()).value, 'ready');
    await assert.rejects(openJournal({ dir }), (error: unknown) => {
      assert.ok(error instanceof JournalLockedError);
      assert.equal(error.pid, child.pid);
      return true;
    });
    child.stdin!.end();
    assert.equal((await lines.next()).value, 'closed');
    await once(child, 'exit');
    const journal = await openTracked({ dir });
    assert.deepEqual(journal.replay.records, [{ from: 'child' }]);
  });

  it('takes over the lock of a process killed with SIGKILL, with no hand needed', async () => {
    const dir = await tempDir();
    const code = [
      `const { openJournal } = await import(${JSON.stringify(JOURNAL_MODULE)});`,
      `await openJournal({ dir: ${JSON.stringify(dir)} });`,
      `console.log('ready');`,
      `setInterval(() => {}, 1000);`,
    ].join('\n');
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(child);
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    assert.equal((await lines.next()).value, 'ready');
    await assert.rejects(openJournal({ dir }), JournalLockedError);
    child.kill('SIGKILL');
    await once(child, 'exit');
    assert.equal(await exists(join(dir, 'foreman.sock')), true, 'the dead holder left its socket file');
    const log = recordingLogger();
    await openTracked({ dir, log });
    assert.ok(log.entries.some((e) => e.event === 'journal.stale_lock'));
  });

  it('ignores a pid file of an earlier version, even one naming a live process (pid 1, or our own)', async () => {
    const dir = await tempDir();
    const lockPath = join(dir, 'foreman.lock');
    for (const pid of [1, process.pid]) {
      await writeFile(lockPath, `${pid}\n`);
      const journal = await openJournal({ dir });
      assert.equal(await exists(lockPath), false, 'the old pid file is removed');
      await journal.close();
    }
    assert.equal(await exists(join(dir, 'foreman.sock')), false, 'close removes the socket file');
  });
});
