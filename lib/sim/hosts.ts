// `foreman sim --hosts N`: N simulated Ollama hosts that differ the way real Macs do: each
// has its own catalogue (not every model on every host) and its own load time per model.
// Pure: it derives per-host SimOptions; starting the servers is the caller's business.

import { hashString, Rng } from './rng.js';
import { normalizeName } from './catalog.js';
import type { SimModel, SimOptions } from './types.js';

export interface HostVariant {
  /** host-1, host-2, … (the names a hosts_file for them would use) */
  readonly name: string;
  readonly options: SimOptions;
}

/**
 * Host i of n gets every embedding model and the generation models whose index j has
 * (i + j) % 3 !== 2 when n > 1, so each model sits on at least two of three consecutive
 * hosts and no host has them all; with one host, every model. Load times are the base
 * times scaled by a seeded factor in [0.5, 2] per host and model, so one host is the
 * fastest for some models and the slowest for others.
 */
export function hostVariants(n: number, base: SimOptions): HostVariant[] {
  const models = base.models ?? [];
  const baseLoad = base.loadMs ?? 1500;
  const seed = base.seed ?? 1;
  const out: HostVariant[] = [];
  for (let i = 0; i < n; i++) {
    let g = 0;
    const own: SimModel[] = [];
    for (const model of models) {
      const embedding = (model.kind ?? 'generate') === 'embedding';
      const j = embedding ? -1 : g++;
      if (n > 1 && !embedding && (i + j) % 3 === 2) continue;
      const rng = new Rng(hashString(`${i}:${normalizeName(model.name)}`, seed >>> 0));
      const factor = n > 1 ? 0.5 + rng.next() * 1.5 : 1;
      own.push({ ...model, loadMs: Math.round((model.loadMs ?? baseLoad) * factor) });
    }
    out.push({
      name: `host-${i + 1}`,
      options: { ...base, models: own, port: base.port === 0 || base.port === undefined ? base.port : base.port + i },
    });
  }
  return out;
}
