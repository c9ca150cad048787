// An order-statistics set (a treap with subtree sizes): insert, remove and "how many
// come before this one" in O(log n) expected. Pure; the queue uses it for queue_position.

interface Node<E> {
  readonly e: E;
  readonly pri: number;
  size: number;
  left: Node<E> | null;
  right: Node<E> | null;
}

const size = <E>(n: Node<E> | null): number => (n === null ? 0 : n.size);

function update<E>(n: Node<E>): Node<E> {
  n.size = 1 + size(n.left) + size(n.right);
  return n;
}

export class RankIndex<E> {
  #root: Node<E> | null = null;
  readonly #before: (a: E, b: E) => boolean;
  readonly #random: () => number;

  /** `before` must be a strict total order over the elements held. */
  constructor(before: (a: E, b: E) => boolean, random: () => number = Math.random) {
    this.#before = before;
    this.#random = random;
  }

  get size(): number {
    return size(this.#root);
  }

  insert(e: E): void {
    const [l, r] = this.#split(this.#root, e);
    const node: Node<E> = { e, pri: this.#random(), size: 1, left: null, right: null };
    this.#root = this.#merge(this.#merge(l, node), r);
  }

  /** Removes e (which must be held). */
  remove(e: E): void {
    const [l, r] = this.#split(this.#root, e);
    // e is the first element not before itself, so it is the leftmost of r.
    this.#root = this.#merge(l, this.#dropFirst(r));
  }

  /** How many held elements come before e. */
  rank(e: E): number {
    let n = this.#root;
    let count = 0;
    while (n !== null) {
      if (this.#before(n.e, e)) {
        count += size(n.left) + 1;
        n = n.right;
      } else {
        n = n.left;
      }
    }
    return count;
  }

  /** [elements before e, the rest] */
  #split(t: Node<E> | null, e: E): [Node<E> | null, Node<E> | null] {
    if (t === null) return [null, null];
    if (this.#before(t.e, e)) {
      const [l, r] = this.#split(t.right, e);
      t.right = l;
      return [update(t), r];
    }
    const [l, r] = this.#split(t.left, e);
    t.left = r;
    return [l, update(t)];
  }

  /** Joins a and b where everything in a comes before everything in b. */
  #merge(a: Node<E> | null, b: Node<E> | null): Node<E> | null {
    if (a === null) return b;
    if (b === null) return a;
    if (a.pri > b.pri) {
      a.right = this.#merge(a.right, b);
      return update(a);
    }
    b.left = this.#merge(a, b.left);
    return update(b);
  }

  #dropFirst(t: Node<E> | null): Node<E> | null {
    if (t === null) return null;
    if (t.left === null) return t.right;
    t.left = this.#dropFirst(t.left);
    return update(t);
  }
}
