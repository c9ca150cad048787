#!/usr/bin/env node
// Thin entry: the CLI lives in lib/cli/cli.ts, built to dist/ by `npm ci` (prepare).
import { runCli } from '../dist/cli/cli.js';

process.exitCode = await runCli(process.argv.slice(2), process.env, {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
});
