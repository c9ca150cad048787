// The drain-by-model priority structure of SPEC §1: one binary heap per group plus aging,
// and a rank index per group for queue positions.
// Pure: no I/O, no clock (time arrives as `nowMs`), and no knowledge of jobs, models or HTTP.
import { RankIndex } from './rank-index.js';

export interface QueueItem {
  readonly id: string;
  readonly group: string;
  readonly priority: number;
  readonly arrivalMs: number;
}

export interface GroupInfo {
  group: string;
  count: number;
  headId: string;
  headPriority: number;
  headWaitMs: number;
  headEffectivePriority: number;
  headArrivalMs: number;
}

export interface DrainQueue<T extends QueueItem> {
  readonly size: number;
  /** Throws on a duplicate id. O(log n). */
  enqueue(item: T): void;
  /** Removes the item wherever it sits. O(log n). */
  remove(id: string): T | undefined;
  get(id: string): T | undefined;
  /** The item the pick rule chooses now, left in place. O(groups). */
  peek(nowMs: number, loadedGroup: string | null): T | undefined;
  /** The item the pick rule chooses now, removed. O(groups + log n). */
  pick(nowMs: number, loadedGroup: string | null): T | undefined;
  /** One entry per non-empty group, best head first (loadedGroup only breaks ties). */
  groups(nowMs: number, loadedGroup?: string | null): GroupInfo[];
  /**
   * 1-based estimate of the picks until this item: 1 + items ahead of it in its group + the full
   * count of every other group whose head beats its group's head now. An estimate because aging
   * reorders groups as time passes and a group's later items may lose to ours. O(n).
   */
  position(id: string, nowMs: number, loadedGroup: string | null): number | undefined;
  /** All waiting items, in no promised order. */
  values(): IterableIterator<T>;
}

/** `priority + floor(waited / aging)`, with waited clamped at 0 (a clock step back never demotes). */
export function effectivePriority(priority: number, waitedMs: number, agingMs: number): number {
  return priority + Math.floor(Math.max(0, waitedMs) / agingMs);
}

interface Entry<T extends QueueItem> {
  readonly item: T;
  // priority * agingMs - arrivalMs: the continuous form of "effective priority desc". Static, so
  // a heap stays valid as time passes; equal priorities reduce to arrival order (exact FIFO).
  readonly key: number;
  readonly seq: number;
  heap: GroupHeap<T>;
  pos: number;
}

function before<T extends QueueItem>(a: Entry<T>, b: Entry<T>): boolean {
  if (a.key !== b.key) return a.key > b.key;
  if (a.item.arrivalMs !== b.item.arrivalMs) return a.item.arrivalMs < b.item.arrivalMs;
  return a.seq < b.seq;
}

// A max-heap on `before` whose entries carry their own position, so removal from any index is
// O(log n) without a search.
class GroupHeap<T extends QueueItem> {
  readonly group: string;
  readonly #items: Entry<T>[] = [];
  // The same entries in pick order with subtree counts, so queue_position is O(log n), not a scan.
  readonly #ranks = new RankIndex<Entry<T>>(before);

  constructor(group: string) {
    this.group = group;
  }

  get size(): number {
    return this.#items.length;
  }

  get head(): Entry<T> | undefined {
    return this.#items[0];
  }


  /** How many entries of this group come before `entry` in pick order. */
  rank(entry: Entry<T>): number {
    return this.#ranks.rank(entry);
  }

  push(entry: Entry<T>): void {
    this.#ranks.insert(entry);
    entry.pos = this.#items.length;
    this.#items.push(entry);
    this.#up(entry.pos);
  }

  removeAt(pos: number): void {
    const items = this.#items;
    this.#ranks.remove(items[pos]!);
    const last = items.pop()!;
    if (pos === items.length) return;
    items[pos] = last;
    last.pos = pos;
    // The moved entry may belong above or below its new slot; only one direction moves it.
    if (pos > 0 && before(last, items[(pos - 1) >> 1]!)) this.#up(pos);
    else this.#down(pos);
  }

  #up(pos: number): void {
    const items = this.#items;
    const entry = items[pos]!;
    while (pos > 0) {
      const parentPos = (pos - 1) >> 1;
      const parent = items[parentPos]!;
      if (!before(entry, parent)) break;
      items[pos] = parent;
      parent.pos = pos;
      pos = parentPos;
    }
    items[pos] = entry;
    entry.pos = pos;
  }

  #down(pos: number): void {
    const items = this.#items;
    const n = items.length;
    const entry = items[pos]!;
    for (;;) {
      let best = pos * 2 + 1;
      if (best >= n) break;
      const right = best + 1;
      if (right < n && before(items[right]!, items[best]!)) best = right;
      if (!before(items[best]!, entry)) break;
      items[pos] = items[best]!;
      items[pos]!.pos = pos;
      pos = best;
    }
    items[pos] = entry;
    entry.pos = pos;
  }
}

export function createDrainQueue<T extends QueueItem>(options: { agingMs: number }): DrainQueue<T> {
  const { agingMs } = options;
  if (!Number.isFinite(agingMs) || agingMs <= 0) {
    throw new RangeError(`agingMs: expected a positive finite number, got ${agingMs}`);
  }
  const byId = new Map<string, Entry<T>>();
  // Few groups (distinct models and load options), so picking scans them all.
  const byGroup = new Map<string, GroupHeap<T>>();
  let seq = 0;

  const effective = (entry: Entry<T>, nowMs: number): number =>
    effectivePriority(entry.item.priority, nowMs - entry.item.arrivalMs, agingMs);

  // Cross-group rule (SPEC §1): the floor makes the loaded group keep winning equal-priority ties
  // until a rival head has waited a full aging interval longer; seq only makes ties total.
  const beats = (a: Entry<T>, b: Entry<T>, nowMs: number, loaded: string | null): boolean => {
    const ea = effective(a, nowMs);
    const eb = effective(b, nowMs);
    if (ea !== eb) return ea > eb;
    if (a.heap.group === loaded) return true;
    if (b.heap.group === loaded) return false;
    if (a.item.arrivalMs !== b.item.arrivalMs) return a.item.arrivalMs < b.item.arrivalMs;
    return a.seq < b.seq;
  };

  const best = (nowMs: number, loaded: string | null): Entry<T> | undefined => {
    let winner: Entry<T> | undefined;
    for (const heap of byGroup.values()) {
      const head = heap.head!;
      if (winner === undefined || beats(head, winner, nowMs, loaded)) winner = head;
    }
    return winner;
  };

  const detach = (entry: Entry<T>): void => {
    byId.delete(entry.item.id);
    entry.heap.removeAt(entry.pos);
    if (entry.heap.size === 0) byGroup.delete(entry.heap.group);
  };

  return {
    get size() {
      return byId.size;
    },

    enqueue(item) {
      if (byId.has(item.id)) throw new Error(`queue: duplicate id ${item.id}`);
      if (!Number.isFinite(item.priority) || !Number.isFinite(item.arrivalMs)) {
        throw new RangeError(`queue: priority and arrivalMs must be finite (id ${item.id})`);
      }
      let heap = byGroup.get(item.group);
      if (heap === undefined) {
        heap = new GroupHeap<T>(item.group);
        byGroup.set(item.group, heap);
      }
      const entry: Entry<T> = { item, key: item.priority * agingMs - item.arrivalMs, seq: seq++, heap, pos: 0 };
      byId.set(item.id, entry);
      heap.push(entry);
    },

    remove(id) {
      const entry = byId.get(id);
      if (entry === undefined) return undefined;
      detach(entry);
      return entry.item;
    },

    get(id) {
      return byId.get(id)?.item;
    },

    peek(nowMs, loadedGroup) {
      return best(nowMs, loadedGroup)?.item;
    },

    pick(nowMs, loadedGroup) {
      const entry = best(nowMs, loadedGroup);
      if (entry === undefined) return undefined;
      detach(entry);
      return entry.item;
    },

    groups(nowMs, loadedGroup = null) {
      const heads = [...byGroup.values()].map((heap) => heap.head!);
      heads.sort((a, b) => (a === b ? 0 : beats(a, b, nowMs, loadedGroup) ? -1 : 1));
      return heads.map((head) => ({
        group: head.heap.group,
        count: head.heap.size,
        headId: head.item.id,
        headPriority: head.item.priority,
        headWaitMs: Math.max(0, nowMs - head.item.arrivalMs),
        headEffectivePriority: effective(head, nowMs),
        headArrivalMs: head.item.arrivalMs,
      }));
    },

    position(id, nowMs, loadedGroup) {
      const entry = byId.get(id);
      if (entry === undefined) return undefined;
      let ahead = entry.heap.rank(entry);
      const ownHead = entry.heap.head!;
      for (const heap of byGroup.values()) {
        if (heap !== entry.heap && beats(heap.head!, ownHead, nowMs, loadedGroup)) ahead += heap.size;
      }
      return 1 + ahead;
    },

    *values() {
      for (const entry of byId.values()) yield entry.item;
    },
  };
}
