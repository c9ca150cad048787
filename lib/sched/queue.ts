// The drain-by-model priority structure of SPEC §1 with fair share between owners (SPEC §15):
// per group, one heap per owner (a key), and start-time fair queuing on run time among the owners'
// heads at the group's top effective priority (ADR 0023). Pure: no I/O, no clock (time arrives as
// `nowMs`), and no knowledge of jobs, keys, models or HTTP.
import { RankIndex } from './rank-index.js';
import { FairIndex } from './fair-index.js';

export interface QueueItem {
  readonly id: string;
  readonly group: string;
  readonly priority: number;
  readonly arrivalMs: number;
  /** Who the item belongs to (a key name): fair share is between owners within a group. Default ''. */
  readonly owner?: string;
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
  /** Removes the item wherever it sits, without running it (a cancel). O(log n). */
  remove(id: string): T | undefined;
  get(id: string): T | undefined;
  /**
   * The item the pick rule chooses now, left in place: the best group by SPEC §1, and in it, among
   * the owners whose head is at the group's top effective priority, the one with the least virtual
   * time. Owners at their running cap (setBlocked) are passed over. O(groups + log owners).
   */
  peek(nowMs: number, loadedGroup: string | null): T | undefined;
  /** The item fair share chooses in one group now (what peek would take from it), left in place. */
  peekGroup(group: string, nowMs: number): T | undefined;
  /** The item the pick rule chooses now, removed and counted as started (see take). O(groups + log n). */
  pick(nowMs: number, loadedGroup: string | null): T | undefined;
  /**
   * Removes the item to run it: its owner's virtual time in the group moves on by an estimate of
   * its run time over the owner's weight, corrected by finished(). O(log n).
   */
  take(id: string): T | undefined;
  /** A taken item ended after runMs: charges its owner the real run time (over its weight). */
  finished(id: string, runMs: number): void;
  /** An owner at its running cap: its waiting items are passed over, and hold nobody back. */
  setBlocked(owner: string, blocked: boolean): void;
  /** Waiting items of one owner, over every group. O(1). */
  waitingOf(owner: string): number;
  /** One entry per non-empty group, best head first (loadedGroup only breaks ties). */
  groups(nowMs: number, loadedGroup?: string | null): GroupInfo[];
  /**
   * 1-based estimate of the picks until this item: 1 + items ahead of it in its group (its owner's
   * before it, others' of higher priority, and others' of equal priority that fair share serves
   * first) + the full count of every other group whose head beats its group's head now. An
   * estimate: aging reorders groups over time, and run times vary. O(owners · log n + groups).
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
  sub: Sub<T>;
  pos: number;
}

function before<T extends QueueItem>(a: Entry<T>, b: Entry<T>): boolean {
  if (a.key !== b.key) return a.key > b.key;
  if (a.item.arrivalMs !== b.item.arrivalMs) return a.item.arrivalMs < b.item.arrivalMs;
  return a.seq < b.seq;
}

// A max-heap on `before` whose entries carry their own position, so removal from any index is
// O(log n) without a search.
class Heap<T extends QueueItem> {
  readonly #items: Entry<T>[] = [];
  // The same entries in pick order with subtree counts, so queue_position is O(log n), not a scan.
  readonly #ranks = new RankIndex<Entry<T>>(before);

  get size(): number {
    return this.#items.length;
  }

  get head(): Entry<T> | undefined {
    return this.#items[0];
  }

  /** How many entries of this heap come before `entry` in pick order (entry need not be held). */
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

/** One owner's part of one group: its waiting items and its virtual time there. */
interface Sub<T extends QueueItem> {
  readonly owner: string;
  readonly group: Group<T>;
  readonly heap: Heap<T>;
  /** service received in this group, in run ms over weight; the start tag of its next item */
  v: number;
  running: number;
  /** held in the group's fair index (has waiting items and its owner is not blocked) */
  indexed: boolean;
}

interface Group<T extends QueueItem> {
  readonly name: string;
  readonly subs: Map<string, Sub<T>>;
  /** the subs that may be picked, ordered by their heads, with the least v among a prefix */
  readonly index: FairIndex<Sub<T>>;
  size: number;
  running: number;
  /** the group's virtual time: the start tag of the item last taken (SFQ's v(t)) */
  vtime: number;
  /** a moving average of run ms, charged when an item starts and corrected when it ends */
  estimateMs: number;
}

const subBefore = <T extends QueueItem>(a: Sub<T>, b: Sub<T>): boolean => before(a.heap.head!, b.heap.head!);
const subLess = <T extends QueueItem>(a: Sub<T>, b: Sub<T>): boolean => a.v < b.v;

/** Smallest charge at start, so owners alternate even before any run time is known. */
const MIN_ESTIMATE_MS = 1;

export interface DrainQueueOptions {
  agingMs: number;
  /** An owner's fair-share weight (default 1 for all), read when its service is charged. */
  weightOf?: (owner: string) => number;
}

export function createDrainQueue<T extends QueueItem>(options: DrainQueueOptions): DrainQueue<T> {
  const { agingMs } = options;
  if (!Number.isFinite(agingMs) || agingMs <= 0) {
    throw new RangeError(`agingMs: expected a positive finite number, got ${agingMs}`);
  }
  const weightOf = (owner: string): number => {
    const w = options.weightOf?.(owner) ?? 1;
    return Number.isFinite(w) && w > 0 ? w : 1;
  };
  const byId = new Map<string, Entry<T>>();
  // Few groups (distinct models and load options), so picking scans them all. A group stays while
  // it has waiting or running items: its virtual time lives as long as its busy period.
  const byGroup = new Map<string, Group<T>>();
  const blocked = new Set<string>();
  const waitingByOwner = new Map<string, number>();
  const taken = new Map<string, { sub: Sub<T>; charged: number }>();
  let seq = 0;

  const effective = (entry: Entry<T>, nowMs: number): number =>
    effectivePriority(entry.item.priority, nowMs - entry.item.arrivalMs, agingMs);

  // Cross-group rule (SPEC §1): the floor makes the loaded group keep winning equal-priority ties
  // until a rival head has waited a full aging interval longer; seq only makes ties total.
  const beats = (a: Entry<T>, b: Entry<T>, nowMs: number, loaded: string | null): boolean => {
    const ea = effective(a, nowMs);
    const eb = effective(b, nowMs);
    if (ea !== eb) return ea > eb;
    if (a.sub.group.name === loaded) return true;
    if (b.sub.group.name === loaded) return false;
    if (a.item.arrivalMs !== b.item.arrivalMs) return a.item.arrivalMs < b.item.arrivalMs;
    return a.seq < b.seq;
  };

  /** The group's best pickable head (what competes across groups), or undefined when none may run. */
  const pickableHead = (g: Group<T>): Entry<T> | undefined => g.index.first()?.heap.head;

  /** The group's best head, pickable or not (views and positions). */
  const anyHead = (g: Group<T>): Entry<T> | undefined => {
    const head = pickableHead(g);
    if (head !== undefined || g.size === 0) return head;
    let best: Entry<T> | undefined;
    for (const sub of g.subs.values()) {
      const h = sub.heap.head;
      if (h !== undefined && (best === undefined || before(h, best))) best = h;
    }
    return best;
  };

  /**
   * Fair share in a group: among the owners whose head has the group's top floored effective
   * priority, the least virtual time. floor((key + now) / aging) is that priority, so the owners
   * tied with the best head are exactly those whose head key reaches the threshold below.
   */
  const fairHead = (g: Group<T>, nowMs: number): Entry<T> | undefined => {
    const top = pickableHead(g);
    if (top === undefined) return undefined;
    const threshold = Math.floor((top.key + nowMs) / agingMs) * agingMs - nowMs;
    return g.index.bestOfPrefix((sub) => sub.heap.head!.key >= threshold)!.heap.head;
  };

  const best = (nowMs: number, loaded: string | null): Entry<T> | undefined => {
    let winner: Entry<T> | undefined;
    let winnerGroup: Group<T> | undefined;
    for (const g of byGroup.values()) {
      const head = pickableHead(g);
      if (head !== undefined && (winner === undefined || beats(head, winner, nowMs, loaded))) {
        winner = head;
        winnerGroup = g;
      }
    }
    return winnerGroup && fairHead(winnerGroup, nowMs);
  };

  const pickable = (sub: Sub<T>): boolean => sub.heap.size > 0 && !blocked.has(sub.owner);

  /** Runs a change to a sub's head or v with the sub out of its group's index, then puts it back. */
  const reindex = (sub: Sub<T>, change: () => void): void => {
    if (sub.indexed) {
      sub.group.index.remove(sub);
      sub.indexed = false;
    }
    change();
    if (pickable(sub)) {
      sub.group.index.insert(sub);
      sub.indexed = true;
    }
  };

  /** Forgets what no longer matters: an idle owner below the group's time, a group with nothing left. */
  const tidy = (sub: Sub<T>): void => {
    const g = sub.group;
    if (sub.heap.size === 0 && sub.running === 0 && sub.v <= g.vtime) g.subs.delete(sub.owner);
    // A group's busy period is over: nobody carries credit or debt into the next one (as SFQ).
    if (g.size === 0 && g.running === 0) byGroup.delete(g.name);
  };

  const countWaiting = (owner: string, by: number): void => {
    const n = (waitingByOwner.get(owner) ?? 0) + by;
    if (n === 0) waitingByOwner.delete(owner);
    else waitingByOwner.set(owner, n);
  };

  const detach = (entry: Entry<T>, run: boolean): void => {
    const sub = entry.sub;
    const g = sub.group;
    byId.delete(entry.item.id);
    countWaiting(sub.owner, -1);
    g.size--;
    const change = () => {
      sub.heap.removeAt(entry.pos);
      if (run) {
        // SFQ: the group's time is the start tag of the item taken; the owner pays in advance.
        g.vtime = Math.max(g.vtime, sub.v);
        const charged = Math.max(g.estimateMs, MIN_ESTIMATE_MS) / weightOf(sub.owner);
        sub.v += charged;
        sub.running++;
        g.running++;
        taken.set(entry.item.id, { sub, charged });
      }
    };
    if (entry.pos === 0 || run) reindex(sub, change);
    else change();
    tidy(sub);
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
      const owner = item.owner ?? '';
      let g = byGroup.get(item.group);
      if (g === undefined) {
        g = { name: item.group, subs: new Map(), index: new FairIndex<Sub<T>>(subBefore, subLess), size: 0, running: 0, vtime: 0, estimateMs: 0 };
        byGroup.set(item.group, g);
      }
      let sub = g.subs.get(owner);
      if (sub === undefined) {
        sub = { owner, group: g, heap: new Heap<T>(), v: g.vtime, running: 0, indexed: false };
        g.subs.set(owner, sub);
      }
      const entry: Entry<T> = { item, key: item.priority * agingMs - item.arrivalMs, seq: seq++, sub, pos: 0 };
      byId.set(item.id, entry);
      g.size++;
      countWaiting(owner, 1);
      const s = sub;
      const head = s.heap.head;
      if (head === undefined || before(entry, head) || !s.indexed) {
        reindex(s, () => {
          // An owner that had nothing waiting banks no credit: it starts at the group's time.
          if (head === undefined) s.v = Math.max(s.v, g.vtime);
          s.heap.push(entry);
        });
      } else {
        s.heap.push(entry);
      }
    },

    remove(id) {
      const entry = byId.get(id);
      if (entry === undefined) return undefined;
      detach(entry, false);
      return entry.item;
    },

    take(id) {
      const entry = byId.get(id);
      if (entry === undefined) return undefined;
      detach(entry, true);
      return entry.item;
    },

    finished(id, runMs) {
      const t = taken.get(id);
      if (t === undefined) return;
      taken.delete(id);
      const { sub } = t;
      const g = sub.group;
      const ms = Math.max(0, runMs);
      g.estimateMs = g.estimateMs === 0 ? ms : g.estimateMs * 0.8 + ms * 0.2;
      reindex(sub, () => {
        sub.v += ms / weightOf(sub.owner) - t.charged;
        sub.running--;
        g.running--;
      });
      tidy(sub);
    },

    setBlocked(owner, isBlocked) {
      if (isBlocked === blocked.has(owner)) return;
      if (isBlocked) blocked.add(owner);
      else blocked.delete(owner);
      for (const g of byGroup.values()) {
        const sub = g.subs.get(owner);
        if (sub !== undefined) reindex(sub, () => {});
      }
    },

    waitingOf(owner) {
      return waitingByOwner.get(owner) ?? 0;
    },

    get(id) {
      return byId.get(id)?.item;
    },

    peek(nowMs, loadedGroup) {
      return best(nowMs, loadedGroup)?.item;
    },

    peekGroup(group, nowMs) {
      const g = byGroup.get(group);
      return g && fairHead(g, nowMs)?.item;
    },

    pick(nowMs, loadedGroup) {
      const entry = best(nowMs, loadedGroup);
      if (entry === undefined) return undefined;
      detach(entry, true);
      return entry.item;
    },

    groups(nowMs, loadedGroup = null) {
      const heads: Entry<T>[] = [];
      for (const g of byGroup.values()) {
        const head = anyHead(g);
        if (head !== undefined) heads.push(head);
      }
      heads.sort((a, b) => (a === b ? 0 : beats(a, b, nowMs, loadedGroup) ? -1 : 1));
      return heads.map((head) => ({
        group: head.sub.group.name,
        count: head.sub.group.size,
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
      const own = entry.sub;
      const g = own.group;
      const mine = own.heap.rank(entry);
      let ahead = mine;
      // Other owners in the group: all their items of a higher effective priority than ours, and of
      // those tied with ours, as many as fair share lets through before our owner's virtual time
      // reaches this item (each item costing the group's average run time).
      const mineE = Math.floor((entry.key + nowMs) / agingMs);
      const atLeast = (key: number) => ({ key, seq: Infinity, item: { arrivalMs: Infinity } }) as unknown as Entry<T>;
      const higher = atLeast((mineE + 1) * agingMs - nowMs);
      const tied = atLeast(mineE * agingMs - nowMs);
      const cost = Math.max(g.estimateMs, MIN_ESTIMATE_MS);
      const target = Math.max(own.v, g.vtime) + (mine * cost) / weightOf(own.owner);
      for (const sub of g.subs.values()) {
        if (sub === own || sub.heap.size === 0) continue;
        const above = sub.heap.rank(higher);
        const allowance = Math.max(0, Math.ceil(((target - sub.v) * weightOf(sub.owner)) / cost));
        ahead += above + Math.min(sub.heap.rank(tied) - above, allowance);
      }
      const ownHead = anyHead(g)!;
      for (const other of byGroup.values()) {
        if (other === g) continue;
        const head = anyHead(other);
        if (head !== undefined && beats(head, ownHead, nowMs, loadedGroup)) ahead += other.size;
      }
      return 1 + ahead;
    },

    *values() {
      for (const entry of byId.values()) yield entry.item;
    },
  };
}
