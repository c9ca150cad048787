import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

// The house rules of lib/ (README "Architecture"), checked on the source so they hold
// as the code grows: imports point one way, no runtime circles, the core knows no HTTP.

const LIB = fileURLToPath(new URL('../lib', import.meta.url));

/** Layers, lowest first: a module imports its own group or a lower layer, never a higher one. */
const LAYER: Record<string, number> = {
  leaves: 0, // errors, log, ndjson, upstream, version, token-estimate
  sched: 1, journal: 1, webhooks: 1,
  keys: 1.5, // named keys: they use the queue's model names; ops and http read them
  jobs: 2, hosts: 2, ops: 2, sim: 2,
  config: 3, http: 3,
  app: 4,
  cli: 5,
};
const CORE = ['sched', 'jobs', 'journal', 'webhooks', 'hosts', 'keys'];

function groupOf(file: string): string {
  const [first, second] = file.split('/');
  if (second !== undefined) return first!;
  if (first === 'app.ts') return 'app';
  if (first === 'config.ts' || first === 'config-kinds.ts') return 'config';
  return 'leaves';
}

interface Import { from: string; to: string; typeOnly: boolean }

function sources(): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) out.set(relative(LIB, p), readFileSync(p, 'utf8'));
    }
  };
  walk(LIB);
  return out;
}

function importsOf(file: string, text: string): Import[] {
  const out: Import[] = [];
  const re = /(?:^|\n)\s*(import|export)\s+(type\s+)?(?:[^'";]*?\sfrom\s+)?'(\.[^']+)'|import\(\s*'(\.[^']+)'\s*\)/g;
  for (const m of text.matchAll(re)) {
    const spec = m[3] ?? m[4]!;
    const to = normalize(join(dirname(file), spec)).replace(/\.js$/, '.ts');
    out.push({ from: file, to, typeOnly: m[2] !== undefined });
  }
  return out;
}

describe('lib/ layout', () => {
  const files = sources();
  const imports = [...files].flatMap(([f, t]) => importsOf(f, t));

  it('finds the imports it checks', () => {
    assert.ok(files.size > 50);
    assert.ok(imports.some((i) => i.from === 'app.ts' && i.to === 'http/server.ts'));
    for (const i of imports) assert.ok(files.has(i.to), `${i.from} imports ${i.to}, which does not exist`);
  });

  it('gives every folder a layer (a new folder is placed on purpose)', () => {
    const groups = new Set([...files.keys()].map(groupOf));
    assert.deepEqual([...groups].filter((g) => LAYER[g] === undefined), []);
  });

  it('imports point one way: each group imports only itself and lower layers', () => {
    const wrong = imports
      .filter((i) => groupOf(i.from) !== groupOf(i.to))
      .filter((i) => LAYER[groupOf(i.to)]! >= LAYER[groupOf(i.from)]!)
      .map((i) => `${i.from} -> ${i.to}`);
    assert.deepEqual(wrong, []);
  });

  it('has no import circles at run time', () => {
    const next = new Map<string, string[]>();
    for (const i of imports) if (!i.typeOnly) next.set(i.from, [...(next.get(i.from) ?? []), i.to]);
    const state = new Map<string, 'open' | 'done'>();
    const circles: string[] = [];
    const visit = (f: string, path: string[]) => {
      state.set(f, 'open');
      for (const t of next.get(f) ?? []) {
        if (state.get(t) === 'open') circles.push([...path.slice(path.indexOf(t)), t].join(' -> '));
        else if (!state.has(t)) visit(t, [...path, t]);
      }
      state.set(f, 'done');
    };
    for (const f of files.keys()) if (!state.has(f)) visit(f, [f]);
    assert.deepEqual(circles, []);
  });

  it('the core knows no HTTP: no node:http, no http/, no HttpError', () => {
    const wrong = [...files]
      .filter(([f]) => CORE.includes(groupOf(f)))
      .filter(([, t]) => /from 'node:https?'|HttpError|from '\.\.\/http\//.test(t))
      .map(([f]) => f);
    assert.deepEqual(wrong, []);
  });

  it("each folder's main module says first what the folder owns", () => {
    const folders = new Set([...files.keys()].filter((f) => f.includes('/')).map((f) => f.split('/')[0]!));
    const silent = [...folders].filter((d) => ![...files].some(([f, t]) => f.startsWith(`${d}/`) && t.startsWith(`// ${d}/ owns `)));
    assert.deepEqual(silent, []);
  });

  it('sched/ exposes plain state: no snake_case view fields (ops/ builds the /queue shapes)', () => {
    const field = /^\s+(readonly )?[a-z]+_[a-z_]+\??: |[{,] ?[a-z]+_[a-z_]+: /m;
    const wrong = [...files].filter(([f, t]) => groupOf(f) === 'sched' && field.test(t)).map(([f]) => f);
    assert.deepEqual(wrong, []);
  });

  it('every module opens with a comment saying what it owns', () => {
    const bare = [...files].filter(([, t]) => !/^(\/\/|\/\*)/.test(t)).map(([f]) => f);
    assert.deepEqual(bare, []);
  });
});
