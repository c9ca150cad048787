// Named keys as data (SPEC §15): the keys file parsed and checked, `tokens` as admin keys, and the
// pure rules a key imposes on a request (models it may use, the priority it gets, what it may see).
// No I/O here: registry.ts reads files and answers requests.

import { createHash } from 'node:crypto';
import { normalizeModel } from '../sched/model-group.js';

export interface Key {
  readonly name: string;
  readonly admin: boolean;
  /** default priority of its sync requests; null: the global sync_priority */
  readonly syncPriority: number | null;
  /** a priority asked above this is lowered to it; null: no cap */
  readonly maxPriority: number | null;
  readonly maxRunning: number | null;
  readonly maxQueued: number | null;
  readonly weight: number;
  /** globs of the models it may use; null: any */
  readonly models: readonly string[] | null;
  /** sha256 of the token: what a presented token is compared against */
  readonly digest: Buffer;
  /** where it came from: the keys file, or `tokens`/`token_file` */
  readonly source: 'keys_file' | 'tokens';
}

/** Everyone, when no token is configured: an admin without limits, as foreman was before keys. */
export const ANONYMOUS: Key = Object.freeze({
  name: 'anonymous', admin: true, syncPriority: null, maxPriority: null, maxRunning: null, maxQueued: null,
  weight: 1, models: null, digest: Buffer.alloc(32), source: 'tokens' as const,
});

export class KeysFileError extends Error {
  readonly problems: readonly string[];
  constructor(problems: string[]) {
    super(problems.join('; '));
    this.name = 'KeysFileError';
    this.problems = problems;
  }
}

const NAME = /^[a-z0-9_.-]{1,64}$/;
const FIELDS = new Set(['name', 'token', 'token_sha256', 'sync_priority', 'max_priority', 'max_running', 'max_queued', 'weight', 'models', 'admin']);

export const sha256 = (text: string): Buffer => createHash('sha256').update(text).digest();

/** `tokens` and `token_file` entries become admin keys token-1, token-2, … without limits. */
export function keysFromTokens(tokens: readonly string[]): Key[] {
  return tokens.map((token, i) => ({ ...ANONYMOUS, name: `token-${i + 1}`, digest: sha256(token), source: 'tokens' as const }));
}

/** Parses and checks a keys file; every problem is reported at once, and nothing is half-accepted. */
export function parseKeysFile(text: string, reserved: readonly Key[] = []): Key[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new KeysFileError([`not JSON: ${(err as Error).message}`]);
  }
  const list = (doc as { keys?: unknown } | null)?.keys;
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc) || !Array.isArray(list)) {
    throw new KeysFileError(['expected {"keys": [ … ]}']);
  }
  const problems: string[] = [];
  const keys: Key[] = [];
  const names = new Set(reserved.map((k) => k.name));
  const digests = new Set(reserved.map((k) => k.digest.toString('hex')));
  list.forEach((raw, i) => {
    const where = `keys[${i}]`;
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
      problems.push(`${where}: expected an object`);
      return;
    }
    const k = raw as Record<string, unknown>;
    const bad = (field: string, expected: string) => problems.push(`${where}.${field}: expected ${expected}`);
    for (const field of Object.keys(k)) if (!FIELDS.has(field)) problems.push(`${where}: unknown field '${field}'`);
    const name = typeof k.name === 'string' ? k.name : '';
    if (!NAME.test(name)) bad('name', 'a name of 1-64 characters from a-z 0-9 _ . -');
    else if (names.has(name)) problems.push(`${where}: the name '${name}' is used twice`);
    names.add(name);
    let digest: Buffer | null = null;
    if ((k.token === undefined) === (k.token_sha256 === undefined)) problems.push(`${where}: needs exactly one of token or token_sha256`);
    else if (k.token !== undefined) {
      if (typeof k.token !== 'string' || k.token.trim() === '' || k.token !== k.token.trim()) bad('token', 'a non-empty string without surrounding spaces');
      else digest = sha256(k.token);
    } else if (typeof k.token_sha256 !== 'string' || !/^[0-9a-fA-F]{64}$/.test(k.token_sha256)) bad('token_sha256', '64 hex digits (sha256 of the token)');
    else digest = Buffer.from(k.token_sha256, 'hex');
    if (digest) {
      if (digests.has(digest.toString('hex'))) problems.push(`${where}: the same token as another key`);
      digests.add(digest.toString('hex'));
    }
    const int = (field: string, min: number, max: number): number | null => {
      const v = k[field];
      if (v === undefined || v === null) return null;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
        bad(field, `an integer ${min}..${max}`);
        return null;
      }
      return v;
    };
    const weight = k.weight === undefined ? 1 : k.weight;
    if (typeof weight !== 'number' || !Number.isFinite(weight) || weight <= 0 || weight > 1e6) bad('weight', 'a number above 0');
    let models: string[] | null = null;
    if (k.models !== undefined && k.models !== null) {
      if (!Array.isArray(k.models) || !k.models.every((m) => typeof m === 'string' && m.trim() !== '')) bad('models', 'an array of model names or globs');
      else models = k.models.map((m: string) => m.trim());
    }
    if (k.admin !== undefined && typeof k.admin !== 'boolean') bad('admin', 'true or false');
    if (!digest) return;
    keys.push({
      name,
      admin: k.admin === true,
      syncPriority: int('sync_priority', -100, 100),
      maxPriority: int('max_priority', -100, 100),
      maxRunning: int('max_running', 1, 1_000_000),
      maxQueued: int('max_queued', 0, 10_000_000),
      weight: typeof weight === 'number' && weight > 0 ? weight : 1,
      models,
      digest,
      source: 'keys_file',
    });
  });
  if (problems.length) throw new KeysFileError(problems);
  return keys;
}

function globToRegExp(glob: string): RegExp {
  const source = glob.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*');
  return new RegExp(`^${source}$`, 'i');
}

/** Model names match case-insensitively, as Ollama matches them; `llama3.2` also names `llama3.2:latest`. */
export function mayUseModel(key: Key, model: string): boolean {
  if (key.models === null) return true;
  const asked = model.trim();
  const normal = normalizeModel(asked);
  return key.models.some((glob) => {
    if (!glob.includes('*')) return normalizeModel(glob).toLowerCase() === normal.toLowerCase();
    const re = globToRegExp(glob);
    return re.test(asked) || re.test(normal);
  });
}

/** The priority a request of this key runs at: asked, else its default; never above max_priority. */
export function priorityFor(key: Key, asked: number | undefined, fallback: number): number {
  const p = asked ?? fallback;
  return key.maxPriority !== null && p > key.maxPriority ? key.maxPriority : p;
}

/** Admins see every job; other keys their own only (SPEC §15 ownership). */
export function maySee(viewer: Key, owner: string | null | undefined): boolean {
  return viewer.admin || owner === viewer.name;
}
