// Tests for lib/http/path.ts (SPEC §8): the path foreman routes on, pure.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { normalizeTarget } from '../lib/http/path.js';

describe('normalizeTarget', () => {
  it('keeps a plain path as it is (the fast path) and gives it no query', () => {
    for (const raw of ['/api/chat', '/v1/chat/completions', '/jobs/job_0mx8txc2m00057650fd6', '/api/ps', '/health']) {
      assert.deepEqual(normalizeTarget(raw), { pathname: raw, search: '' });
    }
  });

  it('decodes, resolves dot segments and collapses slashes for everything else', () => {
    for (const raw of ['/api/%63hat', '//api/chat', '/api/./chat', '/api/x/../chat', '/api%2Fchat', 'http://h:1/api/chat']) {
      assert.equal(normalizeTarget(raw)?.pathname, '/api/chat', raw);
    }
    assert.deepEqual(normalizeTarget('/api/tags/'), { pathname: '/api/tags/', search: '' }, 'a trailing slash stays');
    assert.deepEqual(normalizeTarget('/jobs?state=queued#x'), { pathname: '/jobs', search: '?state=queued' });
    assert.equal(normalizeTarget('/api/blobs/sha256:abc')?.pathname, '/api/blobs/sha256:abc');
    assert.equal(normalizeTarget('/api/%zz'), null, 'a bad escape');
    assert.equal(normalizeTarget('/api/%00chat'), null, 'a NUL');
  });
});
