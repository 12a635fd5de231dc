/**
 * View reduction (--view): the same verdict for every property with and
 * without it, on every registered variant that declares a view (at its
 * default sizes and at one larger) and on random guarded-assignment machines
 * (fast-check), with confirmed counterexamples; and the mutants it must
 * catch: views that drop what a guard, an assign or an invariant reads, at
 * once or a few steps later. Without its congruence check the same random
 * views give wrong verdicts, so the check is what keeps the reduction sound.
 */
import fc from 'fast-check';
import { assign, setup } from 'xstate';
import { describe, expect, it } from 'vitest';
import { search } from '../../explorer/bfs.ts';
import { createCompiledEngine } from '../../explorer/engine-compiled.ts';
import { explore } from '../../explorer/explore.ts';
import { defineModel, ModelError, type ResolvedVariant, type View } from '../../explorer/model.ts';
import { registeredModels } from '../../explorer/registry.ts';
import type { ExploreResult } from '../../explorer/result.ts';
import { withView } from '../../explorer/view.ts';
import container, { type Ctx, type Design, machineFor } from '../../machines/container.ts';
import { guardedModel, specArb } from '../fixtures/guarded.ts';

const verdicts = (r: ExploreResult) => Object.fromEntries(r.properties.map((p) => [p.name, p.status]));

/** Explore with and without --view: every verdict the same, each violation a confirmed concrete run. */
async function sameVerdicts(v: ResolvedVariant): Promise<{ full: number; viewed: number }> {
  const full = await explore(v, { check: false });
  const viewed = await explore(v, { view: true });
  expect(viewed.reductions).toEqual(['view']);
  expect(verdicts(viewed)).toEqual(verdicts(full));
  expect(viewed.properties.every((p) => p.status !== 'not checked')).toBe(true);
  // explore() replays every counterexample on transition() before returning it; BFS over a
  // bisimulation quotient finds counterexamples as short as the unreduced search's.
  for (const w of full.violations) {
    const mine = viewed.violations.find((x) => x.property === w.property && x.kind === w.kind);
    expect(mine?.trace.length, w.property).toBe(w.trace.length);
  }
  return { full: full.states, viewed: viewed.states };
}

const models = await registeredModels();
const declared = models.flatMap((m) =>
  m.variantNames
    .map((v) => [`${m.id}/${v}`, m.variant(v)] as [string, ResolvedVariant])
    .filter(([, v]) => v.view !== undefined),
);

describe('view reduction on the registered models', () => {
  it('container, device-close, ioas and exec-handoff declare views', () => {
    expect(new Set(declared.map(([n]) => n.split('/')[0]))).toEqual(
      new Set(['container', 'device-close', 'ioas', 'exec-handoff']),
    );
  });

  it.each(declared)(
    '%s: the same verdict for every property, counterexamples as short, no more states',
    async (_name, v) => {
      const { full, viewed } = await sameVerdicts(v);
      // The container's pins and unmaps leave the most history behind (spec/container.md, Sizes).
      expect(viewed).toBeLessThanOrEqual(v.modelId === 'container' ? full / 4 : full);
    },
    600_000,
  );

  it('container/current at dmas=3: the same verdicts, 147,045 states as 6,161 views', async () => {
    const { full, viewed } = await sameVerdicts(container.variant('current', { dmas: 3 }));
    expect([full, viewed]).toEqual([147_045, 6_161]);
  }, 600_000);

  const model = (id: string) => models.find((m) => m.id === id)!;
  it.each([
    ['container', { mdevs: 2, dmas: 1 }],
    ['device-close', { dmas: 3 }],
    ['ioas', { areas: 3 }],
    ['exec-handoff', { maps: 4 }],
  ] as const)(
    '%s at %o: the same verdict for every property',
    async (id, params) => {
      await sameVerdicts(model(id).variant(undefined, params));
    },
    600_000,
  );

  it('with worker threads, the same views', async () => {
    const v = container.variant('current');
    const one = await explore(v, { view: true });
    const two = await explore(v, { view: true, workers: 2 });
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

/** The container with its view replaced. */
const mutantView = (over: (c: Ctx) => Ctx, design?: Partial<Design>): ResolvedVariant => {
  const v = container.variant('current');
  return { ...v, ...(design && { machine: machineFor(design) }), view: over as View };
};

describe('the view check catches a view that drops what matters', () => {
  it("dropping the driver's view of the mappings (read by its guards) is a model error naming the field", async () => {
    const v = mutantView((c) => ({ ...c, drv: { ...c.drv, view: c.drv.view.map(() => false) } }));
    await expect(explore(v, { view: true })).rejects.toThrow(
      /^--view: the view of model 'container' is not sound: it changes drv\.view\[\d\]: true and false/,
    );
  });

  it('dropping the whole unmap record on a mutant that leaves pins: the invariant differs', async () => {
    const v = mutantView((c) => ({ ...c, lastUnmap: { vmm: null } }), { mutate: 'removeWithPins' });
    const error = await explore(v, { view: true, depth: 6 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelError);
    expect((error as Error).message).toMatch(
      /invariant 'unmapLeavesNoPins' fails in the state, not in its view/,
    );
  });

  it('the declared view on that mutant: the violation is kept, the same shortest trace', async () => {
    const v = { ...container.variant('current'), machine: machineFor({ mutate: 'removeWithPins' }) };
    const full = await explore(v as ResolvedVariant, { depth: 6 });
    const viewed = await explore(v as ResolvedVariant, { depth: 6, view: true });
    expect(verdicts(viewed).unmapLeavesNoPins).toBe('violated');
    expect(verdicts(viewed)).toEqual(verdicts(full));
    const steps = (r: ExploreResult) =>
      r.violations.find((x) => x.property === 'unmapLeavesNoPins')!.trace.map((s) => s.event.type);
    expect(steps(viewed)).toEqual(steps(full));
  });

  it('a field read two steps after it is written: the paired walk finds it', async () => {
    // Write sets `note`, Other does not touch it, then Read's guard reads it. A view dropping
    // `note` agrees with the state on the views of every successor one step after Write;
    // only the walk that steps both on (Other, then Read) sees their futures part.
    type Late = { note: number; done: boolean };
    const machine = setup({ types: { context: {} as Late } }).createMachine({
      id: 'late',
      context: { note: 0, done: false },
      initial: 'a',
      states: {
        a: { on: { Write: { target: 'b', actions: assign({ note: 1 }) } } },
        b: { on: { Other: 'c' } },
        c: {
          on: {
            Read: {
              guard: ({ context }) => context.note === 1,
              target: 'd',
              actions: assign({ done: true }),
            },
          },
        },
        d: { type: 'final' },
      },
    });
    const v = defineModel<Late, { type: string }>({
      id: 'late',
      machine,
      events: () => [{ type: 'Write' }, { type: 'Other' }, { type: 'Read' }],
      invariants: { notDone: (s) => !s.context.done },
      view: (c) => ({ ...c, note: 0 }),
    }).variant();
    expect(verdicts(await explore(v)).notDone).toBe('violated');
    await expect(explore(v, { view: true })).rejects.toThrow(
      /after \{"type":"Other"\} event \{"type":"Read"\} takes late\.c#Read\[0\] in the state, no transition in the view/,
    );
  });
});

/** A random view of a guarded machine: variable `d` set to 0 (sound only when nothing reads it). */
const dropping = (spec: Parameters<typeof guardedModel>[0], d: number): ResolvedVariant => {
  const v = guardedModel(spec).variant();
  const view = (c: { v: Record<string, number> }) => ({ v: { ...c.v, [`x${d}`]: 0 } });
  return { ...v, view: view as View };
};

describe('view reduction: soundness against the unreduced search on random machines', () => {
  it('a random view is refused by the check or gives the same verdicts; both happen', async () => {
    let refused = 0;
    let reduced = 0;
    await fc.assert(
      fc.asyncProperty(specArb(), fc.nat(3), async (spec, k) => {
        const v = dropping(spec, k % spec.vars);
        const full = await explore(v);
        const viewed = await explore(v, { view: true }).catch((e: unknown) => e);
        if (viewed instanceof ModelError && /^--view: .* is not sound/.test(viewed.message)) {
          refused++;
          return;
        }
        if (viewed instanceof Error) throw viewed;
        const r = viewed as ExploreResult;
        expect(verdicts(r)).toEqual(verdicts(full));
        if (r.states < full.states) reduced++;
      }),
      { numRuns: 80, seed: 7 },
    );
    expect(refused).toBeGreaterThan(0);
    expect(reduced).toBeGreaterThan(0);
  }, 300_000);

  it('mutant: without the check, some of the same random views give wrong verdicts', async () => {
    const found = await fc.check(
      fc.asyncProperty(specArb(), fc.nat(3), async (spec, k) => {
        const v = dropping(spec, k % spec.vars);
        const full = await explore(v);
        const engine = withView(createCompiledEngine(v.machine), v, { check: false });
        const r = search(v, engine, { depth: 60, maxStates: 20_000, recordEdges: false });
        const violated = (name: string) => r.firstViolation.has(name);
        return [...Object.keys(v.invariants), 'deadlock'].every(
          (n) => violated(n) === (full.properties.find((p) => p.name === n)?.status === 'violated'),
        );
      }),
      { numRuns: 200, seed: 7 },
    );
    expect(found.failed).toBe(true);
  }, 300_000);
});
