// Validation of state_webhook_url at submission (SPEC §5): http(s) only, bounded length, and no host
// the target policy refuses as written (an IP literal, localhost). Names are not resolved here: DNS
// answers change, so transport.ts checks the address actually connected to at each delivery.
import { OPEN_POLICY, refusalForHost, type TargetPolicy } from './targets.js';

export const MAX_WEBHOOK_URL_LENGTH = 2048;

const NOT_HTTP = 'state_webhook_url must be an http or https URL';
const LINK_LOCAL = 'state_webhook_url points to a link-local address (169.254.0.0/16, fe80::/10)';

/** An error message safe to return with a 400, or null when the URL is acceptable. */
export function checkWebhookUrl(raw: unknown, policy: TargetPolicy = OPEN_POLICY): string | null {
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
  // Credentials in a URL would sit in job records and logs; a receiver can check the signature instead.
  if (url.username !== '' || url.password !== '') return 'state_webhook_url must not contain credentials';
  const refusal = refusalForHost(url.hostname, policy);
  if (refusal === 'link-local') return LINK_LOCAL;
  if (refusal) return `state_webhook_url points to a ${refusal} address, which a foreman listening beyond loopback refuses unless webhook_allow names it`;
  return null;
}

