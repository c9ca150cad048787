// The client commands: submit, jobs, show, cancel, status. They talk to a running
// foreman over HTTP (FOREMAN_URL, FOREMAN_TOKEN) and return stable exit codes for scripts.

import { parseArgs } from 'node:util';
import { createHash } from 'node:crypto';
import { EXIT, type CliIo } from './io.js';
import type { QueueSnapshot } from '../ops/queue-view.js';
import { renderKeys } from '../ops/keys-render.js';
import type { KeysResponse } from '../keys/view.js';
import { renderStatus, renderWatchFrame } from '../ops/status-render.js';

interface Client {
  request(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; body: any }>;
}

class ClientError extends Error {
  constructor(readonly exitCode: number, message: string) {
    super(message);
  }
}

function createClient(env: NodeJS.ProcessEnv): Client {
  const base = (env.FOREMAN_URL || 'http://127.0.0.1:11435').replace(/\/+$/, '');
  const token = env.FOREMAN_TOKEN;
  return {
    async request(method, path, body, headers = {}) {
      let res: Response;
      try {
        res = await fetch(base + path, {
          method,
          headers: {
            ...(token ? { authorization: `Bearer ${token}` } : {}),
            ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
            ...headers,
          },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
      } catch (err) {
        throw new ClientError(EXIT.unavailable, `cannot reach foreman at ${base}: ${(err as Error).message}`);
      }
      const text = await res.text();
      let parsed: any = text;
      try {
        parsed = JSON.parse(text);
      } catch {}
      if (res.status >= 400) {
        const message = typeof parsed?.error === 'string' ? parsed.error : parsed?.error?.message ?? text;
        const code = res.status === 404 ? EXIT.notFound : res.status === 409 || res.status === 422 ? EXIT.conflict
          : res.status === 400 || res.status === 413 ? EXIT.usage : EXIT.unavailable;
        throw new ClientError(code, `foreman answered ${res.status}: ${message}`);
      }
      return { status: res.status, body: parsed };
    },
  };
}

async function readStdin(io: CliIo): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of io.stdin as AsyncIterable<Buffer | string>) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks).toString('utf8');
}

const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

function answerText(job: any): string {
  const r = job?.result;
  if (!r) return '';
  return String(r.message?.content ?? r.response ?? '');
}

export async function runClientCommand(command: string, argv: readonly string[], env: NodeJS.ProcessEnv, io: CliIo): Promise<number> {
  const client = createClient(env);
  try {
    switch (command) {
      case 'status':
        return await status(client, argv, io);
      case 'submit':
        return await submit(client, argv, io);
      case 'jobs':
        return await list(client, argv, io);
      case 'show':
      case 'cancel':
        return await showOrCancel(command, client, argv, io);
      case 'keys':
        return await keys(client, argv, io);
    }
    return EXIT.usage;
  } catch (err) {
    if (err instanceof ClientError) {
      io.stderr.write(`foreman ${command}: ${err.message}\n`);
      return err.exitCode;
    }
    if ((err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.stderr.write(`foreman ${command}: ${(err as Error).message} (see foreman --help)\n`);
      return EXIT.usage;
    }
    throw err;
  }
}

async function status(client: Client, argv: readonly string[], io: CliIo): Promise<number> {
  const { values } = parseArgs({ args: [...argv], options: { watch: { type: 'boolean' }, json: { type: 'boolean' }, interval: { type: 'string' } } });
  const interval = Math.max(200, Number(values.interval ?? 1000) || 1000);
  const tty = Boolean(io.stdout.isTTY);
  for (;;) {
    const { body } = await client.request('GET', '/queue');
    const snapshot = body as QueueSnapshot;
    if (values.json) io.stdout.write(JSON.stringify(snapshot) + '\n');
    else if (values.watch && tty) io.stdout.write(renderWatchFrame(snapshot, { color: true, width: io.stdout.columns }));
    else io.stdout.write(renderStatus(snapshot, { color: tty, width: io.stdout.columns }) + (values.watch ? '\n' : ''));
    if (!values.watch) return EXIT.ok;
    await new Promise((r) => setTimeout(r, interval));
  }
}

async function submit(client: Client, argv: readonly string[], io: CliIo): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      model: { type: 'string', short: 'm' },
      prompt: { type: 'string', short: 'p' },
      system: { type: 'string' },
      chat: { type: 'boolean' },
      priority: { type: 'string' },
      webhook: { type: 'string' },
      metadata: { type: 'string' },
      'idempotency-key': { type: 'string' },
      options: { type: 'string' },
      wait: { type: 'boolean', short: 'w' },
      json: { type: 'boolean' },
    },
  });
  // Only read stdin when it is the prompt or the body: a script's inherited stdin may never end.
  const stdinText = values.prompt !== undefined || io.stdin.isTTY ? '' : await readStdin(io);
  let body: Record<string, unknown>;
  if (!values.model && !values.prompt && stdinText.trim().startsWith('{')) {
    try {
      body = JSON.parse(stdinText) as Record<string, unknown>; // a whole job body on stdin
    } catch (err) {
      throw new ClientError(EXIT.usage, `stdin is not valid JSON: ${(err as Error).message}`);
    }
  } else {
    const prompt = values.prompt ?? stdinText;
    if (!values.model) throw new ClientError(EXIT.usage, '--model is required');
    if (!prompt.trim()) throw new ClientError(EXIT.usage, 'a prompt is required (--prompt or stdin)');
    body = { model: values.model };
    if (values.chat) {
      body.messages = [...(values.system ? [{ role: 'system', content: values.system }] : []), { role: 'user', content: prompt }];
    } else {
      body.prompt = prompt;
      if (values.system) body.system = values.system;
    }
  }
  const parseJsonFlag = (name: string, text: string | undefined) => {
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text);
    } catch {
      throw new ClientError(EXIT.usage, `--${name} must be JSON`);
    }
  };
  // Sent as typed unless it is an integer, so the server names a bad value (Number('urgent') would be null, i.e. 0).
  if (values.priority !== undefined) body.priority = /^-?\d+$/.test(values.priority.trim()) ? Number(values.priority) : values.priority;
  if (values.webhook) body.state_webhook_url = values.webhook;
  if (values.metadata !== undefined) body.metadata = parseJsonFlag('metadata', values.metadata);
  if (values.options !== undefined) body.options = parseJsonFlag('options', values.options);
  const headers: Record<string, string> = values['idempotency-key'] ? { 'idempotency-key': values['idempotency-key'] } : {};
  let { body: job } = await client.request('POST', '/jobs', body, headers);
  if (!values.wait) {
    io.stdout.write(values.json ? JSON.stringify(job) + '\n' : `${job.id}\n`);
    return EXIT.ok;
  }
  const showProgress = Boolean((io.stderr as { isTTY?: boolean }).isTTY) && !values.json;
  while (!TERMINAL.has(job.state)) {
    if (showProgress) {
      const where = job.state === 'queued' ? `queued, position ${job.queue_position ?? '?'}` : 'working';
      io.stderr.write(`\r\x1b[K${job.id}: ${where}`);
    }
    ({ body: job } = await client.request('GET', `/jobs/${encodeURIComponent(job.id)}?wait=${showProgress ? 1 : 30}`));
  }
  if (showProgress) io.stderr.write('\r\x1b[K');
  if (values.json) io.stdout.write(JSON.stringify(job) + '\n');
  else if (job.state === 'completed') io.stdout.write(answerText(job) + '\n');
  else io.stderr.write(`${job.id} ${job.state}${job.error?.message ? `: ${job.error.message}` : ''}\n`);
  return job.state === 'completed' ? EXIT.ok : EXIT.failure;
}

async function list(client: Client, argv: readonly string[], io: CliIo): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: { state: { type: 'string' }, model: { type: 'string' }, key: { type: 'string' }, limit: { type: 'string' }, cursor: { type: 'string' }, json: { type: 'boolean' } },
  });
  const q = new URLSearchParams();
  for (const k of ['state', 'model', 'key', 'limit', 'cursor'] as const) if (values[k]) q.set(k, values[k]!);
  const { body } = await client.request('GET', `/jobs${q.size ? `?${q}` : ''}`);
  if (values.json) {
    io.stdout.write(JSON.stringify(body) + '\n');
    return EXIT.ok;
  }
  for (const j of body.jobs as any[]) {
    io.stdout.write(`${j.id}  ${String(j.state).padEnd(9)}  ${String(j.model).padEnd(24)}  p${j.priority}  ${j.created_at}\n`);
  }
  if (body.next_cursor) io.stdout.write(`more: foreman jobs --cursor ${body.next_cursor}\n`);
  return EXIT.ok;
}

async function showOrCancel(command: 'show' | 'cancel', client: Client, argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...argv], allowPositionals: true, options: { json: { type: 'boolean' }, result: { type: 'boolean' } },
  });
  const id = positionals[0];
  if (!id || positionals.length > 1) throw new ClientError(EXIT.usage, `usage: foreman ${command} ID`);
  const path = `/jobs/${encodeURIComponent(id)}`;
  const { body: job } = command === 'show' ? await client.request('GET', path) : await client.request('POST', `${path}/cancel`);
  if (values.result && command === 'show') io.stdout.write(answerText(job) + '\n');
  else if (values.json || command === 'show') io.stdout.write(JSON.stringify(job, null, values.json ? 0 : 2) + '\n');
  else io.stdout.write(`${job.id} ${job.state}\n`);
  return EXIT.ok;
}

async function keys(client: Client, argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({ args: [...argv], allowPositionals: true, options: { json: { type: 'boolean' } } });
  if (positionals[0] === 'hash') {
    // What token_sha256 holds, so the keys file need not hold the secret; the token never leaves this process.
    const token = positionals[1] ?? (io.stdin.isTTY ? '' : (await readStdin(io)).trim());
    if (!token) throw new ClientError(EXIT.usage, 'usage: foreman keys hash TOKEN   (or the token on stdin)');
    io.stdout.write(createHash('sha256').update(token).digest('hex') + '\n');
    return EXIT.ok;
  }
  if (positionals.length > 0) throw new ClientError(EXIT.usage, 'usage: foreman keys [--json] | foreman keys hash TOKEN');
  const { body } = await client.request('GET', '/keys');
  io.stdout.write(values.json ? JSON.stringify(body) + '\n' : renderKeys(body as KeysResponse));
  return EXIT.ok;
}
