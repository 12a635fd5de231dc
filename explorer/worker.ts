/**
 * One partition of a parallel search (parallel-bfs.ts): the states whose
 * fingerprints it owns, their visited set, and its share of each BFS level.
 * A level: expand every state of the frontier, keep the successors it owns,
 * send the others to their owners in batches (exchange.ts), take in what the
 * others send; then report to the coordinator. Levels are synchronous, so a
 * state's depth is the level it was added in and counterexamples stay
 * shortest.
 *
 * State ids that cross partitions are global ids: partition * 2^32 + the
 * partition's own state number. A state's event is an id in the event table
 * of the partition that expanded its parent.
 */
import type { EventObject } from 'xstate';
import { canonical } from './canonical.ts';
import { type DecodeMemo, type DictEntry, Words } from './codec.ts';
import type { AnyEngine } from './engine.ts';
import type { MessagePort } from 'node:worker_threads';
import { BatchWriter, type Exchange, ownerOf, PortExchange, PROBE, readBatch } from './exchange.ts';
import { chooseEngine, judged } from './engine-choice.ts';
import type { Fingerprint } from './fingerprint.ts';
import { memoryBudget } from './bfs.ts';
import { Frontier } from './frontier.ts';
import { callModel, type ResolvedVariant } from './model.ts';
import { StateStore } from './state-store.ts';
import { temporalLabels } from './temporal.ts';
import type { SymmetryMode } from './symmetry.ts';
import type { ViewMode } from './view.ts';

export const gid = (partition: number, local: number): number => partition * 4294967296 + local;
/** The sent-fingerprint cache: 2^18 slots (2 MB). */
const SENT_MASK = (1 << 18) - 1;
export const partitionOf = (g: number): number => Math.floor(g / 4294967296);
export const localOf = (g: number): number => g % 4294967296;

export interface PartitionConfig {
  readonly check: boolean;
  readonly symmetry?: SymmetryMode;
  readonly view?: ViewMode;
  readonly recordEdges: boolean;
  /** Bytes this partition's visited set and frontiers may use (its share of --memory). */
  readonly dataBytes?: number;
}

/** What a partition reports at the end of a level. */
export interface LevelReport {
  readonly added: number;
  readonly transitions: number;
  /** The first state (this partition's number) violating each invariant, among those added this level. */
  readonly violations: Readonly<Record<string, number>>;
  /** A frontier state with no enabled event while some actor runs (this partition's number), or -1. */
  readonly deadlock: number;
  /** A successor of a state at the depth bound was new: the bound cut the search. */
  readonly cutByDepth: boolean;
  /** The visited set outgrew this partition's share of --memory. */
  readonly memoryExhausted: boolean;
  readonly size: number;
  readonly bytes: number;
}

/** Everything the coordinator needs at the end to build the whole graph. */
export interface PartitionDump {
  readonly levels: number[];
  readonly hi: Uint32Array;
  readonly lo: Uint32Array;
  readonly parents: Float64Array;
  readonly events: Int32Array;
  readonly eventTable: EventObject[];
  readonly labels: Uint8Array[];
  readonly edges?: { from: Float64Array; to: Int32Array; event: Int32Array; actors: Int32Array };
  readonly unexpanded: number[];
  readonly terminal: number[];
  readonly fired: Uint8Array;
  readonly offered: [string, boolean][];
  readonly peakRss: number;
  readonly spilledBytes: number;
}

/** A partition between two levels, as a checkpoint keeps it: its dump, its frontier and its dictionary. */
export interface PartitionSave extends PartitionDump {
  /** The frontier's records ([state number, length, words...]), packed with `dict`. */
  readonly frontier: Int32Array;
  readonly dict: DictEntry[];
}

/** Growable typed columns of edges whose source may be on another partition. */
class Edges {
  from = new Float64Array(1024);
  to = new Int32Array(1024);
  event = new Int32Array(1024);
  actors = new Int32Array(1024);
  length = 0;
  push(from: number, to: number, event: number, actors: number): void {
    if (this.length === this.to.length) {
      const grow = <T extends Float64Array | Int32Array>(a: T, make: (n: number) => T) => {
        const b = make(a.length * 2);
        b.set(a);
        return b;
      };
      this.from = grow(this.from, (n) => new Float64Array(n));
      this.to = grow(this.to, (n) => new Int32Array(n));
      this.event = grow(this.event, (n) => new Int32Array(n));
      this.actors = grow(this.actors, (n) => new Int32Array(n));
    }
    const i = this.length++;
    this.from[i] = from;
    this.to[i] = to;
    this.event[i] = event;
    this.actors[i] = actors;
  }
}

export class Partition {
  private readonly engine: AnyEngine;
  private readonly store = new StateStore(1 << 14);
  private readonly events: EventObject[] = [];
  private readonly eventIds = new Map<string, number>();
  private readonly byIdentity = new Map<EventObject, number>();
  private readonly invariants: [string, (s: any) => boolean][];
  private readonly labelPredicates: { name: string; holds: (s: any) => boolean }[];
  private readonly checkWords: number;
  private readonly labels: Uint8Array[];
  private readonly edges: Edges | undefined;
  private readonly writers: BatchWriter[];
  private readonly idMaps: number[][];
  private readonly offered = new Map<string, boolean>();
  private readonly unexpanded: number[] = [];
  private readonly terminal: number[] = [];
  private readonly actorBit: Map<string, number>;
  private readonly budget: ReturnType<typeof memoryBudget>;
  private frontier: Frontier;
  private next: Frontier;
  private received = 0;
  private level: {
    added: number;
    violations: Record<string, number>;
    cutByDepth: boolean;
    atBound: boolean;
  } = {
    added: 0,
    violations: {},
    cutByDepth: false,
    atBound: false,
  };
  private readonly bits: Int32Array;
  private readonly packed = new Words();
  private readonly memo: DecodeMemo = { source: new Int32Array(0), at: new Map() };
  private peakRss = process.memoryUsage().rss;
  private spilled = 0;
  private readonly sent = new Uint32Array(2 * (SENT_MASK + 1));

  private readonly variant: ResolvedVariant;

  constructor(
    full: ResolvedVariant,
    private readonly exchange: Exchange,
    private readonly cfg: PartitionConfig,
  ) {
    this.variant = judged(full, { symmetry: cfg.symmetry ?? false }).variant;
    const variant = this.variant;
    this.engine = chooseEngine(variant, 'auto', cfg.check, cfg.symmetry, cfg.view).engine;
    this.invariants = Object.entries(variant.invariants);
    this.labelPredicates = temporalLabels(variant);
    this.checkWords = Math.ceil((this.invariants.length + this.labelPredicates.length) / 32);
    this.bits = new Int32Array(this.checkWords);
    this.labels = this.labelPredicates.map(() => new Uint8Array(1024));
    this.edges = cfg.recordEdges ? new Edges() : undefined;
    this.writers = Array.from(
      { length: exchange.size },
      (_, to) => new BatchWriter(exchange, to, this.engine.codec, this.checkWords),
    );
    this.idMaps = Array.from({ length: exchange.size }, () => []);
    this.actorBit = new Map(this.engine.actors.map((a, i) => [a, 1 << i]));
    this.budget = memoryBudget(
      cfg.dataBytes,
      () => this.store.bytes + (this.edges ? this.edges.length * 20 : 0),
    );
    this.frontier = new Frontier(this.budget.frontier());
    this.next = new Frontier(this.budget.frontier());
    exchange.consume = () => this.receive();
  }

  /** Level 0: every partition computes the initial state; its owner keeps it. */
  seed(): LevelReport {
    this.store.startLevel();
    const init = this.engine.initial();
    const fp = this.pack(init);
    this.level = { added: 0, violations: {}, cutByDepth: false, atBound: false };
    if (ownerOf(fp, this.exchange.size) === this.exchange.self) {
      const index = this.addOwned(fp, -1, -1, 0, 0);
      this.computeBits(init);
      this.recordNew(index, this.bits, 0, this.packed.buf, 0, this.packed.length);
    }
    this.frontier = this.next;
    this.next = new Frontier(this.budget.frontier());
    return this.report(0, -1);
  }

  /** Expand this partition's frontier: the first half of a level. Returns what it sent to each peer. */
  expand(atBound: boolean): { sent: number[]; transitions: number; deadlock: number } {
    this.level = { added: 0, violations: {}, cutByDepth: false, atBound };
    if (!atBound) this.store.startLevel();
    const { engine } = this;
    let transitions = 0;
    let deadlock = -1;
    let f = 0;
    for (const r of this.frontier) {
      const from = r.index;
      this.memo.source = r.buf;
      this.memo.at.clear();
      const s = engine.unpack(r.buf, r.start, r.end, { memo: this.memo, freeze: this.cfg.check });
      let enabled = 0;
      const candidates = callModel('the event generator (events)', () => this.variant.events(engine.view(s)));
      for (const event of candidates) {
        const ns = engine.step(s, event);
        if (this.offered.get(event.type) !== true) this.offered.set(event.type, ns !== null);
        if (ns === null) continue;
        enabled++;
        transitions++;
        const fp = this.pack(ns, this.memo);
        const owner = ownerOf(fp, this.exchange.size);
        const eventId = this.intern(event);
        const actors = this.edges ? this.actorMask(s, event) : 0;
        const flags = atBound ? PROBE : 0;
        if (owner === this.exchange.self) {
          const index = this.addOwned(fp, gid(owner, from), eventId, actors, flags);
          if (index >= 0) {
            this.computeBits(ns);
            this.recordNew(index, this.bits, 0, this.packed.buf, 0, this.packed.length);
          }
        } else {
          // Most successors are states seen before; one this partition already sent is not sent again.
          if (!atBound && !this.edges && this.sentBefore(fp)) continue;
          if (!atBound) this.computeBits(ns);
          this.writers[owner].add(
            fp,
            from,
            eventId,
            actors,
            flags,
            this.bits,
            this.packed.buf,
            atBound ? 0 : this.packed.length,
          );
        }
      }
      if (enabled === 0) {
        if (engine.terminated(s).every(Boolean)) this.terminal.push(from);
        else if (deadlock < 0) deadlock = from;
      }
      if ((++f & 63) === 0) this.receive();
    }
    for (const w of this.writers) w.flush();
    this.spilled += this.frontier.spilledBytes;
    this.frontier.dispose();
    return { sent: this.writers.map((w) => w.sent), transitions, deadlock };
  }

  /** The second half of a level: take in every batch the peers sent (`expect[peer]` records in all). */
  drain(expect: readonly number[], transitions: number, deadlock: number): LevelReport {
    const total = expect.reduce((a, b) => a + b, 0);
    const spin = new Int32Array(new SharedArrayBuffer(4));
    while (this.received < total) {
      if (!this.receive()) Atomics.wait(spin, 0, 0, 1); // in flight: wait a millisecond
    }
    this.received = 0;
    for (const w of this.writers) w.sent = 0;
    this.frontier = this.next;
    this.next = new Frontier(this.budget.frontier());
    this.peakRss = Math.max(this.peakRss, process.memoryUsage().rss);
    return this.report(transitions, deadlock);
  }

  /** The partition as a checkpoint keeps it (between levels). */
  save(): PartitionSave {
    const words = new Words();
    for (const r of this.frontier) {
      words.push(r.index);
      words.push(r.end - r.start);
      words.copy(r.buf, r.start, r.end);
    }
    return {
      ...this.dump(),
      frontier: words.buf.slice(0, words.length),
      dict: this.engine.codec.exportEntries(0),
    };
  }

  /** Take over a saved partition (a fresh one, before any level): the same state numbers, ids and frontier. */
  restore(saved: PartitionSave): void {
    const ids: number[] = [];
    this.engine.codec.importEntries(saved.dict, 0, ids);
    if (ids.some((id, i) => id !== i))
      throw new Error('internal error: the checkpoint dictionary did not load in order');
    for (const e of saved.eventTable) this.intern(e);
    let level = 0;
    for (let i = 0; i < saved.hi.length; i++) {
      while (level < saved.levels.length && saved.levels[level] === i) {
        this.store.startLevel();
        level++;
      }
      this.store.add({ hi: saved.hi[i], lo: saved.lo[i] }, saved.parents[i], saved.events[i]);
    }
    while (level++ < saved.levels.length) this.store.startLevel();
    saved.labels.forEach((col, k) => {
      this.labels[k] = col.length > 0 ? col.slice() : new Uint8Array(1024);
    });
    if (this.edges && saved.edges) {
      const e = saved.edges;
      for (let k = 0; k < e.to.length; k++) this.edges.push(e.from[k], e.to[k], e.event[k], e.actors[k]);
    }
    this.unexpanded.push(...saved.unexpanded);
    this.terminal.push(...saved.terminal);
    saved.fired.forEach((b, k) => (this.engine.fired[k] |= b));
    for (const [type, enabled] of saved.offered) this.offered.set(type, enabled);
    for (let at = 0; at < saved.frontier.length;) {
      const n = saved.frontier[at + 1];
      this.frontier.push(saved.frontier[at], saved.frontier, at + 2, at + 2 + n);
      at += 2 + n;
    }
  }

  /** The states of the last frontier, never expanded because the search stopped (a bound). */
  markFrontierUnexpanded(): void {
    for (const r of this.frontier) this.unexpanded.push(gid(this.exchange.self, r.index));
  }

  dump(): PartitionDump {
    const n = this.store.size;
    const hi = new Uint32Array(n);
    const lo = new Uint32Array(n);
    const parents = new Float64Array(n);
    const events = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const fp = this.store.fingerprint(i);
      hi[i] = fp.hi;
      lo[i] = fp.lo;
      parents[i] = this.store.parent(i);
      events[i] = this.store.event(i);
    }
    const e = this.edges;
    return {
      levels: this.store.levelStarts(),
      hi,
      lo,
      parents,
      events,
      eventTable: this.events,
      labels: this.labels.map((c) => c.slice(0, n)),
      ...(e && {
        edges: {
          from: e.from.slice(0, e.length),
          to: e.to.slice(0, e.length),
          event: e.event.slice(0, e.length),
          actors: e.actors.slice(0, e.length),
        },
      }),
      unexpanded: this.unexpanded,
      terminal: this.terminal,
      fired: this.engine.fired,
      offered: [...this.offered],
      peakRss: Math.max(this.peakRss, process.memoryUsage().rss),
      spilledBytes: this.spilled + this.frontier.spilledBytes + this.next.spilledBytes,
    };
  }

  // ---- the pieces ----

  private pack(s: unknown, memo?: DecodeMemo): Fingerprint {
    this.packed.length = 0;
    this.engine.pack(s, this.packed, memo);
    return this.engine.packedFingerprint(this.packed.buf, 0, this.packed.length);
  }

  /**
   * Whether this fingerprint was sent to its owner before (then the owner has
   * it, or will by the end of the level): a direct-mapped cache of full
   * fingerprints, so a hit is never wrong and a miss only costs a resend.
   * Not with temporal properties, whose owners must see every edge.
   */
  private sentBefore(fp: Fingerprint): boolean {
    const slot = (fp.lo & SENT_MASK) << 1;
    if (this.sent[slot] === fp.hi && this.sent[slot + 1] === fp.lo) return true;
    this.sent[slot] = fp.hi;
    this.sent[slot + 1] = fp.lo;
    return false;
  }

  /** Invariant violations and temporal labels of a state, as bits. */
  private computeBits(s: unknown): void {
    const view = this.engine.view(s);
    this.bits.fill(0);
    let k = 0;
    for (const [name, holds] of this.invariants) {
      if (!callModel(`invariant '${name}'`, () => holds(view))) this.bits[k >> 5] |= 1 << (k & 31);
      k++;
    }
    for (const { name, holds } of this.labelPredicates) {
      if (callModel(name, () => holds(view))) this.bits[k >> 5] |= 1 << (k & 31);
      k++;
    }
  }

  /**
   * A successor this partition owns (from itself or a peer): its number if it
   * is new, else -1. A probe (a successor of a state at the depth bound) is
   * only looked up. Edges are recorded here, where the target's number is known.
   */
  private addOwned(fp: Fingerprint, parent: number, event: number, actors: number, flags: number): number {
    if (flags & PROBE) {
      const known = this.store.find(fp);
      if (known < 0) {
        this.level.cutByDepth = true;
        this.unexpanded.push(parent);
      } else this.edges?.push(parent, known, event, actors);
      return -1;
    }
    const index = this.store.add(fp, parent, event);
    if (index < 0) this.edges?.push(parent, this.store.find(fp), event, actors);
    else if (parent >= 0) this.edges?.push(parent, index, event, actors);
    return index;
  }

  /** A new state: its invariant violations and labels (from its check bits), and a place in the next frontier. */
  private recordNew(
    index: number,
    bits: Int32Array,
    bitsAt: number,
    words: Int32Array,
    start: number,
    end: number,
  ): void {
    this.level.added++;
    let k = 0;
    for (const [name] of this.invariants) {
      if (bits[bitsAt + (k >> 5)] & (1 << (k & 31)) && !(name in this.level.violations))
        this.level.violations[name] = index;
      k++;
    }
    for (let j = 0; j < this.labels.length; j++, k++) {
      let col = this.labels[j];
      if (index >= col.length) {
        const bigger = new Uint8Array(col.length * 2);
        bigger.set(col);
        col = this.labels[j] = bigger;
      }
      col[index] = bits[bitsAt + (k >> 5)] & (1 << (k & 31)) ? 1 : 0;
    }
    this.next.push(index, words, start, end);
  }

  /** Take in the batches that have arrived; false when there were none. */
  private receive(): boolean {
    let any = false;
    for (let b = this.exchange.poll(); b !== undefined; b = this.exchange.poll()) {
      any = true;
      const map = this.idMaps[b.from];
      this.engine.codec.importEntries(b.dict, b.dictFirst, map);
      for (const r of readBatch(b.records, this.checkWords)) {
        const index = this.addOwned(r.fp, gid(b.from, r.parent), r.event, r.actors, r.flags);
        if (index < 0) continue;
        this.engine.codec.translate(b.records, r.start, r.end, map);
        this.recordNew(index, b.records, r.bitsAt, b.records, r.start, r.end);
      }
      this.received += b.count;
    }
    return any;
  }

  private intern(e: EventObject): number {
    const known = this.byIdentity.get(e);
    if (known !== undefined) return known;
    const key = canonical(e, `event '${e.type}'`);
    let id = this.eventIds.get(key);
    if (id === undefined) {
      id = this.events.length;
      this.events.push(e);
      this.eventIds.set(key, id);
    }
    if (this.byIdentity.size < 1 << 16) this.byIdentity.set(e, id);
    return id;
  }

  private actorMask(s: unknown, e: EventObject): number {
    let mask = 0;
    for (const a of this.engine.actorsOf(s, e)) mask |= this.actorBit.get(a) ?? 0;
    return mask;
  }

  private report(transitions: number, deadlock: number): LevelReport {
    return {
      added: this.level.added,
      transitions,
      violations: this.level.violations,
      deadlock,
      cutByDepth: this.level.cutByDepth,
      memoryExhausted: this.budget.exhausted(),
      size: this.store.size,
      bytes: this.store.bytes + this.frontier.bytes,
    };
  }
}

// ---- the thread ----

/** What the coordinator starts a worker thread with. */
export interface WorkerInit {
  readonly source: { file: string; variant: string; params: Record<string, number> };
  readonly partition: number;
  readonly partitions: number;
  readonly cfg: PartitionConfig;
  /** ports[peer] to every other partition; undefined at this one. */
  readonly ports: (MessagePort | undefined)[];
}

export type Command =
  | { cmd: 'seed' }
  | { cmd: 'save' }
  | { cmd: 'restore'; saved: PartitionSave }
  | { cmd: 'expand'; atBound: boolean }
  | { cmd: 'drain'; expect: number[] }
  | { cmd: 'unexpanded' }
  | { cmd: 'dump' };

/**
 * The worker thread's loop: load the variant, then answer the coordinator's commands in order.
 * The exchange is the ports between threads, or another (the broker's: exchange-broker.ts).
 */
export async function runPartitionThread(
  exchangeOf: (init: WorkerInit) => Exchange = (init) =>
    new PortExchange(init.partition, init.partitions, init.ports),
): Promise<void> {
  const { parentPort, workerData } = await import('node:worker_threads');
  const { loadModelFile } = await import('./registry.ts');
  const init = workerData as WorkerInit;
  const port = parentPort!;
  let partition: Partition | undefined;
  let pending: { transitions: number; deadlock: number } = { transitions: 0, deadlock: -1 };
  const answer = (f: () => unknown) => {
    try {
      const value = f();
      const transfer =
        value && typeof value === 'object' && 'hi' in value ? dumpBuffers(value as PartitionDump) : [];
      port.postMessage({ ok: value }, transfer);
    } catch (e) {
      const err = e as Error;
      port.postMessage({ error: { name: err.name, message: err.message, stack: err.stack } });
    }
  };
  try {
    const model = await loadModelFile(init.source.file);
    const variant = model.variant(init.source.variant, init.source.params);
    partition = new Partition(variant, exchangeOf(init), init.cfg);
    port.postMessage({ ok: 'ready' });
  } catch (e) {
    const err = e as Error;
    port.postMessage({ error: { name: err.name, message: err.message, stack: err.stack } });
    return;
  }
  const p = partition;
  port.on('message', (c: Command) => {
    switch (c.cmd) {
      case 'seed':
        return answer(() => p.seed());
      case 'save':
        return answer(() => p.save());
      case 'restore':
        return answer(() => p.restore(c.saved));
      case 'expand':
        return answer(() => {
          const r = p.expand(c.atBound);
          pending = { transitions: r.transitions, deadlock: r.deadlock };
          return r.sent;
        });
      case 'drain':
        return answer(() => p.drain(c.expect, pending.transitions, pending.deadlock));
      case 'unexpanded':
        return answer(() => p.markFrontierUnexpanded());
      case 'dump':
        return answer(() => p.dump());
    }
  });
}

function dumpBuffers(d: PartitionDump): ArrayBuffer[] {
  const arrays = [d.hi, d.lo, d.parents, d.events, ...d.labels];
  if (d.edges) arrays.push(d.edges.from, d.edges.to, d.edges.event, d.edges.actors);
  return arrays.map((a) => a.buffer as ArrayBuffer);
}
