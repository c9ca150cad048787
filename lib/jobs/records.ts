// Async job state as data: the journal records, the reducer that replays them,
// the public record view and the webhook/event payloads (SPEC §4, §5).
// Pure: no I/O, no clock; jobs.ts owns the effects.

export type JobState = 'queued' | 'working' | 'completed' | 'failed' | 'cancelled';
export type JobKind = 'chat' | 'generate';

export const TERMINAL: ReadonlySet<JobState> = new Set(['completed', 'failed', 'cancelled']);
export const isTerminal = (s: JobState) => TERMINAL.has(s);

export interface Transition {
  seq: number;
  state: JobState;
  prev: JobState | null;
  at: number;
  attempts: number;
}

export interface JobError {
  message: string;
  status?: number;
  reason?: string;
}

export interface WebhookProgress {
  /** highest seq whose delivery ended (delivered, gone or exhausted) */
  settledSeq: number;
  delivered: number;
  gone: boolean;
  lastError: string | null;
  /** attempts and next attempt of the event being retried, for resuming after a restart */
  retry: { seq: number; attempts: number; nextAt: number } | null;
}

export interface Job {
  id: string;
  model: string;
  kind: JobKind;
  priority: number;
  /** the name of the key that made it (SPEC §15); null for jobs from before keys existed */
  key: string | null;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  attempts: number;
  state: JobState;
  metadata: unknown;
  webhookUrl: string | null;
  /** the body forwarded upstream (foreman's own fields removed) */
  body: Record<string, unknown>;
  idempotency: { key: string; hash: string } | null;
  /** upstream's final response merged from the stream (response.json) */
  response: Record<string, unknown> | null;
  error: JobError | null;
  transitions: Transition[];
  webhook: WebhookProgress;
}

/** Journal records. `t` tags the kind; each is one JSON line. */
export type JobRecord =
  | { t: 'submit'; id: string; at: number; model: string; kind: JobKind; priority: number; metadata: unknown;
      webhook_url: string | null; body: Record<string, unknown>; idem: { key: string; hash: string } | null; key?: string | null }
  | { t: 'state'; id: string; at: number; state: JobState; attempts: number; error?: JobError | null }
  | { t: 'result'; id: string; at: number; response: Record<string, unknown> }
  | { t: 'webhook'; id: string; seq: number; outcome: 'delivered' | 'retrying' | 'gone' | 'exhausted';
      attempts: number; next_at: number | null; error: string | null }
  | { t: 'job'; job: Job };

export function newWebhookProgress(): WebhookProgress {
  return { settledSeq: 0, delivered: 0, gone: false, lastError: null, retry: null };
}

export function jobFromSubmit(r: Extract<JobRecord, { t: 'submit' }>): Job {
  return {
    id: r.id, model: r.model, kind: r.kind, priority: r.priority, key: r.key ?? null, createdAt: r.at, startedAt: null, finishedAt: null,
    attempts: 0, state: 'queued', metadata: r.metadata, webhookUrl: r.webhook_url, body: r.body, idempotency: r.idem,
    response: null, error: null, transitions: [{ seq: 1, state: 'queued', prev: null, at: r.at, attempts: 0 }],
    webhook: newWebhookProgress(),
  };
}

/** Applies one state change; the same function serves live transitions and replay. */
export function applyState(job: Job, state: JobState, at: number, attempts: number, error: JobError | null = null): Transition {
  const t: Transition = { seq: job.transitions.length + 1, state, prev: job.state, at, attempts };
  job.transitions.push(t);
  job.state = state;
  job.attempts = attempts;
  if (state === 'working') job.startedAt = at;
  if (state === 'queued') job.startedAt = null;
  if (isTerminal(state)) job.finishedAt = at;
  if (error) job.error = error;
  else if (state === 'working' || state === 'completed') job.error = null; // a retried job sheds its last failure
  return t;
}

export function applyWebhook(job: Job, r: Extract<JobRecord, { t: 'webhook' }>): void {
  const w = job.webhook;
  if (r.outcome === 'retrying') {
    w.retry = { seq: r.seq, attempts: r.attempts, nextAt: r.next_at ?? 0 };
    w.lastError = r.error;
    return;
  }
  w.retry = null;
  w.settledSeq = Math.max(w.settledSeq, r.seq);
  if (r.outcome === 'delivered') w.delivered++;
  // Events dropped after a 410 are not delivery attempts: last_error keeps the receiver's answer.
  else if (!w.gone) w.lastError = r.error ?? r.outcome;
  if (r.outcome === 'gone') w.gone = true;
}

export interface ReplayResult {
  jobs: Map<string, Job>;
  /** records that named an unknown job or made no sense; skipped */
  orphans: number;
}

/** Rebuilds every job from journal records, in file order. */
export function replayRecords(records: Iterable<unknown>): ReplayResult {
  const jobs = new Map<string, Job>();
  let orphans = 0;
  for (const raw of records) {
    const r = raw as JobRecord;
    if (!r || typeof r !== 'object') {
      orphans++;
      continue;
    }
    if (r.t === 'job') {
      r.job.key ??= null; // compacted before keys existed
      jobs.set(r.job.id, r.job);
      continue;
    }
    if (r.t === 'submit') {
      jobs.set(r.id, jobFromSubmit(r));
      continue;
    }
    const job = jobs.get((r as { id: string }).id);
    if (!job) {
      orphans++;
      continue;
    }
    if (r.t === 'state') applyState(job, r.state, r.at, r.attempts, r.error ?? null);
    else if (r.t === 'result') job.response = r.response;
    else if (r.t === 'webhook') applyWebhook(job, r);
    else orphans++;
  }
  return { jobs, orphans };
}

// ---- views ----

export interface Artifact {
  name: string;
  bytes: number;
  url: string;
  contentType: string;
  body: string;
}

function messageOf(response: Record<string, unknown> | null): Record<string, unknown> | null {
  const m = response?.message;
  return m && typeof m === 'object' ? (m as Record<string, unknown>) : null;
}

// A response never changes once set, so its artifacts (one JSON.stringify of a possibly large
// response) are derived once, not on every view, poll, listing and event payload.
const artifactCache = new WeakMap<object, Artifact[]>();

/** content.txt, thinking.txt, tool_calls.json, response.json — derived from the merged response. */
export function artifactsOf(job: Job): Artifact[] {
  if (!job.response) return [];
  const cached = artifactCache.get(job.response);
  if (cached) return cached;
  const artifacts = deriveArtifacts(job, job.response);
  artifactCache.set(job.response, artifacts);
  return artifacts;
}

function deriveArtifacts(job: Job, response: Record<string, unknown>): Artifact[] {
  const msg = messageOf(response);
  const content = String((job.kind === 'chat' ? msg?.content : response.response) ?? '');
  const thinking = (job.kind === 'chat' ? msg?.thinking : response.thinking) as string | undefined;
  const toolCalls = (job.kind === 'chat' ? msg?.tool_calls : response.tool_calls) as unknown[] | undefined;
  const out: Array<Omit<Artifact, 'bytes' | 'url'>> = [{ name: 'content.txt', contentType: 'text/plain; charset=utf-8', body: content }];
  if (thinking) out.push({ name: 'thinking.txt', contentType: 'text/plain; charset=utf-8', body: thinking });
  if (Array.isArray(toolCalls) && toolCalls.length) {
    out.push({ name: 'tool_calls.json', contentType: 'application/json', body: JSON.stringify(toolCalls) });
  }
  out.push({ name: 'response.json', contentType: 'application/json', body: JSON.stringify(response) });
  return out.map((a) => ({
    ...a, bytes: Buffer.byteLength(a.body), url: `/jobs/${encodeURIComponent(job.id)}/artifacts/${a.name}`,
  }));
}

const RESULT_FIELDS = ['done_reason', 'total_duration', 'load_duration', 'prompt_eval_count', 'prompt_eval_duration', 'eval_count', 'eval_duration'];

export function resultOf(job: Job): Record<string, unknown> | null {
  if (!job.response) return null;
  const out: Record<string, unknown> = {};
  if (job.kind === 'chat') out.message = job.response.message ?? null;
  else {
    out.response = job.response.response ?? '';
    if (job.response.thinking) out.thinking = job.response.thinking;
    if (job.response.tool_calls) out.tool_calls = job.response.tool_calls;
  }
  for (const f of RESULT_FIELDS) if (job.response[f] !== undefined) out[f] = job.response[f];
  return out;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export interface RecordViewOptions {
  queuePosition?: number | null;
  pendingWebhooks?: number;
}

/** The public job record (SPEC §4 record fields). */
export function jobView(job: Job, options: RecordViewOptions = {}): Record<string, unknown> {
  return {
    id: job.id,
    state: job.state,
    model: job.model,
    kind: job.kind,
    priority: job.priority,
    key: job.key,
    created_at: iso(job.createdAt),
    started_at: iso(job.startedAt),
    finished_at: iso(job.finishedAt),
    attempts: job.attempts,
    ...(job.state === 'queued' ? { queue_position: options.queuePosition ?? null } : {}),
    metadata: job.metadata ?? null,
    state_webhook_url: job.webhookUrl,
    result: resultOf(job),
    error: job.error,
    artifacts: artifactsOf(job).map(({ name, bytes, url }) => ({ name, bytes, url })),
    webhook: job.webhookUrl
      ? { delivered: job.webhook.delivered, pending: options.pendingWebhooks ?? 0, last_error: job.webhook.lastError }
      : null,
  };
}

/**
 * The payload of event `seq` (1-based): the record as it stood at that transition.
 * Deterministic, so a retry after a restart sends the same bytes under the same webhook-id.
 * The result is cut at maxResultBytes and marked truncated (SPEC §5).
 */
export function eventPayload(job: Job, seq: number, maxResultBytes: number): Record<string, unknown> {
  const t = job.transitions[seq - 1]!;
  let startedAt: number | null = null;
  for (let i = seq - 1; i >= 0 && startedAt === null; i--) if (job.transitions[i]!.state === 'working') startedAt = job.transitions[i]!.at;
  const terminal = isTerminal(t.state);
  const view = jobView(job);
  view.state = t.state;
  view.attempts = t.attempts;
  view.started_at = t.state === 'queued' ? null : iso(startedAt);
  view.finished_at = terminal ? iso(t.at) : null;
  delete view.webhook;
  delete view.queue_position;
  if (!terminal) {
    view.result = null;
    view.error = null;
    view.artifacts = [];
  } else if (view.result) {
    const text = JSON.stringify(view.result);
    if (Buffer.byteLength(text) > maxResultBytes) view.result = truncateResult(view.result as Record<string, unknown>, maxResultBytes);
  }
  return {
    type: 'job.state', job_id: job.id, seq, state: t.state, previous_state: t.prev, at: iso(t.at), job: view,
  };
}

/**
 * Cuts the result's text fields so that, together, they fit in maxBytes less what the rest of the
 * result takes (metrics, done_reason): answer text first, then thinking. Cuts land on a character
 * boundary. Tool calls stay unless they alone are over the limit (tool_calls.json keeps them whole).
 */
function truncateResult(result: Record<string, unknown>, maxBytes: number): Record<string, unknown> {
  const out: Record<string, unknown> = { ...result, truncated: true };
  const message = out.message && typeof out.message === 'object' ? { ...(out.message as Record<string, unknown>) } : null;
  if (message) out.message = message;
  // [holder, key] of each text field, in the order they get the budget
  const fields: Array<[Record<string, unknown>, string]> = message
    ? [[message, 'content'], [message, 'thinking']]
    : [[out, 'response'], [out, 'thinking']];
  const texts = fields.map(([holder, key]) => holder[key]);
  for (const [holder, key] of fields) if (typeof holder[key] === 'string') holder[key] = '';
  const toolsHolder = message ?? out;
  if (toolsHolder.tool_calls !== undefined && Buffer.byteLength(JSON.stringify(out)) > maxBytes) delete toolsHolder.tool_calls;
  let budget = Math.max(0, maxBytes - Buffer.byteLength(JSON.stringify(out)));
  fields.forEach(([holder, key], i) => {
    const text = texts[i];
    if (typeof text !== 'string') return;
    const cut = cutUtf8(text, budget);
    holder[key] = cut;
    budget -= Buffer.byteLength(JSON.stringify(cut)) - 2;
  });
  return out;
}

/** The longest prefix of `text` whose UTF-8 form fits in maxBytes, never ending inside a character. */
function cutUtf8(text: string, maxBytes: number): string {
  const bytes = Buffer.from(text);
  if (bytes.length <= maxBytes) return text;
  let end = Math.max(0, maxBytes);
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--; // back off from a continuation byte
  return bytes.subarray(0, end).toString('utf8');
}

export function eventId(jobId: string, seq: number): string {
  return `evt_${jobId}_${seq}`;
}
