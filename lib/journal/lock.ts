// The data-dir lock of SPEC §6: one foreman process per directory, held by a
// `foreman.lock` file that names its owner's pid. Knows nothing of the journal's records.

import { link, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errno } from './files.js';
import type { Logger } from '../log.js';

export const LOCK_FILE = 'foreman.lock';

let tmpSeq = 0;

/** Thrown by openJournal when a live process already holds the data dir. */
export class JournalLockedError extends Error {
  readonly code = 'JOURNAL_LOCKED';
  readonly pid: number | null;
  constructor(dir: string, pid: number | null) {
    super(`another foreman (pid ${pid ?? 'unknown'}) is using ${dir}; stop it or choose another --data-dir`);
    this.name = 'JournalLockedError';
    this.pid = pid;
  }
}

export interface DirLock {
  readonly path: string;
  release(): Promise<void>;
}

/** A positive integer pid, or null for anything else (empty, garbage, 0, negative). */
function parsePid(text: string): number | null {
  const trimmed = text.trim();
  if (!/^\d{1,10}$/.test(trimmed)) return null;
  const pid = Number(trimmed);
  // pid 0 and negatives would make kill() signal a process group: never probe those.
  return pid > 0 && pid <= 0x7fffffff ? pid : null;
}

/** Signal 0 probes existence only; EPERM means it exists but belongs to someone else. */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return errno(error) === 'EPERM';
  }
}

/**
 * Create the lock exclusively with its content already in place: write a private
 * temp file, then link() it to the lock name, which fails with EEXIST atomically.
 * A plain open('wx') + write leaves a moment where another starter would read an
 * empty file and take it for a stale lock. Filesystems without hard links fall
 * back to 'wx'.
 */
async function createExclusive(lockPath: string, content: string): Promise<boolean> {
  // Unique per attempt: two opens in one process must not share a temp file.
  const tmp = `${lockPath}.${process.pid}-${++tmpSeq}.tmp`;
  await writeFile(tmp, content);
  try {
    await link(tmp, lockPath);
    return true;
  } catch (error) {
    const code = errno(error);
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'ENOSYS' && code !== 'EXDEV') throw error;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
  try {
    await writeFile(lockPath, content, { flag: 'wx' });
    return true;
  } catch (error) {
    if (errno(error) === 'EEXIST') return false;
    throw error;
  }
}

/**
 * Take `dir/foreman.lock` or throw JournalLockedError. A lock whose pid is dead
 * (or whose content is garbage) was left by a crash: it is replaced and logged.
 * The same process counts as alive, so a second open in one process is refused too.
 */
export async function acquireDirLock(dir: string, log: Logger): Promise<DirLock> {
  const lockPath = join(dir, LOCK_FILE);
  const content = `${process.pid}\n`;
  // Bounded: each round either takes the lock, refuses, or removes one stale file.
  for (let attempt = 0; attempt < 5; attempt++) {
    if (await createExclusive(lockPath, content)) return createHandle(lockPath, content);
    let text: string;
    try {
      text = await readFile(lockPath, 'utf8');
    } catch (error) {
      if (errno(error) === 'ENOENT') continue; // released between our create and read
      throw error;
    }
    const pid = parsePid(text);
    if (pid !== null && isProcessAlive(pid)) throw new JournalLockedError(dir, pid);
    log.warn('journal.stale_lock', { path: lockPath, pid, reason: pid === null ? 'unreadable' : 'process gone' });
    await unlink(lockPath).catch((error: unknown) => {
      if (errno(error) !== 'ENOENT') throw error;
    });
  }
  throw new JournalLockedError(dir, null);
}

function createHandle(lockPath: string, content: string): DirLock {
  let released = false;
  return {
    path: lockPath,
    async release() {
      if (released) return;
      released = true;
      // Only remove the file if it is still ours: never delete a successor's lock.
      const text = await readFile(lockPath, 'utf8').catch(() => null);
      if (text === content) await unlink(lockPath).catch(() => undefined);
    },
  };
}
