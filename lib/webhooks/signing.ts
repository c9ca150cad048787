// Standard Webhooks signing and verification (standardwebhooks.com): the secret format and the
// signed string "id.timestamp.body". Knows nothing of delivery, retries or jobs.
import { createHmac, timingSafeEqual } from 'node:crypto';

const SECRET_PREFIX = 'whsec_';
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

export interface SignatureHeaders {
  'webhook-id': string;
  'webhook-timestamp': string;
  'webhook-signature': string;
}

/**
 * The HMAC key of a secret written as Standard Webhooks writes it: 'whsec_' + base64.
 * Like the reference libraries, a bare base64 secret (no prefix) is accepted too.
 */
export function decodeSecret(secret: string): Buffer {
  const text = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret;
  const key = BASE64.test(text) ? Buffer.from(text, 'base64') : Buffer.alloc(0);
  if (key.length === 0) throw new TypeError('webhook secret must be whsec_ followed by base64');
  return key;
}

/** 'v1,<base64 HMAC-SHA256 of `${msgId}.${timestamp}.${body}`>' with an already decoded key. */
export function signWithKey(key: Buffer, msgId: string, timestamp: number | string, body: string): string {
  const mac = createHmac('sha256', key).update(`${msgId}.${timestamp}.${body}`, 'utf8').digest('base64');
  return `v1,${mac}`;
}

export function signPayload(secret: string, msgId: string, timestampS: number, body: string): string {
  return signWithKey(decodeSecret(secret), msgId, timestampS, body);
}

export interface VerifyOptions {
  /** Reject timestamps further than this from now (replay protection); off unless given. */
  toleranceS?: number;
  now?: () => number;
}

/**
 * True when any of the space-separated signatures ('v1,<sig> v1,<sig2>', as during a secret
 * rotation) matches. The timestamp is signed as it appears in the header, so it cannot be altered.
 * Comparison is constant-time and every candidate is checked, so timing says nothing about which matched.
 */
export function verifySignature(
  secret: string,
  headers: SignatureHeaders,
  body: string,
  options: VerifyOptions = {},
): boolean {
  const id = headers['webhook-id'];
  const timestamp = headers['webhook-timestamp'];
  const signatures = headers['webhook-signature'];
  if (typeof id !== 'string' || typeof timestamp !== 'string' || typeof signatures !== 'string') return false;
  if (!/^\d{1,15}$/.test(timestamp)) return false;
  if (options.toleranceS !== undefined) {
    const nowS = Math.floor((options.now ?? Date.now)() / 1000);
    if (Math.abs(nowS - Number(timestamp)) > options.toleranceS) return false;
  }
  const expected = Buffer.from(signWithKey(decodeSecret(secret), id, timestamp, body).slice('v1,'.length));
  let matched = false;
  for (const candidate of signatures.split(' ')) {
    const comma = candidate.indexOf(',');
    if (comma < 0 || candidate.slice(0, comma) !== 'v1') continue;
    const given = Buffer.from(candidate.slice(comma + 1));
    if (given.length === expected.length && timingSafeEqual(given, expected)) matched = true;
  }
  return matched;
}
