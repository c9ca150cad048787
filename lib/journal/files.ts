// Small durable-file helpers shared by the journal, its replay and its lock: full writes,
// record lines, directory fsync, copying a damaged file aside. No locking, no replay rules.

import { constants, copyFile, open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';

export function errno(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | null)?.code;
}

/** write() may write less than asked; loop so a record is never left half-written by us. */
export async function writeFully(fh: FileHandle, data: Buffer): Promise<void> {
  let offset = 0;
  while (offset < data.length) {
    const { bytesWritten } = await fh.write(data, offset, data.length - offset, null);
    offset += bytesWritten;
  }
}

const WRITE_CHUNK = 1024 * 1024;

/**
 * Write records as JSON lines in ~1 MiB writes: one string for 100k records would hold the
 * whole file in memory twice, one write per record would be 100k syscalls.
 */
export async function writeLines(fh: FileHandle, records: Iterable<object>): Promise<{ bytes: number; count: number }> {
  let bytes = 0;
  let count = 0;
  let parts: string[] = [];
  let chars = 0;
  const flush = async () => {
    const data = Buffer.from(parts.join(''));
    await writeFully(fh, data);
    bytes += data.length;
    parts = [];
    chars = 0;
  };
  for (const record of records) {
    const line = JSON.stringify(record);
    if (typeof line !== 'string') throw new TypeError('journal records must serialise to JSON');
    parts.push(line, '\n');
    chars += line.length + 1;
    count++;
    if (chars >= WRITE_CHUNK) await flush();
  }
  if (parts.length > 0) await flush();
  return { bytes, count };
}

// Platforms that cannot open or fsync a directory say so with one of these; a rename is
// then as durable as that platform allows. Anything else (EIO) is a real failure.
const DIR_SYNC_UNSUPPORTED = new Set(['EISDIR', 'EPERM', 'EACCES', 'EINVAL', 'ENOTSUP', 'EBADF']);

/**
 * fsync the directory so a create or rename inside it survives a power cut
 * (SPEC §6: "renames, fsyncs the directory"). Always tried, quietly skipped where unsupported.
 */
export async function syncDir(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch (error) {
    if (!DIR_SYNC_UNSUPPORTED.has(errno(error) ?? '')) throw error;
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/** Timestamps without ':' so the name is valid on every filesystem. */
function stamp(at: Date): string {
  return at.toISOString().replace(/[:.]/g, '-');
}

/**
 * Copy `path` to `path.damaged-<timestamp>` (never overwriting an earlier copy) and fsync
 * it, so the evidence is on disk before the caller truncates or rewrites the original.
 */
export async function copyAside(path: string, dir: string, at: Date): Promise<string> {
  const base = `${path}.damaged-${stamp(at)}`;
  for (let n = 0; ; n++) {
    const target = n === 0 ? base : `${base}-${n}`;
    try {
      await copyFile(path, target, constants.COPYFILE_EXCL);
    } catch (error) {
      if (errno(error) === 'EEXIST' && n < 100) continue;
      throw error;
    }
    const copy = await open(target, 'r+');
    try {
      await copy.sync();
    } finally {
      await copy.close();
    }
    await syncDir(dir);
    return target;
  }
}
