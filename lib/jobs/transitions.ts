// A job's state history, packed (SPEC §16): three numbers per transition in one array instead of
// an object each. seq and prev follow from the position, so 100,000 retained jobs keep ~120 bytes
// of history each rather than ~280. Serialises (toJSON) to the Transition objects records carry.

export type JobState = 'queued' | 'working' | 'completed' | 'failed' | 'cancelled';

export interface Transition {
  seq: number;
  state: JobState;
  prev: JobState | null;
  at: number;
  attempts: number;
}

const STATES: readonly JobState[] = ['queued', 'working', 'completed', 'failed', 'cancelled'];
const CODE: Readonly<Record<JobState, number>> = { queued: 0, working: 1, completed: 2, failed: 3, cancelled: 4 };
const STRIDE = 3;

export class Transitions {
  /** [state code, at, attempts] per transition */
  readonly #d: number[] = [];

  constructor(from: Iterable<Pick<Transition, 'state' | 'at' | 'attempts'>> = []) {
    for (const t of from) this.push(t.state, t.at, t.attempts);
  }

  get length(): number {
    return this.#d.length / STRIDE;
  }

  /** Appends a transition; returns it. */
  push(state: JobState, at: number, attempts: number): Transition {
    this.#d.push(CODE[state], at, attempts);
    return this.at(this.length - 1)!;
  }

  /** Drops the last transition (a start that could not be recorded). */
  pop(): void {
    this.#d.length = Math.max(0, this.#d.length - STRIDE);
  }

  /** The transition at a 0-based index (negative counts from the end), or undefined. */
  at(index: number): Transition | undefined {
    const i = index < 0 ? this.length + index : index;
    if (i < 0 || i >= this.length) return undefined;
    const d = this.#d;
    return {
      seq: i + 1,
      state: STATES[d[i * STRIDE]!]!,
      prev: i === 0 ? null : STATES[d[(i - 1) * STRIDE]!]!,
      at: d[i * STRIDE + 1]!,
      attempts: d[i * STRIDE + 2]!,
    };
  }

  map<T>(fn: (t: Transition, index: number) => T): T[] {
    const out: T[] = [];
    for (let i = 0; i < this.length; i++) out.push(fn(this.at(i)!, i));
    return out;
  }

  *[Symbol.iterator](): IterableIterator<Transition> {
    for (let i = 0; i < this.length; i++) yield this.at(i)!;
  }

  toJSON(): Transition[] {
    return this.map((t) => t);
  }
}
