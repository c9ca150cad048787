// Which addresses a webhook may be delivered to (SPEC §5, ADR 0021). Pure: an address in, a refusal
// reason or null out. Link-local is always refused; loopback, private, unique-local and unspecified
// are refused when foreman listens beyond loopback, unless webhook_allow names the host or a CIDR.
import { isIP } from 'node:net';

export type Refusal = 'link-local' | 'loopback' | 'private' | 'unique-local' | 'unspecified';

export interface TargetPolicy {
  /** true when foreman listens on a non-loopback address: the LAN-facing rules apply */
  readonly strict: boolean;
  /** webhook_allow: host names (exact, case-insensitive), addresses and CIDRs */
  readonly allow: readonly string[];
}

export const OPEN_POLICY: TargetPolicy = Object.freeze({ strict: false, allow: Object.freeze([]) });

/**
 * The policy for a foreman listening on `listenHost`: strict unless that is a loopback address or
 * `localhost`. 0.0.0.0 and :: listen on every interface, the LAN's included, so they are strict.
 */
export function policyForListen(listenHost: string, allow: readonly string[]): TargetPolicy {
  const host = bareHost(listenHost);
  const loopback = host === 'localhost' || host.endsWith('.localhost') || classifyAddress(host) === 'loopback';
  return { strict: !loopback, allow };
}

/** What kind of special address this is, or null for an ordinary (public) one. */
export function classifyAddress(address: string): Refusal | null {
  const bytes = addressBytes(address);
  if (bytes === null) return null;
  const v4 = bytes.length === 4 ? bytes : ipv4Mapped(bytes);
  if (v4) {
    const [a, b] = v4 as [number, number];
    if (a === 169 && b === 254) return 'link-local';
    if (a === 127) return 'loopback';
    if (a === 0) return 'unspecified';
    if (a === 10 || (a === 172 && (b & 0xf0) === 16) || (a === 192 && b === 168)) return 'private';
    return null;
  }
  if (bytes[0] === 0xfe && (bytes[1]! & 0xc0) === 0x80) return 'link-local';
  if ((bytes[0]! & 0xfe) === 0xfc) return 'unique-local';
  if (bytes.every((x, i) => (i < 15 ? x === 0 : true))) return bytes[15] === 1 ? 'loopback' : bytes[15] === 0 ? 'unspecified' : null;
  return null;
}

/**
 * The refusal for delivering to `address` reached through the URL host `hostname`, or null when allowed.
 * Names that are loopback by definition (`localhost`, `*.localhost`) count as loopback before any lookup.
 */
export function refusalFor(address: string, hostname: string, policy: TargetPolicy): Refusal | null {
  const kind = classifyAddress(address);
  if (kind === 'link-local') return kind; // never, whatever webhook_allow says
  if (kind === null || !policy.strict) return null;
  return allowed(policy.allow, address, hostname) ? null : kind;
}

/** The refusal a URL host earns before any lookup: IP literals and localhost names. */
export function refusalForHost(hostname: string, policy: TargetPolicy): Refusal | null {
  const host = bareHost(hostname);
  if (isIP(host)) return refusalFor(host, host, policy);
  if (host === 'localhost' || host.endsWith('.localhost')) {
    return policy.strict && !allowed(policy.allow, '127.0.0.1', host) ? 'loopback' : null;
  }
  return null;
}

/** `refused: private address`, as `webhook.last_error` and the 400 say it. */
export function describeRefusal(kind: Refusal): string {
  return `refused: ${kind} address`;
}

/** Entries that are neither an address, a CIDR nor a host name: config validation reports them. */
export function badAllowEntries(allow: readonly string[]): string[] {
  return allow.filter((entry) => {
    const slash = entry.indexOf('/');
    if (slash === -1) return !(isIP(bareHost(entry)) || /^[a-z0-9.-]+$/i.test(entry));
    const bits = Number(entry.slice(slash + 1));
    const base = addressBytes(entry.slice(0, slash));
    return base === null || !/^\d{1,3}$/.test(entry.slice(slash + 1)) || bits > base.length * 8;
  });
}

function allowed(allow: readonly string[], address: string, hostname: string): boolean {
  const host = bareHost(hostname);
  const bytes = addressBytes(address);
  for (const entry of allow) {
    const slash = entry.indexOf('/');
    if (slash === -1) {
      const e = bareHost(entry);
      if (e === host) return true;
      const eb = addressBytes(e);
      if (eb && bytes && sameBytes(normal(eb), normal(bytes))) return true;
      continue;
    }
    const base = addressBytes(entry.slice(0, slash));
    if (!base || !bytes) continue;
    if (inCidr(normal(bytes), normal(base), Number(entry.slice(slash + 1)))) return true;
  }
  return false;
}

function bareHost(hostname: string): string {
  return hostname.replace(/^\[|\]$/g, '').replace(/\.$/, '').toLowerCase();
}

/** IPv4-mapped IPv6 compares as the IPv4 address it carries. */
function normal(bytes: number[]): number[] {
  return ipv4Mapped(bytes) ?? bytes;
}

/** The IPv4 address inside ::ffff:a.b.c.d or a NAT64 64:ff9b::a.b.c.d, which reach that IPv4 host. */
function ipv4Mapped(bytes: number[]): number[] | null {
  if (bytes.length !== 16) return null;
  const nat64 = [0, 0x64, 0xff, 0x9b].every((x, i) => bytes[i] === x) && bytes.slice(4, 12).every((x) => x === 0);
  if (nat64) return bytes.slice(12);
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return null;
  return bytes[10] === 0xff && bytes[11] === 0xff ? bytes.slice(12) : null;
}

function sameBytes(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function inCidr(addr: number[], base: number[], bits: number): boolean {
  if (addr.length !== base.length || !(bits >= 0 && bits <= addr.length * 8)) return false;
  for (let i = 0; i < addr.length; i++) {
    const take = Math.max(0, Math.min(8, bits - i * 8));
    const mask = take === 0 ? 0 : (0xff << (8 - take)) & 0xff;
    if ((addr[i]! & mask) !== (base[i]! & mask)) return false;
  }
  return true;
}

/** 4 or 16 bytes for an IP address in standard notation, else null. */
function addressBytes(text: string): number[] | null {
  const host = bareHost(text).replace(/%.*$/, ''); // a zone id names an interface, not an address
  const kind = isIP(host);
  if (kind === 4) return host.split('.').map(Number);
  if (kind !== 6) return null;
  let words = host;
  const lastColon = words.lastIndexOf(':');
  const tail = words.slice(lastColon + 1);
  if (tail.includes('.')) {
    const q = tail.split('.').map(Number);
    words = `${words.slice(0, lastColon + 1)}${((q[0]! << 8) | q[1]!).toString(16)}:${((q[2]! << 8) | q[3]!).toString(16)}`;
  }
  const [head, rest] = words.split('::') as [string, string | undefined];
  const parse = (part: string | undefined) => (part ? part.split(':').map((w) => parseInt(w, 16)) : []);
  const h = parse(head);
  const r = parse(rest);
  const all = rest === undefined ? h : [...h, ...new Array<number>(8 - h.length - r.length).fill(0), ...r];
  return all.flatMap((w) => [w >> 8, w & 0xff]);
}
