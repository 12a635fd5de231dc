/**
 * The compiled engine: the machine's transition table flattened to
 * (event type, actor, active leaf) -> candidate transitions, whose guards and
 * assigns are called directly. xstate's `transition()` builds a whole new
 * snapshot, resolves every action object and recomputes the state value on
 * each event; here a state is the active leaf of each actor plus the context,
 * and a step is a table look-up, the guards, and the assigns.
 *
 * It implements the subset of statecharts the protocol models use: parallel
 * actors whose states may nest (no nested parallel states), guarded
 * transitions with `assign` actions, final states. Anything else (entry/exit
 * actions, eventless or delayed transitions, invocations, raise, history...)
 * makes `compileMachine` throw `Unsupported` with the feature and the state
 * that uses it, and the explorer falls back to the reference engine.
 * test/explorer/engines.test.ts checks both engines agree on every model.
 */
import {
  type AnyStateMachine,
  and,
  type EventObject,
  getInitialSnapshot,
  matchesState,
  not,
  or,
  type StateNode,
  type StateValue,
} from 'xstate';
import { canonical } from './canonical.ts';
import { Codec, Words } from './codec.ts';
import { type Engine, machineTransitionIds, transitionId, transitionName } from './engine.ts';
import { actorNodes } from './engine-reference.ts';
import { ModelError, ModelFunctionError, type ModelSnapshot } from './model.ts';

/** The machine uses a feature the compiled engine does not implement. */
export class Unsupported extends Error {
  override name = 'Unsupported';
}

export interface CompiledState {
  /** leaves[r]: index of actor r's active leaf state. */
  readonly leaves: readonly number[];
  readonly context: unknown;
}

type Guard = (context: unknown, event: EventObject) => boolean;
type Action = ((context: unknown, event: EventObject) => unknown) | null; // null: no effect on the state

interface Transition {
  /** transitionId() of the xstate transition this was compiled from. */
  readonly id: string;
  /** Its position in the engine's transitionIds (coverage). */
  readonly index: number;
  readonly region: number;
  readonly guard: Guard | null;
  readonly actions: readonly Exclude<Action, null>[];
  /** The target leaf, or -1 for a targetless transition. */
  readonly target: number;
  /** xstate's `can()`: a transition with neither target nor actions does not count as accepting the event. */
  readonly effect: boolean;
}

interface Region {
  readonly name: string;
  readonly node: StateNode<any, any>;
  /** Leaf index -> its part of the state value, and that part canonically encoded. */
  readonly leafValues: StateValue[];
  readonly leafCodes: string[];
  readonly leafFinal: boolean[];
  /** Relative leaf path ('a.b') -> leaf index. */
  readonly leafIndex: Map<string, number>;
}

type Table = Map<string, (readonly Transition[] | undefined)[][]>;

type Implementations = AnyStateMachine['implementations'];

// xstate's and/or/not are functions carrying a `check`; identify them by it.
const checkOf = (g: unknown) => (g as { check: unknown }).check;
const BUILTIN_AND = checkOf(and([]));
const BUILTIN_OR = checkOf(or([]));
const BUILTIN_NOT = checkOf(not(() => true));

export function createCompiledEngine(machine: AnyStateMachine, codec = new Codec()): Engine<CompiledState> {
  const parallel = machine.root.type === 'parallel';
  checkRoot(machine);
  const regions = actorNodes(machine).map(({ name, node }) => compileRegion(name, node, parallel));
  const transitionIds = machineTransitionIds(machine);
  const table = compileTable(machine, regions, new Map(transitionIds.map((id, i) => [id, i])));
  const fired = new Uint8Array(transitionIds.length);
  const lastIdx: number[] = [];
  const initial = initialState(machine, regions, parallel);
  const sortedRegions = regions.map((r, i) => ({ r, i })).sort((a, b) => (a.r.name < b.r.name ? -1 : 1));
  const valueInputs = stateValueHashInputs(codec, regions, sortedRegions, parallel);
  const scratch = new Words();
  /** Fingerprint of a packed state: the state value's words (as if encoded: control.ts), then the context's. */
  const packedFingerprint = (words: Int32Array, start: number, end: number) => {
    codec.begin();
    codec.feedInputs(valueInputs.root);
    for (const { i } of sortedRegions) codec.feedInputs(valueInputs.leaves[i][words[start + i] >> 3]);
    codec.feed(words, start + regions.length, end);
    return codec.finish();
  };
  const terminated = (s: CompiledState) => regions.map((r, i) => r.leafFinal[s.leaves[i]]);
  const done = (s: CompiledState) => regions.every((r, i) => r.leafFinal[s.leaves[i]]);
  const selected: Transition[] = [];

  /** xstate's selectTransitions: per actor, the first enabled candidate from the leaf up; guards see the pre-state. */
  const select = (s: CompiledState, event: EventObject): number => {
    const byRegion = table.get(event.type);
    if (byRegion === undefined || done(s)) return 0;
    let n = 0;
    let effect = false;
    for (let r = 0; r < regions.length; r++) {
      const candidates = byRegion[r][s.leaves[r]];
      if (candidates === undefined) continue;
      for (const t of candidates) {
        if (t.guard === null || t.guard(s.context, event)) {
          selected[n++] = t;
          effect ||= t.effect;
          break;
        }
      }
    }
    return effect ? n : 0;
  };

  const stateValueOf = (s: CompiledState): StateValue => {
    if (!parallel) return regions[0].leafValues[s.leaves[0]];
    const v: Record<string, StateValue> = {};
    for (let r = 0; r < regions.length; r++) v[regions[r].name] = regions[r].leafValues[s.leaves[r]];
    return v;
  };

  return {
    kind: 'compiled',
    actors: regions.map((r) => r.name),
    transitionIds,
    fired,
    lastFired: () => lastIdx,
    withContext: (s, context) => ({ leaves: s.leaves, context }),
    initial: () => initial,
    step(s, event) {
      const n = select(s, event);
      if (n === 0) return null;
      lastIdx.length = n;
      let leaves = s.leaves;
      let context = s.context;
      for (let i = 0; i < n; i++) {
        const t = selected[i];
        fired[t.index] = 1;
        lastIdx[i] = t.index;
        for (const a of t.actions) context = a(context, event);
        if (t.target >= 0 && leaves[t.region] !== t.target) {
          if (leaves === s.leaves) leaves = leaves.slice();
          (leaves as number[])[t.region] = t.target;
        }
      }
      return { leaves, context };
    },
    view: (s) => new CompiledView(s, stateValueOf, done(s)),
    codec,
    pack(s, out, memo) {
      codec.encodeState(out, s.leaves, s.context, memo);
    },
    unpack(words, start, _end, options) {
      const { leaves, context } = codec.decodeState(words, start, regions.length, options);
      return { leaves, context };
    },
    packedFingerprint,
    fingerprint(s) {
      scratch.length = 0;
      codec.encodeState(scratch, s.leaves, s.context);
      return packedFingerprint(scratch.buf, 0, scratch.length);
    },
    encode(s) {
      let value: string;
      if (parallel) {
        value = '{';
        for (let k = 0; k < sortedRegions.length; k++) {
          const { r, i } = sortedRegions[k];
          value += `${k > 0 ? ',' : ''}${JSON.stringify(r.name)}:${r.leafCodes[s.leaves[i]]}`;
        }
        value += '}';
      } else {
        value = regions[0].leafCodes[s.leaves[0]];
      }
      return `${value}|${canonical(s.context)}`;
    },
    terminated,
    actorsOf(s, event) {
      const n = select(s, event);
      const names: string[] = [];
      for (let i = 0; i < n; i++) names.push(regions[selected[i].region].name);
      return names;
    },
    transitionsOf(s, event) {
      const n = select(s, event);
      return selected.slice(0, n).map((t) => t.id);
    },
  };
}

/**
 * The hash inputs of the state value's words, per leaf, so that a packed
 * state (leaf indices, then the context) hashes exactly as the generic
 * encoding of (state value, context) does, which is what the reference
 * engine hashes: both engines give a state the same fingerprint.
 */
function stateValueHashInputs(
  codec: Codec,
  regions: readonly Region[],
  sorted: readonly { r: Region; i: number }[],
  parallel: boolean,
): { root: Int32Array; leaves: Int32Array[][] } {
  const w = new Words();
  const inputsOf = (value: unknown) => {
    w.length = 0;
    codec.encode(w, value, 'state value');
    return codec.hashInputs(w.buf, 0, w.length);
  };
  // A parallel machine's value is an object keyed by actor: its shape word comes first.
  const root = parallel
    ? (() => {
        w.length = 0;
        codec.encode(w, Object.fromEntries(sorted.map(({ r }) => [r.name, 0])), 'state value');
        return codec.hashInputs(w.buf, 0, 1);
      })()
    : new Int32Array(0);
  return { root, leaves: regions.map((r) => r.leafValues.map(inputsOf)) };
}

/**
 * What properties and event generators see of a compiled state: the state
 * value is built only if asked for. A class, so that making one (twice a
 * state) allocates one small object and no closures.
 */
class CompiledView implements ModelSnapshot {
  private built: StateValue | undefined;
  readonly context: unknown;
  readonly status: 'active' | 'done';
  constructor(
    private readonly s: CompiledState,
    private readonly valueOf: (s: CompiledState) => StateValue,
    done: boolean,
  ) {
    this.context = s.context;
    this.status = done ? 'done' : 'active';
  }
  get value(): StateValue {
    this.built ??= this.valueOf(this.s);
    return this.built;
  }
  matches(v: StateValue): boolean {
    return matchesState(v, this.value);
  }
}

/**
 * The root's own features are checked whatever its type: a root-level
 * `always` is taken after every event, a root `exit` runs when the machine
 * reaches its final state, `after`/`invoke` start with the machine; none of
 * them is in the transition table. (The non-parallel root was once skipped
 * here, and the compiled engine silently ignored its `always` and `exit`.)
 */
function checkRoot(machine: AnyStateMachine): void {
  const root = machine.root;
  if (root.type === 'parallel' && root.transitions.size > 0)
    throw new Unsupported(`root-level 'on' transitions (machine '${machine.id}')`);
  checkNodeFeatures(root);
}

function checkNodeFeatures(node: StateNode<any, any>): void {
  const where = `state '${node.id}'`;
  if (node.type === 'history') throw new Unsupported(`history states (${where})`);
  if (node.entry.length > 0) throw new Unsupported(`entry actions (${where})`);
  if (node.exit.length > 0) throw new Unsupported(`exit actions (${where})`);
  if (node.always?.length) throw new Unsupported(`eventless 'always' transitions (${where})`);
  if (node.after.length > 0) throw new Unsupported(`delayed 'after' transitions (${where})`);
  if (node.invoke.length > 0) throw new Unsupported(`invoked actors (${where})`);
}

function compileRegion(name: string, node: StateNode<any, any>, parallel: boolean): Region {
  const region: Region = {
    name,
    node,
    leafValues: [],
    leafCodes: [],
    leafFinal: [],
    leafIndex: new Map(),
  };
  // An actor that is itself a final state: xstate counts it done (the machine is done once every
  // actor is), which the leaf-per-actor encoding does not express.
  if (parallel && node.type === 'final')
    throw new Unsupported(`an actor that is itself a final state (state '${node.id}')`);
  const visit = (n: StateNode<any, any>, path: string[]) => {
    checkNodeFeatures(n);
    if (n.type === 'parallel') throw new Unsupported(`parallel states inside an actor (state '${n.id}')`);
    if (n.type === 'atomic' || n.type === 'final') {
      const value = pathToValue(path);
      region.leafIndex.set(path.join('.'), region.leafValues.length);
      region.leafValues.push(value);
      region.leafCodes.push(canonical(value, 'state value'));
      region.leafFinal.push(n.type === 'final' && n.parent === node);
      return;
    }
    if (n.initial?.actions.length) throw new Unsupported(`initial transition actions (state '${n.id}')`);
    for (const [key, child] of Object.entries(n.states)) visit(child as StateNode<any, any>, [...path, key]);
  };
  if (parallel) visit(node, []);
  else for (const [key, child] of Object.entries(node.states)) visit(child as StateNode<any, any>, [key]);
  if (region.leafValues.length === 0) throw new Unsupported(`actor '${name}' has no states`);
  return region;
}

/** ['a', 'b', 'c'] -> { a: { b: 'c' } }, as xstate writes state values. */
function pathToValue(path: readonly string[]): StateValue {
  if (path.length === 0) return {};
  let v: StateValue = path[path.length - 1];
  for (let i = path.length - 2; i >= 0; i--) v = { [path[i]]: v };
  return v;
}

/** Leaf paths relative to the region node. */
function relativePath(n: StateNode<any, any>, region: StateNode<any, any>, parallel: boolean): string[] {
  const depth = parallel ? region.path.length : 0;
  return n.path.slice(depth);
}

function compileTable(
  machine: AnyStateMachine,
  regions: readonly Region[],
  indexOf: ReadonlyMap<string, number>,
): Table {
  const table: Table = new Map();
  const parallel = machine.root.type === 'parallel';
  regions.forEach((region, r) => {
    for (const [leafPath, leaf] of region.leafIndex) {
      // Walk from the leaf up to the actor's own node: deeper states take precedence (xstate transitionAtomicNode).
      let n: StateNode<any, any> | undefined = nodeAt(region, leafPath, parallel);
      const perEvent = new Map<string, Transition[]>();
      while (n !== undefined) {
        for (const [descriptor, defs] of n.transitions) {
          if (descriptor === '*' || descriptor.endsWith('.*')) {
            throw new Unsupported(`wildcard event '${descriptor}' (state '${n.id}')`);
          }
          if (descriptor.startsWith('xstate.'))
            throw new Unsupported(`'${descriptor}' events (state '${n.id}')`);
          const list = perEvent.get(descriptor) ?? [];
          defs.forEach((def, i) => {
            const id = transitionId(n!.id, descriptor, i);
            list.push(compileTransition(machine, def, id, indexOf.get(id) ?? -1, r, region, parallel));
          });
          perEvent.set(descriptor, list);
        }
        if (n === region.node) break;
        n = n.parent;
      }
      for (const [eventType, list] of perEvent) {
        let byRegion = table.get(eventType);
        if (byRegion === undefined) {
          byRegion = regions.map(() => []);
          table.set(eventType, byRegion);
        }
        byRegion[r][leaf] = list;
      }
    }
  });
  return table;
}

function nodeAt(region: Region, leafPath: string, parallel: boolean): StateNode<any, any> {
  let n = region.node;
  const keys = leafPath === '' ? [] : leafPath.split('.');
  if (!parallel) {
    n = region.node.states[keys[0]] as StateNode<any, any>;
    keys.shift();
  }
  for (const k of keys) n = n.states[k] as StateNode<any, any>;
  return n;
}

function compileTransition(
  machine: AnyStateMachine,
  def: StateNode<any, any>['transitions'] extends Map<string, (infer T)[]> ? T : never,
  id: string,
  index: number,
  r: number,
  region: Region,
  parallel: boolean,
): Transition {
  const where = `state '${def.source.id}', event '${def.eventType}'`;
  const impl = machine.implementations;
  const name = transitionName(id, machine.id);
  const actions = def.actions
    .map((a: unknown) => compileAction(a, impl, where))
    .filter((a) => a !== null)
    .map((a) => named(a, `assign of ${name}`));
  let target = -1;
  if (def.target !== undefined) {
    if (def.target.length !== 1) throw new Unsupported(`multiple targets (${where})`);
    checkDomain(def.source, def.target[0] as StateNode<any, any>, def.reenter, region, parallel, where);
    const leaf = initialLeaf(def.target[0] as StateNode<any, any>);
    const path = relativePath(leaf, region.node, parallel).join('.');
    const index = region.leafIndex.get(path);
    if (index === undefined || !isWithin(leaf, region.node)) {
      throw new Unsupported(`a target outside actor '${region.name}' (${where})`);
    }
    target = index;
  }
  return {
    id,
    index,
    region: r,
    guard: def.guard === undefined ? null : named(compileGuard(def.guard, impl, where), `guard of ${name}`),
    actions,
    target,
    effect: def.target !== undefined || def.actions.length > 0,
  };
}

/** The model's function, so that what it throws names it (a ModelFunctionError). */
function named<F extends (context: unknown, event: EventObject) => any>(fn: F, what: string): F {
  return ((context: unknown, event: EventObject) => {
    try {
      return fn(context, event);
    } catch (e) {
      if (e instanceof ModelError) throw e;
      throw new ModelFunctionError(what, e);
    }
  }) as F;
}

/**
 * A step here changes the source actor's leaf only: right when xstate's
 * transition domain lies within the actor, since xstate exits and re-enters
 * exactly the active states below the domain. The domain is computed as
 * xstate's getTransitionDomain does (no history: those are refused):
 * - without `reenter`, a target that is the source or below it: the source;
 * - else the least ancestor of the target that is a proper ancestor of the
 *   source (any type: xstate does not require it to be compound);
 * - else (the target is the root) the root, or none with `reenter`.
 * So a target on the actor's own region node (`#m.p` from inside region p),
 * on the root, or in another region, and `reenter` on a region node, all
 * have the parallel root as domain: xstate exits every region and re-enters
 * the others in their initial states. Those are refused, not emulated.
 * (Inside the actor, with no entry/exit actions, `reenter` changes nothing
 * the state records: the new leaf is the target's initial leaf either way.)
 */
function checkDomain(
  source: StateNode<any, any>,
  target: StateNode<any, any>,
  reenter: boolean,
  region: Region,
  parallel: boolean,
  where: string,
): void {
  let domain: StateNode<any, any> | undefined;
  if (!reenter && isWithin(target, source)) domain = source;
  else {
    for (let a = target.parent; a !== undefined && domain === undefined; a = a.parent)
      if (a !== source && isWithin(source, a)) domain = a;
    if (domain === undefined && !reenter) domain = source.machine.root;
  }
  if (domain === undefined)
    throw new Unsupported(`a transition with 'reenter' to the root, which has no domain (${where})`);
  if (parallel && !isWithin(domain, region.node)) {
    throw new Unsupported(
      `a transition whose domain is state '${domain.id}', beyond actor '${region.name}': xstate re-enters every other actor in its initial state (${where})`,
    );
  }
}

function isWithin(n: StateNode<any, any>, ancestor: StateNode<any, any>): boolean {
  for (let m: StateNode<any, any> | undefined = n; m !== undefined; m = m.parent)
    if (m === ancestor) return true;
  return false;
}

/** Entering a compound state enters its initial child, down to a leaf. */
function initialLeaf(n: StateNode<any, any>): StateNode<any, any> {
  let m = n;
  while (m.type === 'compound') {
    if (m.initial.actions.length) throw new Unsupported(`initial transition actions (state '${m.id}')`);
    m = m.initial.target[0] as StateNode<any, any>;
  }
  if (m.type === 'parallel') throw new Unsupported(`a parallel target (state '${m.id}')`);
  return m;
}

/** Mirrors xstate's evaluateGuard for inline, named and and/or/not guards. */
function compileGuard(guard: unknown, impl: Implementations, where: string): Guard {
  if (typeof guard === 'function') {
    const g = guard as any;
    if ('check' in g) return compileBuiltinGuard(g, impl, where);
    // One argument object a guard, filled for each call: guards run for every candidate event of
    // every state, and most say no; a guard does not keep its arguments beyond the call.
    const args = { context: undefined as unknown, event: undefined as unknown };
    return (context, event) => {
      args.context = context;
      args.event = event;
      return g(args, undefined);
    };
  }
  const name = typeof guard === 'string' ? guard : (guard as { type: string }).type;
  const resolved = impl.guards[name] as unknown;
  if (resolved === undefined) throw new Unsupported(`guard '${name}' is not implemented (${where})`);
  if (typeof resolved !== 'function') return compileGuard(resolved, impl, where);
  if ('check' in resolved) return compileBuiltinGuard(resolved, impl, where);
  const params = typeof guard === 'string' ? undefined : (guard as { params?: unknown }).params;
  const fn = resolved as (args: unknown, params: unknown) => boolean;
  if (typeof params === 'function') {
    return (context, event) => fn({ context, event }, params({ context, event }));
  }
  const args = { context: undefined as unknown, event: undefined as unknown };
  return (context, event) => {
    args.context = context;
    args.event = event;
    return fn(args, params);
  };
}

function compileBuiltinGuard(g: any, impl: Implementations, where: string): Guard {
  const parts: Guard[] = (g.guards ?? []).map((x: unknown) => compileGuard(x, impl, where));
  if (g.check === BUILTIN_AND) return (c, e) => parts.every((p) => p(c, e));
  if (g.check === BUILTIN_OR) return (c, e) => parts.some((p) => p(c, e));
  if (g.check === BUILTIN_NOT) return (c, e) => !parts[0](c, e);
  throw new Unsupported(`built-in guard '${g.name}' (${where}); stateIn needs the reference engine`);
}

/** Only `assign` changes the state; log/emit and custom side-effect actions do not (transition() defers them). */
function compileAction(action: unknown, impl: Implementations, where: string): Action {
  let fn: any;
  let params: unknown;
  if (typeof action === 'function') fn = action;
  else if (typeof action === 'string') fn = impl.actions[action];
  else {
    const a = action as { type: string; params?: unknown };
    fn = impl.actions[a.type];
    params = a.params;
  }
  if (fn === undefined) return null; // xstate treats an unimplemented named action as a no-op
  if (fn.type === 'xstate.assign') return compileAssign(fn.assignment, params);
  if (fn.type === 'xstate.log' || fn.type === 'xstate.emit') return null;
  if (typeof fn.type === 'string' && fn.type.startsWith('xstate.')) {
    throw new Unsupported(`action '${fn.type}' (${where})`);
  }
  return null;
}

/**
 * xstate's resolveAssign: every property assigner sees the context as it was
 * before this assign; the result is a copy of the context with the partial
 * update laid over it (Object.assign({}, context, partial)). Built here as one
 * spread copy with the new values written into it, which allocates once.
 */
function compileAssign(assignment: any, params: unknown): Exclude<Action, null> {
  const paramsOf =
    typeof params === 'function'
      ? (context: unknown, event: EventObject) => params({ context, event })
      : () => params;
  if (typeof assignment === 'function') {
    return (context, event) => {
      const args = { context, event };
      return Object.assign({}, context, assignment(args, paramsOf(context, event)));
    };
  }
  const keys = Object.keys(assignment);
  const values = keys.map((k) => assignment[k]);
  return (context, event) => {
    const args = { context, event };
    const p = paramsOf(context, event);
    const next: Record<string, unknown> = { ...(context as object) };
    for (let i = 0; i < keys.length; i++) {
      const v = values[i];
      next[keys[i]] = typeof v === 'function' ? v(args, p) : v;
    }
    return next;
  };
}

function initialState(
  machine: AnyStateMachine,
  regions: readonly Region[],
  parallel: boolean,
): CompiledState {
  const snap = getInitialSnapshot(machine);
  const leaves = regions.map((region) => {
    let v: StateValue = parallel ? (snap.value as Record<string, StateValue>)[region.name] : snap.value;
    // An actor without child states has the value {} (xstate's atomic region): its one leaf has the empty path.
    const path: string[] = [];
    while (typeof v !== 'string' && Object.keys(v).length > 0) {
      const [k] = Object.keys(v);
      path.push(k);
      v = (v as Record<string, StateValue>)[k];
    }
    if (typeof v === 'string') path.push(v);
    const index = region.leafIndex.get(path.join('.'));
    if (index === undefined) throw new Unsupported(`initial state of actor '${region.name}' not found`);
    return index;
  });
  return { leaves, context: snap.context };
}
