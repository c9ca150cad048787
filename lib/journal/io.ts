// The journal's write and sync calls behind one small interface, so tests can make the disk
// fail (full, read-only, I/O error) and heal again without privileges; and the one durable
// whole-file replace built on them.

import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { syncDir, writeFully } from './files.js';

export interface JournalIo {
  /** write all of `data` at the handle's position (append handles: at the end) */
  write(fh: FileHandle, data: Buffer): Promise<void>;
  datasync(fh: FileHandle): Promise<void>;
}

export const realJournalIo: JournalIo = {
  write: writeFully,
  datasync: (fh) => fh.datasync(),
};

/**
 * A JournalIo whose writes fail with `code` (default ENOSPC) while `failing` is true: the
 * test's disk-full switch. Used by the specs and by `createForeman` deps, never by default.
 */
export function faultyJournalIo(base: JournalIo = realJournalIo): JournalIo & { failing: boolean; code: string } {
  const io = {
    failing: false,
    code: 'ENOSPC',
    async write(fh: FileHandle, data: Buffer) {
      if (io.failing) throw Object.assign(new Error(`${io.code}: no space left on device, write`), { code: io.code });
      await base.write(fh, data);
    },
    async datasync(fh: FileHandle) {
      if (io.failing) throw Object.assign(new Error(`${io.code}: fsync failed`), { code: io.code });
      await base.datasync(fh);
    },
  };
  return io;
}

/**
 * Replaces the file at `path` whole, or not at all: a temp file written and synced, renamed over
 * it, the rename made durable (the journal's order, SPEC §6). On failure the temp file is removed
 * and the error thrown; the old file stays as it was.
 */
export async function writeFileDurably(path: string, data: Buffer, io: JournalIo = realJournalIo): Promise<void> {
  const tmp = `${path}.tmp`;
  let fh: FileHandle | undefined;
  try {
    fh = await open(tmp, 'w');
    await io.write(fh, data);
    await io.datasync(fh);
    await fh.close();
    fh = undefined;
    await rename(tmp, path);
    await syncDir(dirname(path));
  } catch (error) {
    await fh?.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw error;
  }
}
