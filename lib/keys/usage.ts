// Usage per key (SPEC §15): requests by surface, jobs by final state, prompt and completion
// tokens, run and queue-wait seconds. In memory since start; /metrics, GET /keys, `foreman keys`
// and /ui read it. Names only: a token never reaches this book.

export type UsageSurface = 'ollama' | 'openai' | 'anthropic' | 'jobs' | 'ops';

export interface KeyUsage {
  requests: Record<UsageSurface, number>;
  /** jobs that ended, by how: completed, failed, cancelled, requeued (an async run put back) */
  jobs: Record<string, number>;
  prompt_tokens: number;
  completion_tokens: number;
  run_seconds: number;
  queue_wait_seconds: number;
}

/** Which surface a request path belongs to, for the requests count. */
export function usageSurfaceOf(path: string): UsageSurface {
  if (path === '/v1/messages' || path.startsWith('/v1/messages/')) return 'anthropic';
  if (path.startsWith('/v1/')) return 'openai';
  if (path.startsWith('/api/')) return 'ollama';
  if (path === '/jobs' || path.startsWith('/jobs/')) return 'jobs';
  return 'ops';
}

const fresh = (): KeyUsage => ({
  requests: { ollama: 0, openai: 0, anthropic: 0, jobs: 0, ops: 0 },
  jobs: { completed: 0, failed: 0, cancelled: 0, requeued: 0 },
  prompt_tokens: 0,
  completion_tokens: 0,
  run_seconds: 0,
  queue_wait_seconds: 0,
});

export class UsageBook {
  readonly #byKey = new Map<string, KeyUsage>();

  #of(key: string): KeyUsage {
    let u = this.#byKey.get(key);
    if (u === undefined) this.#byKey.set(key, (u = fresh()));
    return u;
  }

  request(key: string, path: string): void {
    this.#of(key).requests[usageSurfaceOf(path)]++;
  }

  jobFinished(key: string, state: string, queueMs: number, runMs: number): void {
    const u = this.#of(key);
    u.jobs[state] = (u.jobs[state] ?? 0) + 1;
    u.run_seconds += Math.max(0, runMs) / 1000;
    u.queue_wait_seconds += Math.max(0, queueMs) / 1000;
  }

  tokens(key: string, prompt: number | null, completion: number | null): void {
    if (!prompt && !completion) return;
    const u = this.#of(key);
    u.prompt_tokens += prompt ?? 0;
    u.completion_tokens += completion ?? 0;
  }

  /** A copy: zeros for a key that has done nothing yet. */
  of(key: string): KeyUsage {
    return structuredClone(this.#byKey.get(key) ?? fresh());
  }

  /** Every key name with usage, including keys removed since. */
  names(): string[] {
    return [...this.#byKey.keys()];
  }
}

/**
 * Prompt and completion tokens of a final unit: Ollama's `prompt_eval_count`/`eval_count`, or the
 * OpenAI `usage` (`prompt_tokens`/`completion_tokens`) and Anthropic (`input_tokens`/`output_tokens`).
 */
export function tokensOfText(text: string): { prompt: number | null; completion: number | null } {
  const num = (re: RegExp) => {
    const m = re.exec(text);
    return m ? Number(m[1]) : null;
  };
  return {
    prompt: num(/"prompt_eval_count":\s*(\d+)/) ?? num(/"prompt_tokens":\s*(\d+)/) ?? num(/"input_tokens":\s*(\d+)/),
    completion: num(/"eval_count":\s*(\d+)/) ?? num(/"completion_tokens":\s*(\d+)/) ?? num(/"output_tokens":\s*(\d+)/),
  };
}
