/**
 * Random deep walks: long executions beyond the BFS bound, for models whose
 * state space is too large to exhaust. A walk is an array of choices drawn by
 * fast-check; at each step the walk takes the enabled event the next choice
 * selects (choice mod the number of enabled events), so no run is wasted on
 * events the machine rejects and every array is a valid walk. Every state is
 * checked against the invariants, and a stop in a state where some actor has
 * not terminated is a deadlock. fast-check shrinks a failing array to a short
 * one, and its seed and path reproduce the run exactly (`--replay SEED:PATH`).
 */
import fc from 'fast-check';
import type { EventObject } from 'xstate';
import { chooseEngine } from './engine-choice.ts';
import { callModel, ModelError, requirePositiveIntegers, type ResolvedVariant } from './model.ts';
import type { Violation } from './result.ts';
import { replay } from './trace.ts';

export interface WalkConfig {
  /** Number of random walks. @default 100 */
  readonly runs: number;
  /** Maximum steps a walk. @default 1000 */
  readonly depth: number;
  /** fast-check seed; random when not given. */
  readonly seed?: number;
  /** Reproduce one run: fast-check's seed and counterexample path (with the same depth as the run). */
  readonly replay?: { readonly seed: number; readonly path: string };
  /** Checking mode (model-checks.ts). @default true */
  readonly check?: boolean;
}

export type WalkOptions = Partial<WalkConfig>;

export interface WalkResult {
  readonly model: string;
  readonly variant: string;
  /** The model parameters the variant was built with (`--set`), so that a replay uses the same ones. */
  readonly params: Readonly<Record<string, number>>;
  readonly runs: number;
  /** Steps taken over all walks, shrinking included. */
  readonly steps: number;
  readonly seed: number;
  /** fast-check's counterexample path, with `seed` what `--replay` needs. */
  readonly path?: string;
  readonly violation?: Violation;
  /** Length of the first failing walk found, before shrinking. */
  readonly firstFoundLength?: number;
  readonly shrinks?: number;
}

class WalkFailure extends Error {
  constructor(
    readonly property: string,
    readonly kind: 'invariant' | 'deadlock',
    readonly events: readonly EventObject[],
  ) {
    super(`${kind} ${property} after ${events.length} steps`);
  }
}

export function parseReplay(s: string): { seed: number; path: string } {
  const m = /^(-?\d+):([\d:]+)$/.exec(s);
  if (!m)
    throw new ModelError(
      `--replay must be SEED:PATH as printed by a failing walk (e.g. 42:3:0:1), got '${s}'`,
    );
  return { seed: Number(m[1]), path: m[2] };
}

export function walk(variant: ResolvedVariant, options: WalkOptions = {}): WalkResult {
  const runs = options.runs ?? 100;
  const depth = options.depth ?? 1000;
  requirePositiveIntegers('walk', { runs, depth });
  const { engine } = chooseEngine(variant, 'auto', options.check ?? true);
  const invariants = Object.entries(variant.invariants);
  let first: WalkFailure | undefined;
  let steps = 0;

  /** Run one walk; throw a WalkFailure at the first violation. */
  const run = (choices: readonly number[]) => {
    let s = engine.initial();
    const taken: EventObject[] = [];
    const check = () => {
      const view = engine.view(s);
      for (const [name, holds] of invariants)
        if (!callModel(`invariant '${name}'`, () => holds(view))) fail(name, 'invariant');
    };
    const fail = (property: string, kind: 'invariant' | 'deadlock') => {
      const failure = new WalkFailure(property, kind, [...taken]);
      first ??= failure;
      throw failure;
    };
    const withTrace = <T>(f: () => T): T => {
      try {
        return f();
      } catch (e) {
        if (e instanceof ModelError && e.trace === undefined) e.trace = [...taken];
        throw e;
      }
    };
    withTrace(check);
    for (const choice of choices) {
      const enabled: [EventObject, unknown][] = [];
      const candidates = withTrace(() =>
        callModel('the event generator (events)', () => variant.events(engine.view(s))),
      );
      for (const e of candidates) {
        const next = withTrace(() => engine.step(s, e));
        if (next !== null) enabled.push([e, next]);
      }
      if (enabled.length === 0) {
        if (!engine.terminated(s).every(Boolean)) fail('deadlock', 'deadlock');
        return;
      }
      // While shrinking, a walk that runs past the first failure's length passes: the trace reported
      // is never longer than the first one found, and --replay reproduces exactly that one.
      if (first !== undefined && taken.length >= first.events.length) return;
      const [e, next] = enabled[choice % enabled.length];
      taken.push(e);
      steps++;
      s = next;
      withTrace(check);
    }
  };

  const property = fc.property(
    fc.array(fc.nat({ max: 1 << 16 }), { minLength: 1, maxLength: depth, size: 'max' }),
    (choices) => {
      run(choices);
    },
  );
  const params = options.replay
    ? { seed: options.replay.seed, path: options.replay.path, endOnFailure: true }
    : { numRuns: runs, ...(options.seed !== undefined && { seed: options.seed }) };
  const details = fc.check(property, params);
  const base = {
    model: variant.modelId,
    variant: variant.name,
    params: variant.params,
    runs: details.numRuns,
    seed: details.seed,
  };
  if (!details.failed) return { ...base, steps };
  const failure = details.errorInstance;
  if (!(failure instanceof WalkFailure)) throw failure;
  // Confirm on xstate's transition(): the same events, accepted in the same order.
  const confirmed = replay(variant, failure.events);
  return {
    ...base,
    steps,
    path: details.counterexamplePath ?? undefined,
    firstFoundLength: first?.events.length,
    shrinks: details.numShrinks,
    violation: {
      property: failure.property,
      kind: failure.kind,
      initial: confirmed.snapshots[0].value,
      trace: confirmed.steps,
    },
  };
}
