// Where a model runs, read from its name the way Ollama reads it (internal/modelref):
// a `:cloud` suffix or a tag ending `-cloud` runs on ollama.com; `:local` forces the
// local model. Pure string work; the scheduler uses it to pick a lane (SPEC §12).

export type ModelSource = 'local' | 'cloud' | 'unspecified';

export interface ModelRef {
  /** the name without an explicit `:cloud`/`:local` source (for `x:8b-cloud`, `x:8b`) */
  readonly base: string;
  readonly source: ModelSource;
}

/** Splits off an explicit source suffix; a name with none is `unspecified` (a local model). */
export function parseModelRef(raw: string): ModelRef {
  const name = raw.trim();
  const colon = name.lastIndexOf(':');
  if (colon >= 0) {
    const suffixRaw = name.slice(colon + 1).trim();
    const suffix = suffixRaw.toLowerCase();
    if (suffix === 'cloud') return { base: name.slice(0, colon), source: 'cloud' };
    if (suffix === 'local') return { base: name.slice(0, colon), source: 'local' };
    // `gpt-oss:120b-cloud`; a colon that belongs to a registry host (`host:5000/x`) has a `/` after it.
    if (!suffixRaw.includes('/') && suffix.endsWith('-cloud')) {
      return { base: name.slice(0, colon + 1) + suffixRaw.slice(0, -'-cloud'.length), source: 'cloud' };
    }
  }
  return { base: name, source: 'unspecified' };
}

export function isCloudModel(name: string): boolean {
  return parseModelRef(name).source === 'cloud';
}
