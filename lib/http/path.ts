// The request path foreman routes on (SPEC §8): percent-decoded, dot segments resolved, repeated
// slashes collapsed, then written back in one canonical encoding, which is also what goes upstream.
// Ollama (Go) decodes `/api/%63hat` to `/api/chat`; routing on the raw text would let it skip the queue.

export interface NormalizedTarget {
  /** canonical, percent-encoded where needed: safe to route on and to forward */
  readonly pathname: string;
  /** `?…` as sent, or '' */
  readonly search: string;
}

/** null when the target cannot be decoded (a bad escape, a NUL or a control character in the path): a 400. */
/** Slash-led segments of letters, digits, `_` and `-` only: already canonical (nearly every request). */
const PLAIN_PATH = /^(?:\/[A-Za-z0-9_-]+)+$/;

export function normalizeTarget(raw: string): NormalizedTarget | null {
  if (PLAIN_PATH.test(raw)) return { pathname: raw, search: '' };
  let target = raw;
  // absolute-form (`GET http://host/path`): only the path counts; the Host rule looks at the header.
  const scheme = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i.exec(target);
  if (scheme) target = target.slice(scheme[0].length) || '/';
  const hash = target.indexOf('#');
  if (hash !== -1) target = target.slice(0, hash);
  const q = target.indexOf('?');
  const rawPath = q === -1 ? target : target.slice(0, q);
  const search = q === -1 ? '' : target.slice(q);
  let decoded: string;
  try {
    decoded = decodeURIComponent(rawPath);
  } catch {
    return null;
  }
  if (/[\x00-\x1f\x7f]/.test(decoded)) return null;
  const out: string[] = [];
  const parts = decoded.split('/');
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    const last = i === parts.length - 1;
    if (part === '.' || part === '') {
      if (last && out.length > 0) out.push(''); // keep a trailing slash: `/api/tags/` is not `/api/tags` upstream
      continue;
    }
    if (part === '..') {
      out.pop();
      if (last && out.length > 0) out.push('');
      continue;
    }
    out.push(part);
  }
  const pathname = '/' + out.map(encodeSegment).join('/');
  return { pathname, search };
}

/** Escapes what a path segment cannot carry literally; `:`, `@`, `+` and the like stay as they are. */
function encodeSegment(segment: string): string {
  return encodeURIComponent(segment).replace(/%(3A|40|2B|24|2C|3B|3D|21|27|28|29|2A)/gi, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}
