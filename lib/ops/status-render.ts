// The text `foreman status` prints for one /queue snapshot: plain aligned
// columns, ANSI colour only when asked. It knows the snapshot shape, not how it
// was fetched nor whether stdout is a terminal (the CLI decides `color`).

import type { QueueSnapshot } from './queue-view.js';

export interface StatusOptions {
  /** ANSI colours; the CLI passes true only for a TTY without NO_COLOR. */
  color?: boolean;
  /** Terminal columns; long model and group names are cut to fit. Default 100. */
  width?: number;
  /** How many switches and recent jobs to list. Default 5 each. */
  switches?: number;
  recent?: number;
}

/** Home the cursor, then clear: each `status --watch` frame repaints from the top. */
export const WATCH_FRAME_PREFIX = '\x1b[H\x1b[2J';

const ANSI = { bold: '1', dim: '2', red: '31', green: '32', yellow: '33', cyan: '36' } as const;
type Style = keyof typeof ANSI;

interface Cell {
  text: string;
  style?: Style;
}
type Align = 'left' | 'right';

export function renderStatus(s: QueueSnapshot, options: StatusOptions = {}): string {
  const color = options.color === true;
  const width = Math.max(40, options.width ?? 100);
  const paint = (text: string, style?: Style) => (color && style ? `\x1b[${ANSI[style]}m${text}\x1b[0m` : text);
  const now = Date.parse(s.at);
  const ago = (at: string) => {
    const t = Date.parse(at);
    return Number.isFinite(t) && Number.isFinite(now) ? `${formatDuration(Math.max(0, now - t))} ago` : clean(at);
  };
  const t = s.totals;
  const out: string[] = [];
  const section = (title: string, detail: string) => out.push(`${paint(title.padEnd(9), 'bold')}${detail}`);

  section('foreman', `${clean(s.upstream)}  at ${clean(s.at)}`);
  // Whose view this is (SPEC §15): a key that is not admin sees its own jobs and the totals.
  if (s.key) section('key', `${clean(s.key.name)}${s.key.admin ? ' (admin)' : '  (own jobs only)'}  ${s.key.running} running  ${s.key.waiting} waiting`);
  // SPEC §6: while the journal cannot write, async work is refused or held; say so first.
  if (s.store && !s.store.writable) {
    section('journal', paint(`${clean(s.store.reason ?? 'cannot write')}; new jobs get 503, queued jobs wait`, 'red'));
  }
  const loaded = s.loaded_group ?? s.loaded_model;
  section('loaded', loaded === null ? paint('none', 'dim') : paint(cut(clean(loaded), width - 9), 'green'));

  // The local lane's slots; other lanes (cloud, SPEC §12) get a line of their own below.
  // With several hosts (SPEC §17), the slots of every host, and a table of the hosts.
  const local = s.lanes?.find((l) => l.kind === 'local');
  if (s.hosts && s.hosts.length > 0) {
    const up = s.hosts.filter((h) => h.state === 'up').length;
    section('hosts', `${up}/${s.hosts.length} up`);
    out.push(...table(width, ['HOST', 'STATE', 'LOADED', 'RUNNING', 'SWITCHES', 'LOAD TIMES'],
      ['left', 'left', 'left', 'right', 'right', 'left'], 5,
      s.hosts.map((h) => [
        { text: clean(h.name) }, { text: h.retiring ? `${h.state}, retiring` : h.state, style: h.retiring ? 'dim' : h.state === 'up' ? 'green' : 'red' },
        { text: h.loaded_group === null ? '-' : clean(h.loaded_group), style: 'cyan' },
        { text: `${h.running}/${h.parallel}` }, { text: String(h.switches) },
        { text: loadTimes(h) },
      ]), paint));
    const running = s.hosts.reduce((a, h) => a + h.running, 0);
    const parallel = s.hosts.reduce((a, h) => a + h.parallel, 0);
    section('running', `${running}/${parallel}`);
  } else {
    section('running', local ? `${local.running}/${local.parallel}` : `${t.running}/${t.parallel}`);
  }
  if (s.running.length > 0) {
    out.push(...table(width, ['ID', 'MODEL', 'ORIGIN', 'KIND', 'PRIO', 'ELAPSED'],
      ['left', 'left', 'left', 'left', 'right', 'right'], 1,
      s.running.map((r) => [
        { text: clean(r.id) }, { text: clean(r.group), style: 'cyan' }, { text: r.origin }, { text: clean(r.kind) },
        { text: String(r.priority) }, { text: formatDuration(r.elapsed_ms) },
      ]), paint));
  }

  const mib = (n: number) => `${(n / 1048576).toFixed(n < 10 * 1048576 ? 1 : 0)} MiB`;
  section('waiting', `${t.waiting}/${t.max_queue}${s.store ? `  (${mib(s.store.waiting_bytes)} of ${mib(s.store.max_queue_bytes)} bodies)` : ''}`);
  if (s.groups.length > 0) {
    out.push(...table(width, ['GROUP', 'WAITING', 'HEAD PRIO', 'HEAD WAIT', 'EFF PRIO'],
      ['left', 'right', 'right', 'right', 'right'], 0,
      s.groups.map((g) => [
        { text: clean(g.group), style: g.group === s.loaded_group ? 'green' : 'cyan' }, { text: String(g.count) },
        { text: String(g.head_priority) }, { text: formatDuration(g.head_wait_ms) },
        { text: formatPriority(g.head_effective_priority) },
      ]), paint));
  }

  for (const lane of s.lanes ?? []) {
    if (lane.kind === 'local' || s.hosts?.some((h) => h.name === lane.name)) continue;
    section(clean(lane.name), `${lane.running}/${lane.parallel} running  ${lane.waiting} waiting`);
  }

  section('totals', [
    `completed ${t.completed}`,
    t.failed > 0 ? paint(`failed ${t.failed}`, 'red') : `failed ${t.failed}`,
    `cancelled ${t.cancelled}`,
    `switches ${t.switches}`,
    `embeddings ${s.embeddings.in_flight}/${s.embeddings.max}`,
  ].join('  '));

  const switches = newestFirst(s.switches, (w) => w.at).slice(0, options.switches ?? 5);
  if (switches.length > 0) {
    section('switches', paint(`last ${switches.length}`, 'dim'));
    // With several hosts each switch names the host whose lane made it.
    const byHost = switches.some((w) => w.host !== undefined);
    out.push(...table(width, [...(byHost ? ['HOST'] : []), 'WHEN', 'FROM', 'TO', 'LOAD'],
      [...(byHost ? ['left' as const] : []), 'right', 'left', 'left', 'right'], byHost ? 3 : 2,
      switches.map((w) => [
        ...(byHost ? [{ text: clean(w.host ?? '-') }] : []),
        { text: ago(w.at), style: 'dim' }, { text: w.from === null ? '-' : clean(w.from) },
        { text: clean(w.to), style: 'cyan' }, { text: w.load_ms === null ? '-' : formatDuration(w.load_ms) },
      ]), paint));
  }

  const recent = newestFirst(s.recent, (j) => j.finished_at).slice(0, options.recent ?? 5);
  if (recent.length > 0) {
    section('recent', paint(`last ${recent.length}`, 'dim'));
    const stateStyle = { completed: 'green', failed: 'red', cancelled: 'yellow', requeued: 'yellow' } as const;
    out.push(...table(width, ['ID', 'MODEL', 'ORIGIN', 'STATE', 'QUEUE', 'RUN'],
      ['left', 'left', 'left', 'left', 'right', 'right'], 1,
      recent.map((j) => [
        { text: clean(j.id) }, { text: clean(j.model) }, { text: j.origin },
        { text: j.state, style: stateStyle[j.state] }, { text: formatDuration(j.queue_ms) },
        { text: formatDuration(j.run_ms) },
      ]), paint));
  }
  return out.join('\n') + '\n';
}

export function renderWatchFrame(s: QueueSnapshot, options: StatusOptions = {}): string {
  return WATCH_FRAME_PREFIX + renderStatus(s, options);
}

/** `850ms`, `12.3s`, `4m05s`, `2h03m`: short enough for a column, exact enough to compare. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '-';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(Math.floor(ms / 100) / 10).toFixed(1)}s`;
  const s = Math.floor(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, '0')}m`;
}

/** The snapshot does not promise an order for its history lists; sort here. */
function newestFirst<T>(items: readonly T[], at: (item: T) => string): T[] {
  return [...items].sort((a, b) => (at(a) < at(b) ? 1 : at(a) > at(b) ? -1 : 0));
}

function formatPriority(p: number): string {
  return Number.isInteger(p) ? String(p) : p.toFixed(1);
}

/**
 * Columns padded on the plain text, colour added after, so escapes never shift
 * alignment. When the rows are wider than the terminal, column `flex` (the
 * name) gives up the difference, ending in `…`.
 */
function table(width: number, head: string[], align: Align[], flex: number, rows: Cell[][],
  paint: (text: string, style?: Style) => string): string[] {
  const indent = '  ';
  const gap = '  ';
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.text.length)));
  const total = indent.length + widths.reduce((a, b) => a + b, 0) + gap.length * (widths.length - 1);
  if (total > width) widths[flex] = Math.max(head[flex]!.length, 8, widths[flex]! - (total - width));
  const line = (cells: Cell[], header: boolean) => indent + cells.map((c, i) => {
    const text = cut(c.text, widths[i]!);
    const last = i === cells.length - 1;
    const padded = align[i] === 'right' ? text.padStart(widths[i]!) : last ? text : text.padEnd(widths[i]!);
    return paint(padded, header ? 'dim' : c.style);
  }).join(gap);
  return [line(head.map((text) => ({ text })), true), ...rows.map((r) => line(r, false))];
}

function cut(text: string, max: number): string {
  return text.length <= max ? text : text.slice(0, Math.max(0, max - 1)) + '…';
}

/** Model names come from clients: never let one carry escapes into the terminal. */
function clean(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}

/** Measured load times, then estimated ones marked `~` (ADR 0025: priors until a load is measured). */
function loadTimes(h: NonNullable<QueueSnapshot['hosts']>[number]): string {
  const parts = h.loads.map((l) => `${clean(l.group)} ${formatDuration(l.load_ms)}`);
  for (const e of h.estimated_loads ?? []) parts.push(`${clean(e.group)} ~${formatDuration(e.load_ms)}`);
  return parts.length === 0 ? '-' : parts.join(', ');
}
