// cli/ owns the command line: subcommands, their help and exit codes, serve and demo.
//
// runCli(argv, env, io) -> exit code. Subcommands live beside it in cli/; bin/foreman.js
// only calls this, so every command is testable in-process.

import { configHelp } from '../config.js';
import { VERSION } from '../version.js';

import { EXIT, type CliIo } from './io.js';
import { outliveClosedOutput } from '../log.js';
import { serve } from './serve.js';

export { EXIT, type CliIo };

export function helpText(): string {
  return `foreman ${VERSION} — a queued, authenticated, durable front for one Ollama server

Usage:
  foreman demo [flags]           foreman and a simulated Ollama in one process: no Ollama needed
                                 (fresh token, temporary data dir; prints the /ui address and a curl line)
  foreman [serve] [flags]        run the server (default); says so at start when no Ollama answers
  foreman submit [flags]         submit an async job (--model, --prompt or stdin, --wait)
  foreman jobs [--state S]       list async jobs, newest first (--key NAME: an admin's filter)
  foreman show ID                show one job (--result prints the answer text)
  foreman cancel ID              cancel a queued or working job
  foreman status [--watch]       the queue now; --watch redraws it
  foreman keys                   keys with their limits and usage (admin: all; others: their own)
  foreman keys hash TOKEN        the sha256 to put in keys_file as token_sha256 (token also on stdin)
  foreman sim [flags]            run the Ollama simulator (see foreman sim --help)
  foreman launchd                print a macOS LaunchAgent plist for this configuration
  foreman --help | --version

Server configuration (flags win over environment, environment over defaults):
${configHelp()}

  Sizes take a unit (1048576, 64MiB); *_ms keys are milliseconds; retention and
  shutdown_grace take a unit (30s, 7d); a bare boolean flag means true.

Client commands (submit, jobs, show, cancel, status, keys) read:
  FOREMAN_URL    default http://127.0.0.1:11435
  FOREMAN_TOKEN  Bearer token, when the server has tokens
  and print JSON with --json. Exit codes: 0 ok, 1 job failed or cancelled,
  2 usage, 3 server unreachable or refused, 4 not found, 5 conflict.

Endpoints:
  /api/chat /api/generate          queued (drain-by-model), NDJSON streaming as Ollama
  /api/embed /api/embeddings       bypass the queue (embed_parallel at once)
  /api/tags /api/ps /api/show ...  proxied at once (several hosts: tags, ps, version merged)
  /v1/chat/completions /v1/completions /v1/models /v1/embeddings   OpenAI-compatible, SSE
  /v1/messages (Claude Code) /v1/responses (Codex) /v1/audio/transcriptions   queued like /api/chat,
                                   relayed as upstream sends them; /v1/messages/count_tokens answered at once
  /api/blobs/{digest} /api/create /api/push   request body streamed upstream (no max_body)
  /jobs                            async jobs: POST, GET /jobs/{id}[?wait=s, at most 300], cancel, events, artifacts
  /health /queue /metrics /ui      operations (/health and /ui need no token; /metrics admin keys only)
  /keys                            named keys, their limits and usage
Sync callers may send X-Foreman-Priority: -100..100 (default sync_priority, capped by the key's max_priority).
The token may come as Authorization: Bearer or x-api-key. Browsers: Ollama's allowed origins plus --origins;
a foreign Origin, or a foreign Host while listening on loopback, gets 403.
Cloud models (name:cloud, tag ending -cloud) run in their own lane, cloud_parallel at once, never
unloading the local model; --aliases maps agent model names (claude-*) to a local model.

Named keys (--keys-file, JSON, read again on SIGHUP and when it changes):
  {"keys": [{"name": "ci", "token_sha256": "…", "sync_priority": 5, "max_priority": 0,
             "max_running": 1, "max_queued": 200, "weight": 1, "models": ["llama3.2*"], "admin": false}]}
  A key that is not admin sees only its own jobs. Tokens from --tokens/--token-file are admin keys
  token-1, token-2, … Waiting jobs of one model at one priority share run time by weight.

Several Ollama hosts (--upstream URL1,URL2 or --hosts-file, JSON, read again on SIGHUP):
  {"hosts": [{"name": "studio", "url": "http://studio.lan:11434", "token": "…", "parallel": 2, "embed_parallel": 8}]}
  One queue, one lane per host: a lane drains the model it has loaded, models run only where installed,
  load times are measured per host, session turns (session-id, x-claude-code-session-id …) stay on their
  host, a host that fails is probed (/api/version, 5 s) and its unanswered jobs run elsewhere.
  X-Foreman-Host: NAME sends model management (pull, create, delete, copy, push) to that host.
  SIGHUP adds and removes hosts by name and applies a changed url, token, parallel or embed_parallel
  (jobs running on a removed or moved host finish where they started); one host to several needs a restart.
  foreman sim --hosts 3 simulates three hosts with different catalogues and load times;
  foreman demo --hosts 3 puts foreman in front of them in one process.
`;
}

export async function runCli(argv: readonly string[], env: NodeJS.ProcessEnv, io: CliIo): Promise<number> {
  const [first, ...rest] = argv;
  if (first === '--help' || first === '-h' || first === 'help') {
    io.stdout.write(helpText());
    return EXIT.ok;
  }
  if (first === '--version' || first === '-v') {
    io.stdout.write(`${VERSION}\n`);
    return EXIT.ok;
  }
  const command = first === undefined || first.startsWith('--') ? 'serve' : first;
  const args = command === 'serve' && first !== 'serve' ? argv : rest;
  if (command === 'serve' || command === 'demo' || command === 'sim') outliveClosedOutput([io.stdout, io.stderr]);
  switch (command) {
    case 'serve':
      if (args.includes('--help') || args.includes('-h')) {
        io.stdout.write(helpText());
        return EXIT.ok;
      }
      return serve(args, env, io);
    case 'demo': {
      const { runDemo } = await import('./demo.js');
      return runDemo(args, env, io);
    }
    case 'sim': {
      const { runSim } = await import('../sim/cli-sim.js');
      return runSim([...args], io);
    }
    case 'status':
    case 'submit':
    case 'jobs':
    case 'show':
    case 'cancel':
    case 'keys': {
      const { runClientCommand } = await import('./client.js');
      return runClientCommand(command, args, env, io);
    }
    case 'launchd': {
      const { runLaunchd } = await import('./launchd.js');
      return runLaunchd(args, env, io);
    }
    default:
      io.stderr.write(`foreman: unknown command '${command}' (see foreman --help)\n`);
      return EXIT.usage;
  }
}
