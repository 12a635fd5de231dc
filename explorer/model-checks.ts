/**
 * Checking mode: the model bugs the explorer can catch, caught, so that a
 * buggy model gets a model error (exit 2) naming the bug rather than a wrong
 * "holds". On by default; `--no-check` turns it off once a model is trusted.
 *
 * The explorer's speed rests on two promises a model makes: its context is
 * plain data that is never changed in place (the fingerprints and the
 * frontier share unchanged objects between states), and a step is a function
 * of (state, event). Break the first and states silently merge or change
 * after they were stored; break the second and the graph depends on the
 * order of exploration. This wrapper around an engine holds a model to both:
 *
 * - Every context and event is frozen once, deep, as it enters the search
 *   (new objects only: the shared parts were frozen when they first
 *   appeared). While freezing, it checks that the value is plain data. A
 *   write into a frozen object throws in strict code (every ES module); the
 *   step is then re-run on a thawed copy to find which fields it changed.
 * - Where freezing cannot reach (sloppy-mode code ignores writes to frozen
 *   objects; a closure may keep state of its own), the first few firings of
 *   every transition are executed a second time on a thawed deep copy of the
 *   state: a copy the step changed is an in-place change, and a second
 *   successor that differs is a non-deterministic step.
 * - While a step or the initial context runs, Date.now, performance.now,
 *   Math.random, crypto.getRandomValues and `new Date()` throw
 *   (determinism.ts): a model error on the first call, not by chance on a
 *   re-executed step.
 * - What a guard or assign throws is named by the engine
 *   (ModelFunctionError); the search adds the trace that reached the state.
 */
import type { EventObject, StateValue } from 'xstate';
import { deterministic } from './determinism.ts';
import { type Engine, transitionName } from './engine.ts';
import { ModelError, ModelFunctionError } from './model.ts';
import { diff } from './trace.ts';

/** How many firings of each transition are executed twice. */
export const REEXECUTIONS_PER_TRANSITION = 8;

export function checkedEngine<S>(engine: Engine<S>, machineId: string): Engine<S> {
  const twice = new Uint8Array(engine.transitionIds.length);
  const nameOf = (k: number) => transitionName(engine.transitionIds[k], machineId);
  const stateOf = (s: S) => describeValue(engine.view(s).value);
  const contextOf = (s: S) => engine.view(s).context;

  /** The transitions `event` takes in `s`, named: for messages. */
  const takes = (s: S, event: EventObject) => {
    try {
      return engine
        .transitionsOf(s, event)
        .map((id) => transitionName(id, machineId))
        .join(', ');
    } catch {
      return '';
    }
  };

  /** A step that threw: in-place change (a write into a frozen object) or the function's own error. */
  const explain = (s: S, event: EventObject, e: unknown): Error => {
    const cause = e instanceof ModelFunctionError ? e.cause : e;
    if (!isFrozenWrite(cause)) {
      if (e instanceof ModelError) return e;
      return new ModelFunctionError(`event '${event.type}' (${takes(s, event) || 'no transition'})`, e);
    }
    const what = e instanceof ModelFunctionError ? e.what : `event '${event.type}' (${takes(s, event)})`;
    return inPlace(what, s, event, changedByRerun(engine, s, event));
  };

  const inPlace = (what: string, s: S, event: EventObject, changed: string) =>
    new ModelError(
      `${what} changes the context in place when '${event.type}' is fired in state ${stateOf(s)}` +
        `${changed ? `: ${changed}` : ''}; assigns must return new objects (copy what they change)`,
    );

  /** Execute the step again on thawed copies; compare what the copies became and what came out. */
  const rerun = (s: S, event: EventObject, next: S) => {
    const context = structuredClone(contextOf(s));
    const copy = structuredClone(event);
    let again: S | null;
    try {
      again = deterministic(() => engine.step(engine.withContext(s, context), copy));
    } catch {
      again = null; // a difference the comparison below reports
    }
    const touched = [...diff(contextOf(s), context), ...diff(event, copy, 'event')];
    if (touched.length > 0) {
      throw inPlace(`event '${event.type}' (${takes(s, event)})`, s, event, paths(touched));
    }
    if (again === null || engine.encode(again) !== engine.encode(next)) {
      const how =
        again === null
          ? 'accepted once and rejected (or failed) the second time'
          : describeDifference(engine, next, again);
      throw new ModelError(
        `non-deterministic step: '${event.type}' (${takes(s, event)}) in state ${stateOf(s)} ` +
          `gave two different successors (${how}); a step must depend only on the state and the event ` +
          `(no Math.random, Date.now or state kept outside the context)`,
      );
    }
  };

  return {
    ...engine,
    initial() {
      const s = deterministic(() => engine.initial());
      sealValue(contextOf(s), 'context', 'the initial context');
      return s;
    },
    step(s, event) {
      sealValue(event, 'event', `event '${event.type}' from the event generator`);
      let next: S | null;
      try {
        next = deterministic(() => engine.step(s, event));
      } catch (e) {
        throw explain(s, event, e);
      }
      if (next === null) return null;
      const fired = [...engine.lastFired()];
      sealValue(contextOf(next), 'context', fired.map((k) => `assign of ${nameOf(k)}`).join(', '));
      if (fired.some((k) => twice[k] < REEXECUTIONS_PER_TRANSITION)) {
        for (const k of fired) twice[k]++;
        rerun(s, event, next);
      }
      return next;
    },
  };
}

/** A state value as the reports write it: `vmm.idle, mdev.pinning`. */
export function describeValue(v: StateValue): string {
  if (typeof v === 'string') return v;
  const parts = Object.entries(v)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, sub]) => {
      const inner = describeValue(sub as StateValue);
      return inner === '' ? k : `${k}.${inner}`;
    });
  return parts.length > 1 ? `{${parts.join(', ')}}` : (parts[0] ?? '');
}

const FROZEN_WRITE = /read[- ]only|not extensible|Cannot (add|delete|redefine|assign to) property|frozen/i;

function isFrozenWrite(e: unknown): boolean {
  return e instanceof TypeError && FROZEN_WRITE.test(e.message);
}

/** Which fields the step changes, found by running it on a thawed copy (the frozen run threw). */
function changedByRerun<S>(engine: Engine<S>, s: S, event: EventObject): string {
  const original = engine.view(s).context;
  const context = structuredClone(original);
  const copy = structuredClone(event);
  try {
    engine.step(engine.withContext(s, context), copy);
  } catch {
    // the copy still shows what was written before the throw
  }
  return paths([...diff(original, context), ...diff(event, copy, 'event')]);
}

function paths(changes: readonly { path: string }[]): string {
  const names = changes.map((c) => (c.path.startsWith('event') ? c.path : `context.${c.path}`));
  return names.length > 4 ? `${names.slice(0, 4).join(', ')} and ${names.length - 4} more` : names.join(', ');
}

function describeDifference<S>(engine: Engine<S>, a: S, b: S): string {
  const va = engine.view(a);
  const vb = engine.view(b);
  const changes = diff(va.context, vb.context);
  if (changes.length > 0) {
    const c = changes[0];
    return `context.${c.path}: ${JSON.stringify(c.before)} once, ${JSON.stringify(c.after)} the other time`;
  }
  return `state ${describeValue(va.value)} once, ${describeValue(vb.value)} the other time`;
}

/**
 * Deep-freeze a value that enters the search, checking it is plain data on
 * the way. Frozen objects were sealed before (with their whole subtree) and
 * are skipped, so a successor costs only the objects its assigns created.
 */
export function sealValue(x: unknown, path: string, from: string): void {
  switch (typeof x) {
    case 'string':
    case 'boolean':
      return;
    case 'number':
      if (Number.isFinite(x)) return;
      throw notPlain(path, from, `${x}: only finite numbers are plain data`);
    case 'undefined':
      return; // a field set to undefined is an absent field, as in JSON
    case 'object': {
      if (x === null || Object.isFrozen(x)) return;
      if (Array.isArray(x)) {
        for (let i = 0; i < x.length; i++) {
          if (x[i] === undefined) throw notPlain(`${path}[${i}]`, from, 'undefined in a list');
          sealValue(x[i], `${path}[${i}]`, from);
        }
      } else {
        const proto = Object.getPrototypeOf(x);
        if (proto !== Object.prototype && proto !== null) {
          const kind = (x as object).constructor?.name ?? 'object';
          throw notPlain(path, from, `a ${kind} (use sorted arrays for sets, objects for maps)`);
        }
        for (const k of Object.keys(x)) sealValue((x as Record<string, unknown>)[k], `${path}.${k}`, from);
      }
      Object.freeze(x);
      return;
    }
    default:
      throw notPlain(path, from, `a ${typeof x}`);
  }
}

function notPlain(path: string, from: string, what: string): ModelError {
  return new ModelError(`${from} put a value that is not plain data at ${path}: ${what}`);
}
