/**
 * Partial-order reduction: the same verdict for every safety property and
 * deadlock with and without it, on every registered variant that declares
 * footprints and on random guarded-assignment machines (fast-check), with
 * confirmed counterexamples; and the mutants it must catch: a declaration
 * missing a write (a model error), a wrong independence in the ample
 * computation (the soundness comparison differs).
 */
import fc from 'fast-check';
import { assign, setup } from 'xstate';
import { describe, expect, it } from 'vitest';
import { explore } from '../../explorer/explore.ts';
import { recordStep } from '../../explorer/footprint.ts';
import { createCompiledEngine } from '../../explorer/engine-compiled.ts';
import { defineModel, ModelError, type ResolvedVariant } from '../../explorer/model.ts';
import { registeredModels } from '../../explorer/registry.ts';
import { guardedModel, specArb } from '../fixtures/guarded.ts';
import { CHECKED_STATES, safety, sameSafetyVerdicts } from './por-helpers.ts';

const models = await registeredModels();
const declared = models.flatMap((m) =>
  m.variantNames
    .map((v) => [`${m.id}/${v}`, m.variant(v)] as [string, ResolvedVariant])
    .filter(([, v]) => v.footprints !== undefined),
);

describe('partial-order reduction on the registered models', () => {
  it('container, device-close and ioas declare footprints', () => {
    expect(new Set(declared.map(([n]) => n.split('/')[0]))).toEqual(
      new Set(['container', 'device-close', 'ioas']),
    );
  });

  it.each(declared.filter(([, v]) => (v.expect?.states ?? Infinity) <= CHECKED_STATES))(
    '%s: the same invariant and deadlock verdicts, every violation confirmed',
    (_name, v) => sameSafetyVerdicts(v, true),
    600_000,
  );

  it('a model without footprints is a clear error', async () => {
    const m = models.find((x) => x.id === 'example-locks')!;
    await expect(explore(m.variant(), { por: true })).rejects.toThrow(
      "--por: model 'example-locks' declares no footprints",
    );
  });

  it('--por with worker threads is a clear error', async () => {
    const [, v] = declared[0];
    await expect(explore(v, { por: true, workers: 2 })).rejects.toThrow(
      /--por runs on the one-thread search/,
    );
  });

  it('a declaration missing a write is caught, naming the transition and the path', async () => {
    const v = models.find((m) => m.id === 'container')!.variant('current');
    const fp = v.footprints!;
    const strip = (l: readonly string[] | undefined) => (l ?? []).filter((p) => p !== 'ret.vmm');
    const vmm = fp.actors.vmm;
    const wrong = {
      ...fp,
      actors: {
        ...fp.actors,
        vmm: {
          ...vmm,
          writes: strip(vmm.writes),
          states: Object.fromEntries(
            Object.entries(vmm.states ?? {}).map(([k, s]) => [k, { ...s, writes: strip(s.writes) }]),
          ),
        },
      },
    };
    const error = await explore({ ...v, footprints: wrong }, { por: true }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelError);
    expect((error as Error).message).toMatch(
      /^--por: vmm\.[\w.]+#Vmm\w+\[\d+\] writes ret\.vmm, which footprints/,
    );
  });
});

/**
 * A: x := 1. B: if x = 0 then bad := 1. The invariant bad = 0 fails only if
 * B moves first; A's step disables B's, so A's ample set is unsound.
 */
function raceModel() {
  interface C {
    x: number;
    bad: number;
  }
  const machine = setup({ types: { context: {} as C } }).createMachine({
    id: 'race',
    type: 'parallel',
    context: { x: 0, bad: 0 },
    states: {
      a: { initial: 's', states: { s: { on: { A: { target: 't', actions: assign({ x: 1 }) } } }, t: {} } },
      b: {
        initial: 's',
        states: {
          s: {
            on: { B: { guard: ({ context }) => context.x === 0, target: 't', actions: assign({ bad: 1 }) } },
          },
          t: {},
        },
      },
    },
  });
  return defineModel<C, { type: string }>({
    id: 'race',
    machine,
    events: () => [{ type: 'A' }, { type: 'B' }],
    invariants: { noBad: (s) => s.context.bad === 0 },
    footprints: { actors: { a: { writes: ['x'] }, b: { reads: ['x'], writes: ['bad'] } } },
  }).variant();
}

describe('partial-order reduction: soundness against the unreduced search', () => {
  it('the race: the same verdict with the declared footprints', async () => {
    const v = raceModel();
    expect(safety(await explore(v, { por: true }))).toEqual(safety(await explore(v)));
    expect(safety(await explore(v)).noBad).toBe('violated');
  });

  it('mutant: a wrong independence in the ample computation loses the violation, and the comparison shows it', async () => {
    const v = raceModel();
    const mutant = await explore(v, { por: true, porOptions: { independent: () => true } });
    expect(safety(mutant)).not.toEqual(safety(await explore(v)));
  });

  it('random guarded-assignment machines: reduced and unreduced agree on every invariant and deadlock', async () => {
    await fc.assert(
      fc.asyncProperty(specArb(), async (spec) => {
        const v = guardedModel(spec, 'flat').variant();
        const full = await explore(v);
        const reduced = await explore(v, { por: true });
        expect(safety(reduced)).toEqual(safety(full));
        expect(reduced.states).toBeLessThanOrEqual(full.states);
      }),
      { numRuns: 50, seed: 42 },
    );
  }, 300_000);

  it('random machines catch the mutant independence too', async () => {
    const found = await fc.check(
      fc.asyncProperty(specArb(), async (spec) => {
        const v = guardedModel(spec, 'flat').variant();
        const full = await explore(v);
        const reduced = await explore(v, { por: true, porOptions: { independent: () => true } });
        return JSON.stringify(safety(reduced)) === JSON.stringify(safety(full));
      }),
      { numRuns: 200, seed: 42 },
    );
    expect(found.failed).toBe(true);
  }, 300_000);

  it('the reduction does reduce: independent actors explore fewer states', async () => {
    // Three actors, each cycling its own variable; the invariant reads a fourth that nobody writes.
    const spec = {
      vars: 4,
      actors: [0, 1, 2].map((a) => [[{ write: a, k: 1, move: true }], [{ write: a, k: 2, move: true }]]),
      invariants: [{ a: 3, c: 1 }],
    };
    const v = guardedModel(spec, 'flat').variant();
    const full = await explore(v);
    const reduced = await explore(v, { por: true });
    expect(full.states).toBe(27); // each actor: (s0,0) (s1,1) (s0,2), then (s1,1) again
    expect(reduced.states).toBeLessThan(20);
    expect(safety(reduced)).toEqual(safety(full));
  });

  it('--shortest finds a counterexample as short as the unreduced search', async () => {
    const v = raceModel();
    const full = await explore(v);
    const shortest = await explore(v, { por: true, shortest: true });
    expect(shortest.violations.map((x) => x.trace.length)).toEqual(
      full.violations.map((x) => x.trace.length),
    );
  });
});

/** Actor a bumps three interchangeable counters; actor b flips a flag of its own, then stops. */
function countersWithFlag() {
  interface C {
    n: number[];
    flag: boolean;
  }
  const bump = (r: number) => ({
    guard: ({ context }: { context: C }) => context.n[r] < 2,
    actions: assign(({ context }: { context: C }) => ({ n: context.n.map((x, i) => (i === r ? x + 1 : x)) })),
  });
  const machine = setup({ types: { context: {} as C } }).createMachine({
    id: 'counters-flag',
    type: 'parallel',
    context: { n: [0, 0, 0], flag: false },
    states: {
      a: { on: { B0: bump(0), B1: bump(1), B2: bump(2) } },
      b: {
        initial: 'on',
        states: {
          on: {
            on: {
              Flip: { actions: assign(({ context }) => ({ flag: !context.flag })) },
              Stop: { target: 'off' },
            },
          },
          off: { type: 'final' },
        },
      },
    },
  } as any);
  return defineModel<C, { type: string }>({
    id: 'counters-flag',
    machine,
    events: () => ['B0', 'B1', 'B2', 'Flip', 'Stop'].map((type) => ({ type })),
    invariants: { notAllTwo: (s) => !s.context.n.every((x) => x === 2) },
    symmetry: {
      sets: { c: 3 },
      permute: (c: C, p: Readonly<Record<string, readonly number[]>>) => {
        const n = new Array<number>(3);
        c.n.forEach((x, i) => {
          n[p.c[i]] = x;
        });
        return { ...c, n };
      },
    },
    footprints: { actors: { a: { reads: ['n'], writes: ['n'] }, b: { reads: ['flag'], writes: ['flag'] } } },
  }).variant();
}

describe('partial-order reduction with symmetry', () => {
  it('the same verdicts, no more states than symmetry alone, a confirmed concrete counterexample', async () => {
    const v = countersWithFlag();
    const full = await explore(v);
    const sym = await explore(v, { symmetry: true });
    const por = await explore(v, { por: true });
    const both = await explore(v, { por: true, symmetry: true });
    for (const r of [sym, por, both]) expect(safety(r)).toEqual(safety(full));
    expect(safety(full).notAllTwo).toBe('violated');
    expect(both.reductions).toEqual(['symmetry', 'por']);
    expect(por.states).toBeLessThanOrEqual(full.states);
    expect(both.states).toBeLessThanOrEqual(sym.states);
    expect(both.violations[0].trace.map((x) => x.event.type).filter((t) => t.startsWith('B'))).toHaveLength(
      6,
    );
  });
});

describe('footprint recording', () => {
  const v = raceModel();
  const engine = createCompiledEngine(v.machine);
  it('records the guard read and the assigned write, not the copied fields', () => {
    const fp = recordStep(engine, engine.initial(), { type: 'B' });
    expect(fp.reads.map((r) => r.path).sort()).toEqual(['x']);
    expect(fp.writes).toEqual(['bad']);
  });
  it('a disabled step reads its guard and writes nothing', () => {
    const s = engine.step(engine.initial(), { type: 'A' })!;
    const fp = recordStep(engine, s, { type: 'B' });
    expect(fp.reads.map((r) => r.path)).toEqual(['x']);
    expect(fp.writes).toEqual([]);
  });
});
