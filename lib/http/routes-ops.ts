// Operations: /health (open), /queue, /metrics and the /ui page (SPEC §9).
// Read-only views over what the scheduler, jobs and journal report.

import type { Route } from './server.js';
import { sendJson, sendText } from './body.js';
import type { QueueSnapshot } from '../sched/snapshot.js';
import { uiPageHeaders } from '../ops/ui-page.js';

export interface HealthReport {
  status: 'ok' | 'degraded';
  /** what is wrong, in words, when degraded */
  reasons?: string[];
  upstream: { url: string; reachable: boolean; version: string | null; error?: string };
  version: string;
  uptime_s: number;
  journal?: unknown;
}

export interface OpsRouteDeps {
  health(): Promise<HealthReport>;
  queue(): QueueSnapshot;
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
    { method: 'GET', path: '/queue', handler: ({ res }) => sendJson(res, 200, deps.queue(), { 'cache-control': 'no-store' }) },
    { method: 'GET', path: '/metrics', handler: ({ res }) => sendText(res, 200, deps.metrics(), deps.metricsContentType) },
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
