// Operations: /health (open), /queue, /metrics (admin keys) and the /ui page (SPEC §9, §15).
// Read-only views over what the scheduler, jobs and journal report.

import type { Route } from './server.js';
import { sendJson, sendText } from './body.js';
import type { QueueSnapshot } from '../ops/queue-view.js';
import { uiPageHeaders } from '../ops/ui-page.js';
import { forbidden } from '../errors.js';
import { ANONYMOUS, type Key } from '../keys/keys-file.js';

export interface HealthReport {
  status: 'ok' | 'degraded';
  /** what is wrong, in words, when degraded */
  reasons?: string[];
  upstream: { url: string; reachable: boolean; version: string | null; error?: string };
  /** with several hosts (SPEC §17): each one's state */
  hosts?: Array<{ name: string; url: string; state: 'up' | 'down'; version: string | null; error: string | null }>;
  version: string;
  uptime_s: number;
  journal?: unknown;
}

export interface OpsRouteDeps {
  health(): Promise<HealthReport>;
  /** The queue as this key may see it (SPEC §15: others' jobs hidden from a key that is not admin). */
  queue(key: Key): QueueSnapshot;
  metrics(): string;
  metricsContentType: string;
  uiPage(): string;
}

export function opsRoutes(deps: OpsRouteDeps): Route[] {
  return [
    {
      method: 'GET',
      path: '/health',
      auth: false,
      handler: async ({ res }) => {
        const report = await deps.health();
        // 200 even when degraded: foreman itself answers; the body says what is wrong.
        sendJson(res, 200, report, { 'cache-control': 'no-store' });
      },
    },
    {
      method: 'GET',
      path: '/queue',
      handler: ({ res, key }) => sendJson(res, 200, deps.queue(key ?? ANONYMOUS), { 'cache-control': 'no-store' }),
    },
    {
      method: 'GET',
      path: '/metrics',
      handler: ({ res, key }) => {
        // Every key's usage and every job's counts: for admins only (SPEC §15).
        if (!(key ?? ANONYMOUS).admin) throw forbidden('/metrics is for admin keys');
        sendText(res, 200, deps.metrics(), deps.metricsContentType);
      },
    },
    {
      method: 'GET',
      path: '/ui',
      auth: false, // the page holds no data; it asks for a token and sends it with each fetch of /queue
      handler: ({ res }) => {
        const html = deps.uiPage();
        res.writeHead(200, { ...uiPageHeaders(), 'content-length': Buffer.byteLength(html), 'referrer-policy': 'no-referrer' });
        res.end(html);
      },
    },
  ];
}
