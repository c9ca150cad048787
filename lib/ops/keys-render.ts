// `foreman keys` as text: one row per key with its limits, what it has waiting and running, and
// its usage since start (SPEC §15). Pure: GET /keys JSON in, lines out.

import type { KeysResponse, KeyView } from '../keys/view.js';

const cap = (n: number, limit: number | null) => (limit === null ? String(n) : `${n}/${limit}`);
const secs = (s: number) => (s < 10 ? s.toFixed(1) : Math.round(s).toString());

function row(k: KeyView): string[] {
  const u = k.usage;
  const requests = Object.values(u.requests).reduce((a, b) => a + b, 0);
  const flags = [k.admin ? 'admin' : '', k.source === 'removed' ? 'removed' : ''].filter(Boolean).join(',');
  return [
    k.name, flags || '-', String(k.weight), cap(k.running, k.max_running), cap(k.waiting, k.max_queued),
    k.max_priority === null ? '-' : String(k.max_priority), k.models === null ? '*' : k.models.join(','),
    String(requests), `${u.jobs.completed ?? 0}/${u.jobs.failed ?? 0}/${u.jobs.cancelled ?? 0}`,
    `${u.prompt_tokens}/${u.completion_tokens}`, secs(u.run_seconds), secs(u.queue_wait_seconds),
  ];
}

export function renderKeys(body: KeysResponse): string {
  const head = ['KEY', 'FLAGS', 'WEIGHT', 'RUNNING', 'WAITING', 'MAX_PRI', 'MODELS', 'REQUESTS', 'OK/FAIL/CANCEL', 'TOKENS IN/OUT', 'RUN_S', 'WAIT_S'];
  const rows = [head, ...body.keys.map(row)];
  const widths = head.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd());
  const f = body.file;
  if (f?.path) lines.push('', `keys file ${f.path}: ${f.reloads} reloads, ${f.refused} refused${f.last_error ? ` (last: ${f.last_error})` : ''}`);
  return lines.join('\n') + '\n';
}
