/**
 * Temporal properties, judged on the explored graph after the search.
 *
 * - `leadsTo(p, q)` (p ~> q) under weak fairness. A violation is a fair run
 *   that reaches a p-state and never a q-state afterwards: a lasso, whose
 *   prefix reaches a p∧¬q state and whose cycle stays in ¬q states. It exists
 *   iff, in the subgraph of ¬q states, a p-state reaches either a strongly
 *   connected component that admits a fair run (each weakly fair actor moves
 *   inside it or is disabled somewhere in it), or a state where no fair actor
 *   is enabled (the run may stutter there forever: a deadlock, the end of the
 *   protocol, or any state at all when no actor is declared fair).
 * - `eventually(q)` is `leadsTo(initial state, q)`.
 * - `recoverable(p)` (AG EF p): every reachable state can still reach a
 *   p-state; checked by backward reachability from the p-states.
 * - `sometimes(p)` (EF p): some explored state satisfies p; the shallowest
 *   such state is the witness. It needs no edges. Never reached on a complete
 *   search is a violation (the model cannot get there at all); on a cut-off
 *   search it is 'unknown'.
 *
 * Bounded searches: states the search did not expand (cut off by a bound) may
 * have successors we never saw. They are treated optimistically (as q-states
 * for leadsTo, as able to reach p for recoverable), so a violation reported
 * is a real one; when none is found on an incomplete search the verdict is
 * 'unknown', never 'holds'.
 */
import type { EdgeList, NamedPredicate, SearchOutcome } from './bfs.ts';
import type { AnyEngine } from './engine.ts';
import { ModelError, type ResolvedVariant, type StatePredicate, type TemporalProperty } from './model.ts';
import type { PropertyVerdict } from './result.ts';

export interface PathStep {
  /** The state reached by the step (a store index). */
  readonly state: number;
  /** The event taken (an index into the search's interned events). */
  readonly event: number;
}

export interface TemporalFinding {
  readonly verdict: PropertyVerdict;
  /** sometimes(p) that holds: the shortest path to a p-state. */
  readonly witness?: readonly PathStep[];
  readonly violation?: {
    readonly kind: 'liveness' | 'unrecoverable' | 'unreachable';
    readonly path: readonly PathStep[];
    /** Index in `path` of the cycle's first step; path.length for a run that stutters in its last state. */
    readonly cycleStart?: number;
  };
}

/** Whether the variant has a property that is judged on the graph's edges (all but `sometimes`). */
export const hasTemporal = (v: ResolvedVariant): boolean =>
  Object.values(v.properties).some((p: TemporalProperty) => p.kind !== 'sometimes');

/** The state predicates the search must record, in the order checkTemporal reads them. */
export function temporalLabels(v: ResolvedVariant): NamedPredicate[] {
  return Object.entries(v.properties).flatMap(([name, p]: [string, TemporalProperty]) => {
    const named = (part: string, holds: StatePredicate) => ({ name: `${part} of property '${name}'`, holds });
    switch (p.kind) {
      case 'leadsTo':
        return [named('p', p.p), named('q', p.q)];
      case 'eventually':
        return [named('q', p.q)];
      case 'recoverable':
      case 'sometimes':
        return [named('p', p.p)];
    }
  });
}

export function checkTemporal(v: ResolvedVariant, engine: AnyEngine, o: SearchOutcome): TemporalFinding[] {
  if (Object.keys(v.properties).length === 0) return [];
  if (hasTemporal(v) && !o.edges)
    throw new Error('internal error: temporal properties need the search to record edges');
  const g = o.edges ? new Graph(o.store.size, o.edges) : undefined;
  const fairMask = fairnessMask(v, engine);
  const cut = o.complete
    ? undefined
    : `cannot be judged: the search was cut off by ${o.cutBy === 'depth' ? '--depth' : o.cutBy === 'memory' ? '--memory' : '--max-states'}`;
  const findings: TemporalFinding[] = [];
  let label = 0;
  for (const [name, prop] of Object.entries(v.properties)) {
    let found: TemporalFinding['violation'];
    if (prop.kind === 'sometimes') {
      findings.push(reached(name, o, o.labels[label++], cut));
      continue;
    }
    if (g === undefined) throw new Error('internal error: no graph for a temporal property');
    let vacuous = false;
    if (prop.kind === 'recoverable') {
      found = unrecoverable(g, o, o.labels[label++]);
    } else {
      const p = prop.kind === 'leadsTo' ? o.labels[label++] : initialOnly(o.store.size);
      const q = o.labels[label++];
      // p ~> q with p never reached holds for no reason: say so, it is usually a model bug.
      vacuous = prop.kind === 'leadsTo' && p.subarray(0, o.store.size).indexOf(1) < 0;
      found = leadsToViolation(g, o, p, q, fairMask);
    }
    const status = found ? 'violated' : cut ? 'unknown' : 'holds';
    const note = status === 'unknown' ? cut : vacuous ? 'vacuous: its premise p is never reached' : undefined;
    findings.push({
      verdict: { name, kind: prop.kind, status, ...(note && { note }), ...(vacuous && { vacuous }) },
      ...(found && { violation: found }),
    });
  }
  return findings;
}

/** sometimes(p): the shallowest p-state (BFS numbers states in depth order) is the witness. */
function reached(name: string, o: SearchOutcome, p: Uint8Array, cut: string | undefined): TemporalFinding {
  const at = p.subarray(0, o.store.size).indexOf(1);
  if (at >= 0) {
    const n = o.store.depth(at);
    return {
      verdict: {
        name,
        kind: 'sometimes',
        status: 'holds',
        note: `reached after ${n} step${n === 1 ? '' : 's'}`,
      },
      witness: storePath(o, at),
    };
  }
  if (cut) return { verdict: { name, kind: 'sometimes', status: 'unknown', note: `not reached; ${cut}` } };
  return {
    verdict: { name, kind: 'sometimes', status: 'violated', note: 'no reachable state satisfies it' },
    violation: { kind: 'unreachable', path: [] },
  };
}

function initialOnly(n: number): Uint8Array {
  const bits = new Uint8Array(n);
  bits[0] = 1;
  return bits;
}

function fairnessMask(v: ResolvedVariant, engine: AnyEngine): number {
  const weak = v.fairness.weak;
  if (weak === undefined) return 0;
  if (weak === 'all') return (1 << engine.actors.length) - 1;
  let mask = 0;
  for (const a of weak) {
    const i = engine.actors.indexOf(a);
    if (i < 0) {
      throw new ModelError(
        `model '${v.modelId}': fairness names actor '${a}', which the machine does not have (actors: ${engine.actors.join(', ')})`,
      );
    }
    mask |= 1 << i;
  }
  return mask;
}

/** The explored graph in compressed adjacency form, forward and backward. */
class Graph {
  readonly outStart: Int32Array;
  readonly outEdge: Int32Array;
  readonly inStart: Int32Array;
  readonly inEdge: Int32Array;
  /** Per state, the actors with an enabled event there (OR of its out-edges' actor masks). */
  readonly enabled: Int32Array;

  constructor(
    readonly n: number,
    readonly edges: EdgeList,
  ) {
    const m = edges.length;
    this.outStart = new Int32Array(n + 1);
    this.inStart = new Int32Array(n + 1);
    this.enabled = new Int32Array(n);
    for (let k = 0; k < m; k++) {
      this.outStart[edges.from[k] + 1]++;
      this.inStart[edges.to[k] + 1]++;
      this.enabled[edges.from[k]] |= edges.actors[k];
    }
    for (let i = 0; i < n; i++) {
      this.outStart[i + 1] += this.outStart[i];
      this.inStart[i + 1] += this.inStart[i];
    }
    this.outEdge = new Int32Array(m);
    this.inEdge = new Int32Array(m);
    const o = this.outStart.slice(0, n);
    const i = this.inStart.slice(0, n);
    for (let k = 0; k < m; k++) {
      this.outEdge[o[edges.from[k]]++] = k;
      this.inEdge[i[edges.to[k]]++] = k;
    }
  }
}

/**
 * Backward reachability: the states that can reach a seed state (seeds
 * included), moving only through states where `allowed` holds (all by default).
 */
function canReach(
  g: Graph,
  seed: (s: number) => boolean,
  allowed: (s: number) => boolean = () => true,
): Uint8Array {
  const reached = new Uint8Array(g.n);
  const queue: number[] = [];
  for (let s = 0; s < g.n; s++) {
    if (seed(s)) {
      reached[s] = 1;
      queue.push(s);
    }
  }
  for (let h = 0; h < queue.length; h++) {
    const t = queue[h];
    for (let j = g.inStart[t]; j < g.inStart[t + 1]; j++) {
      const from = g.edges.from[g.inEdge[j]];
      if (!reached[from] && allowed(from)) {
        reached[from] = 1;
        queue.push(from);
      }
    }
  }
  return reached;
}

/** The shallowest state (lowest BFS index) from which no p-state is reachable. */
function unrecoverable(g: Graph, o: SearchOutcome, p: Uint8Array): TemporalFinding['violation'] {
  const good = canReach(g, (s) => p[s] === 1 || o.unexpanded.has(s));
  const bad = good.indexOf(0);
  if (bad < 0) return undefined;
  return { kind: 'unrecoverable', path: storePath(o, bad) };
}

function storePath(o: SearchOutcome, to: number): PathStep[] {
  return o.store
    .pathTo(to)
    .slice(1)
    .map((state) => ({ state, event: o.store.event(state) }));
}

function leadsToViolation(
  g: Graph,
  o: SearchOutcome,
  p: Uint8Array,
  q: Uint8Array,
  fairMask: number,
): TemporalFinding['violation'] {
  const inB = new Uint8Array(g.n);
  for (let s = 0; s < g.n; s++) inB[s] = !q[s] && !o.unexpanded.has(s) ? 1 : 0;
  const sink = (s: number) => inB[s] === 1 && (g.enabled[s] & fairMask) === 0;
  const scc = sccsWithin(g, inB);
  const target = new Uint8Array(g.n);
  for (const [id, members] of scc.components) {
    if (!scc.hasInternalEdge[id]) continue;
    let moved = 0;
    let disabledSomewhere = 0;
    for (const s of members) {
      disabledSomewhere |= ~g.enabled[s] & fairMask;
      for (let j = g.outStart[s]; j < g.outStart[s + 1]; j++) {
        const k = g.outEdge[j];
        if (scc.id[g.edges.to[k]] === id) moved |= g.edges.actors[k];
      }
    }
    if ((fairMask & ~(moved | disabledSomewhere)) === 0) for (const s of members) target[s] = 1;
  }
  for (let s = 0; s < g.n; s++) if (sink(s)) target[s] = 1;

  // Backward within ¬q from the targets: the states that can be trapped in ¬q forever.
  const trapped = canReach(
    g,
    (s) => target[s] === 1,
    (s) => inB[s] === 1,
  );
  let start = -1;
  for (let s = 0; s < g.n && start < 0; s++) if (p[s] && inB[s] && trapped[s]) start = s;
  if (start < 0) return undefined;

  const prefix = storePath(o, start);
  const toTarget = bfsPath(
    g,
    start,
    (s) => target[s] === 1,
    (s) => inB[s] === 1,
  );
  const entry = toTarget.length ? toTarget[toTarget.length - 1].state : start;
  const path = [...prefix, ...toTarget];
  if (sink(entry)) return { kind: 'liveness', path, cycleStart: path.length }; // stutters in `entry` forever
  const cycle = fairCycle(g, scc, entry, fairMask);
  return { kind: 'liveness', path: [...path, ...cycle], cycleStart: path.length };
}

/** Shortest path (as steps) from `from` to a state satisfying `goal`, moving only through `allowed` states. */
function bfsPath(
  g: Graph,
  from: number,
  goal: (s: number) => boolean,
  allowed: (s: number) => boolean,
): PathStep[] {
  if (goal(from)) return [];
  const via = new Map<number, number>([[from, -1]]); // state -> edge that reached it
  const queue = [from];
  for (let h = 0; h < queue.length; h++) {
    const s = queue[h];
    for (let j = g.outStart[s]; j < g.outStart[s + 1]; j++) {
      const k = g.outEdge[j];
      const t = g.edges.to[k];
      if (via.has(t) || !allowed(t)) continue;
      via.set(t, k);
      if (goal(t)) return unwind(g, via, t);
      queue.push(t);
    }
  }
  throw new Error('internal error: no path to a state that backward reachability found');
}

function unwind(g: Graph, via: Map<number, number>, to: number): PathStep[] {
  const steps: PathStep[] = [];
  for (let t = to, k = via.get(t) ?? -1; k >= 0; t = g.edges.from[k], k = via.get(t) ?? -1) {
    steps.push({ state: t, event: g.edges.event[k] });
  }
  return steps.reverse();
}

/**
 * A cycle from `entry` back to `entry` inside its component that satisfies
 * weak fairness: for each fair actor, it takes one of that actor's edges or
 * passes a state where the actor is disabled.
 */
function fairCycle(g: Graph, scc: Components, entry: number, fairMask: number): PathStep[] {
  const id = scc.id[entry];
  const inside = (s: number) => scc.id[s] === id;
  const cycle: PathStep[] = [];
  let cur = entry;
  for (let bit = 1; bit <= fairMask; bit <<= 1) {
    if (!(fairMask & bit)) continue;
    const disabledHere = (s: number) => inside(s) && (g.enabled[s] & bit) === 0;
    const sourceOfMove = (s: number) => {
      for (let j = g.outStart[s]; j < g.outStart[s + 1]; j++) {
        const k = g.outEdge[j];
        if (g.edges.actors[k] & bit && inside(g.edges.to[k])) return k;
      }
      return -1;
    };
    const leg = bfsPath(g, cur, (s) => disabledHere(s) || sourceOfMove(s) >= 0, inside);
    cycle.push(...leg);
    if (leg.length) cur = leg[leg.length - 1].state;
    if (!disabledHere(cur)) {
      const k = sourceOfMove(cur);
      cycle.push({ state: g.edges.to[k], event: g.edges.event[k] });
      cur = g.edges.to[k];
    }
  }
  if (cycle.length === 0) {
    // No fair actor to satisfy: any cycle through the entry will do; take one edge and come back.
    for (let j = g.outStart[entry]; j < g.outStart[entry + 1]; j++) {
      const k = g.outEdge[j];
      if (inside(g.edges.to[k])) {
        cycle.push({ state: g.edges.to[k], event: g.edges.event[k] });
        cur = g.edges.to[k];
        break;
      }
    }
  }
  cycle.push(...bfsPath(g, cur, (s) => s === entry, inside));
  if (cur === entry && cycle.length === 0) throw new Error('internal error: empty fair cycle');
  return cycle;
}

interface Components {
  /** Component id per state (-1 outside the subgraph). */
  readonly id: Int32Array;
  readonly components: Map<number, number[]>;
  readonly hasInternalEdge: Uint8Array;
}

/** Tarjan's strongly connected components of the subgraph induced by `within`, iteratively (no recursion limit). */
function sccsWithin(g: Graph, within: Uint8Array): Components {
  const index = new Int32Array(g.n).fill(-1);
  const low = new Int32Array(g.n);
  const id = new Int32Array(g.n).fill(-1);
  const onStack = new Uint8Array(g.n);
  const stack: number[] = [];
  const components = new Map<number, number[]>();
  let counter = 0;
  let nextId = 0;
  const callStack: { s: number; j: number }[] = [];
  for (let root = 0; root < g.n; root++) {
    if (!within[root] || index[root] >= 0) continue;
    callStack.push({ s: root, j: g.outStart[root] });
    index[root] = low[root] = counter++;
    stack.push(root);
    onStack[root] = 1;
    while (callStack.length) {
      const frame = callStack[callStack.length - 1];
      const s = frame.s;
      if (frame.j < g.outStart[s + 1]) {
        const t = g.edges.to[g.outEdge[frame.j++]];
        if (!within[t]) continue;
        if (index[t] < 0) {
          index[t] = low[t] = counter++;
          stack.push(t);
          onStack[t] = 1;
          callStack.push({ s: t, j: g.outStart[t] });
        } else if (onStack[t]) {
          low[s] = Math.min(low[s], index[t]);
        }
        continue;
      }
      callStack.pop();
      if (callStack.length) {
        const parent = callStack[callStack.length - 1].s;
        low[parent] = Math.min(low[parent], low[s]);
      }
      if (low[s] === index[s]) {
        const members: number[] = [];
        let t: number;
        do {
          t = stack.pop() as number;
          onStack[t] = 0;
          id[t] = nextId;
          members.push(t);
        } while (t !== s);
        components.set(nextId++, members);
      }
    }
  }
  const hasInternalEdge = new Uint8Array(nextId);
  for (let k = 0; k < g.edges.length; k++) {
    const a = id[g.edges.from[k]];
    if (a >= 0 && a === id[g.edges.to[k]]) hasInternalEdge[a] = 1;
  }
  return { id, components, hasInternalEdge };
}
