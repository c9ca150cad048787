// The README's configuration table is generated from lib/config.ts; this finds it
// between its markers and, run as a script (`npm run docs`), rewrites it.

import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { configMarkdown } from '../../lib/config.js';

export const README = fileURLToPath(new URL('../../README.md', import.meta.url));
const BEGIN = '<!-- config-table: generated from lib/config.ts by `npm run docs` -->';
const END = '<!-- /config-table -->';

/** The table as it stands in the README, or null when the markers are missing. */
export function readmeConfigTable(text = readFileSync(README, 'utf8')): string | null {
  const a = text.indexOf(BEGIN);
  const b = text.indexOf(END);
  return a === -1 || b < a ? null : text.slice(a + BEGIN.length, b).trim();
}

export function writeReadmeConfigTable(): boolean {
  const text = readFileSync(README, 'utf8');
  const a = text.indexOf(BEGIN);
  const b = text.indexOf(END);
  if (a === -1 || b < a) throw new Error(`README.md has no ${BEGIN} ... ${END} markers`);
  const next = `${text.slice(0, a + BEGIN.length)}\n${configMarkdown()}\n${text.slice(b)}`;
  if (next === text) return false;
  writeFileSync(README, next);
  return true;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  console.log(writeReadmeConfigTable() ? 'README.md: configuration table updated' : 'README.md: configuration table already current');
}
