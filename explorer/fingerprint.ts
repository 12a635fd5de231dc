/**
 * 64-bit state fingerprints, as TLC and Spin's hash-compact store them: the
 * store keeps fingerprints, not states, and reports the probability that two
 * distinct states collided.
 *
 * The fingerprint is a structural (Merkle) digest of the state value and the
 * context: a node's digest is mixed from its children's digests in canonical
 * order (object keys sorted), so equal data has equal digests whatever order
 * its fields were written in. Two independent 32-bit lanes (murmur3's and
 * xxHash32's mixing rounds, each with its own avalanche) make 64 bits.
 *
 * Hand-written rather than a library hash over a canonical string because
 * this runs for every generated state: building the string dominated the
 * profile (about 60% of exploration time), while here a successor state
 * re-digests only the objects its assigns replaced; the digests of the shared,
 * unchanged parts are memoised by identity (model contexts are immutable).
 * `npm run bench` measures the effect; test/explorer/fingerprint.test.ts
 * checks equal-data/equal-digest and distinct-data/distinct-digest.
 */
import { canonical } from './canonical.ts';

/** A fingerprint as two unsigned 32-bit halves (a JS number holds 53 bits, not 64). */
export interface Fingerprint {
  readonly hi: number;
  readonly lo: number;
}

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;
const P1 = 0x9e3779b1;
const P2 = 0x85ebca77;

// Tags keep the encoding injective: a string "1" and a number 1 differ, [] and {} differ.
const TAG_STRING = 0x53545231;
const TAG_NUMBER = 0x4e554d31;
const TAG_ARRAY = 0x41525231;
const TAG_OBJECT = 0x4f424a31;
const TAG_TRUE = 0x54525545;
const TAG_FALSE = 0x46414c53;
const TAG_NULL = 0x4e554c4c;

// The running lanes of the node being digested (digests nest: callers save and restore).
let laneA = 0;
let laneB = 0;

function feed(k: number): void {
  let m = Math.imul(k, C1);
  m = (m << 15) | (m >>> 17);
  m = Math.imul(m, C2);
  laneA ^= m;
  laneA = (laneA << 13) | (laneA >>> 19);
  laneA = (Math.imul(laneA, 5) + 0xe6546b64) | 0;
  laneB = (laneB + Math.imul(k, P2)) | 0;
  laneB = (laneB << 13) | (laneB >>> 19);
  laneB = Math.imul(laneB, P1);
}

function avalancheA(h: number, n: number): number {
  h ^= n;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function avalancheB(h: number, n: number): number {
  h = (h + n) | 0;
  h ^= h >>> 15;
  h = Math.imul(h, P2);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae3d);
  h ^= h >>> 16;
  return h >>> 0;
}

function finish(n: number): Fingerprint {
  return { hi: avalancheA(laneA, n), lo: avalancheB(laneB, n) };
}

function begin(tag: number): void {
  laneA = tag;
  laneB = tag ^ 0x27d4eb2f;
}

// Siblings share most of their parent's objects, so a small memo catches nearly all reuse;
// a large one only keeps old states alive for the garbage collector to trace.
const MEMO_LIMIT = 1 << 16;
let memo = new Map<object, Fingerprint>();
let strings = new Map<string, Fingerprint>();

function digestString(s: string): Fingerprint {
  let d = strings.get(s);
  if (d !== undefined) return d;
  begin(TAG_STRING);
  for (let i = 0; i < s.length; i++) feed(s.charCodeAt(i));
  d = finish(s.length);
  if (strings.size >= MEMO_LIMIT) strings = new Map();
  strings.set(s, d);
  return d;
}

const TRUE_D = (() => {
  begin(TAG_TRUE);
  return finish(0);
})();
const FALSE_D = (() => {
  begin(TAG_FALSE);
  return finish(0);
})();
const NULL_D = (() => {
  begin(TAG_NULL);
  return finish(0);
})();

function digestNumber(x: number): Fingerprint {
  if ((x | 0) === x) {
    // -0 is 0 here, as in JSON
    begin(TAG_NUMBER);
    feed(x);
    return finish(1);
  }
  const s = digestString(String(x)); // before begin(): a cache miss runs its own digest
  begin(TAG_NUMBER);
  feed(s.hi);
  feed(s.lo);
  return finish(2);
}

/** The digest of plain JSON data. Throws a ModelError naming the field for anything else. */
export function digest(x: unknown, root: unknown = x): Fingerprint {
  return digestAt(x, root, true);
}

function digestAt(x: unknown, root: unknown, memoise: boolean): Fingerprint {
  switch (typeof x) {
    case 'string':
      return digestString(x);
    case 'number':
      if (!Number.isFinite(x)) break;
      return digestNumber(x);
    case 'boolean':
      return x ? TRUE_D : FALSE_D;
    case 'object': {
      if (x === null) return NULL_D;
      const known = memo.get(x);
      if (known !== undefined) return known;
      const d = Array.isArray(x) ? digestArray(x, root) : digestObject(x as Record<string, unknown>, root);
      if (d === undefined) break;
      if (memoise) {
        if (memo.size >= MEMO_LIMIT) memo = new Map();
        memo.set(x, d);
      }
      return d;
    }
  }
  // Not plain JSON: let the canonical encoder find the offending field and say which it is.
  canonical(root);
  throw new Error(`internal error: cannot digest ${typeof x}`);
}

// Children are digested between feeds, and a child's digest runs on the same
// module-level lanes, so each parent keeps its own lanes in locals meanwhile.

function digestArray(a: readonly unknown[], root: unknown): Fingerprint {
  begin(TAG_ARRAY);
  let la = laneA;
  let lb = laneB;
  for (let i = 0; i < a.length; i++) {
    const d = digestAt(a[i], root, true);
    laneA = la;
    laneB = lb;
    feed(d.hi);
    feed(d.lo);
    la = laneA;
    lb = laneB;
  }
  return finish(a.length);
}

function digestObject(o: Record<string, unknown>, root: unknown): Fingerprint | undefined {
  const proto = Object.getPrototypeOf(o);
  if (proto !== Object.prototype && proto !== null) return undefined;
  const keys = Object.keys(o);
  for (let i = 1; i < keys.length; i++) {
    if (keys[i - 1] > keys[i]) {
      keys.sort();
      break;
    }
  }
  begin(TAG_OBJECT);
  let la = laneA;
  let lb = laneB;
  let n = 0;
  for (const k of keys) {
    const v = o[k];
    if (v === undefined) continue; // as in JSON: an absent field and an undefined one are the same state
    const kd = digestString(k);
    const vd = digestAt(v, root, true);
    laneA = la;
    laneB = lb;
    feed(kd.hi);
    feed(kd.lo);
    feed(vd.hi);
    feed(vd.lo);
    la = laneA;
    lb = laneB;
    n += 2;
  }
  return finish(n);
}

/**
 * A digest with the digests of its parts, kept beside a state so that its
 * successors, which share most of its objects (assigns copy only what they
 * change), re-digest only the objects that are not the very same ones. This
 * is the compiled engine's path; it needs no memo table and keeps nothing
 * alive beyond the frontier. It computes exactly digest()'s value.
 */
export interface DigestTree {
  readonly value: unknown;
  readonly d: Fingerprint;
  /** For objects: the sorted keys with defined values; for arrays: undefined. */
  readonly keys?: readonly string[];
  /** Child trees, by position in `keys` (objects) or by index (arrays); primitives have none. */
  readonly kids?: readonly (DigestTree | undefined)[];
}

export function digestTree(
  x: unknown,
  prev: DigestTree | undefined,
  root: unknown = x,
): DigestTree | undefined {
  if (prev !== undefined && prev.value === x) return prev;
  if (typeof x !== 'object' || x === null) return undefined; // primitives: digest() them directly, cheaply
  if (Array.isArray(x)) {
    const prevKids = prev !== undefined && Array.isArray(prev.value) ? prev.kids : undefined;
    const kids = new Array<DigestTree | undefined>(x.length);
    const parts = new Array<Fingerprint>(x.length);
    for (let i = 0; i < x.length; i++) {
      const t = digestTree(x[i], prevKids?.[i], root);
      kids[i] = t;
      parts[i] = t === undefined ? digest(x[i], root) : t.d;
    }
    return { value: x, d: combine(TAG_ARRAY, parts), kids };
  }
  const o = x as Record<string, unknown>;
  const proto = Object.getPrototypeOf(o);
  if (proto !== Object.prototype && proto !== null) {
    canonical(root); // names the offending field
  }
  const all = Object.keys(o);
  for (let i = 1; i < all.length; i++) {
    if (all[i - 1] > all[i]) {
      all.sort();
      break;
    }
  }
  const keys = all.filter((k) => o[k] !== undefined);
  const prevKeys = prev?.keys;
  const kids = new Array<DigestTree | undefined>(keys.length);
  const parts = new Array<Fingerprint>(keys.length * 2);
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i];
    const t = digestTree(
      o[k],
      prevKeys !== undefined && prevKeys[i] === k ? prev?.kids?.[i] : undefined,
      root,
    );
    kids[i] = t;
    parts[2 * i] = digestString(k);
    parts[2 * i + 1] = t === undefined ? digest(o[k], root) : t.d;
  }
  return { value: x, d: combine(TAG_OBJECT, parts), keys, kids };
}

/** The fingerprint of a state from its value digest and its context's digest tree. */
export function stateFingerprintOf(value: Fingerprint, context: Fingerprint): Fingerprint {
  return combine(0x53544154, [value, context]);
}

/** Mix already-digested parts into one node digest. */
export function combine(tag: number, parts: readonly Fingerprint[]): Fingerprint {
  begin(tag);
  for (const p of parts) {
    feed(p.hi);
    feed(p.lo);
  }
  return finish(parts.length);
}

/**
 * An object's digest from its entries' digests, keys already sorted: how the
 * compiled engine digests a parallel state value without building it.
 */
export function digestSortedEntries(entries: readonly (readonly [string, Fingerprint])[]): Fingerprint {
  const parts: Fingerprint[] = [];
  for (const [k, d] of entries) parts.push(digestString(k), d);
  return combine(TAG_OBJECT, parts);
}

/** The fingerprint of a state: its value and its context. */
export function stateFingerprint(value: Fingerprint, context: unknown): Fingerprint {
  // The context object itself is new in nearly every state: memoising it would only cost.
  return stateFingerprintOf(value, digestAt(context, context, false));
}

/**
 * TLC's "optimistic" estimate of the probability that some fingerprint
 * collision went unnoticed: n distinct states, t states generated in all
 * (each of the t - n revisits could have matched a different state).
 */
export function collisionProbability(distinct: number, generated: number): number {
  return (distinct * Math.max(0, generated - distinct)) / 2 ** 64;
}
