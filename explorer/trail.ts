/**
 * Trail files (Spin's `.trail`, TLC's `-dumpTrace`): every counterexample
 * `explore` and `walk` find is written as one, and `vfio-mc replay` confirms
 * it. A trail records what is needed to re-run it exactly (the model, where
 * it was loaded from, the variant, the parameters) and what the search saw
 * at each step (the event, the actor, the predicted result), so that a replay
 * can say whether the model still behaves as it did.
 *
 * Replaying re-executes the events on xstate's own `transition()` and judges
 * the trail on its own, not on trust: every invariant after every step,
 * deadlock in the last state, a liveness lasso's cycle closing on itself
 * with the property unsatisfied along it, an unrecoverable state from which
 * no good state is reachable. A recorded result that the model no longer
 * predicts, or an event it no longer accepts, means the trail does not
 * replay (exit 2), as opposed to replaying cleanly (0) or confirming a
 * violation (1).
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { AnyMachineSnapshot, EventObject } from 'xstate';
import { search } from './bfs.ts';
import { createReferenceEngine } from './engine-reference.ts';
import { callModel, ModelError, type ResolvedVariant, type StatePredicate } from './model.ts';
import { checkedEngine } from './model-checks.ts';
import type { TraceStep, Violation, ViolationKind } from './result.ts';
import { RejectedEvent, replay } from './trace.ts';

export const TRAIL_FORMAT = 'vfio-mc trail';

export interface TrailStep {
  readonly actor: string;
  readonly event: EventObject;
  readonly label?: string;
  readonly result?: string;
}

export interface Trail {
  readonly format: typeof TRAIL_FORMAT;
  readonly version: 1;
  readonly model: string;
  /** The model file's absolute path, when it was loaded from a file rather than by registered id. */
  readonly modelFile?: string;
  readonly variant: string;
  readonly params: Readonly<Record<string, number>>;
  readonly property: string;
  readonly kind: ViolationKind;
  readonly cycleStart?: number;
  readonly steps: readonly TrailStep[];
}

export function toTrail(
  v: Violation,
  variant: Pick<ResolvedVariant, 'modelId' | 'name'> & { params?: Readonly<Record<string, number>> },
  modelFile?: string,
): Trail {
  return {
    format: TRAIL_FORMAT,
    version: 1,
    model: variant.modelId,
    ...(modelFile && { modelFile: resolve(modelFile) }),
    variant: variant.name,
    params: variant.params ?? {},
    property: v.property,
    kind: v.kind,
    ...(v.cycleStart !== undefined && { cycleStart: v.cycleStart }),
    steps: v.trace.map((s) => ({
      actor: s.actor,
      event: s.event,
      ...(s.label !== undefined && { label: s.label }),
      ...(s.result !== undefined && { result: s.result }),
    })),
  };
}

/** The file name a counterexample's trail gets: `<model>.<variant>.<property>.trail.json`. */
export const trailName = (model: string, variant: string, property: string): string =>
  `${model}.${variant}.${property}.trail.json`.replace(/[^A-Za-z0-9._-]/g, '_');

/**
 * What a file holds, read leniently: a trail, `explore --json` output (its
 * first violation), a bare trace, or a list of events. Unknown shapes are a
 * ModelError naming the file and what was expected.
 */
export function parseTrail(data: any, file: string): Partial<Trail> & { steps: TrailStep[] } {
  if (data?.format === TRAIL_FORMAT) {
    if (data.version !== 1)
      throw new ModelError(`${file}: trail version ${data.version} is not supported (1 is)`);
    return { ...data, steps: stepsOf(data.steps, file) };
  }
  const first = data?.violations?.[0];
  if (first && data.model) {
    return {
      model: data.model,
      variant: data.variant,
      params: data.params ?? {},
      property: first.property,
      kind: first.kind,
      ...(first.cycleStart !== undefined && { cycleStart: first.cycleStart }),
      steps: stepsOf(first.trace, file),
    };
  }
  const list = Array.isArray(data) ? data : data?.trace;
  if (!Array.isArray(list))
    throw new ModelError(
      `${file}: expected a trail file, explore --json output, a trace, or an array of events`,
    );
  return { steps: stepsOf(list, file) };
}

function stepsOf(list: unknown, file: string): TrailStep[] {
  if (!Array.isArray(list)) throw new ModelError(`${file}: 'steps' must be an array`);
  return list.map((x: any, i: number) => {
    const event = x?.event ?? x;
    if (typeof event?.type !== 'string') throw new ModelError(`${file}: step ${i + 1} has no event type`);
    return {
      actor: typeof x?.actor === 'string' ? x.actor : '',
      event,
      ...(typeof x?.result === 'string' && { result: x.result }),
    };
  });
}

/** A model file recorded in a trail, if it still exists. */
export function recordedModelFile(t: Partial<Trail>): string | undefined {
  return t.modelFile && existsSync(t.modelFile) ? t.modelFile : undefined;
}

export interface Finding {
  readonly property: string;
  readonly kind: ViolationKind;
  /** Step after which it shows (0: the initial state). */
  readonly step: number;
  readonly detail?: string;
}

export interface Mismatch {
  /** 1-based step number. */
  readonly step: number;
  readonly event: string;
  readonly recorded: string;
  readonly model: string;
}

export interface TrailVerdict {
  readonly steps: readonly TraceStep[];
  /** Violations the replay itself confirms. */
  readonly findings: readonly Finding[];
  /** Recorded results the model no longer predicts. */
  readonly mismatches: readonly Mismatch[];
  /** How many recorded results were compared. */
  readonly compared: number;
  /** The violation as a report shows it (swim lanes), including the waits at the end. */
  readonly violation: Violation;
}

/**
 * Replay a trail on `variant` and judge it. Throws a ModelError (exit 2)
 * when an event is not accepted; result mismatches are returned (the caller
 * decides they mean "does not replay").
 */
export function confirmTrail(
  variant: ResolvedVariant,
  t: Partial<Trail> & { steps: TrailStep[] },
): TrailVerdict {
  const r = replay(
    variant,
    t.steps.map((s) => s.event),
  );
  const engine = checkedEngine(createReferenceEngine(variant.machine), variant.machine.id);
  const findings: Finding[] = [];
  const invariants = Object.entries(variant.invariants);
  const seen = new Set<string>();
  r.snapshots.forEach((s, step) => {
    for (const [name, holds] of invariants) {
      if (!seen.has(name) && !callModel(`invariant '${name}'`, () => holds(s))) {
        seen.add(name);
        findings.push({ property: name, kind: 'invariant', step });
      }
    }
  });
  const last = r.snapshots[r.snapshots.length - 1];
  const deadlocked = isDeadlock(variant, engine, last);
  if (deadlocked) findings.push({ property: 'deadlock', kind: 'deadlock', step: t.steps.length });
  const temporal = t.property ? judgeTemporal(variant, engine, r.snapshots, t) : undefined;
  if (temporal) findings.push(temporal);

  const mismatches: Mismatch[] = [];
  let compared = 0;
  t.steps.forEach((s, i) => {
    if (s.result === undefined) return;
    compared++;
    const got = r.steps[i].result ?? '(none)';
    if (got !== s.result)
      mismatches.push({ step: i + 1, event: s.event.type, recorded: s.result, model: got });
  });
  const kind = temporal?.kind ?? (deadlocked ? 'deadlock' : 'invariant');
  return {
    steps: r.steps,
    findings,
    mismatches,
    compared,
    violation: {
      property: t.property ?? '(replay)',
      kind,
      initial: r.snapshots[0].value,
      trace: r.steps,
      ...(t.cycleStart !== undefined && { cycleStart: t.cycleStart }),
      ...(deadlocked && { waiting: waits(variant, last) }),
    },
  };
}

export { RejectedEvent };

function enabledIn(
  variant: ResolvedVariant,
  engine: ReturnType<typeof createReferenceEngine>,
  s: AnyMachineSnapshot,
) {
  const candidates = callModel('the event generator (events)', () => variant.events(s));
  return candidates.filter((e) => engine.step(s, e) !== null);
}

function isDeadlock(
  variant: ResolvedVariant,
  engine: ReturnType<typeof createReferenceEngine>,
  s: AnyMachineSnapshot,
) {
  return enabledIn(variant, engine, s).length === 0 && !engine.terminated(s).every(Boolean);
}

function waits(variant: ResolvedVariant, s: AnyMachineSnapshot) {
  const engine = createReferenceEngine(variant.machine);
  const done = engine.terminated(s);
  return engine.actors
    .filter((_, i) => !done[i])
    .map((actor) => ({
      actor,
      for:
        callModel(`waitingFor(…, '${actor}')`, () => variant.waitingFor?.(s, actor)) ??
        'no event enabled for it',
    }));
}

/** The trail's own temporal property, judged on the replayed states. */
function judgeTemporal(
  variant: ResolvedVariant,
  engine: ReturnType<typeof createReferenceEngine>,
  states: readonly AnyMachineSnapshot[],
  t: Partial<Trail> & { steps: TrailStep[] },
): Finding | undefined {
  const prop = variant.properties[t.property ?? ''];
  if (prop === undefined) return undefined;
  const named = (p: StatePredicate, part: string) => (s: AnyMachineSnapshot) =>
    callModel(`${part} of property '${t.property}'`, () => p(s));
  switch (prop.kind) {
    case 'leadsTo':
    case 'eventually': {
      if (t.cycleStart === undefined) return undefined;
      const q = named(prop.q, 'q');
      const p = prop.kind === 'leadsTo' ? named(prop.p, 'p') : (_: AnyMachineSnapshot) => _ === states[0];
      return lasso(variant, engine, states, t.cycleStart, p, q, t.property!);
    }
    case 'recoverable': {
      const p = named(prop.p, 'p');
      const last = states[states.length - 1];
      if (p(last) || canReach(variant, last, prop.p)) return undefined;
      return {
        property: t.property!,
        kind: 'unrecoverable',
        step: states.length - 1,
        detail: 'no state reachable from the last one satisfies it',
      };
    }
    case 'sometimes':
      return undefined; // a trail of a 'sometimes' violation has no steps to confirm
  }
}

/**
 * A liveness lasso: p at some state, q false from there on through the
 * cycle, and the cycle returning to the state before its first step (or, for
 * a run that stops, no fairly scheduled actor enabled in the last state).
 */
function lasso(
  variant: ResolvedVariant,
  engine: ReturnType<typeof createReferenceEngine>,
  states: readonly AnyMachineSnapshot[],
  cycleStart: number,
  p: (s: AnyMachineSnapshot) => boolean,
  q: (s: AnyMachineSnapshot) => boolean,
  property: string,
): Finding | undefined {
  const from = states.findIndex(p);
  if (from < 0 || states.slice(from).some(q)) return undefined;
  const last = states[states.length - 1];
  if (cycleStart === states.length - 1) {
    const fair = variant.fairness.weak === 'all' ? engine.actors : (variant.fairness.weak ?? []);
    const moving = new Set(enabledIn(variant, engine, last).flatMap((e) => engine.actorsOf(last, e)));
    if (fair.some((a) => moving.has(a))) return undefined;
    return {
      property,
      kind: 'liveness',
      step: cycleStart,
      detail: 'stops in a state where no fair actor is enabled',
    };
  }
  if (engine.encode(states[cycleStart]) !== engine.encode(last)) return undefined;
  return {
    property,
    kind: 'liveness',
    step: cycleStart,
    detail: `the cycle from step ${cycleStart + 1} repeats`,
  };
}

/** Whether some state reachable from `s` satisfies p (a search rooted at `s`). */
function canReach(variant: ResolvedVariant, s: AnyMachineSnapshot, p: StatePredicate): boolean {
  const reference = createReferenceEngine(variant.machine);
  const rooted = { ...reference, initial: () => s };
  const out = search({ ...variant, invariants: { reached: (x) => !p(x) } }, rooted, {
    depth: 1_000_000,
    maxStates: 1_000_000,
    recordEdges: false,
  });
  return out.firstViolation.has('reached');
}
