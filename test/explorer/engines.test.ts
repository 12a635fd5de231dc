/**
 * The differential test: xstate's transition() is the reference semantics and
 * the compiled engine must agree with it on every registered model (all
 * variants) and on the test fixtures:
 * - along random event sequences as long as the model's own BFS depth (its
 *   counterexamples reach that far), the same enabled events, state value,
 *   context, fingerprint, actors and transitions at every step;
 * - over the whole state space, where the reference engine finishes in
 *   reasonable time: the same state and transition counts, depth, coverage
 *   and verdict for every property.
 * Every registered model must run on the compiled engine: a machine it
 * refuses is a failure here, not a skipped comparison.
 *
 * The variants above EXPLORED_STATE_LIMIT states (twelve, 70k to 461k) are
 * not explored whole here: test/models pins their state counts and verdicts on
 * the compiled engine, and exploring them again cost two minutes of `npm
 * test`. They get the refusal check and the step-by-step walks, DEEP_WALK
 * steps long (their BFS depths are 22 to 46); some walk must pass DEEP_WALK.reach.
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import type { AnyEngine } from '../../explorer/engine.ts';
import { createCompiledEngine, Unsupported } from '../../explorer/engine-compiled.ts';
import { createReferenceEngine } from '../../explorer/engine-reference.ts';
import { explore } from '../../explorer/explore.ts';
import type { ResolvedVariant } from '../../explorer/model.ts';
import type { ExploreResult } from '../../explorer/result.ts';
import { registeredModels } from '../../explorer/registry.ts';
import { countersModel } from '../fixtures/counters.ts';
import { graphModel } from '../fixtures/graph.ts';
import { semanticsModel } from '../fixtures/semantics.ts';

const models = await registeredModels();
const cases: [string, ResolvedVariant][] = [
  ...models.flatMap((m) =>
    m.variantNames.map((v) => [`${m.id}/${v}`, m.variant(v)] as [string, ResolvedVariant]),
  ),
  ['fixture counters(3,2)', countersModel(3, 2).variant()],
  ['fixture semantics', semanticsModel.variant()],
  ['fixture graph', graphModel([[1, 2], [0, 3], [3], [], [0]], 3).variant()],
];

/** The reference engine explores about 20x slower: compare whole state spaces up to this size. */
const REFERENCE_STATE_LIMIT = 25_000;
/** Explore whole (for the BFS depth the walks must reach) variants of at most this many states. */
const EXPLORED_STATE_LIMIT = 60_000;
/** The walks' length on larger variants, and the depth some walk must reach there. */
const DEEP_WALK = { length: 80, reach: 20 };

function enabled(engine: AnyEngine, variant: ResolvedVariant, s: unknown) {
  return variant
    .events(engine.view(s))
    .map((e) => ({ e, next: engine.step(s, e) }))
    .filter((x) => x.next !== null);
}

describe.each(cases)('%s: compiled engine = xstate transition()', (_name, variant) => {
  const whole = (variant.expect?.states ?? 0) <= EXPLORED_STATE_LIMIT;
  let compiled: ExploreResult | undefined;
  beforeAll(async () => {
    // Throws (and fails every test here) if the compiled engine refuses a registered model.
    if (whole) compiled = await explore(variant, { engine: 'compiled' });
    else createCompiledEngine(variant.machine);
  });

  it('runs on the compiled engine, and both engines find the same state space and verdicts', async () => {
    if (!compiled) return; // a large variant: refused or not in beforeAll, counts pinned in test/models
    expect(compiled.engine).toBe('compiled');
    if (compiled.states > REFERENCE_STATE_LIMIT) return;
    const reference = await explore(variant, { engine: 'reference' });
    const summary = (r: ExploreResult) => ({
      states: r.states,
      transitions: r.transitions,
      depth: r.depth,
      complete: r.complete,
      properties: r.properties,
      neverFired: r.coverage.neverFired,
      violations: r.violations.map((v) => [v.property, v.kind, v.trace.length]),
    });
    expect(summary(reference)).toEqual(summary(compiled));
  });

  it('agrees step by step on random event sequences as deep as the model', () => {
    const engine = createCompiledEngine(variant.machine);
    const reference = createReferenceEngine(variant.machine);
    expect(engine.actors).toEqual(reference.actors);
    expect(engine.transitionIds).toEqual(reference.transitionIds);
    const depth = compiled ? compiled.depth : DEEP_WALK.reach;
    const length = compiled ? Math.max(depth, 20) + 5 : DEEP_WALK.length;
    let longest = 0;
    fc.assert(
      fc.property(fc.array(fc.nat(), { minLength: length, maxLength: length }), (choices) => {
        let c = engine.initial();
        let r = reference.initial();
        let steps = 0;
        for (const choice of [...choices, 0]) {
          expect(engine.encode(c)).toBe(reference.encode(r));
          expect(engine.fingerprint(c)).toEqual(reference.fingerprint(r));
          expect(engine.view(c).value).toEqual(reference.view(r).value);
          expect(engine.view(c).status).toBe(reference.view(r).status);
          expect(engine.terminated(c)).toEqual(reference.terminated(r));
          const ce = enabled(engine, variant, c);
          const re = enabled(reference, variant, r);
          expect(ce.map((x) => x.e)).toEqual(re.map((x) => x.e));
          if (ce.length === 0) break;
          const k = choice % ce.length;
          expect(engine.actorsOf(c, ce[k].e)).toEqual(reference.actorsOf(r, re[k].e));
          expect(engine.transitionsOf(c, ce[k].e)).toEqual(reference.transitionsOf(r, re[k].e));
          c = ce[k].next;
          r = re[k].next;
          steps++;
        }
        longest = Math.max(longest, steps);
      }),
      { numRuns: 60, seed: 20261129 },
    );
    // Some walk went at least as deep as the BFS does: the comparison is not capped short of the model.
    expect(longest).toBeGreaterThanOrEqual(depth);
  });
});

describe('the compiled engine refuses what it does not implement', () => {
  it('names the feature and the state', async () => {
    const { setup } = await import('xstate');
    const m = setup({}).createMachine({
      type: 'parallel',
      states: { a: { initial: 'x', states: { x: { entry: () => {} } } } },
    });
    expect(() => createCompiledEngine(m)).toThrow(Unsupported);
    expect(() => createCompiledEngine(m)).toThrow(/entry actions \(state '\(machine\)\.a\.x'\)/);
  });
});
