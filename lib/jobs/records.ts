// Async job state as data: the journal records and their shapes, the reducer that replays
// them, the public record view and the webhook/event payloads (SPEC §4, §5, §6).
// Pure: no I/O, no clock; service.ts owns the effects, store.ts the files.

import { groupKey } from '../sched/model-group.js';

import { Transitions, type JobState, type Transition } from './transitions.js';

export { Transitions, type JobState, type Transition } from './transitions.js';
export type JobKind = 'chat' | 'generate';

export const TERMINAL: ReadonlySet<JobState> = new Set(['completed', 'failed', 'cancelled']);
export const isTerminal = (s: JobState) => TERMINAL.has(s);

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

export interface ArtifactSize {
  name: string;
  bytes: number;
}

/** What memory keeps of a result: its file's size and the artifacts' sizes (the text stays on disk). */
export interface ResultSummary {
  bytes: number;
  artifacts: ArtifactSize[];
}

/**
 * A job as memory holds it (SPEC §16): small. The request body stays on disk (a kept journal line
 * or DATA_DIR/bodies/ID.json), the result in DATA_DIR/results/ID.json.
 */
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
  idempotency: { key: string; hash: string } | null;
  /** the queue group, fixed at submission (model plus load options) */
  group: string;
  /** bytes of the forwarded body: what the job counts against max_queue_bytes */
  bodyBytes: number;
  /** body in DATA_DIR/bodies/ID.json (large) rather than in the kept submit line */
  bodyFile: boolean;
  result: ResultSummary | null;
  /** a result journaled inline by an earlier version; new results live in files */
  response?: Record<string, unknown>;
  error: JobError | null;
  transitions: Transitions;
  webhook: WebhookProgress;
}

/** Journal records. `t` tags the kind; each is one JSON line. */
export type JobRecord =
  | { t: 'submit'; id: string; at: number; model: string; kind: JobKind; priority: number; metadata: unknown;
      webhook_url: string | null; idem: { key: string; hash: string } | null; key?: string | null;
      /** inline body (the line is kept until the job ends), or absent with body_file */
      body?: Record<string, unknown>; body_file?: boolean; bytes?: number; group?: string }
  | { t: 'state'; id: string; at: number; state: JobState; attempts: number; error?: JobError | null; seq?: number }
  | { t: 'result'; id: string; at: number; bytes?: number; artifacts?: ArtifactSize[]; response?: Record<string, unknown> }
  | { t: 'webhook'; id: string; seq: number; outcome: 'delivered' | 'retrying' | 'gone' | 'exhausted';
      attempts: number; next_at: number | null; error: string | null }
  | { t: 'job'; job: Omit<Job, 'transitions'> & { transitions: Transition[] | Transitions; body?: Record<string, unknown> } };

// Replay parses every string anew: 100,000 jobs would hold 100,000 copies of "llama3.2:latest" and
// of each state name. One shared copy of each short repeated string keeps a job small (SPEC §16).
const interned = new Map<string, string>();
export function intern<T extends string | null>(text: T): T {
  if (text === null || text.length > 256) return text;
  const known = interned.get(text);
  if (known !== undefined) return known as T;
  if (interned.size >= 4096) interned.clear(); // a bound, not an LRU: the common names come straight back
  interned.set(text, text);
  return text;
}

function compactJob(job: Job): Job {
  job.model = intern(job.model);
  job.group = intern(job.group);
  job.key = intern(job.key);
  job.kind = intern(job.kind);
  job.state = intern(job.state);
  if (job.result) for (const a of job.result.artifacts) a.name = intern(a.name);
  return job;
}

export function newWebhookProgress(): WebhookProgress {
  return { settledSeq: 0, delivered: 0, gone: false, lastError: null, retry: null };
}

/** Shared by every job without a state_webhook_url: nothing is ever delivered for those, so nothing changes it. */
const NO_WEBHOOK: WebhookProgress = Object.freeze(newWebhookProgress()) as WebhookProgress;

export function jobFromSubmit(r: Extract<JobRecord, { t: 'submit' }>): Job {
  return compactJob({
    id: r.id, model: r.model, kind: r.kind, priority: r.priority, key: r.key ?? null, createdAt: r.at, startedAt: null, finishedAt: null,
    attempts: 0, state: 'queued', metadata: r.metadata, webhookUrl: r.webhook_url, idempotency: r.idem,
    group: r.group ?? groupKey(r.model, r.body?.options),
    bodyBytes: r.bytes ?? (r.body ? Buffer.byteLength(JSON.stringify(r.body)) : 0),
    bodyFile: r.body_file === true,
    result: null, error: null, transitions: new Transitions([{ state: 'queued', at: r.at, attempts: 0 }]),
    webhook: r.webhook_url ? newWebhookProgress() : NO_WEBHOOK,
  });
}

/** Applies one state change; the same function serves live transitions and replay. */
export function applyState(job: Job, state: JobState, at: number, attempts: number, error: JobError | null = null): Transition {
  const t = job.transitions.push(state, at, attempts);
  job.state = state;
  job.attempts = attempts;
  if (state === 'working') job.startedAt = at;
  if (state === 'queued') job.startedAt = null;
  if (isTerminal(state)) job.finishedAt = at;
  if (error) job.error = error;
  else if (state === 'working' || state === 'completed') job.error = null; // a retried job sheds its last failure
  return t;
}

/** Delivery progress; a settled event already reflected (a snapshot written after it) is not counted twice. */
export function applyWebhook(job: Job, r: Extract<JobRecord, { t: 'webhook' }>): void {
  const w = job.webhook;
  if (r.seq <= w.settledSeq) return;
  if (r.outcome === 'retrying') {
    w.retry = { seq: r.seq, attempts: r.attempts, nextAt: r.next_at ?? 0 };
    w.lastError = r.error;
    return;
  }
  w.retry = null;
  w.settledSeq = r.seq;
  if (r.outcome === 'delivered') w.delivered++;
  // Events dropped after a 410 are not delivery attempts: last_error keeps the receiver's answer.
  else if (!w.gone) w.lastError = r.error ?? r.outcome;
  if (r.outcome === 'gone') w.gone = true;
}

// ---- record shapes (SPEC §6: replay checks each record before trusting it) ----

const STATES: ReadonlySet<string> = new Set(['queued', 'working', 'completed', 'failed', 'cancelled']);
const OUTCOMES: ReadonlySet<string> = new Set(['delivered', 'retrying', 'gone', 'exhausted']);
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStr = (v: unknown): v is string => typeof v === 'string';
const isInt = (v: unknown): v is number => Number.isSafeInteger(v);
const isTime = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isStrOrNull = (v: unknown) => v === null || isStr(v);
const isTimeOrNull = (v: unknown) => v === null || isTime(v);
const isError = (v: unknown) => v === null || v === undefined || (isObject(v) && isStr(v.message));
const isIdem = (v: unknown) => v === null || v === undefined || (isObject(v) && isStr(v.key) && isStr(v.hash));
const isKind = (v: unknown) => v === 'chat' || v === 'generate';
const isArtifacts = (v: unknown) => Array.isArray(v) && v.every((a) => isObject(a) && isStr(a.name) && isInt(a.bytes));

function isTransition(v: unknown): boolean {
  return isObject(v) && isInt(v.seq) && STATES.has(v.state as string) && (v.prev === null || STATES.has(v.prev as string))
    && isTime(v.at) && isInt(v.attempts);
}

function isWebhookProgress(v: unknown): boolean {
  if (!isObject(v) || !isInt(v.settledSeq) || !isInt(v.delivered) || typeof v.gone !== 'boolean' || !isStrOrNull(v.lastError)) return false;
  return v.retry === null || (isObject(v.retry) && isInt(v.retry.seq) && isInt(v.retry.attempts) && isTime(v.retry.nextAt));
}

function isSnapshot(j: unknown): boolean {
  if (!isObject(j)) return false;
  return isStr(j.id) && isStr(j.model) && isKind(j.kind) && isInt(j.priority) && isTime(j.createdAt)
    && isTimeOrNull(j.startedAt) && isTimeOrNull(j.finishedAt) && isInt(j.attempts) && STATES.has(j.state as string)
    && isStrOrNull(j.webhookUrl) && isIdem(j.idempotency) && isError(j.error) && (j.key === undefined || isStrOrNull(j.key))
    && Array.isArray(j.transitions) && j.transitions.length > 0 && j.transitions.every(isTransition)
    && isWebhookProgress(j.webhook)
    && (j.result === undefined || j.result === null || (isObject(j.result) && isInt(j.result.bytes) && isArtifacts(j.result.artifacts)))
    && (j.body === undefined || isObject(j.body)) && (j.response === undefined || j.response === null || isObject(j.response));
}

/** The record if it is a well-formed record of its type, else null (skipped and counted at replay). */
export function parseJobRecord(raw: unknown): JobRecord | null {
  if (!isObject(raw)) return null;
  const r = raw;
  switch (r.t) {
    case 'submit':
      return isStr(r.id) && isTime(r.at) && isStr(r.model) && isKind(r.kind) && isInt(r.priority) && isStrOrNull(r.webhook_url)
        && isIdem(r.idem) && (isObject(r.body) || (r.body_file === true && isInt(r.bytes)))
        && (r.group === undefined || isStr(r.group)) && (r.bytes === undefined || isInt(r.bytes))
        && (r.key === undefined || isStrOrNull(r.key))
        ? (r as JobRecord) : null;
    case 'state':
      return isStr(r.id) && isTime(r.at) && STATES.has(r.state as string) && isInt(r.attempts) && isError(r.error)
        && (r.seq === undefined || isInt(r.seq)) ? (r as JobRecord) : null;
    case 'result':
      return isStr(r.id) && isTime(r.at) && (isObject(r.response) || (isInt(r.bytes) && isArtifacts(r.artifacts)))
        ? (r as JobRecord) : null;
    case 'webhook':
      return isStr(r.id) && isInt(r.seq) && OUTCOMES.has(r.outcome as string) && isInt(r.attempts)
        && isTimeOrNull(r.next_at) && isStrOrNull(r.error) ? (r as JobRecord) : null;
    case 'job':
      return isSnapshot(r.job) ? (r as JobRecord) : null;
    default:
      return null;
  }
}

/**
 * Rebuilds jobs from journal records in file order (start-up replay, SPEC §6). Records are
 * applied idempotently: a compaction snapshot may already reflect records written after it.
 */
export class JobReplay {
  readonly jobs = new Map<string, Job>();
  /** well-formed records naming an unknown job; skipped */
  orphans = 0;

  /**
   * For the journal's replay visitor: false = malformed (the journal counts it as a bad line),
   * the job id = keep this line (it holds the body of a job that has not ended), else true.
   */
  visit = (raw: object): boolean | string => {
    const r = parseJobRecord(raw);
    if (!r) return false;
    return this.apply(r);
  };

  apply(r: JobRecord): boolean | string {
    if (r.t === 'job') {
      const { body, ...s } = r.job;
      // Built field by field: one object shape for every job, and nothing a snapshot carries beyond a Job.
      const job: Job = {
        id: s.id, model: s.model, kind: s.kind, priority: s.priority, key: s.key ?? null /* compacted before keys existed */,
        createdAt: s.createdAt, startedAt: s.startedAt, finishedAt: s.finishedAt, attempts: s.attempts, state: s.state,
        metadata: s.metadata, webhookUrl: s.webhookUrl, idempotency: s.idempotency ?? null,
        group: s.group ?? groupKey(s.model, body?.options),
        bodyBytes: s.bodyBytes ?? (body ? Buffer.byteLength(JSON.stringify(body)) : 0), bodyFile: s.bodyFile === true,
        result: s.result ?? null, error: s.error ?? null,
        transitions: s.transitions instanceof Transitions ? s.transitions : new Transitions(s.transitions),
        webhook: s.webhookUrl ? s.webhook : NO_WEBHOOK,
      };
      if (s.response) job.response = s.response;
      // A snapshot of an earlier version held the response itself: derive the sizes views list.
      if (job.response && !job.result) {
        job.result = { bytes: Buffer.byteLength(JSON.stringify(job.response)), artifacts: artifactsOf(job, job.response).map(({ name, bytes }) => ({ name, bytes })) };
      }
      this.jobs.set(job.id, compactJob(job));
      // A snapshot of an earlier version carried the body itself: keep its line while the job may run.
      return body && !isTerminal(job.state) ? job.id : true;
    }
    if (r.t === 'submit') {
      // Already known from a snapshot: this is its kept body line, copied ahead of the snapshot, or a
      // submit that became durable while a compaction copied (the snapshot may hold a later state).
      const known = this.jobs.get(r.id);
      if (!known) this.jobs.set(r.id, jobFromSubmit(r));
      else if (isTerminal(known.state)) return true;
      return r.body ? r.id : true;
    }
    const job = this.jobs.get(r.id);
    if (!job) {
      this.orphans++;
      return true;
    }
    if (r.t === 'state') {
      if (r.seq === undefined || r.seq > job.transitions.length) applyState(job, intern(r.state), r.at, r.attempts, r.error ?? null);
    } else if (r.t === 'result') {
      if (r.response) {
        job.response = r.response;
        job.result = { bytes: Buffer.byteLength(JSON.stringify(r.response)), artifacts: artifactsOf(job, r.response).map(({ name, bytes }) => ({ name, bytes })) };
      } else job.result = { bytes: r.bytes!, artifacts: r.artifacts!.map(({ name, bytes }) => ({ name: intern(name), bytes })) };
    } else applyWebhook(job, r);
    return true;
  }
}

export interface ReplayResult {
  jobs: Map<string, Job>;
  /** records that named an unknown job or made no sense; skipped */
  orphans: number;
}

/** Rebuilds every job from journal records, in file order (malformed ones count as orphans). */
export function replayRecords(records: Iterable<unknown>): ReplayResult {
  const replay = new JobReplay();
  let bad = 0;
  for (const raw of records) if (replay.visit(raw as object) === false) bad++;
  return { jobs: replay.jobs, orphans: replay.orphans + bad };
}

/** The compaction snapshot of a job: everything but the body and the result text. */
export function snapshotRecord(job: Job): JobRecord {
  return { t: 'job', job };
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
export function artifactsOf(job: Job, response: Record<string, unknown> | null = job.response ?? null): Artifact[] {
  if (!response) return [];
  const cached = artifactCache.get(response);
  if (cached) return cached;
  const artifacts = deriveArtifacts(job, response);
  artifactCache.set(response, artifacts);
  return artifacts;
}

/** The artifact list of a record ({name, bytes, url}): from the summary, no need to read the result. */
export function artifactList(job: Job): Array<{ name: string; bytes: number; url: string }> {
  const sizes = job.result?.artifacts ?? [];
  return sizes.map(({ name, bytes }) => ({ name, bytes, url: `/jobs/${encodeURIComponent(job.id)}/artifacts/${name}` }));
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

export function resultOf(job: Job, response: Record<string, unknown> | null = job.response ?? null): Record<string, unknown> | null {
  if (!response) return null;
  const out: Record<string, unknown> = {};
  if (job.kind === 'chat') out.message = response.message ?? null;
  else {
    out.response = response.response ?? '';
    if (response.thinking) out.thinking = response.thinking;
    if (response.tool_calls) out.tool_calls = response.tool_calls;
  }
  for (const f of RESULT_FIELDS) if (response[f] !== undefined) out[f] = response[f];
  return out;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export interface RecordViewOptions {
  queuePosition?: number | null;
  pendingWebhooks?: number;
}

/** The public job record (SPEC §4 record fields). */
export function jobView(
  job: Job, options: RecordViewOptions = {}, response: Record<string, unknown> | null = job.response ?? null,
): Record<string, unknown> {
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
    result: resultOf(job, response),
    error: job.error,
    artifacts: artifactList(job),
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
export function eventPayload(
  job: Job, seq: number, maxResultBytes: number, response: Record<string, unknown> | null = job.response ?? null,
): Record<string, unknown> {
  const t = job.transitions.at(seq - 1)!;
  let startedAt: number | null = null;
  for (let i = seq - 1; i >= 0 && startedAt === null; i--) {
    const earlier = job.transitions.at(i)!;
    if (earlier.state === 'working') startedAt = earlier.at;
  }
  const terminal = isTerminal(t.state);
  const view = jobView(job, {}, response);
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
