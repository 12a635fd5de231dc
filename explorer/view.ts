/**
 * View reduction (`--view`), TLC's VIEW and Spin's dead-variable reduction:
 * a model declares a function that normalises what of a state can no longer
 * matter (model.ts View): the result of the last call, which only the
 * reports show; the counters of an mm that is dead; the record of an unmap
 * whose range nothing can pin again. The explorer then stores one state per
 * view. An engine wrapper does it, as for symmetry: its `step` returns the
 * view of the successor, so no search strategy changes.
 *
 * Sound when the view is a congruence, that is when a state and its view are
 * bisimilar: the same invariants and temporal predicates, the same events
 * generated, each event enabled in both or in neither, through the same
 * machine transitions, to successors with equal views. Then the graph of
 * views is the quotient of the state graph by a bisimulation, which keeps
 * every invariant verdict, every deadlock and every temporal verdict
 * (fairness included: enabledness and transitions agree). That is checked,
 * not trusted: on the first steps and then on a sample, the successor is
 * compared with its view, event by event, and the two are then stepped side
 * by side along a random walk (a dropped field may be read a few steps
 * later); a view that fails is a model error naming the events and the first
 * field where the futures part.
 *
 * Counterexamples are found among views; representative.ts turns them back
 * into the events of a concrete run, replayed on xstate's transition().
 */
import type { EventObject } from 'xstate';
import type { NamedPredicate } from './bfs.ts';
import type { Engine } from './engine.ts';
import { sameFingerprint } from './fingerprint.ts';
import { callModel, ModelError, type ResolvedVariant, type View } from './model.ts';
import { temporalLabels } from './temporal.ts';
import { diff } from './trace.ts';

/**
 * A check on each of the first CHECK_FIRST steps whose successor the view
 * changes, then on every CHECK_EVERY-th: about half again the search time
 * (explorer/README.md, View).
 */
const CHECK_FIRST = 1000;
const CHECK_EVERY = 499;

/** The state with its context replaced by the model's view of it. */
export function viewer<S>(engine: Engine<S>, view: View): (s: S) => S {
  return (s) => {
    const v = engine.view(s);
    const context = callModel('view', () => view(v.context, v.value));
    return context === v.context ? s : engine.withContext(s, context);
  };
}

/** The first context path at which two states differ, with both values (trace.ts diff, as the reports show changes). */
function firstDifference(a: unknown, b: unknown): string | undefined {
  const [c] = diff(a, b);
  return c && `${c.path}: ${JSON.stringify(c.before)} and ${JSON.stringify(c.after)}`;
}

/** Every state predicate of the variant, named for messages: the invariants, then the temporal properties' parts. */
const predicates = (variant: ResolvedVariant): NamedPredicate[] => [
  ...Object.entries(variant.invariants).map(([name, holds]) => ({ name: `invariant '${name}'`, holds })),
  ...temporalLabels(variant),
];

/** Steps of the paired walk that follows a state and its view after they part (see checkCongruence). */
const WALK = 12;

/**
 * The model's view must be a congruence: checked on a state `n` against its
 * view `m`. Both must agree on every predicate, offer the same events, and
 * take each through the same transitions to successors with equal views.
 * A field the view drops may be read a few steps later, so the two states
 * are then stepped side by side, unnormalised, along a random walk of WALK
 * events, and must agree at every step.
 */
function checkCongruence<S>(
  engine: Engine<S>,
  variant: ResolvedVariant,
  normalise: (s: S) => S,
  n: S,
  m: S,
  random: (k: number) => number,
): void {
  const dropped = firstDifference(engine.view(n).context, engine.view(m).context);
  if (dropped === undefined) return;
  const fail = (what: string, after: readonly EventObject[]) =>
    new ModelError(
      `--view: the view of model '${variant.modelId}' is not sound: it changes ${dropped} (state, view), ` +
        `and ${after.length ? `after ${after.map((e) => JSON.stringify(e)).join(', ')} ` : ''}${what}. ` +
        'A view may only drop what no guard, assign, event generator or property reads.',
    );
  const path: EventObject[] = [];
  for (let k = 0; k <= WALK; k++) {
    const enabled = agreeAt(engine, variant, normalise, n, m, k === 0, (what) => fail(what, path));
    if (enabled.length === 0) return;
    const e = enabled[random(enabled.length)];
    n = engine.step(n, e) as S;
    m = engine.step(m, e) as S;
    path.push(e);
    if (!sameFingerprint(engine.fingerprint(normalise(n)), engine.fingerprint(normalise(m)))) {
      const where = firstDifference(engine.view(normalise(n)).context, engine.view(normalise(m)).context);
      throw fail(`the views part at ${where ?? 'the state value'}`, path);
    }
  }
}

/**
 * `n` and `m` agree on predicates, events and transitions (and, with
 * `successors`, on the views of every successor); returns the enabled events.
 */
function agreeAt<S>(
  engine: Engine<S>,
  variant: ResolvedVariant,
  normalise: (s: S) => S,
  n: S,
  m: S,
  successors: boolean,
  fail: (what: string) => Error,
): EventObject[] {
  const vn = engine.view(n);
  const vm = engine.view(m);
  for (const { name, holds } of predicates(variant)) {
    const a = callModel(name, () => holds(vn));
    if (a !== callModel(name, () => holds(vm)))
      throw fail(`${name} ${a ? 'holds' : 'fails'} in the state, not in its view`);
  }
  const events = callModel('events', () => variant.events(vn)) as EventObject[];
  if (JSON.stringify(events) !== JSON.stringify(callModel('events', () => variant.events(vm))))
    throw fail('the event generator offers other events in the view');
  const enabled: EventObject[] = [];
  for (const e of events) {
    const tn = engine.transitionsOf(n, e).join();
    const tm = engine.transitionsOf(m, e).join();
    const name = `event ${JSON.stringify(e)}`;
    if (tn !== tm)
      throw fail(`${name} takes ${tn || 'no transition'} in the state, ${tm || 'no transition'} in the view`);
    if (tn === '') continue;
    enabled.push(e);
    if (!successors) continue;
    const a = normalise(engine.step(n, e) as S);
    const b = normalise(engine.step(m, e) as S);
    if (!sameFingerprint(engine.fingerprint(a), engine.fingerprint(b))) {
      const where = firstDifference(engine.view(a).context, engine.view(b).context) ?? 'the state value';
      throw fail(`${name} leads to successors whose views differ at ${where}`);
    }
  }
  return enabled;
}

/** `check: false` is the tests' mutant: the same reduction without its congruence check. */
export function withView<S>(
  engine: Engine<S>,
  variant: ResolvedVariant,
  options = { check: true },
): Engine<S> {
  if (variant.view === undefined)
    throw new ModelError(`--view: model '${variant.modelId}' declares no view (View in explorer/model.ts)`);
  const normalise = viewer(engine, variant.view);
  /** Steps whose successor the view changed: the ones a check can learn from. */
  let changed = 0;
  let seed = 0x9e3779b9;
  const random = (k: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return (seed >>> 8) % k;
  };
  /** The transitions of the last step the search asked for, when a check stepped since. */
  let fired: readonly number[] | null = null;
  return {
    ...engine,
    initial: () => normalise(engine.initial()),
    step(s, event) {
      const n = engine.step(s, event);
      fired = null;
      if (n === null) return null;
      const m = normalise(n);
      if (!options.check || m === n) return m;
      changed++;
      if (changed <= CHECK_FIRST || changed % CHECK_EVERY === 0) {
        fired = [...engine.lastFired()];
        checkCongruence(engine, variant, normalise, n, m, random);
      }
      return m;
    },
    lastFired: () => fired ?? engine.lastFired(),
  };
}
