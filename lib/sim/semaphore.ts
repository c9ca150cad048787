// A FIFO counting semaphore with abortable waiters: the per-runner
// OLLAMA_NUM_PARALLEL gate. Waiters are unbounded, as in Ollama's fast path.

interface Waiter {
  resolve: (granted: boolean) => void;
  done: boolean;
}

export class Semaphore {
  readonly size: number;
  #held = 0;
  #waiters: Waiter[] = [];
  #head = 0;

  constructor(size: number) {
    this.size = Math.max(1, size);
  }

  get held(): number {
    return this.#held;
  }

  /** Takes a permit now if one is free and nobody is queued ahead. */
  tryAcquire(): boolean {
    if (this.#held < this.size && this.#head === this.#waiters.length) {
      this.#held++;
      return true;
    }
    return false;
  }

  /** Resolves true with a permit, or false if `signal` aborted first. */
  acquire(signal: AbortSignal): Promise<boolean> {
    if (this.tryAcquire()) return Promise.resolve(true);
    if (signal.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const waiter: Waiter = { resolve, done: false };
      const onAbort = () => {
        if (waiter.done) return;
        waiter.done = true;
        resolve(false);
      };
      waiter.resolve = (granted) => {
        signal.removeEventListener('abort', onAbort);
        resolve(granted);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  release(): void {
    while (this.#head < this.#waiters.length) {
      const waiter = this.#waiters[this.#head++]!;
      if (waiter.done) continue;
      waiter.done = true;
      this.#compact();
      waiter.resolve(true); // the permit passes straight to the waiter
      return;
    }
    this.#compact();
    this.#held = Math.max(0, this.#held - 1);
  }

  // Drop consumed slots once they dominate, so a long queue stays O(1) amortised.
  #compact(): void {
    if (this.#head === this.#waiters.length) {
      this.#waiters = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#waiters.length) {
      this.#waiters = this.#waiters.slice(this.#head);
      this.#head = 0;
    }
  }
}
