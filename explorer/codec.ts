/**
 * The state codec: a state as a short run of 32-bit words, and its 64-bit
 * fingerprint. The frontier holds states this way (not as JS object graphs),
 * workers send them to each other this way, and checkpoints and the disk
 * spill write them this way.
 *
 * A state is its control part (per actor, the index of its active leaf
 * state: control.ts) followed by its context, encoded as tagged words:
 *
 *   tag (3 low bits) | payload (29 high bits)
 *   INT     a signed integer of 29 bits
 *   STR     a string, by dictionary id
 *   NUM     any other number, by the dictionary id of its decimal string
 *   ARR     an array: its length, then its elements
 *   OBJ     an object: the id of its shape (its sorted keys with defined
 *           values), then the values in that order
 *   CONST   null, false, true
 *
 * Equal data has equal words whatever order its keys were written in, and
 * an absent field equals an undefined one (as in JSON). Dictionary ids are
 * local to a codec (a worker, a process); the fingerprint is not: it mixes
 * the content digest of each dictionary entry, never its id, so every worker
 * computes the same fingerprint for the same state. `exportEntries` and
 * `importEntries` carry dictionary entries between codecs, and `translate`
 * rewrites a foreign state's ids into local ones.
 *
 * Hand-written rather than a library (msgpack, CBOR) because it runs for
 * every generated state and must be canonical, compact and hashable without
 * a second pass; the identity memo lets a successor copy the words of every
 * object it shares with the state it was stepped from.
 */
import type { Fingerprint } from './fingerprint.ts';
import { ModelError } from './model.ts';

export const TAG = { INT: 0, STR: 1, NUM: 2, ARR: 3, OBJ: 4, CONST: 5 } as const;
const NULL_W = (0 << 3) | TAG.CONST;
const FALSE_W = (1 << 3) | TAG.CONST;
const TRUE_W = (2 << 3) | TAG.CONST;
const INT_MIN = -(2 ** 28);
const INT_MAX = 2 ** 28 - 1;
const ID_MAX = 2 ** 28 - 1;

/** A dictionary entry as it travels between codecs: a string, or a shape (sorted keys). */
export type DictEntry = readonly ['s', string] | readonly ['k', readonly string[]];

// 32-bit mixing (murmur3's and xxHash32's rounds, two independent lanes).
const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;
const P1 = 0x9e3779b1;
const P2 = 0x85ebca77;

function mixA(h: number, k: number): number {
  let m = Math.imul(k, C1);
  m = (m << 15) | (m >>> 17);
  m = Math.imul(m, C2);
  h ^= m;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

function mixB(h: number, k: number): number {
  h = (h + Math.imul(k, P2)) | 0;
  h = (h << 13) | (h >>> 19);
  return Math.imul(h, P1);
}

function finalA(h: number, n: number): number {
  h ^= n;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function finalB(h: number, n: number): number {
  h = (h + n) | 0;
  h ^= h >>> 15;
  h = Math.imul(h, P2);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae3d);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The content digest of a dictionary entry: what the fingerprint mixes in place of its id. */
function entryDigest(e: DictEntry): [number, number] {
  let a = e[0] === 's' ? 0x53545231 : 0x4b455953;
  let b = a ^ 0x27d4eb2f;
  const feed = (k: number) => {
    a = mixA(a, k);
    b = mixB(b, k);
  };
  if (e[0] === 's') {
    for (let i = 0; i < e[1].length; i++) feed(e[1].charCodeAt(i));
    return [finalA(a, e[1].length), finalB(b, e[1].length)];
  }
  for (const key of e[1]) {
    feed(key.length); // the length first: ['ab'] and ['a', 'b'] differ, whatever the characters
    for (let i = 0; i < key.length; i++) feed(key.charCodeAt(i));
  }
  return [finalA(a, e[1].length), finalB(b, e[1].length)];
}

/** A growable word buffer that encoders write into. */
export class Words {
  buf = new Int32Array(1024);
  length = 0;

  push(w: number): void {
    if (this.length === this.buf.length) this.grow(1);
    this.buf[this.length++] = w;
  }

  copy(from: Int32Array, start: number, end: number): void {
    const n = end - start;
    if (this.length + n > this.buf.length) this.grow(n);
    // A loop rather than set(subarray()): most copies are a few words, and a subarray is an allocation.
    const buf = this.buf;
    let at = this.length;
    for (let i = start; i < end; i++) buf[at++] = from[i];
    this.length = at;
  }

  private grow(need: number): void {
    const b = new Int32Array(Math.max(this.buf.length * 2, this.length + need));
    b.set(this.buf.subarray(0, this.length));
    this.buf = b;
  }
}

/** Where each object of the last decoded state came from: its words, for successors that share it. */
export interface DecodeMemo {
  source: Int32Array;
  /** object -> start * 2^16 + length of its words in `source` (objects of up to 65,535 words). */
  readonly at: Map<object, number>;
}

export class Codec {
  private readonly entries: DictEntry[] = [];
  private readonly strings = new Map<string, number>();
  private readonly shapes = new Map<string, number>();
  /** Per id: its content digest, and for shapes their keys. */
  private digestA: number[] = [];
  private digestB: number[] = [];
  private readonly shapeKeys: (readonly string[])[] = [];

  /** The number of dictionary entries (ids are 0..size-1). */
  get size(): number {
    return this.entries.length;
  }

  // ---- dictionary ----

  private add(e: DictEntry): number {
    const id = this.entries.length;
    if (id > ID_MAX) throw new ModelError('the model uses more than 2^28 distinct strings and shapes');
    this.entries.push(e);
    const [a, b] = entryDigest(e);
    this.digestA.push(a);
    this.digestB.push(b);
    this.shapeKeys.push(e[0] === 'k' ? e[1] : []);
    return id;
  }

  stringId(s: string): number {
    let id = this.strings.get(s);
    if (id === undefined) {
      id = this.add(['s', s]);
      this.strings.set(s, id);
    }
    return id;
  }

  private shapeId(keys: readonly string[]): number {
    const key = JSON.stringify(keys); // unambiguous: [] and [''], ['a\u0000', 'b'] and ['a', '\u0000b'] differ
    let id = this.shapes.get(key);
    if (id === undefined) {
      id = this.add(['k', keys]);
      this.shapes.set(key, id);
    }
    return id;
  }

  /** Entries from `from` on, to send to another codec. */
  exportEntries(from = 0): DictEntry[] {
    return this.entries.slice(from);
  }

  /**
   * Take a foreign codec's entries (its ids `first`, `first + 1`, ...) into
   * `map` (foreign id -> local id), adding what is new here.
   */
  importEntries(entries: readonly DictEntry[], first: number, map: number[]): void {
    entries.forEach((e, i) => {
      map[first + i] = e[0] === 's' ? this.stringId(e[1]) : this.shapeId(e[1]);
    });
  }

  // ---- encoding ----

  /** Append the control part and the context of a state to `out`. */
  encodeState(out: Words, leaves: readonly number[], context: unknown, memo?: DecodeMemo): void {
    for (let i = 0; i < leaves.length; i++) out.push(leaves[i] << 3);
    this.encode(out, context, 'context', memo);
  }

  encode(out: Words, x: unknown, path: string, memo?: DecodeMemo): void {
    switch (typeof x) {
      case 'string':
        out.push((this.stringId(x) << 3) | TAG.STR);
        return;
      case 'number':
        if (Number.isInteger(x) && x >= INT_MIN && x <= INT_MAX) out.push((x << 3) | TAG.INT);
        else if (Number.isFinite(x)) out.push((this.stringId(String(x)) << 3) | TAG.NUM);
        else throw new ModelError(`${path} is ${x}: only finite numbers are plain data`);
        return;
      case 'boolean':
        out.push(x ? TRUE_W : FALSE_W);
        return;
      case 'object': {
        if (x === null) {
          out.push(NULL_W);
          return;
        }
        if (memo !== undefined) {
          const at = memo.at.get(x);
          if (at !== undefined) {
            const start = Math.floor(at / 65536);
            out.copy(memo.source, start, start + (at % 65536));
            return;
          }
        }
        if (Array.isArray(x)) {
          out.push((x.length << 3) | TAG.ARR);
          for (let i = 0; i < x.length; i++) {
            if (x[i] === undefined) throw new ModelError(`${path}[${i}] is undefined: not plain data`);
            this.encode(out, x[i], path, memo);
          }
          return;
        }
        const proto = Object.getPrototypeOf(x);
        if (proto !== Object.prototype && proto !== null) {
          const kind = (x as object).constructor?.name ?? 'object';
          throw new ModelError(`${path} is a ${kind}: model state must be plain JSON data`);
        }
        const o = x as Record<string, unknown>;
        // The shape of the keys in the order the object has them: a trie walk, no allocation.
        let node = this.shapeRoot;
        for (const k in o) {
          let child = node.next.get(k);
          if (child === undefined) {
            child = { next: new Map(), sorted: undefined, id: -1 };
            node.next.set(k, child);
          }
          node = child;
        }
        if (node.sorted === undefined) {
          node.sorted = Object.keys(o).sort();
          node.id = this.shapeId(node.sorted);
        }
        const keys = node.sorted;
        for (let i = 0; i < keys.length; i++) {
          if (o[keys[i]] === undefined) return this.encodeSparse(out, o, path, memo);
        }
        out.push((node.id << 3) | TAG.OBJ);
        for (let i = 0; i < keys.length; i++) this.encode(out, o[keys[i]], path, memo);
        return;
      }
      default:
        throw new ModelError(`${path} is a ${typeof x}: model state must be plain JSON data`);
    }
  }

  /** An object with a field set to undefined: its shape is its other keys (as in JSON). */
  private encodeSparse(out: Words, o: Record<string, unknown>, path: string, memo?: DecodeMemo): void {
    const keys = definedKeys(o);
    out.push((this.shapeId(keys) << 3) | TAG.OBJ);
    for (const k of keys) this.encode(out, o[k], path, memo);
  }

  /** Shapes by the keys in an object's own order (for...in order), each knowing its sorted keys and id. */
  private readonly shapeRoot: ShapeNode = { next: new Map(), sorted: undefined, id: -1 };

  // ---- decoding ----

  /**
   * Decode a state: `regions` leaf indices, then the context. With `memo`,
   * records where each object came from (successors copy those words); with
   * `freeze`, objects are frozen as they are built (checking mode).
   */
  decodeState(
    words: Int32Array,
    start: number,
    regions: number,
    options: { memo?: DecodeMemo; freeze?: boolean } = {},
  ): { leaves: number[]; context: unknown; end: number } {
    const leaves: number[] = [];
    for (let i = 0; i < regions; i++) leaves.push(words[start + i] >> 3);
    this.pos = start + regions;
    this.src = words;
    const context = this.decodeValue(options.memo, options.freeze === true);
    return { leaves, context, end: this.pos };
  }

  private pos = 0;
  private src: Int32Array = new Int32Array(0);

  private decodeValue(memo: DecodeMemo | undefined, freeze: boolean): unknown {
    const start = this.pos;
    const w = this.src[this.pos++];
    const payload = w >> 3;
    switch (w & 7) {
      case TAG.INT:
        return payload;
      case TAG.STR:
        return (this.entries[payload] as readonly ['s', string])[1];
      case TAG.NUM:
        return Number((this.entries[payload] as readonly ['s', string])[1]);
      case TAG.CONST:
        return payload === 0 ? null : payload === 2;
      case TAG.ARR: {
        const a = new Array(payload);
        for (let i = 0; i < payload; i++) a[i] = this.decodeValue(memo, freeze);
        return this.done(a, start, memo, freeze);
      }
      case TAG.OBJ: {
        const keys = this.shapeKeys[payload];
        const o: Record<string, unknown> = {};
        for (let i = 0; i < keys.length; i++) o[keys[i]] = this.decodeValue(memo, freeze);
        return this.done(o, start, memo, freeze);
      }
      default:
        throw new Error(`internal error: bad state word ${w} at ${start}`);
    }
  }

  private done<T extends object>(x: T, start: number, memo: DecodeMemo | undefined, freeze: boolean): T {
    const length = this.pos - start;
    if (memo !== undefined && length < 65536) memo.at.set(x, start * 65536 + length);
    return freeze ? Object.freeze(x) : x;
  }

  // ---- fingerprints ----
  //
  // A fingerprint is a streaming hash over the words, each dictionary id
  // replaced by its entry's content digest: begin(), feed words (or
  // precomputed inputs), finish(). The lanes live in the codec: one hash at a
  // time, no allocation but the result.

  private laneA = 0;
  private laneB = 0;
  private count = 0;

  begin(): void {
    this.laneA = 0x9747b28c;
    this.laneB = 0x27d4eb2f;
    this.count = 0;
  }

  /** Feed words[start, end). */
  feed(words: Int32Array, start: number, end: number): void {
    let a = this.laneA;
    let b = this.laneB;
    const da = this.digestA;
    const db = this.digestB;
    for (let i = start; i < end; i++) {
      const w = words[i];
      const tag = w & 7;
      if (tag === TAG.STR || tag === TAG.NUM || tag === TAG.OBJ) {
        const id = w >> 3;
        a = mixA(a, da[id] ^ tag);
        b = mixB(b, db[id] ^ tag);
      } else {
        a = mixA(a, w);
        b = mixB(b, w);
      }
    }
    this.laneA = a;
    this.laneB = b;
    this.count += end - start;
  }

  /** Feed inputs precomputed by hashInputs(): pairs (lane A input, lane B input), one pair a word. */
  feedInputs(inputs: Int32Array): void {
    let a = this.laneA;
    let b = this.laneB;
    for (let i = 0; i < inputs.length; i += 2) {
      a = mixA(a, inputs[i]);
      b = mixB(b, inputs[i + 1]);
    }
    this.laneA = a;
    this.laneB = b;
    this.count += inputs.length / 2;
  }

  finish(): Fingerprint {
    return { hi: finalA(this.laneA, this.count), lo: finalB(this.laneB, this.count) };
  }

  /** The hash inputs of some words, to be fed later without looking the ids up (constant parts of a state). */
  hashInputs(words: Int32Array, start: number, end: number): Int32Array {
    const out = new Int32Array((end - start) * 2);
    for (let i = start; i < end; i++) {
      const w = words[i];
      const tag = w & 7;
      const digest = tag === TAG.STR || tag === TAG.NUM || tag === TAG.OBJ;
      out[2 * (i - start)] = digest ? this.digestA[w >> 3] ^ tag : w;
      out[2 * (i - start) + 1] = digest ? this.digestB[w >> 3] ^ tag : w;
    }
    return out;
  }

  /** The fingerprint of words[start, end) on their own. */
  fingerprint(words: Int32Array, start: number, end: number): Fingerprint {
    this.begin();
    this.feed(words, start, end);
    return this.finish();
  }

  /** Rewrite a foreign state's dictionary ids in place (words[start, end)) through `map`. */
  translate(words: Int32Array, start: number, end: number, map: readonly number[]): void {
    for (let i = start; i < end; i++) {
      const w = words[i];
      const tag = w & 7;
      if (tag === TAG.STR || tag === TAG.NUM || tag === TAG.OBJ) {
        const local = map[w >> 3];
        if (local === undefined) throw new Error(`internal error: dictionary id ${w >> 3} was never sent`);
        words[i] = (local << 3) | tag;
      }
    }
  }
}

interface ShapeNode {
  readonly next: Map<string, ShapeNode>;
  sorted: string[] | undefined;
  id: number;
}

/** An object's keys with defined values, sorted (the canonical order). */
function definedKeys(o: Record<string, unknown>): string[] {
  const keys = Object.keys(o);
  let sorted = true;
  let defined = true;
  for (let i = 0; i < keys.length; i++) {
    if (o[keys[i]] === undefined) defined = false;
    if (i > 0 && keys[i - 1] > keys[i]) sorted = false;
  }
  const out = defined ? keys : keys.filter((k) => o[k] !== undefined);
  return sorted ? out : out.sort();
}
