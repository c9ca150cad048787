// journal/ owns durability: the append-only file, replay, compaction, the data-dir lock.
//
// The append-only journal of SPEC §6: JSON lines in DATA_DIR/journal.jsonl, group-committed
// appends, replay at open, compaction, write-failure detection and recovery, one process per
// data dir. Records are opaque objects: this module knows nothing of jobs, HTTP or their meaning.

import { constants } from 'node:fs';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { errno, syncDir } from './files.js';
import { acquireDirLock } from './lock.js';
import type { DirLock } from './lock.js';
import { replayJournal } from './replay.js';
import type { LineRef, ReplayReport, ReplayVisitor } from './replay.js';
import { realJournalIo, type JournalIo } from './io.js';
import { silentLogger } from '../log.js';
import type { Logger } from '../log.js';

export { JournalLockedError } from './lock.js';
export type { LineRef, ReplayReport, ReplayVisitor } from './replay.js';
export type { JournalIo } from './io.js';

export const JOURNAL_FILE = 'journal.jsonl';
const DEFAULT_MAX_BATCH_BYTES = 4 * 1024 * 1024;
const DEFAULT_MAX_PENDING_BYTES = 64 * 1024 * 1024;
const DEFAULT_MAX_TAIL_BYTES = 16 * 1024 * 1024;
const WRITE_CHUNK = 1024 * 1024;
const PROBE_BYTES = 64 * 1024;

export interface JournalStats {
  records: number;
  fsyncs: number;
  fsyncSecondsTotal: number;
  lastFsyncMs: number;
  bytes: number;
  compactions: number;
  /** lines kept addressable (job bodies) */
  kept: number;
}

/** Whether the journal can write now; when not, why and since when (SPEC §6, §9 /health). */
export interface JournalHealth {
  writable: boolean;
  reason: string | null;
  since: number | null;
}

export interface Journal {
  /** DATA_DIR/journal.jsonl */
  readonly path: string;
  /** what was found at open */
  readonly replay: ReplayReport;
  /**
   * Resolves only after the fsync that covers this record. With `keep`, the line stays
   * addressable under that key (readKept) until released; compaction carries it over verbatim.
   */
  append(record: object | SerializedRecord, keep?: string): Promise<void>;
  /** The kept line (without its newline), or null when the key is unknown. */
  readKept(key: string): Promise<Buffer | null>;
  /** The kept line is no longer needed: the next compaction drops it. */
  release(key: string): void;
  hasKept(key: string): boolean;
  /**
   * Rewrite the file to: every kept line, then `live` (called once the compaction's turn comes,
   * after every earlier append is durable), then the records appended after it. Appends do not
   * wait for the copy: they are durable in the old file at once and written after the snapshot
   * in the new one, even when it already reflects them, so replay must apply records idempotently.
   */
  compact(live: Iterable<object> | (() => Iterable<object>)): Promise<void>;
  stats(): JournalStats;
  health(): JournalHealth;
  /** Resolves once the journal can write again (at once when it can). */
  whenWritable(): Promise<void>;
  /**
   * Another part of the store (a body or result file) failed to write: the disk is in trouble,
   * so the journal refuses appends until its probe succeeds, as for its own failures.
   */
  reportFailure(error: unknown): void;
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
  /**
   * default 16 MiB: bytes appended during a compaction's copy are held for the new file up to
   * this bound; past it, further appends wait for the compaction to end
   */
  maxCompactionTailBytes?: number;
  log?: Logger;
  /** metrics hook, called once per batch fsync */
  onFsync?: (durationMs: number, records: number) => void;
  /** called when the journal stops or starts being writable */
  onHealth?: (health: JournalHealth) => void;
  /**
   * Each parsed line at open: false = not a well-formed record (skipped, counted, copied aside),
   * a string = keep the line under that key. Without it, replay.records holds every record.
   */
  visit?: ReplayVisitor;
  /** first delay between write probes after a failure (default 500 ms, doubling to 10 s) */
  probeMs?: number;
  /** more directories the store writes into (bodies, results): a probe must succeed in each */
  probeDirs?: string[];
  /** the write and sync calls, for fault injection in tests */
  io?: JournalIo;
  now?: () => number;
}

/** A record the caller already serialised (one JSON object, no newline): not stringified again. */
export class SerializedRecord {
  readonly json: string;
  constructor(json: string) {
    this.json = json;
  }
}

export type JournalErrorCode = 'JOURNAL_CLOSED' | 'JOURNAL_BACKLOG' | 'JOURNAL_WRITE' | 'JOURNAL_UNAVAILABLE';

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
  keys: Array<string | undefined>;
  /** byte length of each line, newline included */
  sizes: number[];
  bytes: number;
  waiters: Waiter[];
}
interface Compaction {
  kind: 'compact';
  live: Iterable<object> | (() => Iterable<object>);
  waiter: Waiter;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A file handle plus the reads still using it: the old file closes only once they are done. */
class Generation {
  readonly fh: FileHandle;
  #reads = 0;
  #retired = false;
  constructor(fh: FileHandle) {
    this.fh = fh;
  }
  async read(ref: LineRef): Promise<Buffer> {
    this.#reads++;
    try {
      const buffer = Buffer.allocUnsafe(ref.length);
      let at = 0;
      while (at < ref.length) {
        const { bytesRead } = await this.fh.read(buffer, at, ref.length - at, ref.offset + at);
        if (bytesRead === 0) throw new Error(`journal ended inside a kept line at byte ${ref.offset + at}`);
        at += bytesRead;
      }
      return buffer;
    } finally {
      if (--this.#reads === 0 && this.#retired) void this.fh.close().catch(() => undefined);
    }
  }
  retire(): void {
    this.#retired = true;
    if (this.#reads === 0) void this.fh.close().catch(() => undefined);
  }
}

class FileJournal implements Journal {
  readonly path: string;
  readonly replay: ReplayReport;
  readonly #dir: string;
  readonly #lock: DirLock;
  readonly #log: Logger;
  readonly #io: JournalIo;
  readonly #now: () => number;
  readonly #groupCommit: boolean;
  readonly #maxBatchBytes: number;
  readonly #maxPendingBytes: number;
  readonly #maxTailBytes: number;
  readonly #probeMs: number;
  readonly #probeDirs: string[];
  readonly #onFsync: ((durationMs: number, records: number) => void) | undefined;
  readonly #onHealth: ((health: JournalHealth) => void) | undefined;
  #gen: Generation;
  // A single writer drains this queue in order. A compaction starts when its turn comes and
  // copies in the background: appends go on meanwhile, to the old file (durable there at once)
  // and into the copy's tail, which the swap writes after the snapshot in the new file.
  readonly #queue: Array<Batch | Compaction> = [];
  #running = false;
  /** the compaction copying now: batches made durable since it started, for the new file */
  #copying: { tail: Batch[]; tailBytes: number; done: Promise<void> } | null = null;
  /** flushes and the swap take turns on the file through this chain */
  #fileTurn: Promise<unknown> = Promise.resolve();
  readonly #idle: Array<() => void> = [];
  #pendingBytes = 0;
  #closing: Promise<void> | null = null;
  /** set while the journal cannot write; a probe clears it */
  #broken: { error: JournalError; since: number } | null = null;
  #probeTimer: NodeJS.Timeout | null = null;
  #probeDelay: number;
  #writableWaiters: Array<() => void> = [];
  #kept: Map<string, LineRef>;
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
    this.#gen = new Generation(fh);
    this.#size = size;
    this.#records = replay.count;
    this.#kept = replay.kept;
    this.#lock = lock;
    this.#log = options.log ?? silentLogger;
    this.#io = options.io ?? realJournalIo;
    this.#now = options.now ?? Date.now;
    this.#groupCommit = options.groupCommit ?? true;
    this.#maxBatchBytes = options.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES;
    this.#maxPendingBytes = options.maxPendingBytes ?? DEFAULT_MAX_PENDING_BYTES;
    this.#maxTailBytes = options.maxCompactionTailBytes ?? DEFAULT_MAX_TAIL_BYTES;
    this.#probeMs = options.probeMs ?? 500;
    this.#probeDirs = options.probeDirs ?? [];
    this.#probeDelay = this.#probeMs;
    this.#onFsync = options.onFsync;
    this.#onHealth = options.onHealth;
  }

  #refusal(): JournalError | null {
    if (this.#closing) return new JournalError('JOURNAL_CLOSED', 'journal is closed');
    return this.#broken?.error ?? null;
  }

  append(record: object | SerializedRecord, keep?: string): Promise<void> {
    const refusal = this.#refusal();
    if (refusal) return Promise.reject(refusal);
    let line: string | undefined;
    try {
      line = record instanceof SerializedRecord ? record.json : JSON.stringify(record);
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
        last.keys.push(keep);
        last.sizes.push(bytes);
        last.bytes += bytes;
        last.waiters.push({ resolve, reject });
      } else {
        this.#queue.push({ kind: 'batch', lines: [line], keys: [keep], sizes: [bytes], bytes, waiters: [{ resolve, reject }] });
      }
      this.#kick();
    });
  }

  readKept(key: string): Promise<Buffer | null> {
    const ref = this.#kept.get(key);
    return ref ? this.#gen.read(ref) : Promise.resolve(null);
  }

  release(key: string): void {
    this.#kept.delete(key);
  }

  hasKept(key: string): boolean {
    return this.#kept.has(key);
  }

  compact(live: Iterable<object> | (() => Iterable<object>)): Promise<void> {
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
      kept: this.#kept.size,
    };
  }

  health(): JournalHealth {
    return this.#broken
      ? { writable: false, reason: this.#broken.error.message, since: this.#broken.since }
      : { writable: true, reason: null, since: null };
  }

  whenWritable(): Promise<void> {
    if (!this.#broken) return Promise.resolve();
    return new Promise((resolve) => this.#writableWaiters.push(resolve));
  }

  reportFailure(error: unknown): void {
    if (this.#closing) return;
    this.#break(error);
  }

  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    if (this.#probeTimer) clearTimeout(this.#probeTimer);
    this.#probeTimer = null;
    if (this.#running) await new Promise<void>((resolve) => this.#idle.push(resolve));
    if (this.#copying) await this.#copying.done;
    // Anyone waiting for the disk to come back is told by the closed journal's refusal instead.
    for (const resolve of this.#writableWaiters.splice(0)) resolve();
    try {
      this.#gen.retire();
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
      if (op.kind === 'batch') {
        // Bound the tail (STYLE): past it, appends wait for the copy as they did before.
        if (this.#copying && this.#copying.tailBytes + op.bytes > this.#maxTailBytes) await this.#copying.done;
        await this.#onFile(() => this.#flush(op));
      } else {
        // One compaction at a time; the next one snapshots what the previous one left.
        if (this.#copying) await this.#copying.done;
        this.#startCompaction(op);
      }
    }
    // No await between the empty check above and this: an append arriving later kicks anew.
    this.#running = false;
    for (const resolve of this.#idle.splice(0)) resolve();
  }

  async #flush(batch: Batch): Promise<void> {
    const start = this.#size;
    try {
      if (this.#broken) throw this.#broken.error;
      await this.#io.write(this.#gen.fh, Buffer.from(batch.lines.join('')));
      const started = performance.now();
      // datasync is enough: the size change it must persist is what makes the data reachable.
      await this.#io.datasync(this.#gen.fh);
      const ms = performance.now() - started;
      this.#fsyncs++;
      this.#fsyncSeconds += ms / 1000;
      this.#lastFsyncMs = ms;
      this.#size += batch.bytes;
      this.#records += batch.lines.length;
      this.#onFsync?.(ms, batch.lines.length);
    } catch (error) {
      if (!this.#broken) {
        this.#log.error('journal.write_failed', { path: this.path, records: batch.lines.length, error: messageOf(error) });
        await this.#restoreBoundary();
        this.#break(error);
      }
      const reason = this.#broken!.error;
      this.#pendingBytes -= batch.bytes;
      for (const waiter of batch.waiters) waiter.reject(reason);
      return;
    }
    let offset = start;
    for (let i = 0; i < batch.sizes.length; i++) {
      const key = batch.keys[i];
      const size = batch.sizes[i]!;
      if (key !== undefined) this.#kept.set(key, { offset, length: size - 1 });
      offset += size;
    }
    this.#pendingBytes -= batch.bytes;
    if (this.#copying) {
      this.#copying.tail.push(batch);
      this.#copying.tailBytes += batch.bytes;
    }
    for (const waiter of batch.waiters) waiter.resolve();
  }

  /** Runs `work` when the file is free: flushes and the compaction's swap never overlap. */
  #onFile<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#fileTurn.then(work);
    this.#fileTurn = run.catch(() => undefined);
    return run;
  }

  /** After a failed write or fsync, cut the file back to the last durable byte (best effort; the probe retries). */
  async #restoreBoundary(): Promise<boolean> {
    try {
      await this.#gen.fh.truncate(this.#size);
      await this.#io.datasync(this.#gen.fh);
      return true;
    } catch {
      return false;
    }
  }

  #break(cause: unknown): void {
    if (this.#broken) return;
    const code = errno(cause);
    const detail = code === 'ENOSPC' ? 'disk full' : code === 'EROFS' ? 'read-only file system' : code === 'EIO' ? 'I/O error' : messageOf(cause);
    const error = new JournalError('JOURNAL_UNAVAILABLE', `journal cannot write: ${detail}`, { cause });
    this.#broken = { error, since: this.#now() };
    this.#log.error('journal.unwritable', { path: this.path, error: error.message });
    this.#onHealth?.(this.health());
    this.#probeDelay = this.#probeMs;
    this.#scheduleProbe();
  }

  #scheduleProbe(): void {
    if (this.#closing || this.#probeTimer) return;
    this.#probeTimer = setTimeout(() => {
      this.#probeTimer = null;
      void this.#probe();
    }, this.#probeDelay);
    // Not unref'd: a caller awaiting whenWritable() must not see the process exit under it; close() clears it.
  }

  /**
   * Can the disk take writes again? Write and sync a scratch file of a useful size, then cut the
   * journal back to its durable end. Only then are appends accepted again (SPEC §6: recover
   * without a restart).
   */
  async #probe(): Promise<void> {
    if (this.#closing || !this.#broken) return;
    let ok = true;
    // Where the failure came from is not known (a result file, a body file, the journal): try each place.
    for (const dir of [this.#dir, ...this.#probeDirs]) {
      const scratch = join(dir, 'journal.probe');
      let fh: FileHandle | undefined;
      try {
        fh = await open(scratch, 'w');
        await this.#io.write(fh, Buffer.alloc(PROBE_BYTES, 0x20));
        await this.#io.datasync(fh);
      } catch {
        ok = false;
      } finally {
        await fh?.close().catch(() => undefined);
        await unlink(scratch).catch(() => undefined);
      }
      if (!ok) break;
    }
    if (ok) ok = await this.#restoreBoundary();
    if (this.#closing) return;
    if (!ok) {
      this.#probeDelay = Math.min(this.#probeDelay * 2, 10_000);
      this.#scheduleProbe();
      return;
    }
    const downMs = this.#now() - this.#broken.since;
    this.#broken = null;
    this.#log.info('journal.writable_again', { path: this.path, down_ms: downMs });
    this.#onHealth?.(this.health());
    for (const resolve of this.#writableWaiters.splice(0)) resolve();
  }

  #startCompaction(op: Compaction): void {
    const copying: { tail: Batch[]; tailBytes: number; done: Promise<void> } = { tail: [], tailBytes: 0, done: Promise.resolve() };
    this.#copying = copying;
    copying.done = this.#compactNow(op).finally(() => {
      this.#copying = null;
    });
  }

  async #compactNow(op: Compaction): Promise<void> {
    const started = performance.now();
    const tmpPath = `${this.path}.tmp`;
    let tmp: FileHandle | undefined;
    let size = 0;
    let count = 0;
    const kept = new Map<string, LineRef>();
    // Taken before the first await: a line kept after this point is in the tail, and copying it here
    // too would write it twice.
    const order = [...this.#kept].sort((a, b) => a[1].offset - b[1].offset);
    try {
      if (this.#broken) throw this.#broken.error;
      // O_APPEND: this handle becomes the journal's append (and kept-line read) handle once renamed.
      tmp = await open(tmpPath, constants.O_RDWR | constants.O_CREAT | constants.O_TRUNC | constants.O_APPEND);
      let parts: Buffer[] = [];
      let pending = 0;
      const flush = async () => {
        if (pending === 0) return;
        await this.#io.write(tmp!, Buffer.concat(parts, pending));
        size += pending;
        parts = [];
        pending = 0;
      };
      const push = async (data: Buffer) => {
        parts.push(data);
        pending += data.length;
        count++;
        // Each ~1 MiB goes out with an await: the event loop serves others between chunks.
        if (pending >= WRITE_CHUNK) await flush();
      };
      // Kept lines first, verbatim, in file order: the snapshot records that follow may refer to them.
      for (const [key, ref] of order) {
        const line = await this.#gen.read(ref);
        kept.set(key, { offset: size + pending, length: line.length });
        await push(Buffer.concat([line, Buffer.from('\n')]));
      }
      const live = typeof op.live === 'function' ? op.live() : op.live;
      for (const record of live) {
        const line = JSON.stringify(record);
        if (typeof line !== 'string') throw new TypeError('journal records must serialise to JSON');
        await push(Buffer.from(line + '\n'));
      }
      await flush();
      // The copy is slow and runs beside appends; the swap is short and has the file to itself.
      await this.#onFile(() => this.#swap(tmp!, tmpPath, size, count, kept));
    } catch (error) {
      if (this.#gen.fh !== tmp) {
        await tmp?.close().catch(() => undefined);
        await unlink(tmpPath).catch(() => undefined);
      }
      this.#log.error('journal.compaction_failed', { path: this.path, error: messageOf(error) });
      op.waiter.reject(error);
      return;
    }
    this.#log.info('journal.compacted', { path: this.path, records: this.#records, bytes: this.#size, ms: Math.round(performance.now() - started) });
    op.waiter.resolve();
  }

  /**
   * Ends a compaction: the batches made durable in the old file during the copy go after the
   * snapshot, then the new file replaces the old one (SPEC §6 order: temp file durable, rename,
   * directory entry durable). A failure before the rename leaves the old file in charge, whole.
   */
  async #swap(tmp: FileHandle, tmpPath: string, snapshotSize: number, snapshotCount: number, kept: Map<string, LineRef>): Promise<void> {
    if (this.#broken) throw this.#broken.error;
    const tail = this.#copying?.tail ?? [];
    let size = snapshotSize;
    let count = snapshotCount;
    if (tail.length > 0) {
      const parts: Buffer[] = [];
      for (const batch of tail) {
        let offset = size;
        for (let i = 0; i < batch.lines.length; i++) {
          const key = batch.keys[i];
          if (key !== undefined) kept.set(key, { offset, length: batch.sizes[i]! - 1 });
          offset += batch.sizes[i]!;
        }
        parts.push(Buffer.from(batch.lines.join('')));
        size += batch.bytes;
        count += batch.lines.length;
      }
      await this.#io.write(tmp, Buffer.concat(parts));
    }
    await this.#io.datasync(tmp);
    await rename(tmpPath, this.path);
    // The renamed handle still points at the new inode; the old one now points at an unlinked file.
    const old = this.#gen;
    this.#gen = new Generation(tmp);
    // Lines released while the compaction copied them are released in the new map too.
    for (const key of kept.keys()) if (!this.#kept.has(key)) kept.delete(key);
    this.#kept = kept;
    this.#size = size;
    this.#records = count;
    this.#compactions++;
    old.retire();
    try {
      await syncDir(this.#dir);
    } catch (error) {
      // The new file is in place but its name may not survive a power cut yet.
      this.#log.error('journal.dir_sync_failed', { path: this.#dir, error: messageOf(error) });
      throw error;
    }
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
    for (const leftover of [`${path}.tmp`, join(dir, 'journal.probe')]) {
      await unlink(leftover).catch((error: unknown) => {
        if (errno(error) !== 'ENOENT') throw error;
      });
    }
    const report = await replayJournal(path, dir, log, options.visit);
    const fh = await open(path, 'a+');
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
