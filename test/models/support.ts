/**
 * What the model tests share: each variant explored once for every test that
 * reads its result, the names of the violated properties, and a
 * counterexample's steps as labels a test can compare with a list.
 */
import { explore } from '../../explorer/explore.ts';
import type { Model } from '../../explorer/model.ts';
import type { ExploreResult, TraceStep } from '../../explorer/result.ts';

/** explore(model.variant(name)) at its default bounds, run once per name. */
export function exploreOnce(model: Model): (name: string) => Promise<ExploreResult> {
  const results = new Map<string, Promise<ExploreResult>>();
  return (name) => {
    let r = results.get(name);
    if (!r) {
      r = explore(model.variant(name));
      results.set(name, r);
    }
    return r;
  };
}

/** The violated properties, sorted (compare with a variant's expect.violated). */
export const violated = (r: ExploreResult): string[] =>
  r.properties
    .filter((p) => p.status === 'violated')
    .map((p) => p.name)
    .sort();

/** The counterexample for `property`, each step as `label(step)`. */
export function traceOf(r: ExploreResult, property: string, label: (s: TraceStep) => string): string[] {
  const v = r.violations.find((x) => x.property === property);
  if (!v) throw new Error(`no counterexample for ${property}`);
  return v.trace.map(label);
}
