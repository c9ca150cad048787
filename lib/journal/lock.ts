// The data-dir lock of SPEC §6: one foreman process per directory, held by listening on a Unix
// socket in it. The kernel closes the socket when the process dies (kill -9, crash, reboot), so a
// lock is never stale in a way that needs a hand. Knows nothing of the journal's records.

import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer, type Server } from 'node:net';
import { unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { errno } from './files.js';
import type { Logger } from '../log.js';

export const LOCK_SOCKET = 'foreman.sock';
/** The pid file of earlier versions: ignored and removed, it proved nothing about liveness. */
const LEGACY_LOCK_FILE = 'foreman.lock';
// sun_path is 104 bytes on macOS, 108 on Linux, terminator included.
const MAX_SOCKET_PATH = 100;
const PROBE_TIMEOUT_MS = 2_000;

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

/**
 * Where the lock socket lives: in the data dir, or, when that path is too long for a socket
 * address, in the temp dir under a name derived from the data dir's absolute path.
 */
export function lockSocketPath(dir: string): string {
  const inDir = join(dir, LOCK_SOCKET);
  if (Buffer.byteLength(inDir) <= MAX_SOCKET_PATH) return inDir;
  const digest = createHash('sha256').update(resolve(dir)).digest('hex').slice(0, 24);
  return join(tmpdir(), `foreman-${digest}.sock`);
}

type Probe = { alive: true; pid: number | null; nonce: string | null } | { alive: false };

/** Connect to the socket: an answer (or even a silent accept) means a live holder. */
function probe(path: string): Promise<Probe> {
  return new Promise((done) => {
    const socket = connect(path);
    let text = '';
    let connected = false;
    const finish = (result: Probe) => {
      clearTimeout(timer);
      socket.destroy();
      done(result);
    };
    const parsed = (): Probe => {
      const [pid, nonce] = text.trim().split(' ');
      return { alive: true, pid: /^\d+$/.test(pid ?? '') ? Number(pid) : null, nonce: nonce ?? null };
    };
    const timer = setTimeout(() => finish(connected ? parsed() : { alive: false }), PROBE_TIMEOUT_MS);
    socket.setEncoding('utf8');
    socket.on('connect', () => (connected = true));
    socket.on('data', (chunk: string) => {
      text += chunk;
      if (text.includes('\n')) finish(parsed());
    });
    socket.on('end', () => finish(parsed()));
    socket.on('error', (error) => {
      // Refused or gone: nobody listens, the file is what a dead holder left.
      if (connected) finish(parsed());
      else finish(errno(error) === 'ECONNREFUSED' || errno(error) === 'ENOENT' ? { alive: false } : { alive: true, pid: null, nonce: null });
    });
  });
}

function listen(server: Server, path: string): Promise<void> {
  return new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(path, () => {
      server.off('error', fail);
      ok();
    });
  });
}

/**
 * Take the data dir or throw JournalLockedError. A socket file nobody listens on was left by a
 * dead holder: it is removed (logged) and taken. The same process counts as a holder, so a second
 * open in one process is refused too.
 */
export async function acquireDirLock(dir: string, log: Logger): Promise<DirLock> {
  const path = lockSocketPath(dir);
  await unlink(join(dir, LEGACY_LOCK_FILE)).catch(() => undefined);
  const nonce = randomBytes(8).toString('hex');
  const greeting = `${process.pid} ${nonce}\n`;
  for (let attempt = 0; attempt < 5; attempt++) {
    const server = createServer((socket) => {
      socket.on('error', () => undefined);
      socket.end(greeting);
    });
    // The lock must not keep the process alive on its own.
    server.unref();
    try {
      await listen(server, path);
    } catch (error) {
      if (errno(error) !== 'EADDRINUSE') throw error;
      const held = await probe(path);
      if (held.alive) throw new JournalLockedError(dir, held.pid);
      log.warn('journal.stale_lock', { path, reason: 'nobody listens on the lock socket' });
      await unlink(path).catch((e: unknown) => {
        if (errno(e) !== 'ENOENT') throw e;
      });
      continue;
    }
    // Two starters that both found the same stale socket may both have bound, the second after
    // unlinking the first's file: whoever answers on the path now holds the lock.
    const owner = await probe(path);
    if (owner.alive && owner.nonce === nonce) return createHandle(path, server);
    // Lost: leave our orphaned listener open (unref'd). Closing it would make libuv unlink the
    // path by name, which is now the winner's socket.
    throw new JournalLockedError(dir, owner.alive ? owner.pid : null);
  }
  throw new JournalLockedError(dir, null);
}

function createHandle(path: string, server: Server): DirLock {
  let released: Promise<void> | null = null;
  return {
    path,
    release() {
      // libuv unlinks the socket file as it closes the listener, in one step: no moment where
      // the path is free while a later unlink of ours could still remove a successor's socket.
      released ??= new Promise<void>((ok) => server.close(() => ok()));
      return released;
    },
  };
}
