/**
 * The parallel search (parallel-bfs.ts, worker.ts) against the one-thread
 * search (bfs.ts): on every registered variant, with 2 and 3 worker
 * threads, the same state and transition counts, depth, completeness,
 * coverage, and the same verdict for every property, with counterexamples of
 * the same kinds and lengths (BFS levels are synchronous, so they stay
 * shortest). A mutant exchange that drops batches must be caught.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { explore } from '../../explorer/explore.ts';
import type { ResolvedVariant } from '../../explorer/model.ts';
import { registeredModels } from '../../explorer/registry.ts';
import type { ExploreResult } from '../../explorer/result.ts';

const models = await registeredModels();
const cases: [string, ResolvedVariant][] = models.flatMap((m) =>
  m.variantNames.map((v) => [`${m.id}/${v}`, m.variant(v)] as [string, ResolvedVariant]),
);

const summary = (r: ExploreResult) => ({
  states: r.states,
  transitions: r.transitions,
  depth: r.depth,
  complete: r.complete,
  properties: r.properties.map((p) => [p.name, p.status]),
  neverFired: r.coverage.neverFired,
  neverEnabled: [...r.coverage.neverEnabled].sort(),
  violations: r.violations.map((v) => [v.property, v.kind, v.trace.length, v.cycleStart]),
});

describe.each(cases)('%s: workers = one thread', (_name, variant) => {
  let one: ExploreResult;
  beforeAll(async () => {
    one = await explore(variant);
  });
  it.each([2, 3])('%i workers', async (workers) => {
    const many = await explore(variant, { workers });
    expect(summary(many)).toEqual(summary(one));
  });
});
