/**
 * View reduction (`--view`), TLC's VIEW and Spin's dead-variable reduction:
 * a model declares what of a state can no longer matter (model.ts View): the
 * result of the last call, which only the reports show; the counters of an
 * mm that is dead. The explorer then stores one state per view. An engine
 * wrapper does it, as for symmetry: its `initial` and `step` return views,
 * so no search strategy changes.
 *
 * A checked view is a projection (model.ts Projection): it forgets declared
 * fields, setting them to a canonical value, in declared states. It is proved
 * on every state the search evaluates, not sampled (explorer/README.md,
 * Reductions, has the argument). In each stored view v, with F(v) the
 * fields it forgets there:
 * 1. no predicate (invariant, temporal predicate, the event generator) reads
 *    a field of F(v), nor does a step from v (its guards and actions, through
 *    footprint.ts's read recorder);
 * 2. every field of F(v) is, in each successor n, written by the step (its
 *    value is no longer the canonical one) or forgotten again (in F(n));
 * 3. the `when` conditions that decide F read no field any rule may forget,
 *    so a state and its view forget the same fields.
 * Then every state and its view have the same future and the graph of views
 * is the exact quotient of the state graph. A failure is a model error that
 * says which field the view forgets, in which state, and what reads it.
 *
 * An arbitrary function of the context (`view: (context, value) => ...`)
 * cannot be proved this way: it runs only with `--view=unchecked`, and the
 * result then carries the assumption (result.ts `assumptions`).
 *
 * Counterexamples are found among views; representative.ts turns them back
 * into the events of a concrete run, replayed on xstate's transition().
 */
import type { EventObject, StateValue } from 'xstate';
import { type Engine, transitionName } from './engine.ts';
import { type Pattern, parsePattern, prefixOf } from './footprint.ts';
import { FieldReads, FingerprintSet, watchTrie } from './view-reads.ts';
import {
  callModel,
  type Forget,
  isProjection,
  type ModelSnapshot,
  ModelError,
  type Projection,
  type ResolvedVariant,
  type StatePredicate,
  type View,
} from './model.ts';
import { temporalLabels } from './temporal.ts';

/** `--view` checks a projection on every step; `--view=unchecked` runs any view unchecked, as an assumption. */
export type ViewMode = boolean | 'unchecked';

/** The assumption a result carries when its view was not checked (result.ts `assumptions`). */
export const UNCHECKED_VIEW =
  'unchecked view: every verdict assumes the model’s view keeps every state’s future';

/** The note every verdict of such a result carries. */
export const ASSUMING_VIEW = 'assuming the unchecked view';

/** One concrete field a projection forgets in a state. */
interface Forgotten {
  /** The dotted path and its segments. */
  readonly path: string;
  readonly segments: readonly string[];
  readonly value: Forget['value'];
}

interface Rule {
  readonly patterns: readonly Pattern[];
  readonly value: Forget['value'];
  readonly in?: readonly StateValue[];
  readonly when?: Forget['when'];
}

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null;

/** A projection's declaration checked and compiled; a ModelError naming what is malformed. */
function compile(modelId: string, p: Projection): Rule[] {
  const bad = (what: string) => new ModelError(`--view: the projection of model '${modelId}' ${what}`);
  if (!Array.isArray(p.forget) || p.forget.length === 0) throw bad('forgets nothing (forget: [] is empty)');
  const rules = p.forget.map((f, k) => {
    if (!Array.isArray(f.fields) || f.fields.length === 0) throw bad(`has no fields in forget[${k}]`);
    for (const field of f.fields) {
      if (typeof field !== 'string' || field === '' || field.split('.').some((s) => s === ''))
        throw bad(
          `has a malformed field ${JSON.stringify(field)} in forget[${k}] (dotted keys, '*' for any)`,
        );
    }
    if (f.value !== null && !['boolean', 'number', 'string'].includes(typeof f.value))
      throw bad(`forget[${k}]: the canonical value must be null, a boolean, a number or a string`);
    if (f.when !== undefined && typeof f.when !== 'function')
      throw bad(`forget[${k}]: when must be a function`);
    return { patterns: f.fields.map(parsePattern), value: f.value, in: f.in, when: f.when };
  });
  // One field under another would make what is forgotten depend on what was forgotten.
  const all = rules.flatMap((r) => r.patterns);
  for (let i = 0; i < all.length; i++) {
    for (let j = i + 1; j < all.length; j++) {
      if (prefixOf(all[i], all[j]) || prefixOf(all[j], all[i]))
        throw bad(
          `declares ${all[i].join('.')} and ${all[j].join('.')}, which overlap: forget each field once`,
        );
    }
  }
  return rules;
}

/** Every concrete path of the context that a pattern matches, with the keys its `*`s stand for. */
function expand(context: unknown, pattern: Pattern): { segments: string[]; keys: string[] }[] {
  let at: { value: unknown; segments: string[]; keys: string[] }[] = [
    { value: context, segments: [], keys: [] },
  ];
  for (const seg of pattern) {
    const next: typeof at = [];
    for (const { value, segments, keys } of at) {
      if (!isObject(value)) continue;
      if (seg === '*') {
        for (const k of Object.keys(value))
          next.push({ value: value[k], segments: [...segments, k], keys: [...keys, k] });
      } else if (Object.prototype.hasOwnProperty.call(value, seg)) {
        next.push({ value: value[seg], segments: [...segments, seg], keys });
      }
    }
    at = next;
  }
  return at.map(({ segments, keys }) => ({ segments, keys }));
}

const byPath = (forgotten: readonly Forgotten[], path: string): Forgotten =>
  forgotten.find((f) => f.path === path) as Forgotten;

/** A snapshot whose context reads are recorded by `r`; its control state is never forgotten. */
function recorded(snap: ModelSnapshot, r: FieldReads): ModelSnapshot {
  const context = r.wrap(snap.context);
  return {
    get value() {
      return snap.value;
    },
    get status() {
      return snap.status;
    },
    context,
    matches: (v) => snap.matches(v),
  };
}

/** The value at a path of segments, or undefined. */
function valueAt(x: unknown, segments: readonly string[]): unknown {
  let v = x;
  for (const k of segments) {
    if (!isObject(v)) return undefined;
    v = v[k];
  }
  return v;
}

/** The context with the forgotten fields set to their canonical values (new objects on the way; the same context when nothing changes). */
function forgetIn(context: unknown, forgotten: readonly Forgotten[]): unknown {
  let out = context;
  for (const f of forgotten) {
    if (valueAt(out, f.segments) === f.value) continue;
    const set = (x: unknown, i: number): unknown => {
      if (i === f.segments.length) return f.value;
      const o = x as Record<string, unknown>;
      const k = f.segments[i];
      const copy: Record<string, unknown> | unknown[] = Array.isArray(o) ? [...o] : { ...o };
      (copy as Record<string, unknown>)[k] = set(o[k], i + 1);
      return copy;
    };
    out = set(out, 0);
  }
  return out;
}

const describeValue = (v: StateValue) => (typeof v === 'string' ? v : JSON.stringify(v));

/** The model's view, as a function from state to view; for a projection, also what it forgets where. */
export function viewer<S>(engine: Engine<S>, view: View): (s: S) => S {
  if (!isProjection(view)) {
    return (s) => {
      const v = engine.view(s);
      const context = callModel('view', () => view(v.context, v.value));
      return context === v.context ? s : engine.withContext(s, context);
    };
  }
  const { project } = projector(engine, view, '');
  return project;
}

function projector<S>(engine: Engine<S>, projection: Projection, modelId: string) {
  const rules = compile(modelId, projection);
  const forgettable = watchTrie(rules.flatMap((r) => r.patterns));
  /**
   * The fields forgotten in a state. With `checkWhen`, check 3: no `when`
   * reads a field any rule may forget, so a state and its view forget the
   * same fields.
   */
  const forgottenIn = (snap: ModelSnapshot, checkWhen = false): Forgotten[] => {
    const out: Forgotten[] = [];
    rules.forEach((rule, k) => {
      if (rule.in !== undefined && !rule.in.some((v) => snap.matches(v))) return;
      for (const pattern of rule.patterns) {
        for (const { segments, keys } of expand(snap.context, pattern)) {
          if (rule.when !== undefined) {
            const name = `the when of forget[${k}] (${pattern.join('.')}, keys ${JSON.stringify(keys)})`;
            const r = checkWhen ? new FieldReads(forgettable) : undefined;
            const seen = r ? recorded(snap, r) : snap;
            const holds = callModel(name, () =>
              r ? r.during(() => rule.when!(seen, keys)) : rule.when!(seen, keys),
            );
            const [read] = r?.predicateReads() ?? [];
            if (read !== undefined)
              throw new ModelError(
                `--view: the projection of model '${modelId}' is not sound: ${name} reads \`${read}\`, ` +
                  'a field the projection may forget, so a state and its view could forget different fields',
              );
            if (!holds) continue;
          }
          out.push({ path: segments.join('.'), segments, value: rule.value });
        }
      }
    });
    return out;
  };
  const project = (s: S): S => {
    const v = engine.view(s);
    const context = forgetIn(v.context, forgottenIn(v));
    return context === v.context ? s : engine.withContext(s, context);
  };
  return { rules, forgottenIn, project };
}

/** Every state predicate of the variant, named for messages: the invariants, then the temporal properties' parts. */
const predicates = (variant: ResolvedVariant): { name: string; holds: StatePredicate }[] => [
  ...Object.entries(variant.invariants).map(([name, holds]) => ({ name: `invariant '${name}'`, holds })),
  ...temporalLabels(variant),
  { name: 'the event generator (events)', holds: (s) => variant.events(s) as unknown as boolean },
];

/** `check: false` is the tests' mutant: the same reduction without its check. */
export function withView<S>(
  engine: Engine<S>,
  variant: ResolvedVariant,
  mode: ViewMode = true,
  options = { check: true },
): Engine<S> {
  const view = variant.view;
  if (view === undefined)
    throw new ModelError(`--view: model '${variant.modelId}' declares no view (View in explorer/model.ts)`);
  if (mode === 'unchecked') {
    const normalise = viewer(engine, view);
    return {
      ...engine,
      initial: () => normalise(engine.initial()),
      step: (s, e) => nullable(engine.step(s, e), normalise),
    };
  }
  if (!isProjection(view))
    throw new ModelError(
      `--view: model '${variant.modelId}' declares its view as a function, which cannot be checked; ` +
        'declare a projection (forget: [{ fields, value, in, when }], model.ts Projection), ' +
        'or run with --view=unchecked and every verdict will say it rests on that view',
    );
  const { forgottenIn, project } = projector(engine, view, variant.modelId);
  const preds = predicates(variant);
  const modelId = variant.modelId;
  const machineId = variant.machine.id;
  const where = (s: S) => describeValue(engine.view(s).value);
  const unsound = (f: Forgotten, s: S, what: string) =>
    new ModelError(
      `--view: the view of model '${modelId}' is not sound: it forgets \`${f.path}\` in state ${where(s)}, ${what}. ` +
        'A projection may forget only what no guard, action, event generator or property reads there.',
    );

  /** Tries by the fields they watch: a model forgets the same few sets of fields over and over. */
  const tries = new Map<string, ReturnType<typeof watchTrie>>();
  const trieOf = (forgotten: readonly Forgotten[]) => {
    const key = forgotten.map((f) => f.path).join('\n');
    let t = tries.get(key);
    if (t === undefined) {
      if (tries.size > 10_000) tries.clear();
      tries.set(key, (t = watchTrie(forgotten.map((f) => f.segments))));
    }
    return t;
  };
  /** The views whose predicates and `when`s were checked: each state once, however many steps reach it. */
  const checked = new FingerprintSet();

  /** Check 1 for the predicates and check 3, in a view about to be stored; returns what it forgets. */
  const checkState = (s: S): Forgotten[] => {
    const snap = engine.view(s);
    const fp = engine.fingerprint(s);
    if (!checked.add(fp.hi, fp.lo)) return forgottenIn(snap);
    const forgotten = forgottenIn(snap, true);
    if (forgotten.length === 0) return forgotten;
    const trie = trieOf(forgotten);
    for (const { name, holds } of preds) {
      const r = new FieldReads(trie);
      const seen = recorded(snap, r);
      r.during(() => callModel(name, () => holds(seen)));
      const [read] = r.predicateReads();
      if (read !== undefined) throw unsound(byPath(forgotten, read), s, `and ${name} reads it`);
    }
    return forgotten;
  };

  /**
   * Check 1 for one step from a stored view: what its guards and actions
   * read (a value copied by a spread into the object that replaces its own
   * is a copy, not a read: view-reads.ts); a read of a forgotten field is
   * blamed on the guards if they alone read it.
   */
  const checkReads = (s: S, forgotten: readonly Forgotten[], event: EventObject) => {
    const context = engine.view(s).context;
    const trie = trieOf(forgotten);
    const r = new FieldReads(trie);
    const next = r.during(() => engine.step(engine.withContext(s, r.wrap(context)), event));
    const reads = next === null ? r.predicateReads() : r.stepReads(context, engine.view(next).context);
    const [read] = reads;
    if (read === undefined) return;
    const f = byPath(forgotten, read);
    const ev = JSON.stringify(event);
    const guards = new FieldReads(trie);
    const taken = guards.during(() =>
      engine.transitionsOf(engine.withContext(s, guards.wrap(context)), event),
    );
    const byGuard = next === null || guards.predicateReads().has(read);
    throw unsound(
      f,
      s,
      byGuard
        ? `read by the guard of ${ev} in ${where(s)}`
        : `read by the actions of ${taken.map((t) => transitionName(t, machineId)).join(', ')} (event ${ev})`,
    );
  };

  /** What the last stored view forgets, by the state it was computed for (the search steps a state with every event in turn). */
  let last: { s: S; forgotten: Forgotten[] } | undefined;
  const forgottenOf = (s: S): Forgotten[] => {
    if (last?.s !== s) last = { s, forgotten: forgottenIn(engine.view(s)) };
    return last.forgotten;
  };

  return {
    ...engine,
    initial: () => {
      const v = project(engine.initial());
      if (options.check) checkState(v);
      return v;
    },
    step(s, event) {
      const forgotten = options.check ? forgottenOf(s) : [];
      if (forgotten.length > 0) checkReads(s, forgotten, event);
      const n = engine.step(s, event);
      if (n === null) return null;
      const m = project(n);
      if (!options.check) return m;
      const after = checkState(m);
      // Check 2: a field forgotten before the step is overwritten by it or forgotten again.
      if (forgotten.length > 0) {
        const before = engine.view(s).context;
        const context = engine.view(n).context;
        for (const f of forgotten) {
          // Compared with the state's own value, not the canonical one: a state symmetry renamed may not be a view.
          if (valueAt(context, f.segments) !== valueAt(before, f.segments)) continue;
          if (after.some((g) => g.path === f.path)) continue;
          throw unsound(
            f,
            s,
            `and ${JSON.stringify(event)} (${engine
              .transitionsOf(s, event)
              .map((t) => transitionName(t, machineId))
              .join(', ')}) neither writes it ` +
              `nor leads to a state that forgets it (${where(n)}): the state's value would come back`,
          );
        }
      }
      return m;
    },
  };
}

const nullable = <S>(s: S | null, f: (s: S) => S): S | null => (s === null ? null : f(s));
