/**
 * The visited-state store: fingerprint -> (parent, event, depth). States are
 * numbered in discovery order, which in BFS is also depth order, so the path
 * to any state is found by following parents back to state 0, and it is a
 * shortest path.
 *
 * An open-addressing table over typed arrays rather than a Map: a Map cannot
 * key on 64 bits without allocating a string or BigInt per lookup, and this
 * lookup runs once per generated state (measured in `npm run bench`).
 */
import type { Fingerprint } from './fingerprint.ts';

const EMPTY = -1;

export class StateStore {
  private slots: Int32Array; // slot -> state index, EMPTY when free
  private hi: Uint32Array; // state index -> fingerprint halves
  private lo: Uint32Array;
  private parents: Int32Array;
  private events: Int32Array;
  private depths: Uint32Array;
  private count = 0;

  constructor(initialCapacity = 1 << 12) {
    const cap = 1 << Math.ceil(Math.log2(Math.max(16, initialCapacity)));
    this.slots = new Int32Array(cap * 2).fill(EMPTY);
    this.hi = new Uint32Array(cap);
    this.lo = new Uint32Array(cap);
    this.parents = new Int32Array(cap);
    this.events = new Int32Array(cap);
    this.depths = new Uint32Array(cap);
  }

  get size(): number {
    return this.count;
  }

  /** The index of a stored fingerprint, or -1. */
  find(fp: Fingerprint): number {
    const slot = this.probe(fp.hi >>> 0, fp.lo >>> 0);
    return this.slots[slot];
  }

  /**
   * Store a fingerprint reached from `parent` by event `event` (both -1 for
   * the initial state). Returns the new state's index, or -1 if it was known.
   */
  add(fp: Fingerprint, parent: number, event: number, depth: number): number {
    const hi = fp.hi >>> 0;
    const lo = fp.lo >>> 0;
    const slot = this.probe(hi, lo);
    if (this.slots[slot] !== EMPTY) return -1;
    const index = this.count++;
    if (index >= this.hi.length) this.growColumns();
    this.slots[slot] = index;
    this.hi[index] = hi;
    this.lo[index] = lo;
    this.parents[index] = parent;
    this.events[index] = event;
    this.depths[index] = depth;
    if (this.count * 2 > this.slots.length) this.rehash();
    return index;
  }

  parent(index: number): number {
    return this.parents[index];
  }

  setEvent(index: number, event: number): void {
    this.events[index] = event;
  }

  event(index: number): number {
    return this.events[index];
  }

  depth(index: number): number {
    return this.depths[index];
  }

  fingerprint(index: number): Fingerprint {
    return { hi: this.hi[index], lo: this.lo[index] };
  }

  /** State indices from the initial state (index 0) to `index`, inclusive. */
  pathTo(index: number): number[] {
    const path: number[] = [];
    for (let i = index; i !== -1; i = this.parents[i]) path.push(i);
    return path.reverse();
  }

  /** Bytes held by the typed arrays (for the memory report). */
  get bytes(): number {
    return this.slots.byteLength + this.hi.length * 20;
  }

  private probe(hi: number, lo: number): number {
    const mask = this.slots.length - 1;
    let slot = (lo ^ Math.imul(hi, 0x9e3779b1)) & mask;
    for (;;) {
      const i = this.slots[slot];
      if (i === EMPTY || (this.lo[i] === lo && this.hi[i] === hi)) return slot;
      slot = (slot + 1) & mask;
    }
  }

  private growColumns(): void {
    const cap = this.hi.length * 2;
    const grow = <T extends Uint32Array | Int32Array>(a: T, make: (n: number) => T): T => {
      const b = make(cap);
      b.set(a);
      return b;
    };
    this.hi = grow(this.hi, (n) => new Uint32Array(n));
    this.lo = grow(this.lo, (n) => new Uint32Array(n));
    this.parents = grow(this.parents, (n) => new Int32Array(n));
    this.events = grow(this.events, (n) => new Int32Array(n));
    this.depths = grow(this.depths, (n) => new Uint32Array(n));
  }

  private rehash(): void {
    this.slots = new Int32Array(this.slots.length * 2).fill(EMPTY);
    for (let i = 0; i < this.count; i++) this.slots[this.probe(this.hi[i], this.lo[i])] = i;
  }
}
