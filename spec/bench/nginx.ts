// nginx as the reference proxy for the streaming bench, when it is installed: one process
// (`daemon off`, `master_process off`), a config and temp paths in the bench's scratch dir,
// `proxy_buffering off` and keep-alive to upstream. CPU is read from /proc/<pid>/schedstat.

import { spawn } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { getJson } from './load.js';
import { tempDir, track, type BenchProcess } from './procs.js';

const CANDIDATES = ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/local/bin/nginx', '/usr/bin/nginx', '/opt/homebrew/bin/nginx'];

/** The nginx binary, or null when it is not installed (the bench then leaves its column out). */
export function findNginx(): string | null {
  const fromEnv = process.env.FOREMAN_BENCH_NGINX;
  for (const path of fromEnv ? [fromEnv] : CANDIDATES) {
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {}
  }
  return null;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function config(dir: string, port: number, upstream: URL): string {
  return `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream sim { server ${upstream.host}; keepalive 128; }
  server {
    listen 127.0.0.1:${port};
    tcp_nodelay on;
    location / {
      proxy_pass http://sim;
      proxy_set_header Host ${upstream.host}; # the upstream block name is no loopback Host (Ollama answers 403)
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_read_timeout 600s;
    }
  }
}
`;
}

/** CPU time of one process in microseconds (schedstat's first field is ns on CPU). */
function cpuUs(pid: number): number {
  return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]) / 1000;
}

function rss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

export async function startNginx(binary: string, upstreamUrl: string): Promise<BenchProcess> {
  const dir = await tempDir('nginx');
  await mkdir(join(dir, 'logs'), { recursive: true });
  let lastError: Error | null = null;
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort(); // another process may take it before nginx binds: then try again
    await writeFile(join(dir, 'nginx.conf'), config(dir, port, new URL(upstreamUrl)));
    const child = spawn(binary, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], { stdio: 'ignore' });
    track(child);
    let exited = false;
    const exit = new Promise<void>((resolve) => child.once('exit', () => ((exited = true), resolve())));
    child.once('error', () => {});
    const url = `http://127.0.0.1:${port}`;
    const logTail = (lines = 15) => {
      try {
        return readFileSync(join(dir, 'error.log'), 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
      } catch {
        return '';
      }
    };
    const deadline = Date.now() + 10_000;
    while (!exited && Date.now() < deadline) {
      try {
        await getJson(`${url}/`, 1_000);
        const pid = child.pid!;
        return {
          name: 'nginx', url, pid, logTail,
          usage: async () => ({ cpuUs: cpuUs(pid), rss: rss(pid), heapUsed: 0 }),
          stop: async () => {
            if (exited) return;
            child.kill('SIGQUIT');
            const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
            await exit;
            clearTimeout(timer);
          },
        };
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    if (!exited) child.kill('SIGKILL');
    await exit;
    lastError = new Error(`nginx did not start on port ${port}:\n${logTail()}`);
  }
  throw lastError!;
}
