/**
 * The visited-state store: fingerprint -> state number, and per state its
 * parent and the event that reached it. States are numbered in discovery
 * order, which in BFS is also depth order: the path to any state follows
 * parents back to the initial state, and it is a shortest path. A state's
 * depth is the level its number falls in (levels are recorded as they
 * start), so no depth is stored per state.
 *
 * Memory per state, measured by `bytes`: the visited set proper is an
 * open-addressing table of state numbers (4 bytes a slot, at a load factor
 * kept between 0.5 and 0.75 by growing 1.5x) plus the fingerprint's two
 * halves (8 bytes): at most 16 bytes. The trace columns (parent, event) add
 * 12 bytes. Columns live in fixed-size chunks, so growing never copies them
 * nor leaves half of a doubled array unused.
 *
 * Typed arrays rather than a Map: a Map cannot key on 64 bits without
 * allocating a string or BigInt per lookup, and this runs once per generated
 * state (npm run bench).
 */
import type { Fingerprint } from './fingerprint.ts';

const EMPTY = -1;
const CHUNK_BITS = 16;
const CHUNK = 1 << CHUNK_BITS;
const MASK = CHUNK - 1;

/** A column of numbers in chunks of 65,536. */
class Column<T extends Uint32Array | Int32Array | Float64Array> {
  readonly chunks: T[] = [];
  constructor(private readonly make: (n: number) => T) {}
  get(i: number): number {
    return this.chunks[i >>> CHUNK_BITS][i & MASK];
  }
  set(i: number, v: number): void {
    const c = i >>> CHUNK_BITS;
    while (this.chunks.length <= c) this.chunks.push(this.make(CHUNK));
    this.chunks[c][i & MASK] = v;
  }
  get bytes(): number {
    return this.chunks.reduce((n, c) => n + c.byteLength, 0);
  }
}

/** What is read of a finished search's states: counterexamples, depths, temporal checks. */
export interface StoredStates {
  readonly size: number;
  depth(index: number): number;
  fingerprint(index: number): Fingerprint;
  parent(index: number): number;
  event(index: number): number;
  pathTo(index: number): number[];
}

/**
 * A finished parallel search's states gathered in BFS order (parallel-bfs.ts):
 * the columns only, no lookup table (nothing looks states up by fingerprint
 * once the search is over).
 */
export class GatheredStates implements StoredStates {
  constructor(
    private readonly levels: readonly number[],
    private readonly hi: Uint32Array,
    private readonly lo: Uint32Array,
    private readonly parents: Float64Array,
    private readonly events: Int32Array,
  ) {}
  get size(): number {
    return this.hi.length;
  }
  depth(index: number): number {
    return levelOf(this.levels, index);
  }
  fingerprint(index: number): Fingerprint {
    return { hi: this.hi[index], lo: this.lo[index] };
  }
  parent(index: number): number {
    return this.parents[index];
  }
  event(index: number): number {
    return this.events[index];
  }
  pathTo(index: number): number[] {
    const path: number[] = [];
    for (let i = index; i !== -1; i = this.parents[i]) path.push(i);
    return path.reverse();
  }
}

/** The level a state number falls in, given the first number of each level. */
export function levelOf(levels: readonly number[], index: number): number {
  let lo = 0;
  let hi = levels.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (levels[mid] <= index) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

export class StateStore implements StoredStates {
  private slots: Int32Array;
  private readonly hi = new Column((n) => new Uint32Array(n));
  private readonly lo = new Column((n) => new Uint32Array(n));
  /** Parent state ids: a number, so that with workers it can name a state on another worker. */
  private readonly parents = new Column((n) => new Float64Array(n));
  private readonly events = new Column((n) => new Int32Array(n));
  private readonly levels: number[] = [];
  private count = 0;

  constructor(initialCapacity = 1 << 12) {
    this.slots = new Int32Array(Math.max(16, initialCapacity)).fill(EMPTY);
  }

  get size(): number {
    return this.count;
  }

  /** The number of a stored fingerprint, or -1. */
  find(fp: Fingerprint): number {
    return this.slots[this.probe(fp.hi >>> 0, fp.lo >>> 0)];
  }

  /**
   * Store a fingerprint reached from `parent` by event `event` (both -1 for
   * an initial state). Returns the new state's number, or -1 if it was known.
   */
  add(fp: Fingerprint, parent: number, event: number): number {
    const hi = fp.hi >>> 0;
    const lo = fp.lo >>> 0;
    const slot = this.probe(hi, lo);
    if (this.slots[slot] !== EMPTY) return -1;
    const index = this.count++;
    this.slots[slot] = index;
    this.hi.set(index, hi);
    this.lo.set(index, lo);
    this.parents.set(index, parent);
    this.events.set(index, event);
    if (this.count * 4 > this.slots.length * 3) this.rehash();
    return index;
  }

  /** Mark the start of a BFS level: states numbered from here on have depth `levels.length - 1`. */
  startLevel(): void {
    this.levels.push(this.count);
  }

  /** The first state number of each level, in order. */
  levelStarts(): number[] {
    return [...this.levels];
  }

  parent(index: number): number {
    return this.parents.get(index);
  }

  setEvent(index: number, event: number): void {
    this.events.set(index, event);
  }

  event(index: number): number {
    return this.events.get(index);
  }

  /** A state's depth: the last level that started at or before its number. */
  depth(index: number): number {
    return levelOf(this.levels, index);
  }

  fingerprint(index: number): Fingerprint {
    return { hi: this.hi.get(index), lo: this.lo.get(index) };
  }

  /** State numbers from the initial state (0) to `index`, inclusive. */
  pathTo(index: number): number[] {
    const path: number[] = [];
    for (let i = index; i !== -1; i = this.parents.get(i)) path.push(i);
    return path.reverse();
  }

  /** Bytes of the visited set proper: the slot table and the fingerprints. */
  get visitedBytes(): number {
    return this.slots.byteLength + this.hi.bytes + this.lo.bytes;
  }

  /** Bytes of everything: the visited set and the trace columns. */
  get bytes(): number {
    return this.visitedBytes + this.parents.bytes + this.events.bytes;
  }

  private probe(hi: number, lo: number): number {
    const n = this.slots.length;
    // Lemire's multiply-shift maps the hash onto any table size (not only powers of two).
    let slot = Math.floor((((lo ^ Math.imul(hi, 0x9e3779b1)) >>> 0) * n) / 4294967296);
    for (;;) {
      const i = this.slots[slot];
      if (i === EMPTY || (this.lo.get(i) === lo && this.hi.get(i) === hi)) return slot;
      slot = slot + 1 === n ? 0 : slot + 1;
    }
  }

  private rehash(): void {
    this.slots = new Int32Array(Math.ceil(this.slots.length * 1.5)).fill(EMPTY);
    for (let i = 0; i < this.count; i++) this.slots[this.probe(this.hi.get(i), this.lo.get(i))] = i;
  }
}
