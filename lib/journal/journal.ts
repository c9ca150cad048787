// journal/ owns durability: the append-only file, replay, compaction, the data-dir lock.
//
// The append-only journal of SPEC §6: JSON lines in DATA_DIR/journal.jsonl, group-committed
// appends, replay at open, compaction, one process per data dir. Records are opaque objects:
// this module knows nothing of jobs, HTTP or what a record means.

import { constants } from 'node:fs';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { errno, syncDir, writeFully, writeLines } from './files.js';
import { acquireDirLock } from './lock.js';
import type { DirLock } from './lock.js';
import { replayJournal } from './replay.js';
import type { ReplayReport } from './replay.js';
import { silentLogger } from '../log.js';
import type { Logger } from '../log.js';

export { JournalLockedError } from './lock.js';
export type { ReplayReport } from './replay.js';

export const JOURNAL_FILE = 'journal.jsonl';
const DEFAULT_MAX_BATCH_BYTES = 4 * 1024 * 1024;
const DEFAULT_MAX_PENDING_BYTES = 64 * 1024 * 1024;

export interface JournalStats {
  records: number;
  fsyncs: number;
  fsyncSecondsTotal: number;
  lastFsyncMs: number;
  bytes: number;
  compactions: number;
}

export interface Journal {
  /** DATA_DIR/journal.jsonl */
  readonly path: string;
  /** what was found at open */
  readonly replay: ReplayReport;
  /** resolves only after the fsync that covers this record */
  append(record: object): Promise<void>;
  /**
   * Rewrite the file to exactly `live`, then the records appended after this call. It runs
   * after every earlier append is durable, so `live` must already reflect those records.
   */
  compact(live: Iterable<object>): Promise<void>;
  stats(): JournalStats;
  /** waits for pending appends and compactions, closes the file, releases the lock */
  close(): Promise<void>;
}

export interface JournalOptions {
  /** created (recursive) if missing */
  dir: string;
  /** default true; false = one write+fsync per record (the benchmark's baseline) */
  groupCommit?: boolean;
  /** default 4 MiB: a batch flushes no later than this */
  maxBatchBytes?: number;
  /** default 64 MiB: appends beyond this many not-yet-durable bytes are refused */
  maxPendingBytes?: number;
  log?: Logger;
  /** metrics hook, called once per batch fsync */
  onFsync?: (durationMs: number, records: number) => void;
}

export type JournalErrorCode = 'JOURNAL_CLOSED' | 'JOURNAL_BACKLOG' | 'JOURNAL_WRITE' | 'JOURNAL_FAILED';

export class JournalError extends Error {
  readonly code: JournalErrorCode;
  constructor(code: JournalErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'JournalError';
    this.code = code;
  }
}

interface Waiter {
  resolve(): void;
  reject(error: unknown): void;
}
interface Batch {
  kind: 'batch';
  lines: string[];
  bytes: number;
  waiters: Waiter[];
}
interface Compaction {
  kind: 'compact';
  live: Iterable<object>;
  waiter: Waiter;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

class FileJournal implements Journal {
  readonly path: string;
  readonly replay: ReplayReport;
  readonly #dir: string;
  readonly #lock: DirLock;
  readonly #log: Logger;
  readonly #groupCommit: boolean;
  readonly #maxBatchBytes: number;
  readonly #maxPendingBytes: number;
  readonly #onFsync: ((durationMs: number, records: number) => void) | undefined;
  #fh: FileHandle;
  // A single writer drains this queue in order. Compactions sit in it as barriers, so an
  // append made after compact() is written to the new file, never to the one being replaced.
  readonly #queue: Array<Batch | Compaction> = [];
  #running = false;
  readonly #idle: Array<() => void> = [];
  #pendingBytes = 0;
  #closing: Promise<void> | null = null;
  #failure: JournalError | null = null;
  #size: number;
  #records: number;
  #fsyncs = 0;
  #fsyncSeconds = 0;
  #lastFsyncMs = 0;
  #compactions = 0;

  constructor(dir: string, fh: FileHandle, size: number, replay: ReplayReport, lock: DirLock, options: JournalOptions) {
    this.path = join(dir, JOURNAL_FILE);
    this.replay = replay;
    this.#dir = dir;
    this.#fh = fh;
    this.#size = size;
    this.#records = replay.records.length;
    this.#lock = lock;
    this.#log = options.log ?? silentLogger;
    this.#groupCommit = options.groupCommit ?? true;
    this.#maxBatchBytes = options.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES;
    this.#maxPendingBytes = options.maxPendingBytes ?? DEFAULT_MAX_PENDING_BYTES;
    this.#onFsync = options.onFsync;
  }

  #refusal(): JournalError | null {
    if (this.#closing) return new JournalError('JOURNAL_CLOSED', 'journal is closed');
    return this.#failure;
  }

  append(record: object): Promise<void> {
    const refusal = this.#refusal();
    if (refusal) return Promise.reject(refusal);
    let line: string | undefined;
    try {
      line = JSON.stringify(record);
    } catch (error) {
      return Promise.reject(error);
    }
    if (typeof line !== 'string') return Promise.reject(new TypeError('journal records must serialise to JSON'));
    // JSON.stringify escapes newlines inside strings, so one record is always one line.
    line += '\n';
    const bytes = Buffer.byteLength(line);
    // Bound memory (STYLE: every buffer has a bound named in its error): a stalled disk
    // must push back on submitters, not grow the heap.
    if (this.#pendingBytes + bytes > this.#maxPendingBytes) {
      const message = `journal backlog is over maxPendingBytes (${this.#maxPendingBytes} bytes); append refused`;
      return Promise.reject(new JournalError('JOURNAL_BACKLOG', message));
    }
    this.#pendingBytes += bytes;
    return new Promise<void>((resolve, reject) => {
      const last = this.#queue.at(-1);
      // Group commit (SPEC §6): join the batch that waits behind the write in flight.
      if (this.#groupCommit && last?.kind === 'batch' && last.bytes + bytes <= this.#maxBatchBytes) {
        last.lines.push(line);
        last.bytes += bytes;
        last.waiters.push({ resolve, reject });
      } else {
        this.#queue.push({ kind: 'batch', lines: [line], bytes, waiters: [{ resolve, reject }] });
      }
      this.#kick();
    });
  }

  compact(live: Iterable<object>): Promise<void> {
    const refusal = this.#refusal();
    if (refusal) return Promise.reject(refusal);
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ kind: 'compact', live, waiter: { resolve, reject } });
      this.#kick();
    });
  }

  stats(): JournalStats {
    return {
      records: this.#records,
      fsyncs: this.#fsyncs,
      fsyncSecondsTotal: this.#fsyncSeconds,
      lastFsyncMs: this.#lastFsyncMs,
      bytes: this.#size,
      compactions: this.#compactions,
    };
  }

  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    if (this.#running) await new Promise<void>((resolve) => this.#idle.push(resolve));
    try {
      await this.#fh.close();
    } finally {
      await this.#lock.release();
    }
  }

  #kick(): void {
    if (this.#running) return;
    this.#running = true;
    void this.#drain();
  }

  async #drain(): Promise<void> {
    // Yield once so appends made in the same tick share the first batch.
    await Promise.resolve();
    for (let op = this.#queue.shift(); op; op = this.#queue.shift()) {
      if (op.kind === 'batch') await this.#flush(op);
      else await this.#compactNow(op);
    }
    // No await between the empty check above and this: an append arriving later kicks anew.
    this.#running = false;
    for (const resolve of this.#idle.splice(0)) resolve();
  }

  async #flush(batch: Batch): Promise<void> {
    try {
      if (this.#failure) throw this.#failure;
      await writeFully(this.#fh, Buffer.from(batch.lines.join('')));
      const started = performance.now();
      // datasync is enough: the size change it must persist is what makes the data reachable.
      await this.#fh.datasync();
      const ms = performance.now() - started;
      this.#fsyncs++;
      this.#fsyncSeconds += ms / 1000;
      this.#lastFsyncMs = ms;
      this.#size += batch.bytes;
      this.#records += batch.lines.length;
      this.#onFsync?.(ms, batch.lines.length);
    } catch (error) {
      if (error !== this.#failure) {
        this.#log.error('journal.write_failed', { path: this.path, records: batch.lines.length, error: messageOf(error) });
        await this.#restoreBoundary(error);
      }
      const reason = error instanceof JournalError ? error : new JournalError('JOURNAL_WRITE', `journal write failed: ${messageOf(error)}`, { cause: error });
      this.#pendingBytes -= batch.bytes;
      for (const waiter of batch.waiters) waiter.reject(reason);
      return;
    }
    this.#pendingBytes -= batch.bytes;
    for (const waiter of batch.waiters) waiter.resolve();
  }

  /**
   * After a failed write or fsync, cut the file back to the last durable byte: a half-written
   * batch left in place would merge with the next record into one bad line. If even that
   * fails, refuse every later append rather than write after unknown bytes.
   */
  async #restoreBoundary(cause: unknown): Promise<void> {
    try {
      await this.#fh.truncate(this.#size);
      await this.#fh.datasync();
    } catch (error) {
      const message = `journal is unusable after a failed write (${messageOf(cause)}; truncate: ${messageOf(error)}); restart foreman`;
      this.#failure = new JournalError('JOURNAL_FAILED', message, { cause });
      this.#log.error('journal.failed', { path: this.path, error: message });
    }
  }

  async #compactNow(op: Compaction): Promise<void> {
    const started = performance.now();
    const tmpPath = `${this.path}.tmp`;
    let tmp: FileHandle | undefined;
    let size = 0;
    let count = 0;
    try {
      if (this.#failure) throw this.#failure;
      // O_APPEND: this handle becomes the journal's append handle once renamed into place.
      tmp = await open(tmpPath, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_APPEND);
      ({ bytes: size, count } = await writeLines(tmp, op.live));
      // SPEC §6 order: temp file durable, then rename, then the directory entry durable.
      await tmp.sync();
      await rename(tmpPath, this.path);
    } catch (error) {
      await tmp?.close().catch(() => undefined);
      await unlink(tmpPath).catch(() => undefined);
      this.#log.error('journal.compaction_failed', { path: this.path, error: messageOf(error) });
      op.waiter.reject(error);
      return;
    }
    // The renamed handle still points at the new inode; the old one now points at an unlinked file.
    const old = this.#fh;
    this.#fh = tmp;
    this.#size = size;
    this.#records = count;
    this.#compactions++;
    await old.close().catch(() => undefined);
    try {
      await syncDir(this.#dir);
    } catch (error) {
      // The new file is in place but its name may not survive a power cut yet.
      this.#log.error('journal.dir_sync_failed', { path: this.#dir, error: messageOf(error) });
      op.waiter.reject(error);
      return;
    }
    this.#log.info('journal.compacted', { path: this.path, records: count, bytes: size, ms: Math.round(performance.now() - started) });
    op.waiter.resolve();
  }
}

/** Lock the dir, replay the journal, and open it for appending. Damage is never fatal; a live lock is. */
export async function openJournal(options: JournalOptions): Promise<Journal> {
  const log = options.log ?? silentLogger;
  const dir = options.dir;
  const path = join(dir, JOURNAL_FILE);
  await mkdir(dir, { recursive: true });
  const lock = await acquireDirLock(dir, log);
  try {
    // Left by a compaction that crashed before its rename: the journal itself is intact.
    await unlink(`${path}.tmp`).catch((error: unknown) => {
      if (errno(error) !== 'ENOENT') throw error;
    });
    const report = await replayJournal(path, dir, log);
    const fh = await open(path, 'a');
    try {
      const { size } = await fh.stat();
      // Make the file's creation (or repair rename) durable before any append relies on it.
      await syncDir(dir);
      return new FileJournal(dir, fh, size, report, lock, options);
    } catch (error) {
      await fh.close().catch(() => undefined);
      throw error;
    }
  } catch (error) {
    await lock.release();
    throw error;
  }
}
