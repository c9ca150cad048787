// Test launcher for spec/jobs-crash.spec.ts: `node --import tsx spec/support/jobs-serve.ts [flags]`
// runs the same serve path as bin/foreman.js (runCli), without needing a build in dist/.

import { runCli } from '../../lib/cli/cli.js';

process.exitCode = await runCli(['serve', ...process.argv.slice(2)], process.env, {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
});
