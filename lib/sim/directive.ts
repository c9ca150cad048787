// The per-request `"sim": {...}` body field: split override, injected faults
// and delays. Ollama ignores unknown top-level fields, so the directive passes
// through any proxy untouched and reaches the simulator.
//
//   "sim": {"fault": KIND, "after": N, "status": S, "message": M, "delay_ms": D, "split": "random"|N|"none"}

import type { Directive, FaultKind, SplitMode } from './types.js';
import { badRequest } from './wire.js';

const KINDS: readonly FaultKind[] = [
  'not_found',
  'error_before',
  'error_mid',
  'stall',
  'stall_before',
  'reset',
  'bad_line',
];

const MAX_DELAY_MS = 3_600_000;

export const NO_DIRECTIVE: Directive = Object.freeze({
  split: undefined,
  fault: undefined,
  after: 1,
  status: 500,
  message: 'simulated error',
  delayMs: 0,
});

/** Validates the field; a malformed directive is the test author's bug, so it is a 400. */
export function parseDirective(body: Record<string, unknown>): Directive {
  const raw = body['sim'];
  if (raw === undefined || raw === null) return NO_DIRECTIVE;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw badRequest('sim: expected an object');
  const sim = raw as Record<string, unknown>;
  const fault = sim['fault'];
  if (fault !== undefined && !KINDS.includes(fault as FaultKind)) {
    throw badRequest(`sim: unknown fault ${JSON.stringify(fault)}; expected one of ${KINDS.join(', ')}`);
  }
  return {
    split: sim['split'] === undefined ? undefined : parseSplit(sim['split'], 'sim.split'),
    fault: fault as FaultKind | undefined,
    after: intField(sim, 'after', NO_DIRECTIVE.after, 0, Number.MAX_SAFE_INTEGER),
    status: intField(sim, 'status', NO_DIRECTIVE.status, 100, 599),
    message: typeof sim['message'] === 'string' ? sim['message'] : NO_DIRECTIVE.message,
    delayMs: intField(sim, 'delay_ms', 0, 0, MAX_DELAY_MS),
  };
}

/** 'none' | 'random' | a positive byte count (number or numeric string). */
export function parseSplit(value: unknown, what: string): SplitMode {
  if (value === 'none' || value === 'random') return value;
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n === 'number' && Number.isInteger(n) && n > 0) return n;
  throw badRequest(`${what}: expected "none", "random" or a positive integer, got ${JSON.stringify(value)}`);
}

function intField(sim: Record<string, unknown>, key: string, fallback: number, min: number, max: number): number {
  const value = sim[key];
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw badRequest(`sim.${key}: expected an integer in ${min}..${max}, got ${JSON.stringify(value)}`);
  }
  return value;
}
