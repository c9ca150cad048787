// Waits for a state, not for a time: polls a condition a bounded number of times.
// Nothing is asserted about how long it took; the bound only keeps a broken test from hanging.

export async function until(check: () => Promise<boolean> | boolean, what: string, tries = 2000): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`timed out waiting for ${what}`);
}
