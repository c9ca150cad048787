import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { launchAgentInstructions, renderLaunchAgent } from '../lib/ops/launchd.js';

type PlistValue = string | number | boolean | PlistValue[] | { [key: string]: PlistValue };
interface XmlNode { name: string; children: Array<XmlNode | string> }

/**
 * A strict little XML reader for what a plist may contain: prolog, DOCTYPE,
 * elements without attributes (bar <plist version>), text with the five
 * predefined entities. Anything else throws, so the test fails on malformed XML.
 */
function parseXml(text: string): XmlNode {
  const prolog = '<?xml version="1.0" encoding="UTF-8"?>\n' +
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n';
  assert.ok(text.startsWith(prolog), 'XML declaration and Apple plist DOCTYPE');
  const root: XmlNode = { name: '#document', children: [] };
  const stack = [root];
  const entities: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
  const token = /<(\/?)([A-Za-z]+)((?: [a-z]+="[^"<&]*")*)\s*(\/?)>|([^<]+)/gy;
  token.lastIndex = prolog.length;
  while (token.lastIndex < text.length) {
    const start = token.lastIndex;
    const m = token.exec(text);
    if (!m) throw new Error(`malformed XML at ${start}: ${JSON.stringify(text.slice(start, start + 30))}`);
    const top = stack[stack.length - 1]!;
    if (m[5] !== undefined) {
      if (/[<>]/.test(m[5])) throw new Error(`raw markup character in text: ${m[5]}`);
      const decoded = m[5].replace(/&([a-z]+);|&/g, (_all, name: string | undefined) => {
        if (!name || !(name in entities)) throw new Error(`bad entity or bare & in ${JSON.stringify(m[5])}`);
        return entities[name]!;
      });
      top.children.push(decoded);
    } else if (m[1]) {
      if (top.name !== m[2]) throw new Error(`</${m[2]}> closes <${top.name}>`);
      stack.pop();
    } else {
      if (m[3] && m[2] !== 'plist') throw new Error(`unexpected attributes on <${m[2]}>`);
      const node: XmlNode = { name: m[2]!, children: [] };
      top.children.push(node);
      if (!m[4]) stack.push(node);
    }
  }
  if (stack.length !== 1) throw new Error(`unclosed <${stack[stack.length - 1]!.name}>`);
  const elements = root.children.filter((c): c is XmlNode => typeof c !== 'string');
  assert.equal(elements.length, 1, 'one root element');
  assert.ok(root.children.every((c) => typeof c !== 'string' || c.trim() === ''), 'no text outside the root');
  return elements[0]!;
}

function plistValue(node: XmlNode): PlistValue {
  const kids = node.children.filter((c): c is XmlNode => typeof c !== 'string');
  const text = node.children.filter((c): c is string => typeof c === 'string').join('');
  switch (node.name) {
    case 'string': return text;
    case 'integer': return Number(text);
    case 'true': return true;
    case 'false': return false;
    case 'array': return kids.map(plistValue);
    case 'dict': {
      const out: Record<string, PlistValue> = {};
      for (let i = 0; i < kids.length; i += 2) {
        assert.equal(kids[i]!.name, 'key');
        out[plistValue({ ...kids[i]!, name: 'string' }) as string] = plistValue(kids[i + 1]!);
      }
      return out;
    }
    default: throw new Error(`unexpected plist element <${node.name}>`);
  }
}

function readPlist(text: string): PlistValue {
  const root = parseXml(text);
  assert.equal(root.name, 'plist');
  const kids = root.children.filter((c): c is XmlNode => typeof c !== 'string');
  assert.equal(kids.length, 1);
  return plistValue(kids[0]!);
}

const input = {
  nodePath: '/opt/homebrew/bin/node',
  scriptPath: '/Users/ada/foreman/bin/foreman.js',
  args: ['--listen', '127.0.0.1:11435', '--parallel', '2'],
  env: { FOREMAN_TOKENS: 'a&b<c>"d\'e', FOREMAN_DATA_DIR: '/Users/ada/.foreman' },
  logDir: '/Users/ada/Library/Logs/foreman',
  exitTimeoutS: 45,
};

describe('launchd', () => {
  it('renders a well-formed plist with exactly the configured values', () => {
    assert.deepEqual(readPlist(renderLaunchAgent(input)), {
      Label: 'dev.foreman',
      ProgramArguments: ['/opt/homebrew/bin/node', '/Users/ada/foreman/bin/foreman.js', 'serve',
        '--listen', '127.0.0.1:11435', '--parallel', '2'],
      EnvironmentVariables: { FOREMAN_DATA_DIR: '/Users/ada/.foreman', FOREMAN_TOKENS: 'a&b<c>"d\'e' },
      WorkingDirectory: '/',
      StandardOutPath: '/Users/ada/Library/Logs/foreman/foreman.out.log',
      StandardErrorPath: '/Users/ada/Library/Logs/foreman/foreman.err.log',
      RunAtLoad: true,
      KeepAlive: true,
      ThrottleInterval: 10,
      ExitTimeOut: 45,
      ProcessType: 'Standard',
    });
  });

  it('raises the open-file limit to match max_connections when asked', () => {
    const plist = readPlist(renderLaunchAgent({ ...input, openFiles: 2048 })) as Record<string, unknown>;
    assert.deepEqual(plist.SoftResourceLimits, { NumberOfFiles: 2048 });
    assert.deepEqual(plist.HardResourceLimits, { NumberOfFiles: 2048 });
  });

  it('escapes &, <, >, quotes and apostrophes in values', () => {
    const text = renderLaunchAgent(input);
    assert.ok(text.includes('<string>a&amp;b&lt;c&gt;&quot;d&apos;e</string>'));
    assert.doesNotMatch(text, /a&b|<c>/);
  });

  it('takes a custom label and working directory', () => {
    const plist = readPlist(renderLaunchAgent({ ...input, label: 'com.example.foreman', workingDirectory: '/tmp/x y' }));
    assert.ok(typeof plist === 'object' && !Array.isArray(plist));
    assert.equal(plist['Label'], 'com.example.foreman');
    assert.equal(plist['WorkingDirectory'], '/tmp/x y');
  });

  it('rejects what launchd or XML could not take', () => {
    assert.throws(() => renderLaunchAgent({ ...input, label: '../evil' }), /label must match/);
    assert.throws(() => renderLaunchAgent({ ...input, nodePath: 'node' }), /nodePath must be an absolute path/);
    assert.throws(() => renderLaunchAgent({ ...input, logDir: '~/Library/Logs' }), /logDir must be an absolute/);
    assert.throws(() => renderLaunchAgent({ ...input, env: { 'A-B': 'x' } }), /invalid environment variable name/);
    assert.throws(() => renderLaunchAgent({ ...input, env: { A: 'bell\u0007' } }), /XML 1.0 cannot hold/);
  });

  it('the checker itself refuses malformed XML', () => {
    const good = renderLaunchAgent(input);
    assert.throws(() => readPlist(good.replace('</array>', '')), /closes/);
    assert.throws(() => readPlist(good.replace('&amp;', '&')), /bare &/);
  });

  it('tells the user how to install, check and unload the agent', () => {
    const text = launchAgentInstructions('dev.foreman', '~/Library/LaunchAgents/dev.foreman.plist', '/Users/ada/Logs');
    const lines = text.split('\n').map((l) => l.trim());
    assert.ok(lines.includes('launchctl bootstrap gui/$(id -u) ~/Library/LaunchAgents/dev.foreman.plist'));
    assert.ok(lines.includes('launchctl bootout gui/$(id -u)/dev.foreman'));
    assert.ok(lines.includes('mkdir -p /Users/ada/Logs'));
    assert.ok(lines.some((l) => l.startsWith('chmod 600 ~/Library/LaunchAgents/dev.foreman.plist')));
    assert.match(launchAgentInstructions('x', "/Users/a b/it's.plist"), /bootstrap gui\/\$\(id -u\) '\/Users\/a b\/it'\\''s\.plist'/);
  });
});
