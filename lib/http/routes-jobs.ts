// The async job surface (SPEC §4): POST /jobs (202 once durable), GET /jobs,
// GET /jobs/{id}[?wait=s], cancel, events and artifacts. Validation at the edge;
// the JobService owns state.

import { createHash } from 'node:crypto';
import type { RequestContext, Route } from './server.js';
import { badRequest, notFound } from '../errors.js';
import { validateGeneration } from './generation-request.js';
import { parsePriority } from './priority.js';
import { checkWebhookUrl } from '../webhooks/dispatcher.js';
import type { TargetPolicy } from '../webhooks/targets.js';
import type { JobService } from '../jobs/service.js';
import type { JobState } from '../jobs/records.js';
import { parseJsonObject, readBody, sendJson } from './body.js';
import { abortOnClientClose } from './passthrough.js';
import { checkModel } from './sync-job.js';
import { ANONYMOUS, maySee, priorityFor, type Key } from '../keys/keys-file.js';

export const MAX_METADATA_BYTES = 16 * 1024;
const MAX_IDEMPOTENCY_KEY = 255;
/** The longest long poll of GET /jobs/{id}?wait= (SPEC §5); longer asks are clamped to it. */
const MAX_WAIT_S = 300;
const MAX_LIST_LIMIT = 500;
const FOREMAN_FIELDS = ['priority', 'state_webhook_url', 'metadata'] as const;
const STATES: readonly JobState[] = ['queued', 'working', 'completed', 'failed', 'cancelled'];

export interface JobRouteDeps {
  jobs: JobService;
  maxBody: number;
  /** Which webhook targets a submission may name (SPEC §5); the open policy when absent. */
  webhookPolicy?: TargetPolicy;
  /** Model aliases (SPEC §7): the target for a requested name, or null. */
  aliasOf?: (model: string) => string | null;
}

const keyOf = (ctx: RequestContext): Key => ctx.key ?? ANONYMOUS;

export function jobRoutes(deps: JobRouteDeps): Route[] {
  const { jobs } = deps;
  /** The job, if the caller may see it: another key's job is as unknown as a missing one (SPEC §15). */
  const own = (ctx: RequestContext, id: string) => {
    const job = jobs.get(id);
    if (!maySee(keyOf(ctx), job.key)) throw notFound(`job '${id}' not found`);
    return job;
  };
  return [
    {
      method: 'POST',
      path: '/jobs',
      handler: async (ctx) => {
        const { req, res, logFields } = ctx;
        const caller = keyOf(ctx);
        const raw = await readBody(req, deps.maxBody);
        const body = parseJsonObject(raw);
        const hasMessages = body.messages !== undefined;
        const hasPrompt = body.prompt !== undefined;
        if (hasMessages === hasPrompt) throw badRequest('a job body has either messages (chat) or prompt (generate)');
        const kind = hasMessages ? 'chat' : 'generate';
        const validated = validateGeneration(body, kind);
        // An alias (SPEC §7) applies to async jobs too: the job is sent, grouped and recorded as its target.
        const target = deps.aliasOf?.(validated.model) ?? null;
        if (target !== null) logFields.alias = validated.model;
        const request = target === null ? validated : { ...validated, model: target };
        checkModel(caller, request.model);
        const priority = priorityFor(caller, parsePriority(body.priority, 'priority'), 0);
        let webhookUrl: string | null = null;
        if (body.state_webhook_url !== undefined && body.state_webhook_url !== null) {
          const problem = checkWebhookUrl(body.state_webhook_url, deps.webhookPolicy);
          if (problem) throw badRequest(problem);
          webhookUrl = String(body.state_webhook_url);
        }
        const metadata = body.metadata ?? null;
        if (Buffer.byteLength(JSON.stringify(metadata)) > MAX_METADATA_BYTES) {
          throw badRequest(`metadata exceeds ${MAX_METADATA_BYTES} bytes`);
        }
        const key = req.headers['idempotency-key'];
        if (key !== undefined && (typeof key !== 'string' || key.length === 0 || key.length > MAX_IDEMPOTENCY_KEY)) {
          throw badRequest(`Idempotency-Key must be 1..${MAX_IDEMPOTENCY_KEY} characters`);
        }
        const forwarded: Record<string, unknown> = { ...body };
        for (const f of FOREMAN_FIELDS) delete forwarded[f];
        if (target !== null) forwarded.model = target;
        delete forwarded.stream; // async jobs always stream from upstream and keep the merged result
        const { job, created } = await jobs.submit({
          kind,
          model: request.model, // as sent: Ollama echoes it so, and the record must too
          body: forwarded,
          priority,
          metadata,
          webhookUrl,
          // Per key: another key's Idempotency-Key must neither find nor block this one's job.
          idempotency: typeof key === 'string' ? { key: `${caller.name}:${key}`, hash: createHash('sha256').update(raw).digest('hex') } : null,
          key: caller.name,
          maxQueued: caller.maxQueued,
        });
        logFields.job = job.id;
        logFields.model = job.model;
        sendJson(res, created ? 202 : 200, await jobs.view(job), { location: `/jobs/${job.id}` });
      },
    },
    {
      method: 'GET',
      path: '/jobs',
      handler: async (ctx) => {
        const { res, url } = ctx;
        const caller = keyOf(ctx);
        const state = url.searchParams.get('state') ?? undefined;
        if (state !== undefined && !STATES.includes(state as JobState)) throw badRequest(`state must be one of ${STATES.join(', ')}`);
        const limitText = url.searchParams.get('limit') ?? '50';
        const limit = /^\d+$/.test(limitText) ? Number(limitText) : NaN;
        if (!(limit >= 1 && limit <= MAX_LIST_LIMIT)) throw badRequest(`limit must be 1..${MAX_LIST_LIMIT}`);
        const page = jobs.list({
          state: state as JobState | undefined,
          model: url.searchParams.get('model') ?? undefined,
          key: caller.admin ? url.searchParams.get('key') ?? undefined : caller.name,
          limit,
          cursor: url.searchParams.get('cursor') ?? undefined,
        });
        sendJson(res, 200, { jobs: await Promise.all(page.jobs.map((j) => jobs.view(j))), next_cursor: page.next });
      },
    },
    {
      method: 'GET',
      path: '/jobs/:id',
      handler: async (ctx) => {
        const waitText = ctx.url.searchParams.get('wait');
        let job = own(ctx, ctx.params.id!);
        if (waitText !== null) {
          const seconds = Number(waitText);
          if (!Number.isFinite(seconds) || seconds < 0) throw badRequest('wait must be a number of seconds, 0 or more');
          // A longer wait is clamped, not refused: a long poll that returns at the cap is what callers expect.
          job = await jobs.wait(job.id, Math.min(seconds, MAX_WAIT_S) * 1000, abortOnClientClose(ctx).signal);
        }
        const view = await jobs.view(job);
        if (!ctx.res.destroyed) sendJson(ctx.res, 200, view);
      },
    },
    {
      method: ['POST'],
      path: '/jobs/:id/cancel',
      handler: async (ctx) => sendJson(ctx.res, 200, await jobs.view(await jobs.cancel(own(ctx, ctx.params.id!).id))),
    },
    {
      method: ['DELETE'],
      path: '/jobs/:id',
      handler: async (ctx) => sendJson(ctx.res, 200, await jobs.view(await jobs.cancel(own(ctx, ctx.params.id!).id))),
    },
    {
      method: 'GET',
      path: '/jobs/:id/events',
      handler: async (ctx) => sendJson(ctx.res, 200, { events: await jobs.events(own(ctx, ctx.params.id!).id) }),
    },
    {
      method: 'GET',
      path: '/jobs/:id/artifacts/:name',
      handler: async (ctx) => {
        const { res, params } = ctx;
        const a = await jobs.artifact(own(ctx, params.id!).id, params.name!);
        res.writeHead(200, { 'content-type': a.contentType, 'content-length': a.bytes });
        res.end(a.body);
      },
    },
  ];
}
