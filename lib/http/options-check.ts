// Types of the `options` Ollama knows (api.Options), checked at the edge: a wrong type is a 400 with
// Ollama's own words, before it can form a queue group of its own or cost the loaded model a switch.

import { badRequest } from '../errors.js';
import { optionTypeError } from '../ollama-options.js';

export function checkOptionTypes(options: Record<string, unknown>): void {
  const error = optionTypeError(options);
  if (error !== null) throw badRequest(error);
}
