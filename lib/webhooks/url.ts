// Validation of state_webhook_url (SPEC §5): http(s) only, bounded length, no link-local hosts.
// Works on the URL text alone; it does not resolve names (a name that resolves to 169.254.x.x passes).

export const MAX_WEBHOOK_URL_LENGTH = 2048;

const NOT_HTTP = 'state_webhook_url must be an http or https URL';
const LINK_LOCAL = 'state_webhook_url points to a link-local address (169.254.0.0/16, fe80::/10)';

/** An error message safe to return with a 400, or null when the URL is acceptable. */
export function checkWebhookUrl(raw: unknown): string | null {
  if (typeof raw !== 'string' || raw.length === 0) return NOT_HTTP;
  if (raw.length > MAX_WEBHOOK_URL_LENGTH) {
    return `state_webhook_url must be at most ${MAX_WEBHOOK_URL_LENGTH} characters`;
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return NOT_HTTP;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return NOT_HTTP;
  // fetch refuses URLs with credentials, so such a URL would only ever fail; say so now.
  if (url.username !== '' || url.password !== '') return 'state_webhook_url must not contain credentials';
  if (isLinkLocalHost(url.hostname)) return LINK_LOCAL;
  return null;
}

/**
 * For a WHATWG URL hostname, which is already normalised: IPv4 in any spelling (0xa9fe0001,
 * 169.254.1, a trailing dot) becomes a dotted quad, IPv6 is bracketed, lower-case and compressed,
 * and an IPv4-mapped address is written in hex (::ffff:a9fe:101).
 */
export function isLinkLocalHost(hostname: string): boolean {
  if (hostname.startsWith('[') && hostname.endsWith(']')) {
    const words = parseIpv6(hostname.slice(1, -1));
    if (words === null) return false;
    if ((words[0]! & 0xffc0) === 0xfe80) return true;
    const mapped = words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff;
    return mapped && words[6] === 0xa9fe;
  }
  const quad = parseIpv4(hostname);
  return quad !== null && quad[0] === 169 && quad[1] === 254;
}

function parseIpv4(text: string): number[] | null {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (match === null) return null;
  const parts = match.slice(1).map(Number);
  return parts.every((p) => p <= 255) ? parts : null;
}

/** Eight 16-bit words, or null; accepts '::' and a dotted IPv4 tail. */
function parseIpv6(text: string): number[] | null {
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const quad = parseIpv4(tail);
    if (quad === null) return null;
    const hex = (hi: number, lo: number) => ((hi << 8) | lo).toString(16);
    text = `${text.slice(0, lastColon + 1)}${hex(quad[0]!, quad[1]!)}:${hex(quad[2]!, quad[3]!)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const words = (part: string) => (part === '' ? [] : part.split(':').map((w) => (/^[0-9a-f]{1,4}$/i.test(w) ? parseInt(w, 16) : NaN)));
  const head = words(halves[0]!);
  const rest = halves.length === 2 ? words(halves[1]!) : [];
  if ([...head, ...rest].some(Number.isNaN)) return null;
  const fill = 8 - head.length - rest.length;
  if (halves.length === 2 ? fill < 1 : fill !== 0) return null;
  return [...head, ...new Array<number>(halves.length === 2 ? fill : 0).fill(0), ...rest];
}
