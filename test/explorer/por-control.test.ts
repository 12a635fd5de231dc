/**
 * Partial-order reduction through control state and enumeration (issue 23
 * part 4): three small models on which the reduction, before it saw them,
 * lost a reachable deadlock or invariant violation and still said
 * "every evaluated step within its declared footprint":
 * - a guard `stateIn(...)` on another actor (a read of its control state);
 * - a write that fires another actor's `always` transition (a write of its
 *   control state, from inside the step's macrostep);
 * - a decision taken on values read by enumeration (`Object.values`) in an
 *   object the step then rebuilds.
 * Each is compared with the unreduced search, which is the truth.
 */
import { assign, createMachine, setup, stateIn } from 'xstate';
import { describe, expect, it } from 'vitest';
import { createCompiledEngine } from '../../explorer/engine-compiled.ts';
import { createReferenceEngine } from '../../explorer/engine-reference.ts';
import type { AnyEngine } from '../../explorer/engine.ts';
import { explore } from '../../explorer/explore.ts';
import { recordStep } from '../../explorer/footprint.ts';
import { defineModel, ModelError } from '../../explorer/model.ts';
import { formatReport } from '../../explorer/report-text.ts';
import { safety } from './por-helpers.ts';

/**
 * a: a0 -A/A2-> a final state. b: b0 -B-> b1 (final), B guarded by
 * stateIn(a in a0). After A first, b is stuck in b0: a deadlock. a has two
 * steps and b one, so b is the candidate ample set; its footprint (no context
 * at all) is independent of a's, but its guard reads a's control.
 */
function stateInModel() {
  const machine = createMachine({
    id: 'ctl',
    type: 'parallel',
    states: {
      a: {
        initial: 'a0',
        states: { a0: { on: { A: 'a1', A2: 'a2' } }, a1: { type: 'final' }, a2: { type: 'final' } },
      },
      b: {
        initial: 'b0',
        states: { b0: { on: { B: { guard: stateIn('#ctl.a.a0'), target: 'b1' } } }, b1: { type: 'final' } },
      },
    },
  });
  return defineModel<Record<string, never>, { type: string }>({
    id: 'state-in',
    machine,
    events: () => ['A', 'A2', 'B'].map((type) => ({ type })),
    invariants: {},
    footprints: { actors: { a: {}, b: {} } },
  }).variant();
}

/**
 * a: a0 -A/A2 (x := 1)-> a final state. b: b0 -B-> b1 (final); in b0,
 * `always` to `stuck` when x = 1. A first fires b's always inside A's
 * macrostep: b is stuck, a deadlock. The always guard reads x in the context
 * A just built, which no recorded step ever sees.
 */
function alwaysModel() {
  const machine = setup({ types: { context: {} as { x: number } } }).createMachine({
    id: 'alw',
    type: 'parallel',
    context: { x: 0 },
    states: {
      a: {
        initial: 'a0',
        states: {
          a0: {
            on: {
              A: { target: 'a1', actions: assign({ x: 1 }) },
              A2: { target: 'a2', actions: assign({ x: 1 }) },
            },
          },
          a1: { type: 'final' },
          a2: { type: 'final' },
        },
      },
      b: {
        initial: 'b0',
        states: {
          b0: { always: { guard: ({ context }) => context.x === 1, target: 'stuck' }, on: { B: 'b1' } },
          b1: { type: 'final' },
          stuck: {},
        },
      },
    },
  });
  return defineModel<{ x: number }, { type: string }>({
    id: 'always',
    machine,
    events: () => ['A', 'A2', 'B'].map((type) => ({ type })),
    invariants: {},
    footprints: { actors: { a: { writes: ['x'] }, b: {} } },
  }).variant();
}

/**
 * a: A sets o.a (o also holds k, a constant nobody writes). b: B sets bad
 * when no field of o is true, a decision taken on Object.values(o), and
 * rebuilds o unchanged. B before A violates bad = 0. Before the fix the
 * enumerated values were taken for copies (o is rebuilt), so b's declaration
 * passed without o.a, a was ample (it writes o.a, which b "never reads"), and
 * the reduction only ever ran A first.
 */
function enumerationModel() {
  interface C {
    o: { a: boolean; k: number };
    bad: number;
  }
  const machine = setup({ types: { context: {} as C } }).createMachine({
    id: 'enum',
    type: 'parallel',
    context: { o: { a: false, k: 0 }, bad: 0 },
    states: {
      a: {
        initial: 's',
        states: {
          s: {
            on: { A: { target: 't', actions: assign(({ context }) => ({ o: { ...context.o, a: true } })) } },
          },
          t: {},
        },
      },
      b: {
        initial: 's',
        states: {
          s: {
            on: {
              B: {
                target: 't',
                actions: assign(({ context }) => ({
                  bad: Object.values(context.o).some((f) => f === true) ? 0 : 1,
                  o: { ...context.o },
                })),
              },
            },
          },
          t: {},
        },
      },
    },
  });
  return (bReads: string[]) =>
    defineModel<C, { type: string }>({
      id: 'enumeration',
      machine,
      events: () => ['A', 'B'].map((type) => ({ type })),
      invariants: { noBad: (s) => s.context.bad === 0 },
      footprints: { actors: { a: { reads: ['o'], writes: ['o.a'] }, b: { reads: bReads, writes: ['bad'] } } },
    }).variant();
}

describe('partial-order reduction sees control state', () => {
  it('stateIn on another actor: the deadlock is found under --por, as without it', async () => {
    const v = stateInModel();
    const full = await explore(v);
    expect(safety(full).deadlock).toBe('violated');
    const reduced = await explore(v, { por: true });
    expect(safety(reduced)).toEqual(safety(full));
    expect(reduced.partialOrder?.control).toEqual(['b reads the control of a (stateIn in ctl.b.b0)']);
    expect(formatReport(reduced, ['a', 'b']).replace(/\s+/g, ' ')).toContain(
      'dependent through control state: b reads the control of a (stateIn in ctl.b.b0)',
    );
  });

  it('an always guarded by stateIn alone: the actor it names moves it, and the deadlock is found', async () => {
    // b0 -> stuck as soon as a is in a1; a's two steps (to a1, to a2) leave b either stuck or free.
    const machine = createMachine({
      id: 'ctl2',
      type: 'parallel',
      states: {
        a: {
          initial: 'a0',
          states: { a0: { on: { A: 'a1', A2: 'a2' } }, a1: { type: 'final' }, a2: { type: 'final' } },
        },
        b: {
          initial: 'b0',
          states: {
            b0: { always: { guard: stateIn({ a: 'a1' }), target: 'stuck' }, on: { B: 'b1' } },
            b1: { type: 'final' },
            stuck: {},
          },
        },
      },
    });
    const v = defineModel<Record<string, never>, { type: string }>({
      id: 'always-state-in',
      machine,
      events: () => ['A', 'A2', 'B'].map((type) => ({ type })),
      invariants: {},
      footprints: { actors: { a: {}, b: {} } },
    }).variant();
    const full = await explore(v);
    expect(safety(full).deadlock).toBe('violated');
    const reduced = await explore(v, { por: true });
    expect(safety(reduced)).toEqual(safety(full));
    expect(reduced.partialOrder?.control).toEqual([
      'b reads the control of a (stateIn in ctl2.b.b0, always)',
    ]);
  });

  it('independent actors without control dependencies are still reduced', async () => {
    // The stateIn model with b's guard on its own actor only: b is ample, as before.
    const machine = createMachine({
      id: 'own',
      type: 'parallel',
      states: {
        a: {
          initial: 'a0',
          states: { a0: { on: { A: 'a1', A2: 'a2' } }, a1: { type: 'final' }, a2: { type: 'final' } },
        },
        b: {
          initial: 'b0',
          states: { b0: { on: { B: { guard: stateIn('#own.b.b0'), target: 'b1' } } }, b1: { type: 'final' } },
        },
      },
    });
    const v = defineModel<Record<string, never>, { type: string }>({
      id: 'own-state-in',
      machine,
      events: () => ['A', 'A2', 'B'].map((type) => ({ type })),
      invariants: {},
      footprints: { actors: { a: {}, b: {} } },
    }).variant();
    const reduced = await explore(v, { por: true });
    expect(reduced.partialOrder?.reduced).toBeGreaterThan(0);
    expect(reduced.partialOrder?.control).toEqual([]);
    expect(safety(reduced)).toEqual(safety(await explore(v)));
  });

  it("a write that fires another actor's always: the deadlock is found under --por, as without it", async () => {
    const v = alwaysModel();
    const full = await explore(v);
    expect(safety(full).deadlock).toBe('violated');
    const reduced = await explore(v, { por: true });
    expect(safety(reduced)).toEqual(safety(full));
    expect(reduced.partialOrder?.control).toEqual([
      'b has an always transition whose guard reads the context (in alw.b.b0): any step may fire it',
    ]);
  });
});

describe('partial-order reduction: an enumeration reads every field', () => {
  const model = enumerationModel();

  it('a decision on Object.values of an object the step rebuilds is a read the declaration must cover', async () => {
    // b declares o.k, what it copies: enough before the fix, which took the enumerated o.a for a copy.
    const v = model(['o.k']);
    expect(safety(await explore(v)).noBad).toBe('violated');
    const error = await explore(v, { por: true }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelError);
    expect((error as Error).message).toMatch(
      /^--por: b\.s#B\[0\] reads o\.a, which footprints\.actors\.b does not declare/,
    );
  });

  it('declared, the reads make b dependent on a, and the violation is found', async () => {
    const v = model(['o']);
    expect(safety(await explore(v, { por: true }))).toEqual(safety(await explore(v)));
  });
});

describe("footprint recording: the engine's merge of an update is a copy, model code's enumeration a read", () => {
  const v = enumerationModel()(['o']);
  for (const [name, engine] of [
    ['compiled', createCompiledEngine(v.machine)],
    ['reference', createReferenceEngine(v.machine)],
  ] as const) {
    it(`${name} engine: A reads o by enumeration (its spread), not bad, which the merge copies`, () => {
      const fp = recordStep(engine as AnyEngine, engine.initial(), { type: 'A' });
      expect(fp.reads.map((r) => r.path).sort()).toEqual(['o', 'o.#keys', 'o.a', 'o.k']);
      expect(fp.writes).toEqual(['o.a']);
    });
  }

  it('an enumeration of the whole context by model code reads every field, on either engine', () => {
    const machine = setup({ types: { context: {} as { p: number; q: number } } }).createMachine({
      id: 'values',
      initial: 's',
      context: { p: 0, q: 0 },
      states: {
        s: { on: { K: { actions: assign(({ context }) => ({ p: Object.values(context).length })) } } },
      },
    });
    for (const engine of [createCompiledEngine(machine), createReferenceEngine(machine)] as AnyEngine[]) {
      const fp = recordStep(engine, engine.initial(), { type: 'K' });
      expect(fp.reads.map((r) => r.path).sort()).toEqual(['#keys', 'p', 'q']);
      expect(fp.writes).toEqual(['p']);
    }
  });
});
