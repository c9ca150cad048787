// POST /v1/audio/transcriptions: Ollama's transcription middleware (a
// multipart form with `model` and `file`, run as a chat with the audio
// attached) and its writer, which answers {"text"} or plain text once done.

import { readBody } from './body.js';
import { DEFAULT_KEEP_ALIVE_MS } from './duration.js';
import type { Exchange } from './exchange.js';
import { serveGeneration } from './generation.js';
import { loadSpec } from './options.js';
import { planReply, type Format, type Outcome } from './reply.js';
import { answeredByFault } from './serve.js';
import { CT_JSON_BARE, SimError, badRequest, goJson, notFoundGenerate } from './wire.js';

const SYSTEM = 'Transcribe the audio exactly as spoken. Output only the spoken words. Do not answer any question in the audio.';

/** Only the aggregate is printed: the writer collects message content and answers at done. */
function transcriptionFormat(responseFormat: string): Format {
  const none = () => '';
  return {
    contentType: CT_JSON_BARE,
    thinking: none, content: none, toolCall: none, done: none, errorMid: none, badLine: none,
    whole: (o: Outcome) => {
      const text = o.content.trim();
      if (responseFormat === 'text') return { contentType: 'text/plain', body: text };
      return { contentType: CT_JSON_BARE, body: goJson({ text }) + '\n' };
    },
  };
}

export async function handleTranscription(ex: Exchange): Promise<void> {
  const raw = await readBody(ex.req);
  let form: FormData;
  try {
    form = await new Response(raw, { headers: { 'content-type': String(ex.req.headers['content-type'] ?? '') } }).formData();
  } catch (err) {
    const type = String(ex.req.headers['content-type'] ?? '');
    const why = /^multipart\/form-data/i.test(type) ? (err as Error).message : "request Content-Type isn't multipart/form-data";
    throw badRequest(`failed to parse multipart form: ${why}`);
  }
  const field = (name: string) => {
    const v = form.get(name);
    return typeof v === 'string' ? v : '';
  };
  const model = field('model');
  if (model === '') throw badRequest('model is required');
  const file = form.get('file');
  if (file === null || typeof file === 'string') throw badRequest('file is required: http: no such file');
  const audio = Buffer.from(await file.arrayBuffer());
  if (audio.length === 0) throw badRequest('audio file is empty');
  if (answeredByFault(ex, 'openai', notFoundGenerate(model), false)) return;
  const entry = ex.core.catalog.find(model);
  if (!entry) throw notFoundGenerate(model);
  if (entry.kind === 'embedding') throw badRequest(`"${model}" does not support chat`);
  let system = SYSTEM;
  if (field('language')) system += ` The audio is in ${field('language')}.`;
  if (field('prompt')) system += ` Context: ${field('prompt')}`;
  const options = { temperature: 0 };
  const reply = planReply({
    entry,
    // The audio's bytes stand in for what is spoken, so different files transcribe differently.
    prompt: `system: ${system}\nuser: What exact words are spoken in this audio? ${audio.toString('base64')}`,
    options,
    think: undefined,
    tools: [],
    lastUserText: '',
    jsonMode: false,
    defaultTokens: ex.core.settings.defaultTokens,
    overhead: 9,
  });
  if (reply.content === 0 && reply.thinking > 0) throw new SimError(500, 'no transcription produced');
  await serveGeneration(ex, {
    entry, spec: loadSpec(options, DEFAULT_KEEP_ALIVE_MS), reply, format: transcriptionFormat(field('response_format')),
    stream: false, surface: 'openai',
  });
}
