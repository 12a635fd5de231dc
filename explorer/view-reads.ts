/**
 * Which of a few given fields a model function reads: the view check's read
 * recorder (view.ts). footprint.ts's Recorder records every read of a
 * context, which the view check would pay on every step the search takes; a
 * projection forgets a handful of fields, so this one puts proxies only on
 * the objects on the way to them (the root, `ret`, `mms`, `mms.mm1`) and
 * hands out every other object as it is, untouched and unrecorded.
 *
 * It records reads as footprint.ts does, with the same two exceptions for
 * copies (so a step reads what POR's recorder says it reads):
 * - a value read by enumeration (spread, Object.assign, Object.values) whose
 *   object the step replaces by a new one is copied, not read:
 *   `{ ...c.ret, vmm: '0' }` copies `ret.mdev`;
 * - an object put back at its own path is not read.
 * An object on the way to a field put anywhere else reads every field below
 * it, and so does structuredClone of it. For a predicate (no output) every
 * value read, by enumeration or not, is a read.
 */

import { cloningUnwrapped } from './footprint.ts';

/** A path pattern's trie: a key or '*' per level; `leaf` where a watched field ends. */
interface Node {
  leaf: boolean;
  readonly children: Map<string, Node>;
  star?: Node;
}

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null;
const has = (o: object, k: PropertyKey) => Object.prototype.hasOwnProperty.call(o, k);
const join = (path: string, key: string) => (path === '' ? key : `${path}.${key}`);

/** The trie of the watched paths (their segments; '*' any one key). */
export function watchTrie(paths: readonly (readonly string[])[]): Node {
  const root: Node = { leaf: false, children: new Map() };
  for (const p of paths) {
    let n = root;
    for (const seg of p) {
      if (seg === '*') n = n.star ??= { leaf: false, children: new Map() };
      else {
        let c = n.children.get(seg);
        if (c === undefined) n.children.set(seg, (c = { leaf: false, children: new Map() }));
        n = c;
      }
    }
    n.leaf = true;
  }
  return root;
}

interface Wrapped {
  readonly real: object;
  readonly path: string;
  readonly node: Node;
}

/** One proxy's traps: a class, so that wrapping an object makes no closures (the check wraps on every step). */
class Handler implements ProxyHandler<object> {
  /** The key whose descriptor was just asked for: its value, read next, is read by enumeration. */
  private pending: PropertyKey | undefined;

  constructor(
    private readonly owner: FieldReads,
    private readonly real: Record<PropertyKey, unknown>,
    private readonly node: Node,
    private readonly path: string,
  ) {}

  private childOf(k: string): Node | undefined {
    return this.node.children.get(k) ?? this.node.star;
  }

  get(_t: object, k: PropertyKey): unknown {
    const viaEnumeration = this.pending === k;
    this.pending = undefined;
    const v = this.real[k];
    if (typeof k === 'symbol' || !has(this.real, k)) return v;
    const child = this.childOf(String(k));
    if (child === undefined) return v;
    const p = join(this.path, String(k));
    if (child.leaf) this.owner.noteRead(p, viaEnumeration);
    return inner(child) ? this.owner.wrap(v, child, p) : v;
  }

  has(_t: object, k: PropertyKey): boolean {
    return k in this.real;
  }

  ownKeys(): ArrayLike<string | symbol> {
    return Reflect.ownKeys(this.real);
  }

  getOwnPropertyDescriptor(_t: object, k: PropertyKey): PropertyDescriptor | undefined {
    const d = Reflect.getOwnPropertyDescriptor(this.real, k);
    if (d === undefined) return undefined;
    this.pending = k;
    const child = typeof k === 'string' ? this.childOf(k) : undefined;
    const value =
      child && isObject(d.value) && inner(child)
        ? this.owner.wrap(d.value, child, join(this.path, String(k)))
        : d.value;
    // An array target has its own non-configurable length; every other property is reported configurable.
    const lengthOfArray = Array.isArray(this.real) && k === 'length';
    return { value, writable: true, enumerable: d.enumerable, configurable: !lengthOfArray };
  }

  getPrototypeOf(): object | null {
    return Object.getPrototypeOf(this.real);
  }

  set(): boolean {
    return false;
  }

  defineProperty(): boolean {
    return false;
  }

  deleteProperty(): boolean {
    return false;
  }
}

/** Whether a trie node has watched fields below it (its object is wrapped, not handed out). */
const inner = (n: Node) => n.children.size > 0 || n.star !== undefined;

export class FieldReads {
  /** Watched fields read (concrete paths). */
  readonly read = new Set<string>();
  /** Watched fields read by enumeration: excused if their object is rebuilt (settle). */
  private readonly enumerated = new Set<string>();
  private readonly wrappers = new WeakMap<object, Wrapped>();

  constructor(private readonly trie: Node) {}

  wrap<T>(real: T, node: Node = this.trie, path = ''): T {
    if (!isObject(real)) return real;
    const proxy = new Proxy(Array.isArray(real) ? [] : {}, new Handler(this, real, node, path));
    this.wrappers.set(proxy, { real, path, node });
    return proxy as T;
  }

  /** A watched field read (by the handler). */
  noteRead(path: string, viaEnumeration: boolean): void {
    (viaEnumeration ? this.enumerated : this.read).add(path);
  }

  /** Every watched field below a wrapped object, in the state it wraps: read whole. */
  private readAll(w: Wrapped): void {
    const visit = (x: unknown, node: Node, p: string) => {
      if (node.leaf) this.read.add(p);
      if (!isObject(x)) return;
      for (const k of Object.keys(x)) {
        const child = node.children.get(k) ?? node.star;
        if (child) visit(x[k], child, join(p, k));
      }
    };
    visit(w.real, w.node, w.path);
  }

  /** Run `fn` with structuredClone reading whole what it clones (a proxy cannot be cloned). */
  during<T>(fn: () => T): T {
    return cloningUnwrapped(
      (x) => this.wrappers.get(x),
      (w) => this.readAll(w),
      fn,
    );
  }

  /** The watched fields a predicate read: by enumeration or not. */
  predicateReads(): Set<string> {
    return new Set([...this.read, ...this.enumerated]);
  }

  /** The watched fields a step from `before` to `out` (which may hold proxies) read: copies excused, moved objects read whole. */
  stepReads(before: unknown, out: unknown): Set<string> {
    // Wrapped objects the step put elsewhere; only new objects can hold one (what is shared is the state's own).
    const visit = (x: unknown, old: unknown, p: string) => {
      if (!isObject(x) || x === old) return;
      const w = this.wrappers.get(x);
      if (w !== undefined) {
        if (w.path !== p) this.readAll(w);
        return;
      }
      for (const k of Object.keys(x)) visit(x[k], isObject(old) ? old[k] : undefined, join(p, k));
    };
    visit(out, before, '');
    const reads = new Set(this.read);
    const unwrap = (x: unknown) => (isObject(x) ? (this.wrappers.get(x)?.real ?? x) : x);
    const at = (x: unknown, path: string) => {
      let v = unwrap(x);
      for (const k of path === '' ? [] : path.split('.')) v = isObject(v) ? unwrap(v[k]) : undefined;
      return v;
    };
    for (const p of this.enumerated) {
      const dot = p.lastIndexOf('.');
      const parent = dot < 0 ? '' : p.slice(0, dot);
      // Copied into the object that replaces its own (or overwritten there): not a dependency.
      let o: unknown = out;
      for (const k of parent === '' ? [] : parent.split('.')) o = isObject(o) ? o[k] : undefined;
      const rebuilt = isObject(o) && !this.wrappers.has(o) && o !== at(before, parent);
      if (!rebuilt) reads.add(p);
    }
    return reads;
  }
}

/**
 * A set of 64-bit fingerprints (open addressing over two Uint32 halves): the
 * states whose predicates the view check has already read, so that a state
 * reached again by another step is not checked again.
 */
export class FingerprintSet {
  private slots = new Uint32Array(2 * 1024);
  private size = 0;
  private zero = false;

  /** Adds the fingerprint; false when it was there already. */
  add(hi: number, lo: number): boolean {
    hi >>>= 0; // the halves may come signed; the slots hold them unsigned
    lo >>>= 0;
    if (hi === 0 && lo === 0) {
      const had = this.zero;
      this.zero = true;
      return !had;
    }
    if (2 * (this.size + 1) > this.slots.length / 2) this.grow();
    if (!this.insert(this.slots, hi, lo)) return false;
    this.size++;
    return true;
  }

  private insert(slots: Uint32Array, hi: number, lo: number): boolean {
    const mask = slots.length / 2 - 1;
    for (let i = (lo ^ Math.imul(hi, 0x9e3779b1)) & mask; ; i = (i + 1) & mask) {
      const h = slots[2 * i];
      const l = slots[2 * i + 1];
      if (h === 0 && l === 0) {
        slots[2 * i] = hi;
        slots[2 * i + 1] = lo;
        return true;
      }
      if (h === hi && l === lo) return false;
    }
  }

  private grow(): void {
    const old = this.slots;
    this.slots = new Uint32Array(old.length * 2);
    for (let i = 0; i < old.length; i += 2)
      if (old[i] !== 0 || old[i + 1] !== 0) this.insert(this.slots, old[i], old[i + 1]);
  }
}
