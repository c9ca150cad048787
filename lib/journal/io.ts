// The journal's write and sync calls behind one small interface, so tests can make the disk
// fail (full, read-only, I/O error) and heal again without privileges. Nothing else lives here.

import type { FileHandle } from 'node:fs/promises';
import { writeFully } from './files.js';

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
