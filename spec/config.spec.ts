import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CONFIG_KEYS, ConfigError, configHelp, configMarkdown, parseConfig, parseDuration, parseSize, type Config } from '../lib/config.js';
import { helpText } from '../lib/cli/cli.js';
import { readmeConfigTable } from './support/readme-config.js';

function problemsOf(argv: string[], env: NodeJS.ProcessEnv = {}): readonly string[] {
  try {
    parseConfig(argv, env);
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.problems;
  }
  assert.fail('expected a ConfigError');
}

describe('config', () => {
  it('README configuration table is the one generated from the key table (run `npm run docs` to refresh it)', () => {
    assert.equal(readmeConfigTable(), configMarkdown());
  });

  it('--help lists every key with its flag, variable and default', () => {
    const help = helpText();
    assert.ok(help.includes(configHelp()));
    for (const [field, decl] of Object.entries(CONFIG_KEYS)) {
      const name = ('name' in decl && decl.name) || field;
      assert.ok(help.includes(`--${name.replaceAll('_', '-')}`), field);
      assert.ok(help.includes(`FOREMAN_${name.toUpperCase()}`), field);
    }
  });

  it('takes defaults, then FOREMAN_* variables, then flags', () => {
    assert.equal(parseConfig([], {}).parallel, 1);
    assert.equal(parseConfig([], { FOREMAN_PARALLEL: '3' }).parallel, 3);
    assert.equal(parseConfig(['--parallel', '5'], { FOREMAN_PARALLEL: '3' }).parallel, 5);
    assert.equal(parseConfig(['--parallel=6'], {}).parallel, 6);
  });

  it('gives each kind its type: sizes, durations under their own names, lists, pairs, listen', () => {
    const c: Readonly<Config> = parseConfig(
      ['--max-body', '2KiB', '--retention', '2h', '--shutdown-grace', '5s', '--origins', 'a, b', '--aliases', 'claude-*=qwen3', '--listen', '[::1]:9'],
      { FOREMAN_WEBHOOK_ALLOW: '10.0.0.0/8' },
    );
    assert.equal(c.max_body, 2048);
    assert.equal(c.retention_ms, 7_200_000);
    assert.equal(c.shutdown_grace_ms, 5_000);
    assert.deepEqual(c.origins, ['a', 'b']);
    assert.deepEqual(c.webhook_allow, ['10.0.0.0/8']);
    assert.deepEqual(c.aliases, [{ pattern: 'claude-*', target: 'qwen3' }]);
    assert.deepEqual(c.listen, { host: '::1', port: 9 });
    assert.ok(Object.isFrozen(c));
  });

  it('reads a bare boolean flag as true and still takes an explicit value', () => {
    assert.equal(parseConfig(['--unload-on-switch', 'false'], {}).unload_on_switch, false);
    assert.equal(parseConfig(['--insecure'], {}).insecure, true);
    assert.equal(parseConfig(['--insecure', '--parallel', '2'], {}).parallel, 2);
  });

  it('reports every problem at once, naming where each value came from', () => {
    const problems = problemsOf(['--parallel', 'x', '--nope', '--webhook-secret', 'plain', '--aliases', 'a='], { FOREMAN_MAX_BODY: 'lots' });
    assert.deepEqual(problems, [
      'unknown flag --nope (see --help)',
      "--parallel: expected an integer 1..64, got 'x'",
      "--webhook-secret: expected whsec_ followed by base64, got 'plain'",
      "FOREMAN_MAX_BODY: expected a size such as 1048576 or 64MiB, got 'lots'",
      "--aliases: expected pattern=model, got 'a='",
    ]);
  });

  it('refuses a non-loopback listen address without a token unless --insecure', () => {
    assert.match(problemsOf(['--listen', '0.0.0.0:11435']).join('\n'), /not a loopback address/);
    assert.equal(parseConfig(['--listen', '0.0.0.0:11435', '--insecure'], {}).insecure, true);
    assert.deepEqual(parseConfig(['--listen', '0.0.0.0:11435', '--tokens', 't'], {}).tokens, ['t']);
  });

  it('joins --tokens with the lines of --token-file, skipping comments', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'foreman-config-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'tokens');
    writeFileSync(file, '# ops\nb\n\na\n');
    assert.deepEqual(parseConfig(['--tokens', 'a', '--token-file', file], {}).tokens, ['a', 'b']);
    assert.match(problemsOf(['--token-file', join(dir, 'missing')]).join('\n'), /token_file: cannot read/);
  });

  it('parses sizes and durations with units, and refuses the rest', () => {
    assert.equal(parseSize('64MiB'), 64 * 1024 * 1024);
    assert.equal(parseSize('1.5k'), 1500);
    assert.equal(parseSize('ten'), undefined);
    assert.equal(parseDuration('7d'), 7 * 86_400_000);
    assert.equal(parseDuration('250ms'), 250);
    assert.equal(parseDuration('30'), undefined);
  });
});
