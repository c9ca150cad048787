// Writes one response body to the socket, cut into writes as `split` says:
// 'none' = one write per line or event (what Ollama's flush-per-chunk gives),
// 'random' = seeded cuts anywhere (inside JSON, inside multi-byte UTF-8,
// between the two newlines of an SSE event), N = at every N-th byte of the
// body. Every write is flushed at once; nothing is held back, so a stalled
// stream has delivered every byte before the stall. Backpressure: write()
// returns a promise only when the socket buffer is full.

import type { ServerResponse } from 'node:http';
import type { Rng } from './rng.js';
import type { SplitMode } from './types.js';

export class BodyWriter {
  #res: ServerResponse;
  #split: SplitMode;
  #rng: Rng;
  #offset = 0; // bytes of body written so far, for N-byte cuts

  /** counts the waits for 'drain' (the simulator's stats) */
  #held: { waiting: number; waits: number } | undefined;

  constructor(res: ServerResponse, split: SplitMode, rng: Rng, held?: { waiting: number; waits: number }) {
    this.#res = res;
    this.#split = split;
    this.#rng = rng;
    this.#held = held;
  }

  /** Writes `text`; returns a promise to await only if the socket asked to wait. */
  write(text: string): Promise<void> | undefined {
    if (this.#split === 'none') return this.#res.write(text) ? undefined : this.#drain();
    let ok = true;
    for (const piece of this.#cut(Buffer.from(text))) ok = this.#res.write(piece) && ok;
    return ok ? undefined : this.#drain();
  }

  /** Writes the last bytes (if any) and ends the response. */
  end(text?: string): void {
    if (text && this.#split !== 'none') {
      for (const piece of this.#cut(Buffer.from(text))) this.#res.write(piece);
      this.#res.end();
      return;
    }
    if (text) this.#res.end(text);
    else this.#res.end();
  }

  #cut(buf: Buffer): Buffer[] {
    const cuts = typeof this.#split === 'number' ? this.#everyN(buf.length, this.#split) : this.#random(buf);
    this.#offset += buf.length;
    if (cuts.length === 0) return [buf];
    const pieces: Buffer[] = [];
    let from = 0;
    for (const at of cuts) {
      pieces.push(buf.subarray(from, at));
      from = at;
    }
    pieces.push(buf.subarray(from));
    return pieces;
  }

  // Cut points at multiples of n measured over the whole body, not per write.
  #everyN(length: number, n: number): number[] {
    const cuts: number[] = [];
    for (let at = n - (this.#offset % n); at < length; at += n) cuts.push(at);
    return cuts;
  }

  // 0..3 random cuts per write (none for a quarter of writes), plus biased cuts
  // inside the first multi-byte character and before an SSE event's final "\n".
  #random(buf: Buffer): number[] {
    const length = buf.length;
    if (length < 2) return [];
    const rng = this.#rng;
    const cuts = new Set<number>();
    const count = rng.int(4);
    for (let i = 0; i < count; i++) cuts.add(1 + rng.int(length - 1));
    if (rng.next() < 0.5) {
      const lead = buf.findIndex((b) => b >= 0xc0);
      if (lead >= 0 && lead + 1 < length) cuts.add(lead + 1);
    }
    if (length > 2 && buf[length - 1] === 10 && buf[length - 2] === 10 && rng.next() < 0.3) cuts.add(length - 1);
    return [...cuts].sort((a, b) => a - b);
  }

  #drain(): Promise<void> {
    const res = this.#res;
    if (res.destroyed || res.writableEnded) return Promise.resolve();
    const held = this.#held;
    if (held) {
      held.waiting++;
      held.waits++;
    }
    return new Promise((resolve) => {
      const done = () => {
        res.off('drain', done);
        res.off('close', done);
        if (held) held.waiting--;
        resolve();
      };
      res.on('drain', done);
      res.on('close', done);
    });
  }
}
