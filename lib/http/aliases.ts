// Model aliases (SPEC §7, §10): `claude-*=qwen3-coder:30b` sends and groups a
// request for any matching name as the target model, so a coding agent works
// with only its base URL changed. Applied before grouping; the first match wins.

export interface Alias {
  readonly pattern: string;
  readonly target: string;
}

/** `*` matches any run of characters; matching ignores case, as Ollama's model names do. */
function globToRegExp(pattern: string): RegExp {
  const source = pattern.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*');
  return new RegExp(`^${source}$`, 'i');
}

/** Returns the target for a model name, or null when no alias matches (or it maps to itself). */
export function createAliasResolver(aliases: readonly Alias[]): (model: string) => string | null {
  const compiled = aliases.map((a) => ({ re: globToRegExp(a.pattern), target: a.target }));
  if (compiled.length === 0) return () => null;
  return (model) => {
    const name = model.trim();
    for (const { re, target } of compiled) {
      if (re.test(name)) return target.toLowerCase() === name.toLowerCase() ? null : target;
    }
    return null;
  };
}

/**
 * The JSON body with its top-level `model` replaced. Only an aliased request is
 * re-serialised; every other body goes upstream byte for byte.
 */
export function withModel(body: Record<string, unknown>, model: string): Buffer {
  return Buffer.from(JSON.stringify({ ...body, model }));
}

/**
 * A validated JSON generation with its alias applied: the body and the model
 * that go upstream and into the group. `alias` is logged with the original name.
 */
export function applyAlias<R extends { model: string }>(
  aliasOf: ((model: string) => string | null) | undefined,
  body: Record<string, unknown>,
  raw: Buffer,
  request: R,
  logFields: Record<string, string | number | undefined>,
): { raw: Buffer; request: R } {
  const target = aliasOf?.(request.model) ?? null;
  if (target === null) return { raw, request };
  logFields.alias = request.model;
  return { raw: withModel(body, target), request: { ...request, model: target } };
}
