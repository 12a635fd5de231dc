/**
 * Symmetry reduction: orbit counts in closed form on the benchmark model
 * (regions are interchangeable: multisets of region states), the same
 * verdicts and a counterexample that is concrete and confirmed, and the
 * check, on every stored representative and every renamed copy of it, that
 * refuses what is not symmetric: an invariant or a `sometimes` that singles
 * out an id, a step asymmetric at one pair of values (the holes of the
 * sampled check, issue 23 part 3), a mutant permute() that does not rename
 * everything. `--symmetry=unchecked` runs without it, and says so.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { run } from './run-cli.ts';
import { explore } from '../../explorer/explore.ts';
import { leadsTo, ModelError, type ResolvedVariant, sometimes } from '../../explorer/model.ts';
import { findModel } from '../../explorer/registry.ts';
import type { ExploreResult } from '../../explorer/result.ts';
import { renamings, UNCHECKED_SYMMETRY } from '../../explorer/symmetry.ts';
import { aheadModel, countersModel } from '../fixtures/symmetry-holes.ts';

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
    ).rejects.toThrow(
      /^--symmetry: the renaming region [0-2→ ]+ is not a symmetry of model 'dma-regions': invariant 'regionZeroPinsOnce' holds in state .* and fails in its renamed copy /,
    );
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
    await expect(explore(mutant, { symmetry: true })).rejects.toThrow(
      /^--symmetry: the renaming region .* is not a symmetry of model 'dma-regions': renaming state .* by it and back by its inverse gives another state, so permute\(\) is not a renaming/,
    );
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

const verdicts = (r: ExploreResult) => Object.fromEntries(r.properties.map((p) => [p.name, p.status]));
/** What explore() with symmetry rejects with (a ModelError), or the result. */
const reduced = (v: ResolvedVariant, symmetry: true | 'unchecked' = true) =>
  explore(v, { symmetry }).catch((e: unknown) => {
    if (e instanceof ModelError) return e;
    throw e;
  });

describe('the holes of the sampled check, each refused (they gave a wrong verdict before)', () => {
  it('a step asymmetric at one pair of values, deep in the graph: refused naming renaming, state and event', async () => {
    // Incrementing the last counter when the first two hold 9 and 8 sets `odd`: the representatives sort
    // the counters, so none has 9 before 8, and unchecked the reduced search says "holds".
    const v = countersModel({ oddAt: [9, 8], key: true });
    expect(verdicts(await explore(v)).neverOdd).toBe('violated');
    const wrong = (await reduced(v, 'unchecked')) as ExploreResult;
    expect(verdicts(wrong).neverOdd).toBe('holds');
    const e = await reduced(v);
    expect(e).toBeInstanceOf(ModelError);
    expect((e as Error).message).toMatch(
      /^--symmetry: the renaming id [0-2→ ]+ is not a symmetry of model 'counters': in state run \{"c":\[.*\],"odd":false\}, \{"type":"Inc","r":\d\} leads to .*, but no step of its renamed copy run \{"c":\[9,8,\d\],"odd":false\} leads to the renamed successor/,
    );
  });

  it('the same without a key (the least fingerprint decides the representative)', async () => {
    const v = countersModel({ oddAt: [3, 5] });
    expect(verdicts(await explore(v)).neverOdd).toBe('violated');
    expect(verdicts((await reduced(v, 'unchecked')) as ExploreResult).neverOdd).toBe('holds');
    expect(await reduced(v)).toBeInstanceOf(ModelError);
  });

  it('a sometimes that singles out an id, reachable in one step: refused naming the predicate', async () => {
    const v = aheadModel();
    expect((await explore(v)).properties.find((p) => p.name === 'firstAhead')).toMatchObject({
      status: 'holds',
      note: 'reached after 1 step',
    });
    // Unchecked: no representative has the first counter ahead.
    expect(verdicts((await reduced(v, 'unchecked')) as ExploreResult).firstAhead).toBe('violated');
    expect(((await reduced(v)) as Error).message).toMatch(
      /^--symmetry: the renaming id 0→1 1→0 is not a symmetry of model 'counters': p of property 'firstAhead' fails in state run \{"c":\[0,1\],"odd":false\} and holds in its renamed copy run \{"c":\[1,0\],"odd":false\}/,
    );
  });

  it('a symmetric sometimes is judged on the representatives: found in an orbit, it holds', async () => {
    const v = countersModel({ key: true });
    const some = {
      ...v,
      properties: {
        // Reached only in states the representative sorts: (0, 9, 9) and its renamings.
        oneZeroTwoFull: sometimes(
          (s: any) => s.context.c.filter((x: number) => x === 9).length === 2 && s.context.c.includes(0),
        ),
        allFull: sometimes((s: any) => s.context.c.every((x: number) => x === 9)),
      },
    };
    const full = await explore(some);
    const r = await explore(some, { symmetry: true });
    expect(verdicts(full)).toMatchObject({ oneZeroTwoFull: 'holds', allFull: 'holds' });
    expect(verdicts(r)).toEqual(verdicts(full));
    expect(r.states).toBeLessThan(full.states / 4);
  });

  it('a state fixed by every renaming whose successors are not: the quotient is still exact, and accepted', async () => {
    // From all zeros only counter 0 may move: each renamed copy of that state is the state itself, and the
    // quotient is still exact (one orbit of successors), so the check accepts it and the verdicts agree.
    const v = countersModel({ max: 3 });
    const firstOnly: ResolvedVariant = {
      ...v,
      events: (s: any) => (s.context.c.every((x: number) => x === 0) ? [{ type: 'Inc', r: 0 }] : v.events(s)),
    };
    const full = await explore(firstOnly);
    const r = await explore(firstOnly, { symmetry: true });
    expect(verdicts(r)).toEqual(verdicts(full));
  });
});

describe('--symmetry=unchecked: the assumption every verdict carries', () => {
  it('in the result: the reduction named unchecked, the assumption, a note on every verdict', async () => {
    const r = (await reduced(countersModel({ oddAt: [9, 8], key: true }), 'unchecked')) as ExploreResult;
    expect(r.reductions).toEqual(['symmetry (unchecked)']);
    expect(r.assumptions).toEqual([UNCHECKED_SYMMETRY]);
    expect(r.properties.every((p) => p.note?.includes('assuming the unchecked symmetry'))).toBe(true);
    // A checked run carries none.
    expect((await explore(regions(2), { symmetry: true })).assumptions).toBeUndefined();
  });

  it('cannot be checkpointed: a checkpoint records a checked symmetry only', async () => {
    await expect(
      explore(regions(2), {
        symmetry: 'unchecked',
        checkpoint: { file: '/dev/null', everySeconds: 60, stopRequested: () => false },
      }),
    ).rejects.toThrow('--symmetry=unchecked cannot be checkpointed or resumed');
  });

  it('on the command line: the text and the JSON say it; a bad value is named', async () => {
    const file = 'test/fixtures/symmetry-holes.ts';
    const out = await run('explore', file, '--symmetry=unchecked', '--no-progress', '--no-trails');
    expect(out.stdout).toContain(`ASSUMES ${UNCHECKED_SYMMETRY}`);
    expect(out.stdout).toMatch(/neverOdd\s+invariant\s+holds \(assuming the unchecked symmetry\)/);
    const json = await run('explore', file, '--symmetry=unchecked', '--json', '--no-trails');
    expect(JSON.parse(json.stdout).assumptions).toEqual([UNCHECKED_SYMMETRY]);
    const checked = await run('explore', file, '--symmetry', '--no-progress');
    expect(checked.stderr).toMatch(/--symmetry: the renaming id .* is not a symmetry of model 'counters'/);
    expect((await run('explore', file, '--symmetry=maybe')).stderr).toMatch(
      /--symmetry takes no value or 'unchecked', got 'maybe'/,
    );
  });
});

afterEach(() => vi.restoreAllMocks());
