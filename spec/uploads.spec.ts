import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { startSim } from '../lib/sim/index.js';
import { startStack, readNdjson, TOKEN } from './support/stack.js';
import { spawnForeman } from './support/jobs-process.js';

const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** A POST whose body is a stream, with backpressure (node:http; fetch would want duplex). */
function upload(url: string, path: string, body: Readable, length?: number) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const headers: Record<string, string | number> = { authorization: `Bearer ${TOKEN}` };
    if (length !== undefined) headers['content-length'] = length;
    const req = request(url + path, { method: 'POST', headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, body: text }));
    });
    req.on('error', reject);
    body.pipe(req);
  });
}

/** `total` bytes made of one seeded 1 MiB block (its index mixed into the first bytes), generated as read. */
function generated(total: number): { stream: () => Readable; digest: string } {
  const block = Buffer.alloc(1 << 20);
  for (let i = 0; i < block.length; i++) block[i] = (i * 2654435761) >>> 24;
  const chunkAt = (n: number) => {
    const b = Buffer.from(block);
    b.writeUInt32BE(n, 0);
    return b.subarray(0, Math.min(block.length, total - n * block.length));
  };
  const count = Math.ceil(total / block.length);
  const hash = createHash('sha256');
  for (let n = 0; n < count; n++) hash.update(chunkAt(n));
  return {
    digest: `sha256:${hash.digest('hex')}`,
    stream: () => {
      let n = 0;
      return new Readable({
        read() {
          this.push(n < count ? chunkAt(n++) : null);
        },
      });
    },
  };
}

describe('uploads through foreman (SPEC §14)', () => {
  it('streams a blob upstream, where its digest is checked, with max_body not applying', async (t) => {
    const stack = await startStack(t, { config: { max_body: 1024 * 1024 } });
    const data = Buffer.alloc(3 * 1024 * 1024, 7);
    const digest = sha256(data);
    const head = await stack.call(`/api/blobs/${digest}`, { method: 'HEAD' });
    assert.equal(head.status, 404);
    const created = await upload(stack.url, `/api/blobs/${digest}`, Readable.from([data.subarray(0, 1000), data.subarray(1000)]));
    assert.equal(created.status, 201);
    assert.equal((await stack.call(`/api/blobs/${digest}`, { method: 'HEAD' })).status, 200);
    // A blob upstream already has: answered at once.
    assert.equal((await upload(stack.url, `/api/blobs/${digest}`, Readable.from([data]), data.length)).status, 200);
    const wrong = await upload(stack.url, `/api/blobs/${sha256(Buffer.from('other'))}`, Readable.from([data]), data.length);
    assert.equal(wrong.status, 400);
    assert.match(JSON.parse(wrong.body).error, /digest mismatch/);
    assert.equal(stack.sim.stats().blobs.received_bytes, 2 * data.length); // the known blob's body was never read
    // Other bodies still have the limit.
    const big = await stack.call('/api/show', { method: 'POST', body: JSON.stringify({ model: 'x'.repeat(2 * 1024 * 1024) }) });
    assert.equal(big.status, 413);
  });

  it('creates a model from uploaded files and pushes it, passing upstream\'s answers back unchanged', async (t) => {
    const stack = await startStack(t);
    const gguf = Buffer.from('GGUF fake weights');
    const digest = sha256(gguf);
    assert.equal((await upload(stack.url, `/api/blobs/${digest}`, Readable.from([gguf]))).status, 201);
    const created = await stack.call('/api/create', { json: { model: 'mine:1b', files: { 'model.gguf': digest } } });
    assert.equal(created.status, 200);
    assert.equal(created.headers.get('content-type'), 'application/x-ndjson');
    const { lines } = await readNdjson(created);
    assert.deepEqual(lines.map((l) => l.status), ['parsing GGUF', `using existing layer ${digest}`, 'writing manifest', 'success']);
    const tags = await (await stack.call('/api/tags')).json();
    assert.ok(tags.models.some((m: { name: string }) => m.name === 'mine:1b'));
    const missing = await stack.call('/api/create', { json: { model: 'other', files: { 'x.gguf': sha256(Buffer.from('absent')) } } });
    assert.equal(missing.status, 400);
    assert.match((await missing.json()).error, /not found/);
    const pushed = await stack.call('/api/push', { json: { model: 'mine:1b' } });
    assert.equal(pushed.status, 200);
    assert.equal((await readNdjson(pushed)).lines.at(-1).status, 'success');
  });

  it('carries a 1 GB upload with foreman\'s memory bounded (RSS high-water mark of the process)', async (t) => {
    const sim = await startSim({ loadMs: 0 });
    const dataDir = await mkdtemp(join(tmpdir(), 'foreman-upload-'));
    const fp = await spawnForeman(['--upstream', sim.url, '--data-dir', dataDir, '--max-body', '1MiB']);
    t.after(async () => {
      await fp.kill9();
      await sim.close();
      await rm(dataDir, { recursive: true, force: true });
    });
    assert.ok(fp.url, fp.stderr.join('\n'));
    const hwm = async () => Number(/VmHWM:\s+(\d+) kB/.exec(await readFile(`/proc/${fp.pid}/status`, 'utf8'))![1]) / 1024;
    await fp.call('/api/version'); // warm: the first request's code paths are loaded before the baseline
    const before = await hwm();
    const size = 1024 * 1024 * 1024;
    const body = generated(size);
    const res = await upload(fp.url, `/api/blobs/${body.digest}`, body.stream(), size);
    assert.equal(res.status, 201, res.body);
    assert.equal(sim.stats().blobs.received_bytes, size);
    const after = await hwm();
    t.diagnostic(`1 GiB upload: foreman VmHWM ${before.toFixed(0)} MB before, ${after.toFixed(0)} MB after`);
    assert.ok(after < 200, `foreman's RSS peaked at ${after.toFixed(0)} MB`);
    assert.ok(after - before < 64, `the upload raised foreman's RSS peak by ${(after - before).toFixed(0)} MB`);
  });
});
