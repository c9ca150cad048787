// /health answers from a probe of upstream at most maxAgeMs old (SPEC §9): polling /health costs
// upstream one call per interval however many pollers there are; concurrent callers share one probe.

export function cachedProbe<T>(probe: () => Promise<T>, maxAgeMs: number, now: () => number): () => Promise<T> {
  let last: { at: number; value: T } | null = null;
  let inFlight: Promise<T> | null = null;
  return () => {
    if (last !== null && now() - last.at < maxAgeMs) return Promise.resolve(last.value);
    inFlight ??= probe()
      .then((value) => {
        last = { at: now(), value };
        return value;
      })
      .finally(() => (inFlight = null));
    return inFlight;
  };
}
