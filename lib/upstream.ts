// The Ollama client: fetch plus AbortSignal. It knows no queue and no server;
// it never forwards a caller's Authorization (only upstream_token), and fetch
// sets Host to upstream's own, which a loopback-bound Ollama requires (SPEC §2).

import { describeNetworkError, upstreamUnreachable } from './errors.js';

export interface UpstreamRequest {
  method?: string;
  body?: Uint8Array | string;
  signal?: AbortSignal;
  /** Extra headers, already filtered by the caller. */
  headers?: Record<string, string>;
}

export interface PsModel {
  name: string;
  model: string;
  size?: number;
  size_vram?: number;
  expires_at?: string;
}

export interface Upstream {
  readonly baseUrl: string;
  /** Sends a request; network failures become HttpError 502 `upstream unreachable: …`. */
  send(path: string, init?: UpstreamRequest): Promise<Response>;
  loadedModels(signal?: AbortSignal): Promise<PsModel[]>;
  capabilities(model: string, signal?: AbortSignal): Promise<string[]>;
  /** Asks Ollama to unload a model (`keep_alive: 0` with an empty prompt). */
  unload(model: string, signal?: AbortSignal): Promise<void>;
  version(signal?: AbortSignal): Promise<string>;
}

/** Request headers worth passing to Ollama; hop-by-hop, Host and Authorization never are. */
const FORWARDED_HEADERS = ['content-type', 'accept', 'user-agent', 'accept-language', 'openai-organization', 'openai-project'];

export function forwardableHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of FORWARDED_HEADERS) {
    const v = headers[name];
    if (typeof v === 'string') out[name] = v;
  }
  return out;
}

export function createUpstream(baseUrl: string, token?: string): Upstream {
  const base = baseUrl.replace(/\/+$/, '');

  const send = async (path: string, init: UpstreamRequest = {}): Promise<Response> => {
    const headers: Record<string, string> = { ...init.headers };
    if (init.body !== undefined && !headers['content-type']) headers['content-type'] = 'application/json';
    if (token) headers.authorization = `Bearer ${token}`;
    try {
      return await fetch(base + path, {
        method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
        headers,
        body: init.body as RequestInit['body'],
        signal: init.signal,
        redirect: 'manual',
      });
    } catch (err) {
      if (init.signal?.aborted) throw init.signal.reason ?? err;
      throw upstreamUnreachable(describeNetworkError(err));
    }
  };

  const getJson = async <T>(path: string, init: UpstreamRequest): Promise<T> => {
    const res = await send(path, init);
    const text = await res.text();
    if (!res.ok) throw upstreamUnreachable(`${path} answered ${res.status}`);
    return JSON.parse(text) as T;
  };

  return {
    baseUrl: base,
    send,
    async loadedModels(signal) {
      const body = await getJson<{ models?: PsModel[] | null }>('/api/ps', { signal });
      return body.models ?? [];
    },
    async capabilities(model, signal) {
      const res = await send('/api/show', { body: JSON.stringify({ model }), signal });
      const text = await res.text();
      if (!res.ok) return [];
      try {
        const caps = (JSON.parse(text) as { capabilities?: unknown }).capabilities;
        return Array.isArray(caps) ? caps.filter((c): c is string => typeof c === 'string') : [];
      } catch {
        return [];
      }
    },
    async unload(model, signal) {
      const res = await send('/api/generate', { body: JSON.stringify({ model, keep_alive: 0 }), signal });
      await res.arrayBuffer();
    },
    async version(signal) {
      const body = await getJson<{ version?: string }>('/api/version', { signal });
      return String(body.version ?? 'unknown');
    },
  };
}
