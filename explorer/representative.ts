/**
 * The reductions that store one state per class (view.ts: equal views;
 * symmetry.ts: one orbit under renamings) find counterexamples as paths of
 * class representatives. A report needs a concrete run: `concreteEvents`
 * finds it from the real initial state, taking at each step an event whose
 * successor's representative is the next one on the path (one exists, since
 * each reduction is checked to be a congruence). The events are then
 * replayed on xstate's transition() like any other trace.
 */
import type { EventObject } from 'xstate';
import type { AnyEngine } from './engine.ts';
import { createReferenceEngine } from './engine-reference.ts';
import { type Fingerprint, sameFingerprint } from './fingerprint.ts';
import { ModelError, type ResolvedVariant, type Symmetry } from './model.ts';
import { canonicalizer, type SymmetryMode } from './symmetry.ts';
import { type ViewMode, viewer } from './view.ts';

export interface Classes {
  readonly symmetry: SymmetryMode;
  readonly view: ViewMode;
}

/** A state's representative under the reductions in use: its view, then the least renaming of that. */
export function representativeOf(engine: AnyEngine, variant: ResolvedVariant, classes: Classes) {
  const viewOf = classes.view && variant.view ? viewer(engine, variant.view) : (s: unknown) => s;
  const orbit = classes.symmetry
    ? canonicalizer(engine, variant.symmetry as Symmetry).canonical
    : (s: unknown) => s;
  return (s: unknown) => orbit(viewOf(s));
}

/** The events of a concrete run whose states have the given representatives' fingerprints. */
export function concreteEvents(
  variant: ResolvedVariant,
  representatives: readonly Fingerprint[],
  classes: Classes,
): EventObject[] {
  const base: AnyEngine = createReferenceEngine(variant.machine);
  const rep = representativeOf(base, variant, classes);
  const fp = (s: unknown) => base.fingerprint(rep(s));
  /**
   * A checked reduction puts every concrete step into the class the search
   * found; only an unchecked view or symmetry can fail to, and that is its fault.
   */
  const lost = (what: string) =>
    classes.view === 'unchecked'
      ? new ModelError(
          `--view=unchecked: the view of model '${variant.modelId}' is not sound: ${what}; ` +
            'the counterexample the search found among views has no concrete run (run without --view to judge)',
        )
      : classes.symmetry === 'unchecked'
        ? new ModelError(
            `--symmetry=unchecked: the symmetry of model '${variant.modelId}' is not sound: ${what}; ` +
              'the counterexample the search found among representatives has no concrete run (run without --symmetry to judge)',
          )
        : new Error(`internal error: ${what}`);
  let s = base.initial();
  if (!sameFingerprint(fp(s), representatives[0])) throw lost('the initial state is not in its class');
  const events: EventObject[] = [];
  for (let i = 1; i < representatives.length; i++) {
    const next = variant
      .events(base.view(s))
      .map((e: EventObject) => ({ e, n: base.step(s, e) }))
      .find(({ n }: { n: unknown }) => n !== null && sameFingerprint(fp(n), representatives[i]));
    if (next === undefined) throw lost(`no concrete step into class ${i} of the trace`);
    events.push(next.e);
    s = next.n;
  }
  return events;
}
