// The open-file limit foreman runs under, and the client-connection cap that leaves room below it
// (SPEC §16). A cap at or above the limit protects nothing: the idle sockets take every descriptor,
// and the requests already in take none for their upstream sockets, journal and artifacts.

import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

/** Descriptors kept back for upstream sockets, webhook deliveries, the journal and artifacts. */
export const FD_RESERVE = 256;
const MIN_CONNECTIONS = 16;

/** The soft limit on open files, or null when it cannot be read (or is unlimited). */
export function openFileLimit(): number | null {
  try {
    // Linux: one line of /proc/self/limits.
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (m) return m[1] === 'unlimited' ? null : Number(m[1]);
  } catch {
    // not Linux
  }
  try {
    // macOS and the other Unixes: the shell knows the soft limit it inherited from us.
    const text = execFileSync('/bin/sh', ['-c', 'ulimit -n'], { encoding: 'utf8', timeout: 2_000 }).trim();
    return /^\d+$/.test(text) ? Number(text) : null;
  } catch {
    return null;
  }
}

/**
 * The cap to enforce: the configured one, lowered to leave FD_RESERVE descriptors (at most half the
 * limit) free for the work of the connections already in. Returns why it was lowered, for the log.
 */
export function effectiveMaxConnections(configured: number, fdLimit: number | null): { max: number; lowered: boolean } {
  if (fdLimit === null) return { max: configured, lowered: false };
  const room = Math.max(MIN_CONNECTIONS, fdLimit - Math.min(FD_RESERVE, Math.floor(fdLimit / 2)));
  return configured > room ? { max: room, lowered: true } : { max: configured, lowered: false };
}
