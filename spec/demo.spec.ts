import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../bin/foreman.js', import.meta.url));

/** Runs `foreman ARGS` from the build, collecting lines until `ready` matches one. */
function run(args: string[], ready: RegExp) {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FOREMAN_TOKENS: '' } });
  const out: string[] = [];
  const err: string[] = [];
  const exited = once(child, 'close').then(([code]) => code as number | null);
  const seen = new Promise<void>((resolve) => {
    const take = (into: string[]) => (line: string) => {
      into.push(line);
      if (ready.test(line)) resolve();
    };
    createInterface({ input: child.stdout! }).on('line', take(out));
    createInterface({ input: child.stderr! }).on('line', take(err));
  });
  return { child, out, err, exited, ready: Promise.race([seen, exited.then(() => { throw new Error(`exited early:\n${out.join('\n')}\n${err.join('\n')}`); })]) };
}

/**
 * Starts `foreman demo` on a free port and reads what it printed: the /ui address with its token,
 * and the data dir (removed here if the run fails before the SIGINT that removes it).
 */
async function startDemo(t: TestContext, args: string[]) {
  const demo = run(['demo', '--listen', '127.0.0.1:0', ...args], /Ctrl-C/);
  let dataDir: string | undefined;
  t.after(() => {
    demo.child.kill('SIGKILL');
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });
  await demo.ready;
  const text = demo.out.join('\n');
  dataDir = /data dir\s+(\S+) \(removed/.exec(text)?.[1];
  const ui = /open\s+(http:\/\/127\.0\.0\.1:\d+)\/ui#token=(\S+)/.exec(text);
  assert.ok(ui && dataDir, text);
  return { demo, text, url: ui[1]!, token: ui[2]!, dataDir };
}

describe('foreman demo', () => {
  it('runs foreman in front of the simulator with a fresh token and a temporary data dir it removes at exit', async (t) => {
    const { demo, text, url, token, dataDir } = await startDemo(t, []);
    assert.ok(token.length >= 20, 'a random token, not a fixed one');
    assert.match(text, new RegExp(`curl -H 'Authorization: Bearer ${token}' ${url}/api/chat -d `));
    assert.ok(existsSync(dataDir), text);

    // The printed curl line's request answers from the simulator through foreman.
    const res = await fetch(`${url}/api/chat`, {
      method: 'POST', headers: { authorization: `Bearer ${token}` },
      body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'Why queue?' }], stream: false }),
    });
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { done: boolean }).done, true);
    assert.equal((await fetch(`${url}/api/tags`)).status, 401, 'the token is required');
    // The printed agent line works: a claude-* model runs as llama3.2 by the demo's default alias.
    assert.match(text, new RegExp(`ANTHROPIC_BASE_URL=${url} ANTHROPIC_AUTH_TOKEN=${token} claude`));
    const agent = await fetch(`${url}/v1/messages`, {
      method: 'POST', headers: { 'x-api-key': token! },
      body: JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 64, messages: [{ role: 'user', content: 'Why queue?' }] }),
    });
    assert.equal(agent.status, 200);
    assert.equal(((await agent.json()) as { model: string }).model, 'llama3.2');

    demo.child.kill('SIGINT');
    assert.equal(await demo.exited, 0);
    assert.equal(existsSync(dataDir), false);
  });

  it('runs several simulated hosts behind foreman with --hosts', async (t) => {
    const { demo, text, url, token } = await startDemo(t, ['--hosts', '2']);
    assert.match(text, /in front of 2 simulated Ollama hosts at http:\/\/127\.0\.0\.1:\d+,http:\/\/127\.0\.0\.1:\d+/);
    const queue = (await (await fetch(`${url}/queue`, { headers: { authorization: `Bearer ${token}` } })).json()) as { hosts: unknown[] };
    assert.equal(queue.hosts.length, 2);
    demo.child.kill('SIGINT');
    assert.equal(await demo.exited, 0);
  });

  it('foreman serve says at start that no Ollama answers, and what to run instead', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'foreman-no-ollama-'));
    // Port 9 (discard) on loopback: nothing listens there.
    const serve = run(['serve', '--listen', '127.0.0.1:0', '--upstream', 'http://127.0.0.1:9', '--data-dir', dir], /foreman\.js demo/);
    t.after(() => {
      serve.child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    });
    await serve.ready;
    const text = serve.err.join('\n');
    assert.match(text, /no Ollama answers at http:\/\/127\.0\.0\.1:9/);
    assert.match(text, /ollama serve/);
    serve.child.kill('SIGTERM');
    assert.equal(await serve.exited, 0);
  });

  it('keeps serving when whoever read its output has gone (stdout and stderr closed: EPIPE)', async (t) => {
    const { demo, url, token } = await startDemo(t, []);
    const exit = once(demo.child, 'exit').then(([code]) => code as number | null);
    // The reader of both pipes goes away, as when `foreman demo | head` ends its head.
    demo.child.stdout!.destroy();
    demo.child.stderr!.destroy();
    // Every request logs lines, and they are written 10 ms later: several rounds reach the closed pipes.
    for (let i = 0; i < 5; i++) {
      const res = await fetch(`${url}/api/chat`, {
        method: 'POST', headers: { authorization: `Bearer ${token}` },
        body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], options: { num_predict: 2 }, stream: false }),
      });
      assert.equal(res.status, 200);
      assert.equal(((await res.json()) as { done?: boolean }).done, true);
      await new Promise((r) => setTimeout(r, 30));
    }
    assert.equal((await fetch(`${url}/health`)).status, 200);
    assert.equal(demo.child.exitCode, null, 'still running');
    demo.child.kill('SIGINT');
    assert.equal(await exit, 0, 'a clean stop when asked, not a crash on the closed pipe');
  });
});
