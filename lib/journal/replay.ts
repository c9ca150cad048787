// Start-up replay of SPEC §6: read journal.jsonl line by line, cut a torn tail, skip and
// count bad lines, copy a damaged file aside and repair it. What a well-formed record is, the
// caller's visitor says; this file knows nothing of what records mean.

import { open, rename } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { copyAside, errno, syncDir, writeFully } from './files.js';
import type { Logger } from '../log.js';

/** Where a line sits in the journal file: its first byte and its length without the newline. */
export interface LineRef {
  offset: number;
  length: number;
}

/**
 * Called for each line that parses to a JSON object: false = not a well-formed record (skipped
 * and counted like garbage), a string = keep the line addressable under that key, else true.
 */
export type ReplayVisitor = (record: object, at: LineRef) => boolean | string;

export interface ReplayReport {
  /** parsed records in file order (only when no visitor was given: a visitor sees them instead) */
  records: unknown[];
  /** good records seen */
  count: number;
  /** kept lines by key, at their offsets in the (repaired) file */
  kept: Map<string, LineRef>;
  /** the last line was incomplete (no trailing \n, or unparseable) and was cut off */
  tornTail: boolean;
  /** unparseable lines elsewhere, skipped */
  badLines: number;
  /** the copy of the damaged file, made whenever tornTail or badLines > 0 */
  copiedAside: string | null;
  bytes: number;
  durationMs: number;
}

// Read in chunks: a 100k-job journal is tens of MB, and one readFile of a file that grew past
// V8's string or buffer limits would make replay fatal, which §6 forbids. 1 MiB, not more: Node
// decodes larger chunks into external strings whose memory outlives the replay in RSS (8 MiB
// chunks left ~30 MB more RSS after replaying 100,000 jobs, SPEC §16); longer lines still carry over.
const READ_CHUNK = 1024 * 1024;
const NEWLINE = 0x0a;

type Range = [start: number, end: number];

/** Records are JSON objects; a line that parses to anything else is as bad as garbage. */
function parseRecord(text: string): object | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

interface Scan {
  records: object[];
  count: number;
  kept: Map<string, LineRef>;
  bad: Range[];
  /** byte offset where the good content ends: the file is cut here when the tail is torn */
  cut: number;
  tornTail: boolean;
  bytes: number;
}

async function scan(fh: FileHandle, visit: ReplayVisitor | undefined): Promise<Scan> {
  const records: object[] = [];
  const kept = new Map<string, LineRef>();
  let count = 0;
  const bad: Range[] = [];
  // The last bad terminated line is only "bad elsewhere" once another line follows it;
  // if it is the final line it is the torn tail.
  let lastBad: Range | null = null;
  let carry = Buffer.alloc(0);
  let base = 0; // file offset of carry[0]
  let position = 0;
  for (;;) {
    const buffer = Buffer.allocUnsafe(carry.length + READ_CHUNK);
    carry.copy(buffer, 0);
    const { bytesRead } = await fh.read(buffer, carry.length, READ_CHUNK, position);
    if (bytesRead === 0) break;
    position += bytesRead;
    const view = buffer.subarray(0, carry.length + bytesRead);
    const last = view.lastIndexOf(NEWLINE);
    let start = 0;
    if (last !== -1) {
      // Decode the complete lines at once and slice the string: far cheaper than one decode
      // per line. Byte offsets (for cutting and repair) follow the same newlines in the
      // buffer: 0x0a never occurs inside a UTF-8 sequence, nor is it swallowed by U+FFFD.
      const text = view.toString('utf8', 0, last);
      let from = 0;
      for (;;) {
        const nl = text.indexOf('\n', from);
        const line = nl === -1 ? text.slice(from) : text.slice(from, nl);
        const byteEnd = nl === -1 ? last : view.indexOf(NEWLINE, start);
        const record = parseRecord(line);
        if (lastBad) bad.push(lastBad);
        lastBad = null;
        const verdict = record ? (visit ? visit(record, { offset: base + start, length: byteEnd - start }) : true) : false;
        if (verdict === false) lastBad = [base + start, base + byteEnd + 1];
        else {
          count++;
          if (!visit) records.push(record!);
          if (typeof verdict === 'string') kept.set(verdict, { offset: base + start, length: byteEnd - start });
        }
        start = byteEnd + 1;
        if (nl === -1) break;
        from = nl + 1;
      }
    }
    carry = view.subarray(start);
    base += start;
  }
  if (carry.length > 0) {
    // No trailing newline: the write that made it never completed, so it was never acknowledged.
    if (lastBad) bad.push(lastBad);
    return { records, count, kept, bad, cut: base, tornTail: true, bytes: position };
  }
  if (lastBad) return { records, count, kept, bad, cut: lastBad[0], tornTail: true, bytes: position };
  return { records, count, kept, bad, cut: position, tornTail: false, bytes: position };
}

/** Keep [0, cut) minus the bad lines, via a temp file and rename, so a crash mid-repair loses nothing. */
async function rewriteWithout(path: string, dir: string, bad: Range[], cut: number): Promise<void> {
  const tmpPath = `${path}.tmp`;
  const source = await open(path, 'r');
  const target = await open(tmpPath, 'w');
  try {
    let from = 0;
    const keep: Range[] = [];
    for (const [start, end] of bad) {
      if (start > from) keep.push([from, start]);
      from = end;
    }
    if (cut > from) keep.push([from, cut]);
    const buffer = Buffer.allocUnsafe(READ_CHUNK);
    for (const [start, end] of keep) {
      for (let at = start; at < end; ) {
        const { bytesRead } = await source.read(buffer, 0, Math.min(READ_CHUNK, end - at), at);
        if (bytesRead === 0) throw new Error(`journal shrank during repair at byte ${at}`);
        await writeFully(target, buffer.subarray(0, bytesRead));
        at += bytesRead;
      }
    }
    await target.sync();
  } finally {
    await source.close();
    await target.close();
  }
  await rename(tmpPath, path);
  await syncDir(dir);
}

async function truncateTo(path: string, size: number): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    await fh.truncate(size);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Replay `path`. Damage is never fatal (SPEC §6): the original is copied aside first, then a
 * torn tail is truncated away, and bad middle lines are rewritten out so that the next start
 * does not count (and copy) the same damage again.
 */
/** Offsets after bad lines were rewritten out: each kept line moves back by the bad bytes before it. */
function shiftKept(kept: Map<string, LineRef>, bad: Range[]): void {
  for (const ref of kept.values()) {
    let removed = 0;
    for (const [start, end] of bad) if (end <= ref.offset) removed += end - start;
    ref.offset -= removed;
  }
}

export async function replayJournal(
  path: string, dir: string, log: Logger, visit?: ReplayVisitor, now = () => new Date(),
): Promise<ReplayReport> {
  const started = performance.now();
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (error) {
    if (errno(error) !== 'ENOENT') throw error;
    return {
      records: [], count: 0, kept: new Map(), tornTail: false, badLines: 0, copiedAside: null, bytes: 0,
      durationMs: performance.now() - started,
    };
  }
  let result: Scan;
  try {
    result = await scan(fh, visit);
  } finally {
    await fh.close();
  }
  const { records, count, kept, bad, cut, tornTail, bytes } = result;
  let copiedAside: string | null = null;
  if (tornTail || bad.length > 0) {
    copiedAside = await copyAside(path, dir, now());
    if (bad.length > 0) {
      await rewriteWithout(path, dir, bad, cut);
      shiftKept(kept, bad);
    } else await truncateTo(path, cut);
    if (tornTail) log.warn('journal.torn_tail', { path, cut_at: cut, dropped_bytes: bytes - cut, copied_aside: copiedAside });
    if (bad.length > 0) log.warn('journal.bad_lines', { path, count: bad.length, copied_aside: copiedAside });
  }
  const durationMs = performance.now() - started;
  log.info('journal.replayed', { path, records: count, bytes, ms: Math.round(durationMs) });
  return { records, count, kept, tornTail, badLines: bad.length, copiedAside, bytes, durationMs };
}
