/**
 * Symmetry reduction: orbit counts in closed form on the benchmark model
 * (regions are interchangeable: multisets of region states), the same
 * verdicts and a counterexample that is concrete and confirmed, and the
 * checks that refuse what is not symmetric: an invariant that singles out an
 * id, and a mutant permute() that does not rename everything.
 */
import { describe, expect, it } from 'vitest';
import { explore } from '../../explorer/explore.ts';
import { leadsTo, ModelError, type ResolvedVariant } from '../../explorer/model.ts';
import { findModel } from '../../explorer/registry.ts';
import { renamings } from '../../explorer/symmetry.ts';

const model = await findModel('explorer/bench/dma-regions.ts');
const regions = (k: number) => model.variant(undefined, { regions: k });
/** Multisets of k region states out of 7: C(k + 6, k). */
const orbits = (k: number) => {
  let c = 1;
  for (let i = 1; i <= k; i++) c = (c * (6 + i)) / i;
  return c;
};

describe('symmetry', () => {
  it("renamings: the product of each set's permutations, identity first", () => {
    const r = renamings({ a: 3, b: 2 });
    expect(r).toHaveLength(12);
    expect(r[0]).toEqual({ a: [0, 1, 2], b: [0, 1] });
    expect(new Set(r.map((p) => JSON.stringify(p))).size).toBe(12);
  });

  it.each([3, 4])('%i regions: one state an orbit, C(k+6, k) of them, the same verdicts', async (k) => {
    const full = await explore(regions(k));
    const reduced = await explore(regions(k), { symmetry: true });
    expect(full.states).toBe(7 ** k);
    expect(reduced.states).toBe(orbits(k));
    expect(reduced.properties).toEqual(full.properties);
    expect(reduced.reductions).toEqual(['symmetry']);
  });

  it('with workers, the same orbits', async () => {
    expect((await explore(regions(4), { symmetry: true, workers: 2 })).states).toBe(orbits(4));
  });

  it('a violation found among representatives comes back as a concrete run, confirmed on transition()', async () => {
    const v = regions(3);
    const twoPinned: ResolvedVariant = {
      ...v,
      invariants: { notTwoPinned: (s: any) => s.context.regions.filter((g: any) => g.pins > 0).length < 2 },
    };
    const full = await explore(twoPinned);
    const reduced = await explore(twoPinned, { symmetry: true });
    expect(reduced.violations.map((x) => [x.property, x.trace.length])).toEqual(
      full.violations.map((x) => [x.property, x.trace.length]),
    );
    const last = reduced.violations[0].trace.at(-1);
    expect(last?.event.type).toBe('MdevPinPages');
  });

  it('temporal properties other than sometimes are not checked under symmetry, and say so', async () => {
    const v = regions(2);
    const r = await explore(
      {
        ...v,
        properties: {
          unpins: leadsTo(
            (s: any) => s.context.regions[0].pins > 0,
            (s: any) => s.context.regions[0].pins === 0,
          ),
        },
      },
      { symmetry: true },
    );
    expect(r.properties.find((p) => p.name === 'unpins')).toMatchObject({ status: 'not checked' });
  });

  it('refuses an invariant that singles out one id', async () => {
    const v = regions(3);
    await expect(
      explore(
        { ...v, invariants: { regionZeroPinsOnce: (s: any) => s.context.regions[0].pins < 2 } },
        { symmetry: true },
      ),
    ).rejects.toThrow(/--symmetry: invariant 'regionZeroPinsOnce' is not symmetric under the renaming/);
  });

  it('catches a mutant permute() that renames only part of the state', async () => {
    const v = regions(3);
    const mutant: ResolvedVariant = {
      ...v,
      symmetry: {
        sets: { region: 3 },
        permute: (c: any, p: any) => ({ regions: [c.regions[p.region[0]], c.regions[1], c.regions[2]] }),
      },
    };
    await expect(explore(mutant, { symmetry: true })).rejects.toThrow(ModelError);
  });

  it('a model that declares no symmetry is a clear error', async () => {
    const m = await findModel('example-locks');
    await expect(explore(m.variant(), { symmetry: true })).rejects.toThrow(
      "--symmetry: model 'example-locks' declares no interchangeable ids",
    );
  });
});

describe('symmetry with a key', () => {
  it('the same orbits whether the representative is sought among all renamings or the sorting ones', async () => {
    const v = regions(4);
    const withKey = await explore(v, { symmetry: true });
    const without = await explore({ ...v, symmetry: { ...v.symmetry!, key: undefined } }, { symmetry: true });
    expect(withKey.states).toBe(orbits(4));
    expect(without.states).toBe(orbits(4));
  });

  it('a key that is not a function of the id alone costs reduction, not soundness', async () => {
    const v = regions(3);
    const bad = await explore(
      { ...v, symmetry: { ...v.symmetry!, key: (_c: unknown, _s: string, i: number) => i } },
      { symmetry: true },
    );
    expect(bad.states).toBeGreaterThanOrEqual(orbits(3));
    expect(bad.states).toBeLessThanOrEqual(7 ** 3);
    expect(bad.properties).toEqual((await explore(v)).properties);
  });
});
