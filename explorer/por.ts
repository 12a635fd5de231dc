/**
 * Partial-order reduction (`--por`): in each state, fire the enabled steps of
 * one actor only, when that provably loses no invariant violation and no
 * deadlock (Spin's ample sets). An engine wrapper, like symmetry.ts: its
 * `step` returns null for an enabled event outside the ample set, so no
 * search strategy changes; the one thing it asks the search is whether a
 * successor is already closed (engine.ts SearchQuery), for the cycle proviso.
 *
 * In state s, ample(s) is every enabled step of one actor P, if
 *   C0  it is not empty;
 *   C1  P's declared footprint in its current node is independent of every
 *       other running actor's footprint over all its nodes (no write of one
 *       overlaps a read or write of the other), and of what the event
 *       generator reads, and P and every other running actor are independent
 *       through control state (controlDependencies: `stateIn` guards,
 *       `always` transitions, targets in another actor, read off the
 *       machine): no step of another actor can enable, disable or be affected
 *       by a step of P, so P's disabled steps stay disabled until P moves;
 *   C2  P's declared writes overlap no visible path (what the invariants and
 *       `sometimes` predicates read), and no predicate reads the control state
 *       of P or of an actor P's steps may move;
 *   C3  no ample step leads to a closed state (the closed-set proviso of
 *       Bošnački, Leue and Lluch-Lafuente for general state exploring
 *       algorithms, BFS included), where closed is over-approximated by "reached
 *       at a level no deeper than s's": every cycle of the reduced graph then
 *       has a fully expanded state (the one of the cycle expanded last sees its
 *       successor on the cycle closed).
 * Otherwise s is expanded fully. Footprints are declared (model.ts
 * Footprints) and checked, never trusted: every step the reduced search
 * evaluates is recorded (footprint.ts) and must stay within its actor's
 * declaration, and so must every step on a sample of the unreduced graph
 * (random walks), taken before the search; the invariants' reads are
 * recorded on every state they are evaluated on, and a read outside the
 * visible set assumed so far restarts the search with the larger set.
 */
import type { AnyStateMachine, EventObject, StateNode, StateValue } from 'xstate';
import { canonical } from './canonical.ts';
import { type Engine, type SearchQuery, transitionName } from './engine.ts';
import {
  covers,
  type Footprint,
  generalise,
  overlap,
  parsePattern,
  type Pattern,
  prefixOf,
  type Read,
  readCovered,
  recordPredicate,
  recordStep,
  writeCovered,
} from './footprint.ts';
import {
  callModel,
  type FootprintSpec,
  type Footprints,
  ModelError,
  type ModelSnapshot,
  type ResolvedVariant,
  type StatePredicate,
  type TemporalProperty,
} from './model.ts';

export interface PorOptions {
  /** Check the footprint of every step the search evaluates (checking mode). @default true */
  readonly check?: boolean;
  /**
   * Test hook, for the mutant test: decides whether actor p's footprint in
   * its node and actor q's are independent, in place of the declared
   * footprints' verdict (`declared`).
   */
  readonly independent?: (p: string, q: string, declared: boolean) => boolean;
}

interface Spec {
  readonly reads: readonly Pattern[];
  readonly writes: readonly Pattern[];
}

const parseSpec = (s: FootprintSpec | undefined): Spec => ({
  reads: (s?.reads ?? []).map(parsePattern),
  writes: (s?.writes ?? []).map(parsePattern),
});
const union = (a: Spec, b: Spec): Spec => ({
  reads: [...a.reads, ...b.reads],
  writes: [...a.writes, ...b.writes],
});
const touches = (a: readonly Pattern[], b: readonly Pattern[]) => a.some((x) => b.some((y) => overlap(x, y)));

/** An actor's node as a dotted path ('idle', 'unmap.walking'), from its part of the state value. */
export function nodePath(v: StateValue | undefined): string {
  if (v === undefined) return '';
  if (typeof v === 'string') return v;
  const [k] = Object.keys(v);
  if (k === undefined) return '';
  const rest = nodePath(v[k] as StateValue);
  return rest === '' ? k : `${k}.${rest}`;
}

/** The actor of every event type, from the machine's transitions; types two actors take are shared. */
export function eventOwners(transitionIds: readonly string[], machineId: string): Map<string, string[]> {
  const owners = new Map<string, string[]>();
  for (const id of transitionIds) {
    const name = transitionName(id, machineId);
    const hash = name.indexOf('#');
    const actor = name.slice(0, hash).split('.')[0];
    const type = name.slice(hash + 1).replace(/\[\d+\]$/, '');
    const list = owners.get(type) ?? [];
    if (!list.includes(actor)) list.push(actor);
    owners.set(type, list);
  }
  return owners;
}

/** The declaration, parsed: an actor's footprint in a node, and over all its nodes. */
export class Declared {
  readonly events: readonly Pattern[];
  readonly extraVisible: readonly string[];
  private readonly actors: Map<string, { all: Spec; base: Spec; states: [string, Spec][] }>;

  constructor(
    readonly footprints: Footprints,
    actors: readonly string[],
  ) {
    // An entry for an actor this variant does not have is ignored (one declaration serves every
    // variant); a misspelt actor is simply undeclared, which costs reduction, never soundness.
    this.events = (footprints.events ?? []).map(parsePattern);
    this.extraVisible = footprints.visible ?? [];
    this.actors = new Map(
      Object.entries(footprints.actors)
        .filter(([name]) => actors.includes(name))
        .map(([name, a]) => {
          const base = parseSpec(a);
          // Deepest node first: the first key that is the node or an ancestor of it wins.
          const states = Object.entries(a.states ?? {})
            .map(([k, s]) => [k, parseSpec(s)] as [string, Spec])
            .sort((x, y) => y[0].length - x[0].length);
          return [name, { base, states, all: states.reduce((acc, [, s]) => union(acc, s), base) }];
        }),
    );
  }

  /** The footprint of `actor` in `node`, and which declaration it comes from; undefined: not declared. */
  at(actor: string, node: string): { spec: Spec; where: string } | undefined {
    const a = this.actors.get(actor);
    if (a === undefined) return undefined;
    for (const [key, spec] of a.states) {
      if (node === key || node.startsWith(`${key}.`))
        return { spec, where: `footprints.actors.${actor}.states['${key}']` };
    }
    return { spec: a.base, where: `footprints.actors.${actor}` };
  }

  /** Over every node of the actor. */
  any(actor: string): Spec | undefined {
    return this.actors.get(actor)?.all;
  }
}

/**
 * The visible set: what the invariants and `sometimes` predicates read
 * (array indices generalised), and the actors whose control state they read.
 */
export class Visible {
  private readonly keys = new Set<string>();
  private readonly values: Pattern[] = [];
  private readonly navs: Pattern[] = [];
  readonly controls = new Set<string>();

  constructor(declared: readonly string[] = []) {
    for (const p of declared) this.add({ path: p, deep: true });
  }

  /** Add a read; true if it was not known. */
  add(r: Read): boolean {
    if (r.path.startsWith('$state.')) {
      const actor = r.path.slice('$state.'.length);
      if (this.controls.has(actor)) return false;
      this.controls.add(actor);
      return true;
    }
    const key = `${r.nav ? '~' : ''}${generalise(r.path)}`;
    if (this.keys.has(key)) return false;
    this.keys.add(key);
    (r.nav ? this.navs : this.values).push(parsePattern(generalise(r.path)));
    return true;
  }

  /** Whether writes matching these patterns can change what a predicate reads. */
  touchedBy(writes: readonly Pattern[]): boolean {
    return writes.some(
      (w) => this.values.some((v) => overlap(w, v)) || this.navs.some((v) => prefixOf(w, v)),
    );
  }

  get size(): number {
    return this.keys.size + this.controls.size;
  }

  describe(): string[] {
    return [...this.keys]
      .map((k) => k.replace(/^~/, ''))
      .concat([...this.controls].map((a) => `$state.${a}`));
  }
}

/** A predicate read a path the reduction had not treated as visible: the search restarts with it. */
export class VisibleGrew extends ModelError {
  override name = 'VisibleGrew';
}

/** The footprint check, shared by the search and the sample: a step's recorded footprint within its actor's declaration. */
export function checkFootprint(
  declared: Declared,
  owners: readonly string[],
  value: StateValue,
  what: () => string,
  fp: Footprint,
): void {
  const specs = owners.map((a) => ({ actor: a, at: declared.at(a, nodePath(actorValue(value, a))) }));
  if (specs.some((s) => s.at === undefined)) return; // an undeclared actor: dependent on everyone, nothing to check
  const reads = specs.flatMap((s) => s.at!.spec.reads);
  const writes = specs.flatMap((s) => s.at!.spec.writes);
  const where = specs.map((s) => s.at!.where).join(' + ');
  // Reading an object on the way down to a field the step writes is implied by that write.
  const read = fp.reads.find((r) => !readCovered(r, r.nav ? [...reads, ...writes] : reads));
  if (read !== undefined)
    throw new ModelError(
      `--por: ${what()} reads ${read.deep ? 'all of ' : ''}${read.path || 'the whole context'}, which ${where} does not declare`,
    );
  const write = fp.writes.find((w) => !writeCovered(w, writes));
  if (write !== undefined)
    throw new ModelError(`--por: ${what()} writes ${write}, which ${where} does not declare in writes`);
}

const actorValue = (value: StateValue, actor: string): StateValue | undefined =>
  typeof value === 'string' ? value : (value as Record<string, StateValue>)[actor];

/** How a step is named in an error: its transitions as coverage names them, or the actor's node and the event when none is enabled. */
function stepName<S>(engine: Engine<S>, machineId: string, s: S, e: EventObject, owners: readonly string[]) {
  return () => {
    const ids = engine.transitionsOf(s, e);
    if (ids.length > 0) return ids.map((id) => transitionName(id, machineId)).join(', ');
    const value = engine.view(s).value;
    const at = owners.map((a) => `${a}.${nodePath(actorValue(value, a))}`).join('+') || '(no actor)';
    return `${at}#${e.type} (not enabled: its guards)`;
  };
}

/** Check what the event generator reads in a state against footprints.events. */
function checkGenerator(
  declared: Declared,
  variant: ResolvedVariant,
  view: ModelSnapshot,
  actors: readonly string[],
) {
  const { reads } = callModel('the event generator (events)', () =>
    recordPredicate(view, actors, (v) => variant.events(v)),
  );
  const bad = reads.find((r) => r.path.startsWith('$state.') || !readCovered(r, declared.events));
  if (bad !== undefined)
    throw new ModelError(
      bad.path.startsWith('$state.')
        ? `--por: the event generator reads the state value; it may read only context paths, declared in footprints.events`
        : `--por: the event generator reads ${bad.path}, which footprints.events does not declare`,
    );
}

/** The variant's invariants and `sometimes` predicates, recording what they read into `visible`; a new path throws VisibleGrew. */
export function watched(
  variant: ResolvedVariant,
  visible: Visible,
  actors: readonly string[],
): ResolvedVariant {
  const watch =
    (name: string, holds: StatePredicate): StatePredicate =>
    (view) => {
      const { value, reads } = recordPredicate(view, actors, holds);
      const grew = reads.filter((r) => visible.add(r));
      if (grew.length > 0)
        throw new VisibleGrew(`--por: ${name} reads ${grew.map((r) => r.path).join(', ')}, not yet visible`);
      return value;
    };
  const invariants = Object.fromEntries(
    Object.entries(variant.invariants).map(([n, p]) => [n, watch(`invariant '${n}'`, p)]),
  );
  const properties = Object.fromEntries(
    Object.entries(variant.properties).map(([n, p]): [string, TemporalProperty] =>
      p.kind === 'sometimes' ? [n, { kind: 'sometimes', p: watch(`property '${n}'`, p.p) }] : [n, p],
    ),
  );
  return { ...variant, invariants, properties };
}

/**
 * Dependencies through control state, which footprints (context paths) do
 * not see, read off the machine's definition:
 * - a guard `stateIn(...)` (in `and`/`or`/`not`, named or inline) reads the
 *   control of the actor it names: `reads`;
 * - a transition whose target lies in another actor moves that actor: `writes`;
 * - an `always` transition fires inside whatever step enables it. Guarded by
 *   `stateIn` alone, it is enabled only by the moves of the actors it names,
 *   whose steps then move its actor (`writes`); guarded by anything that reads
 *   the context, any step of any actor may fire it, and its actor is dependent
 *   on every other (`everyone`, with the reason);
 * - a transition of the machine's root (not of an actor) may read and move
 *   anything: no actor is independent (`none`, with the reason).
 * Guards and actions of XState v5 see only the context and the event, so no
 * other code reads a state value.
 */
export interface Control {
  readonly reads: ReadonlyMap<string, ReadonlySet<string>>;
  readonly writes: ReadonlyMap<string, ReadonlySet<string>>;
  readonly everyone: ReadonlyMap<string, string>;
  readonly none?: string;
  /** What was found, for the report. */
  readonly notes: readonly string[];
}

/** What a guard reads: the actors whose control it tests, and whether it reads anything else (the context, the event). */
function guardReads(
  guard: unknown,
  machine: AnyStateMachine,
  actorOf: (v: unknown) => string | undefined,
  depth = 0,
): { controls: Set<string>; other: boolean } {
  const out = { controls: new Set<string>(), other: false };
  if (guard === undefined || depth > 32) return { ...out, other: guard !== undefined };
  const named = (name: string) => (machine.implementations.guards as Record<string, unknown>)[name];
  const g =
    typeof guard === 'string'
      ? named(guard)
      : typeof guard === 'object' && guard !== null && 'type' in guard
        ? named((guard as { type: string }).type)
        : guard;
  if (typeof g !== 'function') return { ...out, other: true };
  const f = g as { check?: unknown; stateValue?: unknown; guards?: unknown[] };
  if (f.check !== undefined && 'stateValue' in f) {
    const actor = actorOf(f.stateValue);
    if (actor === undefined) return { ...out, other: true }; // cannot tell which: treat as a read of everything
    out.controls.add(actor);
    return out;
  }
  if (f.check !== undefined && Array.isArray(f.guards)) {
    for (const x of f.guards) {
      const r = guardReads(x, machine, actorOf, depth + 1);
      r.controls.forEach((a) => out.controls.add(a));
      out.other ||= r.other;
    }
    return out;
  }
  return { ...out, other: true };
}

/** The control dependencies of a machine whose root is parallel, its regions the actors. */
export function controlDependencies(machine: AnyStateMachine): Control {
  const reads = new Map<string, Set<string>>();
  const writes = new Map<string, Set<string>>();
  const everyone = new Map<string, string>();
  const notes: string[] = [];
  const root = machine.root;
  const add = (m: Map<string, Set<string>>, a: string, b: string) => {
    const set = m.get(a) ?? new Set<string>();
    set.add(b);
    m.set(a, set);
  };
  if (root.type !== 'parallel') return { reads, writes, everyone, notes }; // one actor: nothing to reduce
  const regionOf = (n: StateNode<any, any>): string | undefined => {
    let x: StateNode<any, any> | undefined = n;
    while (x?.parent !== undefined && x.parent !== root) x = x.parent;
    return x === undefined || x === root ? undefined : x.key;
  };
  const actorOf = (v: unknown): string | undefined => {
    if (typeof v === 'string') {
      if (v.startsWith('#')) {
        try {
          return regionOf(machine.getStateNodeById(v.slice(1)));
        } catch {
          return undefined;
        }
      }
      const first = v.split('.')[0];
      return first in root.states ? first : undefined;
    }
    if (typeof v === 'object' && v !== null) {
      const keys = Object.keys(v);
      return keys.length === 1 && keys[0] in root.states ? keys[0] : undefined;
    }
    return undefined;
  };
  let none: string | undefined;
  const visit = (node: StateNode<any, any>) => {
    const actor = regionOf(node);
    const all = [...node.transitions.values()].flat().concat(node.always ?? []);
    if (actor === undefined) {
      if (all.length > 0)
        none = `the machine's root has transitions of its own (${all.map((t) => t.eventType || 'always').join(', ')}), which may read and move every actor`;
    } else {
      for (const t of all) {
        const g = guardReads(t.guard, machine, actorOf);
        const always = t.eventType === '';
        for (const q of g.controls) {
          if (q === actor) continue;
          add(reads, actor, q);
          notes.push(`${actor} reads the control of ${q} (stateIn in ${node.id}${always ? ', always' : ''})`);
          if (always) add(writes, q, actor); // q's moves fire it: they move `actor`
        }
        if (always && g.other && !everyone.has(actor))
          everyone.set(
            actor,
            `${actor} has an always transition whose guard reads the context (in ${node.id}): any step may fire it`,
          );
        for (const target of t.target ?? []) {
          const q = regionOf(target);
          if (q === undefined) none ??= `a transition of ${actor} (${node.id}) targets the machine's root`;
          else if (q !== actor) {
            add(writes, actor, q);
            notes.push(`${actor} moves ${q} (a transition in ${node.id} targets ${target.id})`);
          }
        }
      }
    }
    Object.values(node.states).forEach(visit);
  };
  visit(root);
  notes.push(...everyone.values());
  if (none !== undefined) notes.push(none);
  return { reads, writes, everyone, ...(none !== undefined && { none }), notes };
}

/** Whether actors p and q may affect each other through control state (either order: the relation is symmetric). */
function controlDependent(c: Control, p: string, q: string): boolean {
  if (c.none !== undefined || c.everyone.has(p) || c.everyone.has(q)) return true;
  const w = (a: string) => c.writes.get(a) ?? new Set<string>();
  const r = (a: string) => c.reads.get(a) ?? new Set<string>();
  // Each actor reads and moves its own control; a write of one meets a read or write of the other.
  const touch = (x: ReadonlySet<string>, ys: ReadonlySet<string>[]) =>
    [...x].some((a) => ys.some((y) => y.has(a)));
  const P = { w: new Set([p, ...w(p)]), r: new Set([p, ...r(p)]) };
  const Q = { w: new Set([q, ...w(q)]), r: new Set([q, ...r(q)]) };
  return touch(P.w, [Q.r, Q.w]) || touch(Q.w, [P.r]);
}

/** The actors whose control a step of p may move: its own, those its transitions target, and every actor an always with a context guard makes dependent on everyone. */
function controlWrites(c: Control, p: string): string[] {
  return [p, ...(c.writes.get(p) ?? []), ...[...c.everyone.keys()].filter((a) => a !== p)];
}

export interface PorStats {
  /** States expanded, and those of them expanded with one actor's steps only. */
  expanded: number;
  reduced: number;
  /** The dependencies through control state found in the machine (controlDependencies), for the report. */
  control?: readonly string[];
}

/**
 * The reduction as an engine: `inner` steps (it may canonicalise under
 * symmetry), `base` is the plain engine footprints are recorded on.
 */
export function withPor<S>(
  inner: Engine<S>,
  base: Engine<S>,
  variant: ResolvedVariant,
  declared: Declared,
  visible: Visible,
  options: PorOptions = {},
  stats: PorStats = { expanded: 0, reduced: 0 },
): Engine<S> {
  const check = options.check ?? true;
  const machineId = variant.machine.id;
  const owners = eventOwners(base.transitionIds, machineId);
  const shared = new Set([...owners.values()].filter((l) => l.length > 1).flat());
  const actors = inner.actors;
  const control = controlDependencies(variant.machine);
  stats.control = control.notes;
  let query: SearchQuery | undefined;
  let cachedState: S | undefined;
  let allowed: Set<string> | null = null;
  const c1 = new Map<string, boolean>();

  /** C1 and C2 for actor p in `node`, with `running` the other actors still running. */
  const independent = (p: string, node: string, running: readonly string[]): boolean => {
    const key = `${p}|${node}|${running.join(',')}`;
    let ok = c1.get(key);
    if (ok !== undefined) return ok;
    const own = declared.at(p, node)?.spec;
    ok =
      own !== undefined &&
      !shared.has(p) &&
      control.none === undefined &&
      !controlWrites(control, p).some((a) => visible.controls.has(a)) &&
      !visible.touchedBy(own.writes) &&
      running.every((q) => {
        const other = q === p || shared.has(q) ? undefined : declared.any(q);
        const verdict =
          other !== undefined &&
          !controlDependent(control, p, q) &&
          !touches(own.writes, [...other.reads, ...other.writes, ...declared.events]) &&
          !touches([...own.reads, ...declared.events], other.writes);
        return q === p || (options.independent ? options.independent(p, q, verdict) : verdict);
      });
    c1.set(key, ok);
    return ok;
  };

  const keyOf = (e: EventObject) => canonical(e, `event '${e.type}'`);

  const expand = (s: S) => {
    stats.expanded++;
    const view = inner.view(s);
    if (check) checkGenerator(declared, variant, view, actors);
    const events = callModel('the event generator (events)', () => variant.events(view));
    const byActor = new Map<string, { key: string; next: S }[]>();
    let enabledActors = 0;
    let blocked = false; // an enabled step of a shared or unowned event type
    for (const e of events) {
      const who = owners.get(e.type) ?? [];
      if (check)
        checkFootprint(
          declared,
          who,
          view.value,
          stepName(base, machineId, s, e, who),
          recordStep(base, s, e),
        );
      const next = inner.step(s, e);
      if (next === null) continue;
      if (who.length !== 1) {
        blocked = true;
        continue;
      }
      let list = byActor.get(who[0]);
      if (list === undefined) {
        list = [];
        byActor.set(who[0], list);
        enabledActors++;
      }
      list.push({ key: keyOf(e), next });
    }
    if (blocked || enabledActors <= 1 || query === undefined) return null;
    const done = inner.terminated(s);
    const running = actors.filter((_, i) => !done[i]);
    const order = [...byActor.entries()].sort((a, b) => a[1].length - b[1].length);
    for (const [p, steps] of order) {
      if (!independent(p, nodePath(actorValue(view.value, p)), running)) continue;
      if (steps.some(({ next }) => query!.closed(inner.fingerprint(next)))) continue; // C3
      stats.reduced++;
      return new Set(steps.map((x) => x.key));
    }
    return null;
  };

  return {
    ...inner,
    attach(q) {
      query = q;
      inner.attach?.(q);
    },
    step(s, event) {
      if (s !== cachedState) {
        allowed = expand(s);
        cachedState = s;
      }
      if (allowed !== null && !allowed.has(keyOf(event))) return null;
      return inner.step(s, event);
    },
  };
}

/** A small seeded generator (the sample must be the same run to run). */
function lcg(seed: number) {
  let x = seed >>> 0 || 1;
  return (n: number) => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return (x >>> 8) % n;
  };
}

export interface SampleOptions {
  readonly walks: number;
  readonly depth: number;
  readonly seed: number;
}

export const DEFAULT_SAMPLE: SampleOptions = { walks: 24, depth: 60, seed: 0x5eed };

/**
 * Random walks on the unreduced graph: every step evaluated in every state
 * visited is recorded and passed to `visit`, with what the predicates read.
 */
export function walkSample<S>(
  variant: ResolvedVariant,
  base: Engine<S>,
  o: SampleOptions,
  visit: (x: {
    s: S;
    view: ModelSnapshot;
    event: EventObject;
    owners: readonly string[];
    fp: Footprint;
    name: () => string;
  }) => void,
  predicateReads: (r: Read) => void,
  onState: (view: ModelSnapshot) => void = () => {},
): void {
  const random = lcg(o.seed);
  const owners = eventOwners(base.transitionIds, variant.machine.id);
  const predicates = [
    ...Object.values(variant.invariants),
    ...Object.values(variant.properties).flatMap((p) => (p.kind === 'sometimes' ? [p.p] : [])),
  ];
  for (let w = 0; w < o.walks; w++) {
    let s = base.initial();
    for (let d = 0; d <= o.depth; d++) {
      const view = base.view(s);
      onState(view);
      for (const p of predicates) recordPredicate(view, base.actors, p).reads.forEach(predicateReads);
      const next: S[] = [];
      for (const event of callModel('the event generator (events)', () => variant.events(view))) {
        const who = owners.get(event.type) ?? [];
        const fp = recordStep(base, s, event);
        visit({ s, view, event, owners: who, fp, name: stepName(base, variant.machine.id, s, event, who) });
        const n = base.step(s, event);
        if (n !== null) next.push(n);
      }
      if (next.length === 0) break;
      s = next[random(next.length)];
    }
  }
}

/** Check the declaration on a sample of the unreduced graph, and collect the visible set the predicates read there. */
export function checkSample<S>(
  variant: ResolvedVariant,
  base: Engine<S>,
  declared: Declared,
  visible: Visible,
  o: SampleOptions = DEFAULT_SAMPLE,
): void {
  walkSample(
    variant,
    base,
    o,
    ({ view, owners, fp, name }) => checkFootprint(declared, owners, view.value, name, fp),
    (r) => visible.add(r),
    (view) => checkGenerator(declared, variant, view, base.actors),
  );
}

/**
 * A declaration learnt from footprints recorded on random walks: per actor
 * the union over the nodes seen, and per node what was seen there. A
 * proposal to review (the walks may miss steps), never used unreviewed.
 */
export function proposeFootprints<S>(
  variant: ResolvedVariant,
  base: Engine<S>,
  o: SampleOptions,
): Footprints {
  const seen = new Map<string, Map<string, { reads: Set<string>; writes: Set<string> }>>();
  const events = new Set<string>();
  walkSample(
    variant,
    base,
    o,
    ({ view, owners, fp }) => {
      for (const actor of owners) {
        const node = nodePath(actorValue(view.value, actor));
        const nodes = seen.get(actor) ?? new Map();
        seen.set(actor, nodes);
        const at = nodes.get(node) ?? { reads: new Set<string>(), writes: new Set<string>() };
        nodes.set(node, at);
        for (const r of fp.reads) at.reads.add(`${r.nav ? '~' : ''}${generalise(r.path)}`);
        for (const w of fp.writes) at.writes.add(generalise(w));
      }
    },
    () => {},
    (view) =>
      recordPredicate(view, base.actors, (v) => variant.events(v)).reads.forEach((r) => {
        if (!r.path.startsWith('$state.')) events.add(`${r.nav ? '~' : ''}${generalise(r.path)}`);
      }),
  );
  const actors: Record<string, { reads: string[]; writes: string[]; states: Record<string, FootprintSpec> }> =
    {};
  for (const [actor, nodes] of seen) {
    const all = { reads: new Set<string>(), writes: new Set<string>() };
    const states: Record<string, FootprintSpec> = {};
    for (const [node, at] of [...nodes].sort(([a], [b]) => (a < b ? -1 : 1))) {
      at.reads.forEach((r) => all.reads.add(r));
      at.writes.forEach((w) => all.writes.add(w));
      states[node] = { reads: tidy(at.reads), writes: tidy(at.writes) };
    }
    actors[actor] = { reads: tidy(all.reads), writes: tidy(all.writes), states };
  }
  return { actors, ...(events.size > 0 && { events: tidy(events) }) };
}

/** Sorted, without paths another one covers; a nav read (`~t1`) only where nothing below it is read. */
function tidy(paths: ReadonlySet<string>): string[] {
  const plain = [...paths].filter((p) => !p.startsWith('~'));
  const navs = [...paths].filter((p) => p.startsWith('~')).map((p) => p.slice(1));
  const keep = plain.filter((p) => !plain.some((q) => q !== p && covers(parsePattern(q), parsePattern(p))));
  for (const n of navs) {
    if (!plain.some((q) => overlap(parsePattern(q), parsePattern(n)))) keep.push(n);
  }
  return [...new Set(keep)].sort();
}
