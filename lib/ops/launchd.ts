// The macOS LaunchAgent plist `foreman launchd` prints, and the lines telling
// the user how to install it. Pure text: it writes no files and runs no launchctl.

import { posix } from 'node:path';

export interface LaunchAgentInput {
  /** Reverse-DNS job label; also the plist's file name. Default `dev.foreman`. */
  label?: string;
  /** Absolute path of the node binary: launchd has no PATH worth relying on. */
  nodePath: string;
  /** Absolute path of bin/foreman.js. */
  scriptPath: string;
  /** Extra `serve` flags, after `serve`. */
  args: string[];
  /** FOREMAN_* settings; they may hold tokens, hence chmod 600 in the instructions. */
  env: Record<string, string>;
  /** Absolute directory for stdout/stderr; launchd does not create it. */
  logDir: string;
  /** Default `/`, launchd's own; foreman resolves its data_dir from HOME, not the cwd. */
  workingDirectory?: string;
  /** Seconds launchd waits after SIGTERM before SIGKILL; set above shutdown_grace so running jobs can finish. */
  exitTimeoutS?: number;
  /** Open-file limit to raise to (max_connections plus room for upstream, webhooks and the journal, SPEC §16). */
  openFiles?: number;
}

export const DEFAULT_LAUNCH_AGENT_LABEL = 'dev.foreman';

const LABEL = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
// XML 1.0 forbids these code points outright, escaped or not.
const NOT_XML = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/;

export function renderLaunchAgent(input: LaunchAgentInput): string {
  const label = input.label ?? DEFAULT_LAUNCH_AGENT_LABEL;
  if (!LABEL.test(label)) throw new Error(`launchd: label must match ${LABEL.source}, got '${label}'`);
  for (const [key, path] of [['nodePath', input.nodePath], ['scriptPath', input.scriptPath],
    ['logDir', input.logDir], ['workingDirectory', input.workingDirectory ?? '/']] as const) {
    // launchd expands neither `~` nor relative paths; fail here instead of at load.
    if (!posix.isAbsolute(path)) throw new Error(`launchd: ${key} must be an absolute path, got '${path}'`);
  }
  for (const key of Object.keys(input.env)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw new Error(`launchd: invalid environment variable name '${key}'`);
  }

  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
    '<plist version="1.0">',
    '<dict>',
    ...entry('Label', string(label)),
    ...entry('ProgramArguments', array([input.nodePath, input.scriptPath, 'serve', ...input.args])),
    ...entry('EnvironmentVariables', dict(Object.entries(input.env).sort(([a], [b]) => (a < b ? -1 : 1)))),
    ...entry('WorkingDirectory', string(input.workingDirectory ?? '/')),
    ...entry('StandardOutPath', string(posix.join(input.logDir, 'foreman.out.log'))),
    ...entry('StandardErrorPath', string(posix.join(input.logDir, 'foreman.err.log'))),
    ...entry('RunAtLoad', ['<true/>']),
    // Restart after a crash or kill; launchd throttles respawns to one per ThrottleInterval.
    ...entry('KeepAlive', ['<true/>']),
    ...entry('ThrottleInterval', ['<integer>10</integer>']),
    // launchd's own default kills well before foreman's shutdown_grace (30 s) is over.
    ...entry('ExitTimeOut', [`<integer>${Math.max(1, Math.ceil(input.exitTimeoutS ?? 45))}</integer>`]),
    // Standard, not Background: Background gets I/O throttling, which would
    // stretch journal fsyncs while a client waits on them.
    ...entry('ProcessType', string('Standard')),
    // launchd starts agents with 256 open files: far below max_connections, so raise it to match.
    ...(input.openFiles === undefined ? [] : [
      ...entry('SoftResourceLimits', dict([], [['NumberOfFiles', input.openFiles]])),
      ...entry('HardResourceLimits', dict([], [['NumberOfFiles', input.openFiles]])),
    ]),
    '</dict>',
    '</plist>',
  ];
  return lines.join('\n') + '\n';
}

export function launchAgentInstructions(label: string, plistPath: string, logDir?: string): string {
  const plist = shellQuote(plistPath);
  const target = `gui/$(id -u)/${label}`;
  return [
    `Save the plist as ${plist}, then load it:`,
    ...(logDir ? [`  mkdir -p ${shellQuote(logDir)}`] : []),
    `  chmod 600 ${plist}    # it may hold tokens`,
    `  launchctl bootstrap gui/$(id -u) ${plist}`,
    'Check it, restart it, read its log:',
    `  launchctl print ${target}`,
    `  launchctl kickstart -k ${target}`,
    ...(logDir ? [`  tail -f ${shellQuote(posix.join(logDir, 'foreman.err.log'))}`] : []),
    'Unload it (stops foreman until the next bootstrap):',
    `  launchctl bootout ${target}`,
    'After editing the plist, bootout then bootstrap again; launchd does not reread it.',
    '',
  ].join('\n');
}

function entry(key: string, value: string[]): string[] {
  return [`  <key>${xml(key)}</key>`, ...value.map((l) => `  ${l}`)];
}

function string(value: string): string[] {
  return [`<string>${xml(value)}</string>`];
}

function array(values: string[]): string[] {
  return ['<array>', ...values.map((v) => `  <string>${xml(v)}</string>`), '</array>'];
}

function dict(pairs: Array<[string, string]>, integers: Array<[string, number]> = []): string[] {
  return ['<dict>', ...pairs.flatMap(([k, v]) => [`  <key>${xml(k)}</key>`, `  <string>${xml(v)}</string>`]),
    ...integers.flatMap(([k, n]) => [`  <key>${xml(k)}</key>`, `  <integer>${Math.floor(n)}</integer>`]), '</dict>'];
}

function xml(text: string): string {
  if (NOT_XML.test(text)) throw new Error(`launchd: value contains a character XML 1.0 cannot hold: ${JSON.stringify(text)}`);
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

/** `~/` stays unquoted so the shell still expands it; everything else is single-quoted when needed. */
function shellQuote(path: string): string {
  const home = path.startsWith('~/') ? '~/' : '';
  const rest = path.slice(home.length);
  return home + (/^[\w@%+=:,./-]+$/.test(rest) ? rest : `'${rest.replace(/'/g, `'\\''`)}'`);
}
