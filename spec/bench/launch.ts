// Child-process launcher for the benchmarks: `node --import tsx launch.ts sim|serve [flags]`
// runs runCli in its own process and answers {type:'usage'} on the IPC channel with its CPU and memory.
// It owns nothing else; the parent (procs.ts) picks the port, reads logs from a file and stops it.

import { runCli } from '../../lib/cli/cli.js';

interface UsageRequest {
  type?: string;
  id?: number;
}

let finished = false;

process.on('message', (message: UsageRequest) => {
  if (message?.type !== 'usage' || !process.connected) return;
  const memory = process.memoryUsage();
  process.send?.({ type: 'usage', id: message.id, cpu: process.cpuUsage(), rss: memory.rss, heapUsed: memory.heapUsed });
});

// The parent died or let go: stop as on SIGTERM, so no orphan keeps a port.
process.on('disconnect', () => {
  if (!finished) process.kill(process.pid, 'SIGTERM');
});

const [command, ...flags] = process.argv.slice(2);
if (command !== 'sim' && command !== 'serve') {
  process.stderr.write(`launch.ts: expected sim or serve, got '${String(command)}'\n`);
  process.exit(2);
}
const io = { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin };
const code = await runCli([command, ...flags], process.env, io);
finished = true;
process.exitCode = code;
if (process.connected) process.disconnect();
