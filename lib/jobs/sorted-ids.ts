// Job ids kept in ascending order (ids sort by creation time), for newest-first
// paging with a cursor. Appends are O(1) in practice: a new id is the largest.

export class SortedIds {
  #ids: string[];

  constructor(ids: Iterable<string> = []) {
    this.#ids = [...ids].sort();
  }

  get length(): number {
    return this.#ids.length;
  }

  /** Index of the first id that is not less than `id`. */
  lowerBound(id: string): number {
    let lo = 0;
    let hi = this.#ids.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.#ids[mid]! < id) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  insert(id: string): void {
    const at = this.lowerBound(id);
    if (at === this.#ids.length) this.#ids.push(id);
    else this.#ids.splice(at, 0, id);
  }

  remove(id: string): void {
    const at = this.lowerBound(id);
    if (this.#ids[at] === id) this.#ids.splice(at, 1);
  }

  retain(keep: (id: string) => boolean): void {
    this.#ids = this.#ids.filter(keep);
  }

  at(index: number): string | undefined {
    return this.#ids[index];
  }

  [Symbol.iterator](): IterableIterator<string> {
    return this.#ids[Symbol.iterator]();
  }
}
