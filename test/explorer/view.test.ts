/**
 * View reduction (--view): a projection checked on every step the search
 * evaluates. Every registered model's view passes the check at its default
 * size, in one exploration each, with the verdicts its variant expects; the
 * holes a sampled check left (a field the initial state needs, a field read
 * 15 steps after it is forgotten, a view wrong only at one state deep in the
 * graph) are each refused, naming the field and what reads it; a view given
 * as a function runs only with --view=unchecked, and then every verdict says
 * so. On random guarded machines the check refuses a view or the verdicts
 * agree; without the check the same views give wrong verdicts.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { search } from '../../explorer/bfs.ts';
import { run } from './run-cli.ts';
import { createCompiledEngine } from '../../explorer/engine-compiled.ts';
import { explore } from '../../explorer/explore.ts';
import { ModelError, type Projection, type ResolvedVariant } from '../../explorer/model.ts';
import { registeredModels } from '../../explorer/registry.ts';
import type { ExploreResult } from '../../explorer/result.ts';
import { UNCHECKED_VIEW, withView } from '../../explorer/view.ts';
import container, { type Ctx, type Design, machineFor } from '../../machines/container.ts';
import { guardedModel, specArb } from '../fixtures/guarded.ts';
import { armedModel, DEEP, deepModel, LATE, lateModel } from '../fixtures/view-holes.ts';

const verdicts = (r: ExploreResult) => Object.fromEntries(r.properties.map((p) => [p.name, p.status]));
const violated = (r: ExploreResult) =>
  r.properties
    .filter((p) => p.status === 'violated')
    .map((p) => p.name)
    .sort();

const models = await registeredModels();

describe('view reduction on the registered models', () => {
  const declared = models.filter((m) => m.variant().view !== undefined);

  it('container, device-close, ioas and exec-handoff declare views, all of them projections', () => {
    expect(declared.map((m) => m.id).sort()).toEqual(['container', 'device-close', 'exec-handoff', 'ioas']);
    for (const m of declared)
      for (const v of m.variantNames) expect(m.variant(v).view).toHaveProperty('forget');
  });

  // One exploration per model, its default variant at default sizes: the check runs on every step
  // of it, and the verdicts are the ones the variant pins (npm start compares every variant's).
  it.each(declared.map((m) => [m.id, m.variant()] as const))(
    '%s: the projection passes the check on every step; the expected verdicts',
    async (_id, v) => {
      const r = await explore(v, { view: true });
      expect(r.reductions).toEqual(['view']);
      expect(r.assumptions).toBeUndefined();
      expect(violated(r)).toEqual([...(v.expect?.violated ?? [])].sort());
      // Each violation is replayed from the real initial state on transition() by explore() itself.
      expect(r.violations.length).toBe(violated(r).length);
    },
    120_000,
  );

  it('container: fewer states with the view (2,829 views of 19,158 states), and the same with two workers', async () => {
    const v = container.variant('current');
    const one = await explore(v, { view: true });
    const two = await explore(v, { view: true, workers: 2 });
    expect(one.states).toBe(2_829);
    expect(two.states).toBe(one.states);
    expect(verdicts(two)).toEqual(verdicts(one));
  }, 120_000);

  it('a model that declares no view is a clear error', async () => {
    const m = models.find((x) => x.id === 'example-locks')!;
    await expect(explore(m.variant(), { view: true })).rejects.toThrow(
      "--view: model 'example-locks' declares no view",
    );
  });
});

/** What explore() with the view rejects with (a ModelError), or the result. */
const viewed = (v: ResolvedVariant, view: true | 'unchecked' = true) =>
  explore(v, { view }).catch((e: unknown) => {
    if (e instanceof ModelError) return e;
    throw e;
  });

describe('the holes of a sampled check, each refused (they gave a wrong "holds" before)', () => {
  it('a view that forgets a field the initial state needs: refused on the first step, naming field and guard', async () => {
    const v = armedModel({ forget: [{ fields: ['armed'], value: false }] });
    expect(verdicts(await explore(v)).neverFired).toBe('violated');
    const e = await viewed(v);
    expect(e).toBeInstanceOf(ModelError);
    expect((e as Error).message).toBe(
      '--view: the view of model \'armed\' is not sound: it forgets `armed` in state {"a":"idle"}, ' +
        'read by the guard of {"type":"Fire"} in {"a":"idle"}. ' +
        'A projection may forget only what no guard, action, event generator or property reads there.',
    );
  });

  it(`a field read ${LATE} steps after it is forgotten: refused at the read`, async () => {
    const v = lateModel({ forget: [{ fields: ['note'], value: 0 }] });
    expect(verdicts(await explore(v)).notDone).toBe('violated');
    const e = await viewed(v);
    expect((e as ModelError).message).toMatch(
      new RegExp(`forgets \`note\` in state s${LATE}, read by the guard of \\{"type":"Read"\\}`),
    );
    // The events to the state, then the event whose guard reads it.
    expect((e as ModelError).trace).toHaveLength(LATE + 1);
  });

  it(`forgotten only on the way (in s1..s${LATE - 1}): the step into s${LATE}, which keeps it, is refused`, async () => {
    const on = Array.from({ length: LATE - 1 }, (_, i) => `s${i + 1}`);
    const e = await viewed(lateModel({ forget: [{ fields: ['note'], value: 0, in: on }] }));
    expect((e as ModelError).message).toMatch(
      new RegExp(
        `forgets \`note\` in state s${LATE - 1}, and \\{"type":"Other"\\} \\(s${LATE - 1}#Other\\[0\\]\\) neither writes it ` +
          `nor leads to a state that forgets it \\(s${LATE}\\)`,
      ),
    );
  });

  it(`a view wrong only at n = ${DEEP.at}, past the old check's first 1,000 view-changing steps: refused there`, async () => {
    const v = deepModel({ forget: [{ fields: ['note'], value: 1 }] });
    expect(verdicts(await explore(v)).notDone).toBe('violated');
    const e = await viewed(v);
    expect((e as ModelError).message).toMatch(
      /forgets `note` in state run, read by the guard of \{"type":"Read"\}/,
    );
    expect((e as ModelError).trace).toHaveLength(DEEP.at + 1);
  });

  it('a when that reads a field the projection may forget is refused (a state and its view could forget different fields)', async () => {
    const v = lateModel({ forget: [{ fields: ['note'], value: 0, when: (s) => s.context.note === 0 }] });
    const e = await viewed(v);
    expect((e as ModelError).message).toMatch(/the when of forget\[0\] \(note, keys \[\]\) reads `note`/);
  });

  it('an invariant that reads a forgotten field is refused in the initial state', async () => {
    const v = lateModel({ forget: [{ fields: ['done'], value: false }] });
    const e = await viewed(v);
    expect((e as ModelError).message).toMatch(/forgets `done` in state s0, and invariant 'notDone' reads it/);
    expect((e as ModelError).trace).toEqual([]);
  });

  it('overlapping fields and malformed declarations are clear errors', async () => {
    const bad = (p: Projection) => viewed(armedModel(p)).then((e) => (e as Error).message);
    expect(await bad({ forget: [] })).toMatch(/forgets nothing/);
    expect(
      await bad({
        forget: [
          { fields: ['a.*'], value: 0 },
          { fields: ['a.b.c'], value: 0 },
        ],
      }),
    ).toMatch(/declares a\.\* and a\.b\.c, which overlap/);
    expect(await bad({ forget: [{ fields: ['a..b'], value: 0 }] })).toMatch(/malformed field "a..b"/);
    expect(await bad({ forget: [{ fields: ['a'], value: {} as never }] })).toMatch(/canonical value must be/);
  });
});

describe('--view=unchecked: a view function, run as an assumption every verdict carries', () => {
  const fn = armedModel((c) => ({ ...c, armed: false }));

  it('plain --view refuses a function', async () => {
    expect(((await viewed(fn)) as Error).message).toMatch(
      /declares its view as a function, which cannot be checked; declare a projection .* or run with --view=unchecked/,
    );
  });

  it('the result, each verdict and the summary line carry the assumption', async () => {
    const r = (await viewed(fn, 'unchecked')) as ExploreResult;
    expect(r.reductions).toEqual(['view (unchecked)']);
    expect(r.assumptions).toEqual([UNCHECKED_VIEW]);
    // The wrong "holds" the unchecked view gives, labelled as resting on it.
    expect(r.properties.find((p) => p.name === 'neverFired')).toMatchObject({
      status: 'holds',
      note: 'assuming the unchecked view',
    });
    expect(r.properties.every((p) => p.note?.includes('assuming the unchecked view'))).toBe(true);
  });

  it('a counterexample among views that no concrete run has: the view is blamed, not vfio-mc', async () => {
    // Disarmed from the start, and a view that arms it: Fire fires among views, never concretely.
    const v = armedModel((c) => ({ ...c, armed: true }), false);
    expect(verdicts(await explore(v)).neverFired).toBe('holds');
    const e = await viewed(v, 'unchecked');
    expect(e).toBeInstanceOf(ModelError);
    expect((e as Error).message).toMatch(
      /^--view=unchecked: the view of model 'armed' is not sound: no concrete step into class 1 of the trace/,
    );
  });

  it('on the command line: the text and the JSON say it', async () => {
    const out = await run('explore', 'test/fixtures/view-holes.ts', '--view=unchecked', '--no-progress');
    expect(out.stdout).toContain(`ASSUMES ${UNCHECKED_VIEW}`);
    expect(out.stdout).toMatch(/neverFired\s+invariant\s+holds \(assuming the unchecked view\)/);
    const json = await run('explore', 'test/fixtures/view-holes.ts', '--view=unchecked', '--json');
    expect(JSON.parse(json.stdout).assumptions).toEqual([UNCHECKED_VIEW]);
    expect((await run('explore', 'test/fixtures/view-holes.ts', '--view=maybe')).stderr).toMatch(
      /--view takes no value or 'unchecked', got 'maybe'/,
    );
  });
});

afterEach(() => vi.restoreAllMocks());

/** The container with its view replaced. */
const mutantView = (forget: Projection<Ctx>['forget'], design?: Partial<Design>): ResolvedVariant => {
  const v = container.variant('current');
  return { ...v, ...(design && { machine: machineFor(design) }), view: { forget } };
};

describe('the check on the container: projections that forget what matters', () => {
  it("forgetting the driver's view of the mappings (read by its guards): names the field and the guard", async () => {
    const e = await viewed(mutantView([{ fields: ['drv.view.*'], value: false }]));
    expect((e as Error).message).toMatch(
      /^--view: the view of model 'container' is not sound: it forgets `drv\.view\.\d` in state .*, read by the (guard|actions) of/,
    );
  });

  it('forgetting the unmap record on a mutant that leaves pins: the invariant reads it', async () => {
    const e = await viewed(
      mutantView([{ fields: ['lastUnmap.vmm'], value: null }], { mutate: 'removeWithPins' }),
    );
    expect((e as Error).message).toMatch(
      /forgets `lastUnmap\.vmm` .*(invariant 'unmapLeavesNoPins' reads it|read by)/,
    );
  });
});

/** A random projection of a guarded machine: variable `d` forgotten (set to 0) everywhere. */
const dropping = (spec: Parameters<typeof guardedModel>[0], d: number): ResolvedVariant => {
  const v = guardedModel(spec).variant();
  return { ...v, view: { forget: [{ fields: [`v.x${d}`], value: 0 }] } };
};

describe('view reduction: soundness against the unreduced search on random machines', () => {
  it('a random projection is refused by the check or gives the same verdicts; both happen', async () => {
    let refused = 0;
    let reduced = 0;
    await fc.assert(
      fc.asyncProperty(specArb(), fc.nat(3), async (spec, k) => {
        const v = dropping(spec, k % spec.vars);
        const full = await explore(v);
        const r = await viewed(v);
        if (r instanceof ModelError) {
          expect(r.message).toMatch(/^--view: the view of model '.*' is not sound: it forgets `v\.x\d`/);
          refused++;
          return;
        }
        expect(verdicts(r)).toEqual(verdicts(full));
        if (r.states < full.states) reduced++;
      }),
      { numRuns: 60, seed: 7 },
    );
    expect(refused).toBeGreaterThan(0);
    expect(reduced).toBeGreaterThan(0);
  }, 120_000);

  it('mutant: without the check, some of the same random projections give wrong verdicts', async () => {
    const found = await fc.check(
      fc.asyncProperty(specArb(), fc.nat(3), async (spec, k) => {
        const v = dropping(spec, k % spec.vars);
        const full = await explore(v);
        const engine = withView(createCompiledEngine(v.machine), v, true, { check: false });
        const r = search(v, engine, { depth: 60, maxStates: 20_000, recordEdges: false });
        const violatedIn = (name: string) => r.firstViolation.has(name);
        return [...Object.keys(v.invariants), 'deadlock'].every(
          (n) => violatedIn(n) === (full.properties.find((p) => p.name === n)?.status === 'violated'),
        );
      }),
      { numRuns: 200, seed: 7 },
    );
    expect(found.failed).toBe(true);
  }, 120_000);
});
