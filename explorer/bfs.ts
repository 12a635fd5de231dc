/**
 * Breadth-first search over all interleavings. The search keeps only
 * fingerprints in the store (with parent and event, for paths) and full
 * states on the frontier, as TLC does. Every new state is checked against
 * every invariant; a state with no enabled event while some actor has not
 * terminated is a deadlock. BFS order makes the first violation found for a
 * property a shortest one. The loop reports progress through a callback and
 * never prints.
 */
import type { EventObject } from 'xstate';
import { canonical } from './canonical.ts';
import { type DecodeMemo, Words } from './codec.ts';
import type { AnyEngine } from './engine.ts';
import { callModel, ModelError, type ResolvedVariant, type StatePredicate } from './model.ts';
import { Frontier } from './frontier.ts';
import { StateStore, type StoredStates } from './state-store.ts';

/** A state predicate with the name an error message gives it ("property 'everyCloseCompletes'"). */
export interface NamedPredicate {
  readonly name: string;
  readonly holds: StatePredicate;
}

export interface Progress {
  readonly states: number;
  readonly depth: number;
  readonly frontier: number;
  readonly transitions: number;
  readonly seconds: number;
}

export interface SearchConfig {
  readonly depth: number;
  readonly maxStates: number;
  /** Keep every edge (needed by the temporal checks, which work on the whole graph). */
  readonly recordEdges: boolean;
  /** State predicates evaluated on every state and kept as one bit each (the temporal checks' p and q), named for errors. */
  readonly labels?: readonly NamedPredicate[];
  readonly onProgress?: (p: Progress) => void;
  /** Freeze states as they are unpacked (checking mode: guards and assigns see frozen contexts). */
  readonly freeze?: boolean;
  /** Bytes the search may use (--memory); the frontier spills to disk past it. */
  readonly memoryLimit?: number;
  /**
   * Asked a few times a second (searchInSlices: after the event loop ran, so a signal
   * handler could set it): true ends the search at once, as a bound would, cut by 'interrupted'.
   */
  readonly stop?: () => boolean;
}

/** What cut a search short: a bound, the memory limit, or a signal (SIGINT, SIGTERM). */
export type CutBy = 'depth' | 'maxStates' | 'memory' | 'interrupted';

/** The explored graph's edges, as parallel columns (from, to, event id, mask of the actors that moved). */
export class EdgeList {
  from = new Int32Array(1024);
  to = new Int32Array(1024);
  event = new Int32Array(1024);
  actors = new Int32Array(1024);
  length = 0;

  /** Bytes the edge columns hold (counted against --memory with the visited set). */
  get bytes(): number {
    return this.from.byteLength * 4;
  }

  push(from: number, to: number, event: number, actors: number): void {
    if (this.length === this.from.length) this.grow();
    const i = this.length++;
    this.from[i] = from;
    this.to[i] = to;
    this.event[i] = event;
    this.actors[i] = actors;
  }

  private grow(): void {
    const grow = (a: Int32Array) => {
      const b = new Int32Array(a.length * 2);
      b.set(a);
      return b;
    };
    this.from = grow(this.from);
    this.to = grow(this.to);
    this.event = grow(this.event);
    this.actors = grow(this.actors);
  }
}

export interface SearchOutcome {
  readonly store: StoredStates;
  /** Interned events: the store's event ids index this list. */
  readonly events: readonly EventObject[];
  readonly complete: boolean;
  readonly cutBy?: CutBy;
  readonly transitions: number;
  readonly maxDepth: number;
  readonly seconds: number;
  readonly peakRss: number;
  /** Property name -> index of the first (shallowest) state violating it; 'deadlock' for deadlocks. */
  readonly firstViolation: ReadonlyMap<string, number>;
  readonly edges?: EdgeList;
  /** States whose successors were not generated (beyond a bound): temporal checks must not judge through them. */
  readonly unexpanded: ReadonlySet<number>;
  /** States in which every actor has terminated. */
  readonly terminal: ReadonlySet<number>;
  /** labels[k][state] is 1 where the k-th label predicate holds. */
  readonly labels: readonly Uint8Array[];
  /** Event types the generator offered, and whether any of them was ever enabled. */
  readonly offered: ReadonlyMap<string, boolean>;
  /** fired[k] is 1 when the machine's k-th transition (engine.transitionIds) fired. */
  readonly fired: Uint8Array;
  /** Bytes the frontier wrote to disk (--memory). */
  readonly spilledBytes: number;
}

/** One growable bit column per label predicate. */
class LabelColumns {
  columns: Uint8Array[];
  constructor(readonly predicates: readonly NamedPredicate[]) {
    this.columns = predicates.map(() => new Uint8Array(1024));
  }
  set(index: number, view: Parameters<StatePredicate>[0]): void {
    for (let k = 0; k < this.predicates.length; k++) {
      let col = this.columns[k];
      if (index >= col.length) {
        const bigger = new Uint8Array(col.length * 2);
        bigger.set(col);
        col = this.columns[k] = bigger;
      }
      const { name, holds } = this.predicates[k];
      col[index] = callModel(name, () => holds(view)) ? 1 : 0;
    }
  }
}

/**
 * The search. A model function that throws, or a model error the checking
 * engine raises, is rethrown with the events that reached the state it
 * happened in (`ModelError.trace`).
 */
export function search(variant: ResolvedVariant, engine: AnyEngine, cfg: SearchConfig): SearchOutcome {
  const next = slices(variant, engine, cfg);
  for (;;) {
    const r = next();
    if (r.done) return r.value;
  }
}

/**
 * The same search, letting the event loop run a few times a second: a signal
 * handler then runs (the one-thread search is otherwise one synchronous
 * call, deaf to Ctrl-C until it ends) and `cfg.stop` can end it with a
 * partial outcome.
 */
export async function searchInSlices(
  variant: ResolvedVariant,
  engine: AnyEngine,
  cfg: SearchConfig,
): Promise<SearchOutcome> {
  const next = slices(variant, engine, cfg);
  for (;;) {
    const r = next();
    if (r.done) return r.value;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** The search as slices of about SLICE_MS each; a model error gets the trace to its state. */
function slices(variant: ResolvedVariant, engine: AnyEngine, cfg: SearchConfig) {
  const store = new StateStore(1 << 14);
  const events: EventObject[] = [];
  const at: Position = { state: 0, event: undefined };
  const g = searchFrom(variant, engine, cfg, store, events, at);
  return () => {
    try {
      return g.next();
    } catch (e) {
      if (!(e instanceof ModelError) || e.trace !== undefined) throw e;
      const path = store.size > 0 ? store.pathTo(at.state).slice(1) : [];
      e.trace = [...path.map((i) => events[store.event(i)]), ...(at.event ? [at.event] : [])];
      throw e;
    }
  };
}

/** How long the search runs between two turns of the event loop (searchInSlices). */
const SLICE_MS = 100;

/** Where the search is: the state being expanded or checked, and the event being fired in it. */
interface Position {
  state: number;
  event: EventObject | undefined;
}

function* searchFrom(
  variant: ResolvedVariant,
  engine: AnyEngine,
  cfg: SearchConfig,
  store: StateStore,
  events: EventObject[],
  at: Position,
): Generator<void, SearchOutcome, void> {
  const started = performance.now();
  const eventIds = new Map<string, number>();
  const offered = new Map<string, boolean>();
  const byIdentity = new Map<EventObject, number>();
  const internEvent = (e: EventObject): number => {
    // Generators usually hand out the same event objects: look them up by identity first.
    const known = byIdentity.get(e);
    if (known !== undefined) return known;
    const key = canonical(e, `event '${e.type}'`);
    let id = eventIds.get(key);
    if (id === undefined) {
      id = events.length;
      events.push(e);
      eventIds.set(key, id);
    }
    if (byIdentity.size < 1 << 16) byIdentity.set(e, id);
    return id;
  };
  const invariants = Object.entries(variant.invariants);
  const firstViolation = new Map<string, number>();
  const edges = cfg.recordEdges ? new EdgeList() : undefined;
  const unexpanded = new Set<number>();
  const terminal = new Set<number>();
  const actorBit = new Map(engine.actors.map((a, i) => [a, 1 << i]));
  let transitions = 0;
  let peakRss = process.memoryUsage().rss;
  let cutBy: CutBy | undefined;
  let lastReport = started;
  let lastSlice = started;

  const labels = new LabelColumns(cfg.labels ?? []);
  const check = (s: unknown, index: number) => {
    at.state = index;
    at.event = undefined;
    const view = engine.view(s);
    labels.set(index, view);
    for (const [name, holds] of invariants) {
      if (!firstViolation.has(name) && !callModel(`invariant '${name}'`, () => holds(view)))
        firstViolation.set(name, index);
    }
  };
  const candidates = (s: unknown) =>
    callModel('the event generator (events)', () => variant.events(engine.view(s)));

  const memo: DecodeMemo = { source: new Int32Array(0), at: new Map() };
  const packed = new Words();
  const pack = (ns: unknown, from?: DecodeMemo) => {
    packed.length = 0;
    engine.pack(ns, packed, from);
    return engine.packedFingerprint(packed.buf, 0, packed.length);
  };
  const budget = memoryBudget(dataBudget(cfg.memoryLimit), () => store.bytes + (edges?.bytes ?? 0));
  let spilled = 0;

  // Every state numbered below this was reached at a level no deeper than the one being expanded.
  let expandedBelow = 0;
  engine.attach?.({
    closed: (fp) => {
      const i = store.find(fp);
      return i >= 0 && i < expandedBelow;
    },
  });
  const init = engine.initial();
  store.startLevel();
  store.add(pack(init), -1, -1);
  check(init, 0);
  let frontier = new Frontier(budget.frontier());
  frontier.push(0, packed.buf, 0, packed.length);
  let depth = 0;

  levels: for (; frontier.length > 0; depth++) {
    const atBound = depth >= cfg.depth;
    expandedBelow = store.size;
    const next = new Frontier(budget.frontier());
    if (!atBound) store.startLevel();
    let f = 0;
    const records = frontier[Symbol.iterator]();
    for (let r = records.next(); !r.done; r = records.next(), f++) {
      const { index: from, buf, start, end } = r.value;
      at.state = from;
      at.event = undefined;
      memo.source = buf;
      memo.at.clear();
      const s = engine.unpack(buf, start, end, { memo, freeze: cfg.freeze });
      let enabled = 0;
      for (const event of candidates(s)) {
        at.state = from;
        at.event = event;
        const ns = engine.step(s, event);
        if (offered.get(event.type) !== true) offered.set(event.type, ns !== null);
        if (ns === null) continue;
        enabled++;
        transitions++;
        const fp = pack(ns, memo);
        if (atBound) {
          // Generate but do not add: a new state here means the bound cut the search.
          const known = store.find(fp);
          if (known < 0) {
            cutBy = 'depth';
            unexpanded.add(from);
          } else if (edges) {
            edges.push(from, known, internEvent(event), actorMask(engine, actorBit, s, event));
          }
          continue;
        }
        const index = store.add(fp, from, -1);
        if (edges) {
          const to = index >= 0 ? index : store.find(fp);
          edges.push(from, to, internEvent(event), actorMask(engine, actorBit, s, event));
        }
        if (index < 0) continue;
        store.setEvent(index, internEvent(event));
        check(ns, index);
        next.push(index, packed.buf, 0, packed.length);
        if (store.size >= cfg.maxStates || budget.exhausted()) {
          cutBy = store.size >= cfg.maxStates ? 'maxStates' : 'memory';
          unexpanded.add(from);
          for (let rest = records.next(); !rest.done; rest = records.next()) unexpanded.add(rest.value.index);
          for (const n of next) unexpanded.add(n.index);
          spilled += next.spilledBytes;
          next.dispose();
          break levels;
        }
      }
      if (enabled === 0) {
        const ended = engine.terminated(s).every(Boolean);
        if (ended) terminal.add(from);
        else if (!firstViolation.has('deadlock')) firstViolation.set('deadlock', from);
      }
      if ((f & 255) === 0 && performance.now() - lastSlice > SLICE_MS) {
        yield;
        lastSlice = performance.now();
        if (cfg.stop?.()) {
          // `from` is expanded; the rest of this level and the next one are not.
          cutBy = 'interrupted';
          for (let rest = records.next(); !rest.done; rest = records.next()) unexpanded.add(rest.value.index);
          for (const n of next) unexpanded.add(n.index);
          spilled += next.spilledBytes;
          next.dispose();
          break levels;
        }
      }
      if ((f & 255) === 0 && cfg.onProgress) {
        const now = performance.now();
        if (now - lastReport > 250) {
          lastReport = now;
          peakRss = Math.max(peakRss, process.memoryUsage().rss);
          cfg.onProgress({
            states: store.size,
            depth,
            frontier: frontier.length - f + next.length,
            transitions,
            seconds: (now - started) / 1000,
          });
        }
      }
    }
    spilled += frontier.spilledBytes;
    frontier.dispose();
    if (atBound) {
      next.dispose();
      break;
    }
    frontier = next;
  }
  spilled += frontier.spilledBytes;
  frontier.dispose();
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
  const maxDepth = store.depth(store.size - 1); // BFS numbers states in depth order
  return {
    store,
    events,
    complete: cutBy === undefined,
    cutBy,
    transitions,
    maxDepth,
    seconds: (performance.now() - started) / 1000,
    peakRss,
    firstViolation,
    edges,
    unexpanded,
    terminal,
    labels: labels.columns,
    offered,
    fired: engine.fired,
    spilledBytes: spilled,
  };
}

/**
 * The memory a search may use (--memory): the visited set must fit, and the
 * frontier gets what is left (then spills to disk). The process's memory at
 * the start (node, the model) and a margin for transient garbage are set
 * aside first (dataBudget); a partition of a parallel search gets its share.
 */
export function memoryBudget(dataBytes: number | undefined, storeBytes: () => number) {
  if (dataBytes === undefined) return { frontier: () => Number.POSITIVE_INFINITY, exhausted: () => false };
  return {
    /** What one frontier (of two: the level being read, the one being written) may hold in memory. */
    frontier: () => Math.max(CHUNK_BYTES, (dataBytes - storeBytes()) / 2),
    /** The visited set has grown past what the limit leaves: stop, with an honest partial result. */
    exhausted: () => storeBytes() + 2 * CHUNK_BYTES > dataBytes,
  };
}

/** The bytes of a --memory limit left for the search's data once the process as it is now is set aside. */
export const dataBudget = (limit: number | undefined): number | undefined =>
  limit === undefined ? undefined : limit - process.memoryUsage().rss - MEMORY_MARGIN;

const MEMORY_MARGIN = 64 * 2 ** 20;
const CHUNK_BYTES = 2 ** 20;

function actorMask(engine: AnyEngine, bits: ReadonlyMap<string, number>, s: unknown, e: EventObject): number {
  let mask = 0;
  for (const a of engine.actorsOf(s, e)) mask |= bits.get(a) ?? 0;
  return mask;
}
