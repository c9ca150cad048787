// sim/ owns the Ollama simulator behind `foreman sim`, `foreman demo` and the tests;
// it shares only pure helpers with foreman.
//
// The Ollama simulator: a faithful stand-in for Ollama on a loopback port,
// for foreman's tests, benchmarks and demos (SPEC §11, shared/ollama-wire.md).
//
// Behaviour worth knowing when writing tests against it:
// - Replies are deterministic: tokens derive from model + prompt + options.seed.
//   Length is options.num_predict (done_reason "length") or defaultTokens
//   (done_reason "stop"); thinking models spend a third of it in `thinking`.
//   On the /v1 surfaces max_tokens / max_output_tokens is a cap: only a value
//   below defaultTokens cuts the reply (agents send 32000 on every turn).
// - Tool calls: when `tools` is non-empty and the LAST message is the user's and
//   contains the word "weather", the model calls the first tool.
// - Residency follows Ollama's scheduler: one generation slot, one embedding
//   slot, a fast path for the loaded model (FIFO semaphore of numParallel), and
//   one global FIFO of requests waiting for a load (maxQueue, then 503 busy).
// - tokensPerSecond 0 (or Infinity) means no delay between tokens.
// - Per-request control through a top-level body field that Ollama ignores:
//   "sim": {"fault": "not_found"|"error_before"|"error_mid"|"stall"|"stall_before"|
//   "reset"|"bad_line", "after": N, "status": S, "message": M, "delay_ms": D,
//   "split": "none"|"random"|N}. See directive.ts.
// - GET /sim/stats returns SimStats; POST /sim/reset unloads all and zeroes it.

import { createCore } from './core.js';
import { startServer } from './server.js';
import type { Sim, SimOptions } from './types.js';

export type { Sim, SimModel, SimOptions, SimStats, SplitMode, FaultKind } from './types.js';

export async function startSim(options: SimOptions = {}): Promise<Sim> {
  const core = createCore(options);
  const server = await startServer(core);
  const host = core.settings.host.includes(':') ? `[${core.settings.host}]` : core.settings.host;
  const url = `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${server.port}`;
  let closing: Promise<void> | undefined;
  return {
    url,
    port: server.port,
    stats: () => core.snapshot(),
    resetStats: () => {
      core.stats.reset();
      core.cloud.reset();
    },
    limitCloud: (count, retryAfterS) => core.cloud.limit(count, retryAfterS),
    close: () => (closing ??= server.close()),
  };
}
