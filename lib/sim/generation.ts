// The token loop shared by every generation surface: paces tokens, writes
// them through the surface's Format (streamed) or aggregates them (not),
// injects the mid-stream faults, and stops the moment the client leaves.
// With tokensPerSecond 0 it starts no timers at all.

import { elapsedNs, nowMs, sleep, untilAborted } from './clock.js';
import type { ModelEntry } from './catalog.js';
import type { Exchange, Surface } from './exchange.js';
import type { Format, Metrics, Reply } from './reply.js';
import type { LoadSpec } from './residency.js';
import type { Held } from './serve.js';
import { withRunner } from './serve.js';
import { withCloud } from './cloud.js';
import { TokenSource } from './text.js';
import { CT_JSON, CT_JSON_BARE } from './wire.js';

export interface GenerationJob {
  entry: ModelEntry;
  spec: LoadSpec;
  reply: Reply;
  format: Format;
  stream: boolean;
  surface: Surface;
}

const MID_FAULTS = new Set(['error_mid', 'stall', 'reset', 'bad_line']);

export function serveGeneration(ex: Exchange, job: GenerationJob): Promise<void> {
  // A cloud model generates "on ollama.com": no load, no slot, no residency change.
  if (job.entry.remote) return withCloud(ex, job.entry, job.surface, (held) => (job.stream ? streamTokens(ex, job, held) : wholeReply(ex, job, held)));
  return withRunner(
    ex,
    job.entry,
    job.spec,
    { surface: job.surface, counted: true, permit: true },
    async (held) => {
      const { stats } = ex.core;
      stats.startGenerating();
      try {
        if (job.stream) await streamTokens(ex, job, held);
        else await wholeReply(ex, job, held);
      } finally {
        stats.stopGenerating();
      }
    },
  );
}

/** ms between tokens, 0 for none: the model's own rate, else the simulator's. */
function tokenInterval(ex: Exchange, entry: ModelEntry): number {
  const tps = entry.tokensPerSecond || ex.core.settings.tokensPerSecond;
  return tps > 0 && Number.isFinite(tps) ? 1000 / tps : 0;
}

function metrics(ex: Exchange, reply: Reply, held: Held, evalStartMs: number): Metrics {
  const end = nowMs();
  return {
    totalNs: elapsedNs(ex.startMs, end),
    loadNs: elapsedNs(ex.startMs, held.readyMs),
    promptEvalCount: reply.promptTokens,
    promptEvalNs: elapsedNs(held.permitMs, evalStartMs),
    evalCount: reply.evalCount,
    evalNs: elapsedNs(evalStartMs, end),
  };
}

async function streamTokens(ex: Exchange, job: GenerationJob, held: Held): Promise<void> {
  const { reply, format } = job;
  const w = ex.writer;
  const d = ex.directive;
  const total = reply.thinking + (reply.toolCall ? 1 : reply.content);
  // A mid-stream fault fires after `after` chunks, or just before the done chunk.
  const faultAt = d.fault && MID_FAULTS.has(d.fault) ? Math.min(d.after, total) : -1;
  const thinkingTokens = new TokenSource(reply.seed ^ 0x3c6ef372, reply.thinking, false);
  const contentTokens = new TokenSource(reply.seed, reply.content, reply.jsonMode);
  const interval = tokenInterval(ex, job.entry);
  const evalStart = nowMs();
  ex.res.writeHead(200, { 'Content-Type': format.contentType });
  for (let i = 0; i <= total; i++) {
    if (i === faultAt) {
      if (d.fault === 'error_mid') return w.end(format.errorMid(d.message));
      if (d.fault === 'stall') return untilAborted(ex.signal);
      if (d.fault === 'reset') return ex.reset();
      const p = w.write(format.badLine());
      if (p) await p;
    }
    if (i === total) break;
    if (interval > 0) {
      const wait = evalStart + (i + 1) * interval - nowMs();
      // Below a millisecond, tokens go out in bursts rather than one timer each.
      if (wait >= 1 && !(await sleep(wait, ex.signal))) return;
    }
    let line: string;
    if (i < reply.thinking) {
      thinkingTokens.next();
      line = format.thinking(thinkingTokens);
    } else if (reply.toolCall) {
      line = format.toolCall(reply.toolCall);
    } else {
      contentTokens.next();
      line = format.content(contentTokens);
    }
    const p = w.write(line);
    if (p) await p;
    if (!ex.open) return;
  }
  w.end(format.done(reply, metrics(ex, reply, held, evalStart)));
}

async function wholeReply(ex: Exchange, job: GenerationJob, held: Held): Promise<void> {
  const { reply, format } = job;
  const d = ex.directive;
  const evalStart = nowMs();
  if (d.fault === 'stall') return untilAborted(ex.signal);
  if (d.fault === 'error_mid') return ex.sendError(d.status, d.message, job.surface);
  if (d.fault === 'bad_line') return ex.send(200, job.surface === 'openai' ? CT_JSON_BARE : CT_JSON, 'not json');
  const interval = tokenInterval(ex, job.entry);
  const thinkingTokens = new TokenSource(reply.seed ^ 0x3c6ef372, reply.thinking, false);
  const contentTokens = new TokenSource(reply.seed, reply.content, reply.jsonMode);
  let thinking = '';
  let content = '';
  const total = reply.thinking + reply.content;
  for (let i = 0; i < total; i++) {
    if (interval > 0) {
      const wait = evalStart + (i + 1) * interval - nowMs();
      if (wait >= 1 && !(await sleep(wait, ex.signal))) return;
    }
    if (i < reply.thinking) {
      thinkingTokens.next();
      thinking += thinkingTokens.text;
    } else {
      contentTokens.next();
      content += contentTokens.text;
    }
  }
  if (!ex.open) return;
  const { contentType, body } = format.whole({ content, thinking, reply, metrics: metrics(ex, reply, held, evalStart) });
  if (d.fault === 'reset') {
    // Headers and part of the body, then the connection drops (after 0: nothing at all).
    if (d.after === 0) return ex.reset();
    ex.res.writeHead(200, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body) });
    ex.writer.write(body.slice(0, Math.floor(body.length / 2)));
    return ex.reset();
  }
  ex.send(200, contentType, body);
}
