// Runs Debian's headless Chromium on a URL and returns the DOM it dumps. No
// skipping when it is missing: the caller's test fails and says how to install it.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const CHROMIUM = process.env['CHROMIUM_BIN'] ??
  ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((p) => existsSync(p));

/** Loads url in a fresh profile and returns the DOM after budgetMs of virtual time. */
export async function chromiumDumpDom(url: string, budgetMs = 5000): Promise<string> {
  assert.ok(CHROMIUM, 'chromium not found at /usr/bin/chromium: install it (apt-get install -y chromium) or set CHROMIUM_BIN');
  const profile = await mkdtemp(join(tmpdir(), 'foreman-ui-'));
  try {
    const child = spawn(CHROMIUM, [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      `--user-data-dir=${profile}`, `--virtual-time-budget=${budgetMs}`, '--dump-dom', url,
    ], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    // Chromium forks helpers; kill the whole process group if it hangs.
    const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 60_000);
    const code = await new Promise<number | null>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', resolve);
    }).finally(() => clearTimeout(timer));
    assert.equal(code, 0, `chromium exited with ${code}: ${stderr.slice(-2000)}`);
    assert.match(stdout, /<\/html>/, `no DOM dumped: ${stderr.slice(-2000)}`);
    return stdout;
  } finally {
    await rm(profile, { recursive: true, force: true });
  }
}
