/**
 * The state an address names: its path's events fired one by one from the
 * initial state, each one required to be an event the model offers there
 * (its event generator) and the machine accepts, exactly the explorer's
 * successor relation. What the page shows of that state: per actor its
 * state, the events enabled for it in the model's uAPI words and what it
 * waits for; every invariant's status; the fields the last step changed.
 * A step the model does not know or the machine rejects ends the walk: the
 * page shows the state before it and says why.
 */
import type { AnyMachineSnapshot, EventObject, StateValue } from 'xstate';
import type { AnyEngine } from '../../explorer/engine.ts';
import { createReferenceEngine } from '../../explorer/engine-reference.ts';
import { transitionName } from '../../explorer/engine.ts';
import { callModel, ModelError, type ResolvedVariant } from '../../explorer/model.ts';
import { formatChange, formatEvent, formatStepLabel } from '../../explorer/report-text.ts';
import { replay } from '../../explorer/trace.ts';
import type { ActorView, EnabledEvent, InvariantView, StateView, StepView } from '../shared/api.ts';
import { type AppAddress, eventToken, tokenType } from '../shared/url.ts';

interface Enabled extends EnabledEvent {
  readonly event: EventObject;
}

/** The events the model offers in `s` that the machine accepts, once each, in the generator's order. */
export function enabledEvents(variant: ResolvedVariant, engine: AnyEngine, s: AnyMachineSnapshot): Enabled[] {
  const offered = callModel('the event generator', () => variant.events(engine.view(s)));
  const seen = new Set<string>();
  const out: Enabled[] = [];
  for (const event of offered) {
    const token = eventToken(event as EventObject & Record<string, unknown>);
    if (seen.has(token)) continue;
    seen.add(token);
    const actors = engine.actorsOf(s, event);
    if (actors.length === 0) continue;
    const label = callModel(`label of ${token}`, () => variant.label?.(event, s)) ?? formatEvent(event);
    out.push({ token, label, actors, event });
  }
  return out;
}

/** Every event type some transition of the machine takes. */
function eventTypes(engine: AnyEngine): Set<string> {
  return new Set(engine.transitionIds.map((id) => id.slice(id.indexOf('#') + 1).replace(/\[\d+\]$/, '')));
}

const list = (xs: readonly string[], max = 8) =>
  xs.length > max ? `${xs.slice(0, max).join(', ')}, … (${xs.length} in all)` : xs.join(', ') || 'none';

/** Fire the address's path; stop at the first step that is not an enabled event, and say why. */
function walkPath(variant: ResolvedVariant, engine: AnyEngine, path: readonly string[]) {
  const known = eventTypes(engine);
  const where = `${variant.modelId} / ${variant.name}`;
  let s = engine.initial();
  const events: EventObject[] = [];
  for (const [i, token] of path.entries()) {
    if (!known.has(tokenType(token))) {
      const error = `step ${i + 1}: '${token}' is not an event of ${where}: no transition takes '${tokenType(token)}'`;
      return { events, error };
    }
    const enabled = enabledEvents(variant, engine, s);
    const e = enabled.find((x) => x.token === token);
    if (!e) {
      const error =
        `step ${i + 1}: the machine does not take ${token} ${i === 0 ? 'in the initial state' : `after step ${i}`}` +
        ` (enabled there: ${list(enabled.map((x) => x.token))})`;
      return { events, error };
    }
    events.push(e.event);
    s = engine.step(s, e.event) as AnyMachineSnapshot;
  }
  return { events, error: undefined };
}

/** A state value as a dotted path: `idle`, `unmapping.listLocked`; parallel regions joined by ', '. */
export function statePath(v: StateValue): string {
  if (typeof v === 'string') return v;
  return Object.entries(v)
    .map(([k, sub]) =>
      sub === undefined || (typeof sub === 'object' && Object.keys(sub).length === 0)
        ? k
        : `${k}.${statePath(sub as StateValue)}`,
    )
    .join(', ');
}

/** The diagram ids of the states an actor is in: every prefix of its state path. */
function activeIds(prefix: string, v: StateValue): string[] {
  if (typeof v === 'string') return [`${prefix}${v}`];
  return Object.entries(v).flatMap(([k, sub]) => [
    `${prefix}${k}`,
    ...(sub && (typeof sub !== 'object' || Object.keys(sub).length)
      ? activeIds(`${prefix}${k}.`, sub as StateValue)
      : []),
  ]);
}

function actorViews(variant: ResolvedVariant, engine: AnyEngine, s: AnyMachineSnapshot, enabled: Enabled[]) {
  const parallel = variant.machine.root.type === 'parallel';
  const done = engine.terminated(s);
  return engine.actors.map((name, i): ActorView => {
    const value = parallel ? (s.value as Record<string, StateValue>)[name] : s.value;
    const mine = enabled
      .filter((e) => e.actors.includes(name))
      .map(({ token, label, actors }) => ({ token, label, actors }));
    const said = variant.waitingFor
      ? callModel(`waitingFor(…, '${name}')`, () => variant.waitingFor?.(s, name))
      : undefined;
    // A model with `waitingFor` says who is blocked; without one, an actor that cannot move is said to be stuck.
    const stuck = !variant.waitingFor && !done[i] && mine.length === 0;
    const waiting = said ?? (stuck ? 'no event enabled for it' : undefined);
    return {
      name,
      state: statePath(value),
      terminated: done[i],
      ...(waiting !== undefined && { waiting }),
      enabled: mine,
      active: activeIds(parallel ? `${name}.` : '', value),
    };
  });
}

function invariantViews(variant: ResolvedVariant, s: AnyMachineSnapshot): InvariantView[] {
  return Object.entries(variant.invariants).map(([name, p]) => {
    try {
      return { name, status: callModel(`invariant '${name}'`, () => p(s)) ? 'holds' : 'violated' };
    } catch (e) {
      return { name, status: 'error', error: (e as Error).message };
    }
  });
}

/**
 * The state `address` names, and what is wrong with the address (as `error`)
 * when something is. A model function that throws (a guard, an assign) is a
 * ModelError naming the model: the page says so, the server goes on.
 */
export function stateView(variant: ResolvedVariant, address: AppAddress, set: string): StateView {
  try {
    return computeView(variant, address, set);
  } catch (e) {
    if (e instanceof ModelError) throw e;
    // xstate's message for a guard that threw spans lines: the guard, then the cause.
    const said = e instanceof Error ? `${e.name}: ${e.message.replace(/\s*\n\s*/g, ' ')}` : String(e);
    throw new ModelError(`a function of model '${variant.modelId}' threw ${said}`);
  }
}

function computeView(variant: ResolvedVariant, address: AppAddress, set: string): StateView {
  const engine = createReferenceEngine(variant.machine);
  const walked = walkPath(variant, engine, address.path);
  const r = replay(variant, walked.events);
  let error = walked.error;
  let at = address.at ?? r.steps.length;
  if (at > r.steps.length) {
    error ??= `at=${at}: the path has ${r.steps.length} step${r.steps.length === 1 ? '' : 's'}`;
    at = r.steps.length;
  }
  const s = r.snapshots[at];
  const enabled = enabledEvents(variant, engine, s);
  const actors = actorViews(variant, engine, s, enabled);
  const last = at > 0 ? r.steps[at - 1] : undefined;
  const fired = at > 0 ? engine.transitionsOf(r.snapshots[at - 1], walked.events[at - 1]) : [];
  const path: StepView[] = r.steps.map((step, i) => ({
    token: address.path[i],
    actors: step.actor.split('+'),
    text: formatStepLabel(step),
    changes: step.changes.map((c) => ({ path: c.path, text: formatChange(c, false) })),
  }));
  return {
    model: variant.modelId,
    variant: variant.name,
    set,
    path,
    at,
    ...(error !== undefined && { error }),
    actors,
    context: s.context,
    changed: last ? path[at - 1].changes : [],
    fired: fired.map((id) => transitionName(id, variant.machine.id)),
    invariants: invariantViews(variant, s),
    deadlock: enabled.length === 0 && actors.some((a) => !a.terminated),
    done: actors.every((a) => a.terminated),
  };
}
