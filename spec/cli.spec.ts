// The client commands and serve's refusals (SPEC §10), run in-process through runCli with fake
// io streams against a real foreman + simulator stack.
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import { PassThrough, Writable } from 'node:stream';
import { EXIT, runCli, type CliIo } from '../lib/cli/cli.js';
import { silentLogger } from '../lib/log.js';
import { startStack, TOKEN, type Stack } from './support/stack.js';
import { postJob, waitJob } from './support/jobs-receiver.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function sink(): Writable & { text: string } {
  const w = new Writable({
    write(chunk, _enc, cb) {
      w.text += String(chunk);
      cb();
    },
  }) as Writable & { text: string };
  w.text = '';
  return w;
}

/**
 * runCli with captured output. stdin is a pipe that never ends unless `input` is given,
 * like a script's inherited stdin: a command that does not need stdin must not wait for it.
 */
async function cli(argv: string[], env: NodeJS.ProcessEnv, input?: string): Promise<Run> {
  const stdout = sink();
  const stderr = sink();
  const stdin = new PassThrough();
  if (input !== undefined) stdin.end(input);
  const io: CliIo = { stdout, stderr, stdin };
  const code = await runCli(argv, env, io);
  stdin.destroy();
  return { code, stdout: stdout.text, stderr: stderr.text };
}

async function stackOf(t: TestContext): Promise<{ stack: Stack; env: NodeJS.ProcessEnv }> {
  const stack = await startStack(t, { deps: { log: silentLogger } });
  return { stack, env: { FOREMAN_URL: stack.url, FOREMAN_TOKEN: TOKEN } };
}

/** A port nobody listens on: bind one, then close it. */
async function deadPort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('foreman submit', () => {
  it('--wait prints the answer text and exits 0, with stdin left open', { timeout: 20_000 }, async (t) => {
    const { stack, env } = await stackOf(t);
    const run = await cli(['submit', '--model', 'llama3.2', '--prompt', 'hi', '--wait'], env);
    assert.equal(run.code, EXIT.ok, run.stderr);
    const [job] = (await stack.call('/jobs').then((r) => r.json() as Promise<any>)).jobs;
    assert.equal(job.state, 'completed');
    assert.equal(run.stdout, `${job.result.response}\n`);
    assert.ok(job.result.response.length > 0);
  });

  it('without --wait prints the new job id; --chat --json prints the record', { timeout: 20_000 }, async (t) => {
    const { stack, env } = await stackOf(t);
    const run = await cli(['submit', '-m', 'qwen3', '-p', 'hello', '--priority', '5', '--metadata', '{"k":1}'], env);
    assert.equal(run.code, EXIT.ok, run.stderr);
    const id = run.stdout.trim();
    assert.match(id, /^job_[0-9a-z]+$/);
    const job = await waitJob(stack, id);
    assert.equal(job.kind, 'generate');
    assert.equal(job.priority, 5);
    assert.deepEqual(job.metadata, { k: 1 });
    const chat = await cli(['submit', '-m', 'llama3.2', '-p', 'hello', '--chat', '--json'], env);
    assert.equal(chat.code, EXIT.ok);
    const record = JSON.parse(chat.stdout);
    assert.equal(record.kind, 'chat');
    assert.equal(record.model, 'llama3.2', 'the name as sent');
  });

  it('reads the prompt, or a whole job body, from stdin', { timeout: 20_000 }, async (t) => {
    const { stack, env } = await stackOf(t);
    const fromStdin = await cli(['submit', '--model', 'llama3.2'], env, 'a prompt from a pipe\n');
    assert.equal(fromStdin.code, EXIT.ok, fromStdin.stderr);
    const body = JSON.stringify({ model: 'mistral', messages: [{ role: 'user', content: 'hi' }] });
    const whole = await cli(['submit', '--wait', '--json'], env, body);
    assert.equal(whole.code, EXIT.ok, whole.stderr);
    const job = JSON.parse(whole.stdout);
    assert.equal(job.state, 'completed');
    assert.equal(job.model, 'mistral');
    assert.equal((await waitJob(stack, fromStdin.stdout.trim())).state, 'completed');
  });

  it('exits 1 when the job fails, with the error on stderr', { timeout: 20_000 }, async (t) => {
    const { env } = await stackOf(t);
    const run = await cli(['submit', '--model', 'no-such-model', '--prompt', 'hi', '--wait'], env);
    assert.equal(run.code, EXIT.failure);
    assert.equal(run.stdout, '');
    assert.match(run.stderr, /failed: .*no-such-model/);
  });

  it('reports bad input as usage errors (exit 2) and submits nothing', { timeout: 20_000 }, async (t) => {
    const { stack, env } = await stackOf(t);
    const noModel = await cli(['submit', '--prompt', 'hi'], env);
    assert.equal(noModel.code, EXIT.usage);
    assert.match(noModel.stderr, /--model is required/);
    const badPriority = await cli(['submit', '--model', 'llama3.2', '--prompt', 'hi', '--priority', 'urgent'], env);
    assert.equal(badPriority.code, EXIT.usage, badPriority.stderr);
    assert.match(badPriority.stderr, /priority/);
    const badMetadata = await cli(['submit', '--model', 'llama3.2', '--prompt', 'hi', '--metadata', '{nope'], env);
    assert.equal(badMetadata.code, EXIT.usage);
    assert.match(badMetadata.stderr, /--metadata must be JSON/);
    const unknownFlag = await cli(['submit', '--modle', 'llama3.2'], env);
    assert.equal(unknownFlag.code, EXIT.usage);
    assert.match(unknownFlag.stderr, /--modle/);
    assert.equal((await stack.call('/jobs').then((r) => r.json() as Promise<any>)).jobs.length, 0);
  });
});

describe('foreman jobs, show, cancel', () => {
  it('lists, shows and refuses to cancel a finished job with stable exit codes', { timeout: 20_000 }, async (t) => {
    const { stack, env } = await stackOf(t);
    const { job } = await postJob(stack, { model: 'llama3.2', prompt: 'hi' });
    const done = await waitJob(stack, job.id);

    const list = await cli(['jobs', '--json'], env);
    assert.equal(list.code, EXIT.ok);
    const listed = JSON.parse(list.stdout);
    assert.deepEqual(listed.jobs.map((j: any) => j.id), [job.id]);
    assert.equal(listed.next_cursor, null);
    const text = await cli(['jobs', '--state', 'completed'], env);
    assert.match(text.stdout, new RegExp(`^${job.id}\\s+completed\\s+llama3.2\\s`));
    const none = await cli(['jobs', '--state', 'failed', '--json'], env);
    assert.deepEqual(JSON.parse(none.stdout).jobs, []);

    const show = await cli(['show', job.id, '--json'], env);
    assert.equal(show.code, EXIT.ok);
    assert.deepEqual(JSON.parse(show.stdout), done);
    const result = await cli(['show', job.id, '--result'], env);
    assert.equal(result.stdout, `${done.result.response}\n`);

    const cancel = await cli(['cancel', job.id], env);
    assert.equal(cancel.code, EXIT.conflict);
    assert.match(cancel.stderr, /409.*completed/);
    const missing = await cli(['show', 'nope'], env);
    assert.equal(missing.code, EXIT.notFound);
    assert.match(missing.stderr, /404/);
    assert.equal((await cli(['cancel', 'nope'], env)).code, EXIT.notFound);
    assert.equal((await cli(['show'], env)).code, EXIT.usage);
  });

  it('cancels a queued job and prints its new state', { timeout: 20_000 }, async (t) => {
    const { stack, env } = await stackOf(t);
    const { job: holder } = await postJob(stack, { model: 'llama3.2', prompt: 'hold', sim: { fault: 'stall_before' } });
    const { job } = await postJob(stack, { model: 'llama3.2', prompt: 'behind' });
    const run = await cli(['cancel', job.id], env);
    assert.equal(run.code, EXIT.ok, run.stderr);
    assert.equal(run.stdout, `${job.id} cancelled\n`);
    assert.equal((await cli(['cancel', holder.id], env)).code, EXIT.ok);
  });

  it('exits 3 when foreman cannot be reached, and 3 for a wrong token', { timeout: 20_000 }, async (t) => {
    const port = await deadPort();
    const run = await cli(['jobs'], { FOREMAN_URL: `http://127.0.0.1:${port}` });
    assert.equal(run.code, EXIT.unavailable);
    assert.match(run.stderr, /cannot reach foreman at http:\/\/127\.0\.0\.1:\d+/);
    const { env } = await stackOf(t);
    const denied = await cli(['jobs'], { ...env, FOREMAN_TOKEN: 'wrong' });
    assert.equal(denied.code, EXIT.unavailable);
    assert.match(denied.stderr, /401/);
  });
});

describe('foreman --help and serve', () => {
  it('--help lists every config key as a flag and an environment variable', async () => {
    const run = await cli(['--help'], {});
    assert.equal(run.code, EXIT.ok);
    for (const flag of ['--max-queue', '--aging-ms', '--webhook-secret', '--webhook-max-result', '--max-attempts', '--retention',
      '--data-dir', '--shutdown-grace', '--insecure', '--listen', '--upstream', '--tokens', '--token-file', '--parallel']) {
      assert.ok(run.stdout.includes(flag), `--help mentions ${flag}`);
    }
    assert.ok(run.stdout.includes('FOREMAN_MAX_QUEUE'));
    assert.ok(run.stdout.includes('FOREMAN_URL'));
    for (const cmd of ['submit', 'jobs', 'show ID', 'cancel ID', 'status', 'sim', 'launchd']) assert.ok(run.stdout.includes(cmd), cmd);
    assert.deepEqual(await cli(['serve', '--help'], {}), run);
  });

  it('refuses to serve on a non-loopback address without a token, naming --insecure (exit 2)', async () => {
    const run = await cli(['serve', '--listen', '0.0.0.0:0'], {});
    assert.equal(run.code, EXIT.usage);
    assert.match(run.stderr, /not a loopback address/);
    assert.match(run.stderr, /--insecure/);
    const viaEnv = await cli(['serve'], { FOREMAN_LISTEN: '0.0.0.0:0' });
    assert.equal(viaEnv.code, EXIT.usage);
  });

  it('reports a bad flag value with the flag name, and every problem at once', async () => {
    const run = await cli(['--parallel', 'x'], {});
    assert.equal(run.code, EXIT.usage);
    assert.match(run.stderr, /--parallel: expected an integer 1\.\.64, got 'x'/);
    const many = await cli(['serve', '--parallel', '0', '--max-body', 'huge', '--log-format', 'xml', '--bogus'], {});
    assert.equal(many.code, EXIT.usage);
    for (const part of ['--parallel', '--max-body', '--log-format', '--bogus']) assert.ok(many.stderr.includes(part), part);
    const env = await cli(['serve'], { FOREMAN_AGING_MS: 'soon' });
    assert.match(env.stderr, /FOREMAN_AGING_MS: expected an integer/);
  });

  it('rejects an unknown command with exit 2', async () => {
    const run = await cli(['frobnicate'], {});
    assert.equal(run.code, EXIT.usage);
    assert.match(run.stderr, /unknown command 'frobnicate'/);
  });
});

describe('foreman launchd', () => {
  it('prints a LaunchAgent for the given configuration and how to load it', async () => {
    const run = await cli(['launchd', '--tokens', 'a&b', '--parallel', '2', '--shutdown-grace', '60s'], { FOREMAN_DATA_DIR: '/tmp/fm<x>' });
    assert.equal(run.code, EXIT.ok);
    assert.match(run.stdout, /^<\?xml version="1\.0" encoding="UTF-8"\?>/);
    assert.match(run.stdout, /<string>serve<\/string>\s*<string>--tokens<\/string>\s*<string>a&amp;b<\/string>/);
    assert.match(run.stdout, /<key>FOREMAN_DATA_DIR<\/key>\s*<string>\/tmp\/fm&lt;x&gt;<\/string>/);
    assert.match(run.stdout, /<key>ExitTimeOut<\/key>\s*<integer>75<\/integer>/, 'launchd waits past shutdown_grace');
    assert.match(run.stdout, /<key>KeepAlive<\/key>\s*<true\/>/);
    assert.match(run.stderr, /launchctl bootstrap gui\/\$\(id -u\)/);
  });

  it('refuses a configuration that would not start', async () => {
    const run = await cli(['launchd', '--parallel', 'x'], {});
    assert.equal(run.code, EXIT.usage);
    assert.match(run.stderr, /--parallel: expected an integer/);
  });
});

describe('foreman status', () => {
  it('prints the queue as text, and as JSON with --json', async (t) => {
    const { stack, env } = await stackOf(t);
    await (await stack.call('/api/generate', { json: { model: 'qwen3', prompt: 'x', stream: false, think: false } })).text();
    const text = await cli(['status'], env);
    assert.equal(text.code, EXIT.ok);
    assert.match(text.stdout, /loaded\s+qwen3:latest/);
    assert.doesNotMatch(text.stdout, /\x1b\[/, 'no escape codes when stdout is not a terminal');
    const json = await cli(['status', '--json'], env);
    assert.equal(JSON.parse(json.stdout).loaded_model, 'qwen3:latest');
  });
});
