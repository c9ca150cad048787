// Waits for a state, not for a time: polls a condition a bounded number of times.
// Nothing is asserted about how long it took; the bound only keeps a broken test from hanging.

/** The one polling helper of the specs; `what` may be a function, so the failure shows the state at the end. */
export async function until(check: () => Promise<boolean> | boolean, what: string | (() => string), tries = 2000): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`timed out waiting for ${typeof what === 'function' ? what() : what}`);
}
