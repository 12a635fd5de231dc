/**
 * The parallel search (parallel-bfs.ts, worker.ts) against the one-thread
 * search (bfs.ts): with 2 and 3 worker threads, the same state and transition
 * counts, depth, completeness, coverage, and the same verdict for every
 * property, with counterexamples of the same kinds and lengths (BFS levels
 * are synchronous, so they stay shortest).
 *
 * Which variants: every registered variant of at most SMALL states (53 of
 * them, every kind of verdict: safety, deadlock, leadsTo lassos), and one
 * larger variant of four models with 2 workers
 * (many 256 KB exchange batches per level). Agreement does not depend on the
 * size of the graph past a few batches, and the whole registry three times
 * over was a third of `npm test` (555 s of CI's 1,715 s).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { explore } from '../../explorer/explore.ts';
import type { ResolvedVariant } from '../../explorer/model.ts';
import { registeredModels } from '../../explorer/registry.ts';
import type { ExploreResult } from '../../explorer/result.ts';

const SMALL = 25_000;
/** Per model, the larger variant run with 2 workers (chosen for its mix of verdicts). */
const LARGE: Record<string, string> = {
  container: 'vfio-wait', // deadlock, a leadsTo lasso and two invariants, 54,695 states
  'device-close': 'two-unmappers-fixed',
  ioas: 'change-process-none-fixed',
  'bar-mmap': 'pre-aac6db75', // an invariant and two leadsTo lassos, 54,186 states
};

const models = await registeredModels();
const all: [string, ResolvedVariant][] = models.flatMap((m) =>
  m.variantNames.map((v) => [`${m.id}/${v}`, m.variant(v)] as [string, ResolvedVariant]),
);
const small = all.filter(([, v]) => (v.expect?.states ?? 0) <= SMALL);
const large = Object.entries(LARGE).map(([id, v]) => {
  const c = all.find(([name]) => name === `${id}/${v}`);
  if (!c) throw new Error(`parallel.test.ts: no variant ${id}/${v} (renamed? update LARGE)`);
  return c;
});

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

it('the cases cover every registered model', () => {
  const covered = new Set([...small, ...large].map(([name]) => name.split('/')[0]));
  expect([...covered].sort()).toEqual(models.map((m) => m.id).sort());
});

describe.each([
  ...small.map(([name, v]) => [name, v, [2, 3]] as const),
  ...large.map(([name, v]) => [name, v, [2]] as const),
])('%s: workers = one thread', (_name, variant, counts) => {
  let one: ExploreResult;
  beforeAll(async () => {
    one = await explore(variant);
  });
  it.each(counts)('%i workers', async (workers) => {
    const many = await explore(variant, { workers });
    expect(summary(many)).toEqual(summary(one));
  });
});
