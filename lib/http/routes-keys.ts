// GET /keys (SPEC §15): keys/view.ts builds the answer; this file only serves it.

import type { Route } from './server.js';
import { sendJson } from './body.js';
import { ANONYMOUS } from '../keys/keys-file.js';
import { keysResponse, type KeyViewSource } from '../keys/view.js';

export function keyRoutes(deps: KeyViewSource): Route[] {
  return [
    {
      method: 'GET',
      path: '/keys',
      handler: ({ res, key }) => sendJson(res, 200, keysResponse(key ?? ANONYMOUS, deps), { 'cache-control': 'no-store' }),
    },
  ];
}
