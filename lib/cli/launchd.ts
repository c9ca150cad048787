// `foreman launchd`: prints a LaunchAgent plist that runs this foreman with the
// current configuration, and how to load it. It writes nothing itself.

import { realpathSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EXIT, type CliIo } from './io.js';
import { ConfigError, parseConfig } from '../config.js';
import { DEFAULT_LAUNCH_AGENT_LABEL, launchAgentInstructions, renderLaunchAgent } from '../ops/launchd.js';

const OPEN_FILES_HEADROOM = 1024;

export async function runLaunchd(argv: readonly string[], env: NodeJS.ProcessEnv, io: CliIo): Promise<number> {
  const labelAt = argv.indexOf('--label');
  const label = labelAt !== -1 ? argv[labelAt + 1] ?? DEFAULT_LAUNCH_AGENT_LABEL : DEFAULT_LAUNCH_AGENT_LABEL;
  const serveArgs = labelAt !== -1 ? [...argv.slice(0, labelAt), ...argv.slice(labelAt + 2)] : [...argv];
  let graceMs: number;
  let maxConnections: number;
  try {
    const config = parseConfig(serveArgs, env); // and refuse to print an agent that would not start
    graceMs = config.shutdown_grace_ms;
    maxConnections = config.max_connections;
  } catch (err) {
    if (err instanceof ConfigError) {
      io.stderr.write(`foreman launchd: invalid configuration:\n${err.problems.map((p) => `  ${p}`).join('\n')}\n`);
      return EXIT.usage;
    }
    throw err;
  }
  const foremanEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (k.startsWith('FOREMAN_') && v !== undefined) foremanEnv[k] = v;
  const scriptPath = resolve(fileURLToPath(new URL('../../bin/foreman.js', import.meta.url)));
  const logDir = join(homedir(), 'Library', 'Logs', 'foreman');
  io.stdout.write(renderLaunchAgent({
    label, nodePath: realpathSync(process.execPath), scriptPath, args: serveArgs, env: foremanEnv, logDir,
    workingDirectory: homedir(), exitTimeoutS: graceMs / 1000 + 15,
    // Room beyond the client connections for upstream sockets, webhook deliveries, the journal and artifacts.
    openFiles: maxConnections + OPEN_FILES_HEADROOM,
  }));
  const plistPath = join(homedir(), 'Library', 'LaunchAgents', `${label}.plist`);
  io.stderr.write(launchAgentInstructions(label, plistPath, logDir) + '\n');
  return EXIT.ok;
}
