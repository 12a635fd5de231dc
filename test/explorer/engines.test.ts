/**
 * The differential test: xstate's transition() is the reference semantics and
 * the compiled engine must agree with it on every registered model (all
 * variants) and on the test fixtures: along random event sequences, the same
 * enabled-event sets, the same state value and context, the same actors.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { AnyEngine } from '../../explorer/engine.ts';
import { createCompiledEngine, Unsupported } from '../../explorer/engine-compiled.ts';
import { createReferenceEngine } from '../../explorer/engine-reference.ts';
import type { ResolvedVariant } from '../../explorer/model.ts';
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

function enabled(engine: AnyEngine, variant: ResolvedVariant, s: unknown) {
  return variant
    .events(engine.view(s))
    .map((e) => ({ e, next: engine.step(s, e) }))
    .filter((x) => x.next !== null);
}

describe.each(cases)('%s: compiled engine = xstate transition()', (_name, variant) => {
  it('agrees on random event sequences', () => {
    let compiled: AnyEngine;
    try {
      compiled = createCompiledEngine(variant.machine);
    } catch (e) {
      // A machine the compiled engine refuses runs on the reference engine only; nothing to compare.
      expect(e).toBeInstanceOf(Unsupported);
      return;
    }
    const reference = createReferenceEngine(variant.machine);
    expect(compiled.actors).toEqual(reference.actors);
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 60 }), (choices) => {
        let c = compiled.initial();
        let r = reference.initial();
        for (const choice of [...choices, 0]) {
          expect(compiled.encode(c)).toBe(reference.encode(r));
          expect(compiled.fingerprint(c)).toEqual(reference.fingerprint(r));
          expect(compiled.view(c).value).toEqual(reference.view(r).value);
          expect(compiled.view(c).status).toBe(reference.view(r).status);
          expect(compiled.terminated(c)).toEqual(reference.terminated(r));
          const ce = enabled(compiled, variant, c);
          const re = enabled(reference, variant, r);
          expect(ce.map((x) => x.e)).toEqual(re.map((x) => x.e));
          if (ce.length === 0) return;
          const k = choice % ce.length;
          expect(compiled.actorsOf(c, ce[k].e)).toEqual(reference.actorsOf(r, re[k].e));
          expect(compiled.transitionsOf(c, ce[k].e)).toEqual(reference.transitionsOf(r, re[k].e));
          c = ce[k].next;
          r = re[k].next;
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe('the compiled engine refuses what it does not implement', () => {
  it('names the feature and the state', async () => {
    const { setup } = await import('xstate');
    const m = setup({}).createMachine({
      type: 'parallel',
      states: { a: { initial: 'x', states: { x: { entry: () => {} } } } },
    });
    expect(() => createCompiledEngine(m)).toThrow(/entry actions \(state '\(machine\)\.a\.x'\)/);
  });
});
