// An ordered set (a treap) that also answers "the least element, by a second order, among the
// first elements of the first order" in O(log n) expected. The queue holds one per group: keys'
// sub-queues ordered by their head job, and the least virtual time among those at the top priority.

interface Node<E> {
  readonly e: E;
  readonly pri: number;
  left: Node<E> | null;
  right: Node<E> | null;
  /** the least element of this subtree by `less`, the leftmost one on ties */
  best: E;
}

export class FairIndex<E> {
  #root: Node<E> | null = null;
  #size = 0;
  readonly #before: (a: E, b: E) => boolean;
  readonly #less: (a: E, b: E) => boolean;
  readonly #random: () => number;

  /**
   * `before` must be a strict total order over the elements held; `less` a strict weak order.
   * An element's place in either order must not change while it is held: remove, change, insert.
   */
  constructor(before: (a: E, b: E) => boolean, less: (a: E, b: E) => boolean, random: () => number = Math.random) {
    this.#before = before;
    this.#less = less;
    this.#random = random;
  }

  get size(): number {
    return this.#size;
  }

  /** The first element in `before` order. */
  first(): E | undefined {
    let n = this.#root;
    if (n === null) return undefined;
    while (n.left !== null) n = n.left;
    return n.e;
  }

  insert(e: E): void {
    const [l, r] = this.#split(this.#root, e);
    const node: Node<E> = { e, pri: this.#random(), left: null, right: null, best: e };
    this.#root = this.#merge(this.#merge(l, node), r);
    this.#size++;
  }

  /** Removes e, which must be held. */
  remove(e: E): void {
    const [l, r] = this.#split(this.#root, e);
    this.#root = this.#merge(l, this.#dropFirst(r));
    this.#size--;
  }

  /**
   * The least element by `less` (leftmost on ties) among the longest prefix, in `before` order,
   * whose elements all satisfy `inPrefix`. `inPrefix` must hold for a prefix and fail after it.
   */
  bestOfPrefix(inPrefix: (e: E) => boolean): E | undefined {
    let found: E | undefined;
    let n = this.#root;
    while (n !== null) {
      if (inPrefix(n.e)) {
        // n and its whole left subtree lie in the prefix, and after everything found so far.
        const here = n.left === null ? n.e : this.#pick(n.left.best, n.e);
        found = found === undefined ? here : this.#pick(found, here);
        n = n.right;
      } else {
        n = n.left;
      }
    }
    return found;
  }

  /** a comes before b in `before` order: the earlier wins a tie in `less`. */
  #pick(a: E, b: E): E {
    return this.#less(b, a) ? b : a;
  }

  #update(n: Node<E>): Node<E> {
    let best = n.left === null ? n.e : this.#pick(n.left.best, n.e);
    if (n.right !== null) best = this.#pick(best, n.right.best);
    n.best = best;
    return n;
  }

  /** [elements before e, the rest] */
  #split(t: Node<E> | null, e: E): [Node<E> | null, Node<E> | null] {
    if (t === null) return [null, null];
    if (this.#before(t.e, e)) {
      const [l, r] = this.#split(t.right, e);
      t.right = l;
      return [this.#update(t), r];
    }
    const [l, r] = this.#split(t.left, e);
    t.left = r;
    return [l, this.#update(t)];
  }

  #merge(a: Node<E> | null, b: Node<E> | null): Node<E> | null {
    if (a === null) return b;
    if (b === null) return a;
    if (a.pri > b.pri) {
      a.right = this.#merge(a.right, b);
      return this.#update(a);
    }
    b.left = this.#merge(a, b.left);
    return this.#update(b);
  }

  #dropFirst(t: Node<E> | null): Node<E> | null {
    if (t === null) return null;
    if (t.left === null) return t.right;
    t.left = this.#dropFirst(t.left);
    return this.#update(t);
  }
}
