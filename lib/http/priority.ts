// X-Foreman-Priority and the jobs API's `priority` field: one parser, so the sync
// and async surfaces accept and refuse exactly the same values.

import { badRequest } from '../errors.js';

/** Integer −100..100 (SPEC §1); undefined stays undefined. */
export function parsePriority(value: unknown, where: string): number | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const n = typeof value === 'string' && /^-?\d+$/.test(value.trim()) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < -100 || n > 100) {
    throw badRequest(`${where}: expected an integer from -100 to 100`);
  }
  return n;
}
