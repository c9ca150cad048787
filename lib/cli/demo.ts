// `foreman demo`: the simulator and foreman in one process, so the first command
// works on a machine without Ollama. A fresh token, a temporary data dir (removed
// at exit) and the sim on a free port; it prints the /ui address and a curl line.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EXIT, type CliIo } from './io.js';
import { configOrReport, start, untilSignal } from './serve.js';

export const DEMO_HELP = `Usage: foreman demo [serve flags]

Runs foreman on 127.0.0.1:11435 in front of a simulated Ollama (foreman sim) on a
free port, in one process. It makes a fresh random token and a temporary data dir
(removed when it stops) unless --tokens or --data-dir are given; any other serve
flag works too (e.g. --listen 127.0.0.1:0, --parallel 2). Unless --aliases is
given, claude-*, gpt-4* and gpt-5* model names run as llama3.2 (cloud models such as
gpt-oss:120b-cloud stay cloud), so Claude Code and Codex work against the demo with
only their base URL and the token. Ctrl-C stops both.

  --hosts N   N simulated Ollama hosts instead of one (SPEC §17), each with its own
              catalogue and load times (0.75-3 s): /ui and foreman status show the lanes.
`;

const given = (argv: readonly string[], flag: string) => argv.some((a) => a === flag || a.startsWith(`${flag}=`));

export async function runDemo(argv: readonly string[], env: NodeJS.ProcessEnv, io: CliIo): Promise<number> {
  if (given(argv, '--help') || given(argv, '-h')) {
    io.stdout.write(DEMO_HELP);
    return EXIT.ok;
  }
  const { startSim } = await import('../sim/index.js');
  const { hostVariants } = await import('../sim/hosts.js');
  const { DEFAULT_MODELS } = await import('../sim/catalog.js');
  // `--hosts N` is the demo's own flag: several simulated hosts behind one foreman.
  const at = argv.findIndex((a) => a === '--hosts' || a.startsWith('--hosts='));
  const hostsText = at === -1 ? '1' : argv[at]!.includes('=') ? argv[at]!.slice(8) : argv[at + 1] ?? '';
  const hostCount = Number(hostsText);
  if (!/^\d+$/.test(hostsText) || hostCount < 1 || hostCount > 16) {
    io.stderr.write(`foreman demo: --hosts: expected an integer 1..16, got '${hostsText}'\n`);
    return EXIT.usage;
  }
  argv = at === -1 ? argv : argv.filter((_, i) => i !== at && !(i === at + 1 && !argv[at]!.includes('=')));
  const sims = hostCount === 1
    ? [await startSim({ host: '127.0.0.1', port: 0 })]
    : await Promise.all(hostVariants(hostCount, { host: '127.0.0.1', port: 0, loadMs: 1500, models: [...DEFAULT_MODELS] }).map((v) => startSim(v.options)));
  const sim = { url: sims.map((s) => s.url).join(',') };
  const token = randomBytes(18).toString('base64url');
  const tempDir = given(argv, '--data-dir') ? null : mkdtempSync(join(tmpdir(), 'foreman-demo-'));
  const cleanup = async () => {
    await Promise.all(sims.map((s) => s.close()));
    if (tempDir) rmSync(tempDir, { recursive: true, force: true });
  };
  // The demo's own choices come first; the caller's flags win over them.
  const own = ['--upstream', sim.url, ...(given(argv, '--tokens') ? [] : ['--tokens', token]), ...(tempDir ? ['--data-dir', tempDir] : []),
    // Agents ask for their own vendor's models; the simulator has llama3.2.
    ...(given(argv, '--aliases') ? [] : ['--aliases', 'claude-*=llama3.2,gpt-4*=llama3.2,gpt-5*=llama3.2'])];
  const config = configOrReport([...own, ...argv], env, io);
  const foreman = config && (await start(config, io));
  if (!config || !foreman) {
    await cleanup();
    return config ? EXIT.failure : EXIT.usage;
  }
  const stopped = untilSignal(io, async () => {
    await foreman.close();
    await cleanup();
  });
  const shown = config.tokens[0] ?? token;
  const auth = `-H 'Authorization: Bearer ${shown}' `;
  io.stdout.write(`foreman demo: foreman at ${foreman.url} in front of ${sims.length === 1 ? 'a simulated Ollama' : `${sims.length} simulated Ollama hosts`} at ${sim.url}
  token     ${shown}
  data dir  ${tempDir ? `${tempDir} (removed when the demo stops)` : config.data_dir}
  open      ${foreman.url}/ui#token=${encodeURIComponent(shown)}
  try       curl ${auth}${foreman.url}/api/chat -d '{"model":"llama3.2","messages":[{"role":"user","content":"Why queue?"}]}'
            FOREMAN_URL=${foreman.url} FOREMAN_TOKEN=${shown} node bin/foreman.js submit --model llama3.2 --prompt 'Why queue?' --wait
  agents    ANTHROPIC_BASE_URL=${foreman.url} ANTHROPIC_AUTH_TOKEN=${shown} claude -p 'Why queue?'
  Ctrl-C stops both.
`);
  await stopped;
  return EXIT.ok;
}
