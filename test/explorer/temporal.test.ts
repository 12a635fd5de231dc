import { assign, setup } from 'xstate';
import { describe, expect, it } from 'vitest';
import { createReferenceEngine } from '../../explorer/engine-reference.ts';
import { explore } from '../../explorer/explore.ts';
import { defineModel, eventually, recoverable } from '../../explorer/model.ts';
import { formatReport } from '../../explorer/report-text.ts';
import { replay } from '../../explorer/trace.ts';
import { closeWaitModel } from '../fixtures/close-wait.ts';
import { graphModel } from '../fixtures/graph.ts';

describe('leadsTo under weak fairness', () => {
  it('fails without fairness: the release path may never run again', async () => {
    const r = await explore(closeWaitModel({}).variant());
    const v = r.violations.find((x) => x.property === 'everyCloseCompletes');
    expect(v?.kind).toBe('liveness');
    // Shortest: start closing, then stutter there forever.
    expect(v?.trace.map((s) => s.event.type)).toEqual(['ReleaseStart']);
    expect(v?.cycleStart).toBe(1);
    expect(formatReport(r, ['release', 'vmm'])).toContain('stays in this state forever');
  });

  it('holds when the release path is weakly fair', async () => {
    const r = await explore(closeWaitModel({ weak: ['release'] }).variant());
    expect(r.properties.find((p) => p.name === 'everyCloseCompletes')?.status).toBe('holds');
    expect(r.violations).toEqual([]);
  });

  it('with only the VMM fair, the counterexample is a lasso whose cycle is the VMM looping', async () => {
    const variant = closeWaitModel({ weak: ['vmm'] }).variant();
    const r = await explore(variant);
    const v = r.violations.find((x) => x.property === 'everyCloseCompletes');
    expect(v?.kind).toBe('liveness');
    const start = v?.cycleStart ?? -1;
    expect(start).toBeGreaterThanOrEqual(1);
    const cycle = v?.trace.slice(start) ?? [];
    expect(cycle.length).toBeGreaterThan(0);
    expect(cycle.every((s) => s.actor === 'vmm')).toBe(true);
    // Re-execute the lasso with xstate's transition(): the cycle returns to its first state.
    const run = replay(
      variant,
      (v?.trace ?? []).map((s) => s.event),
    );
    const engine = createReferenceEngine(variant.machine);
    expect(engine.encode(run.snapshots[run.snapshots.length - 1])).toBe(engine.encode(run.snapshots[start]));
    expect(run.snapshots[start].matches({ release: 'closing' })).toBe(true);
  });

  it('a property that cannot be judged because a bound cut the search is unknown, never holds', async () => {
    const r = await explore(closeWaitModel({ weak: ['release'] }).variant(), { depth: 1 });
    expect(r.complete).toBe(false);
    expect(r.properties.find((p) => p.name === 'everyCloseCompletes')).toMatchObject({
      status: 'unknown',
      note: expect.stringContaining('cut off'),
    });
  });

  it('names an unknown actor in fairness as a model error', async () => {
    await expect(explore(closeWaitModel({ weak: ['nobody'] }).variant())).rejects.toThrow(
      "fairness names actor 'nobody', which the machine does not have (actors: release, vmm)",
    );
  });
});

/**
 * A worker, weakly fair, whose one step (to done) is enabled only while a
 * toggler, also fair, has its switch on; the toggler flips it forever. The
 * cycle on/off never runs the worker, and is weakly fair: the worker is not
 * continuously enabled (disabled at every off state). Strong fairness (enabled
 * infinitely often, so it must move) would exclude that cycle and say holds.
 */
function flickerModel(alwaysOn: boolean) {
  type C = { on: boolean };
  const machine = setup({ types: { context: {} as C } }).createMachine({
    id: 'flicker',
    type: 'parallel',
    context: { on: false },
    states: {
      worker: {
        initial: 'waiting',
        states: {
          waiting: { on: { Work: { guard: ({ context }) => alwaysOn || context.on, target: 'done' } } },
          done: { type: 'final' },
        },
      },
      toggler: { on: { Flip: { actions: assign({ on: ({ context }) => !context.on }) } } },
    },
  });
  return defineModel<C, { type: string }>({
    id: 'flicker',
    machine,
    events: () => [{ type: 'Work' }, { type: 'Flip' }],
    invariants: {},
    properties: { workerFinishes: eventually((s) => s.matches({ worker: 'done' })) },
    fairness: { weak: 'all' },
  }).variant();
}

describe('weak fairness is weak: an actor disabled somewhere on a cycle need not move on it', () => {
  it('the worker, disabled whenever the switch is off, may starve: violated, with the flicker as the cycle', async () => {
    const r = await explore(flickerModel(false));
    const v = r.violations.find((x) => x.property === 'workerFinishes');
    expect(v?.kind).toBe('liveness');
    const cycle = v?.trace.slice(v.cycleStart ?? 0) ?? [];
    expect(cycle.length).toBeGreaterThan(0);
    expect(cycle.every((step) => step.event.type === 'Flip')).toBe(true);
  });

  it('the same worker continuously enabled must move: holds', async () => {
    const r = await explore(flickerModel(true));
    expect(r.properties.find((p) => p.name === 'workerFinishes')?.status).toBe('holds');
  });
});

describe('eventually', () => {
  it('<>closed holds with the release path fair, fails without', async () => {
    const base = closeWaitModel({ weak: ['release'] });
    const v = base.variant();
    const withProp = (fair: boolean) =>
      defineModel({
        id: 'close-wait-eventually',
        machine: v.machine,
        events: v.events,
        invariants: {},
        properties: { closes: eventually((s) => s.matches({ release: 'closed' })) },
        fairness: fair ? { weak: ['release'] } : {},
      }).variant();
    expect((await explore(withProp(true))).properties[1]).toMatchObject({ name: 'closes', status: 'holds' });
    const r = await explore(withProp(false));
    expect(r.violations[0]).toMatchObject({ property: 'closes', kind: 'liveness', cycleStart: 0 });
  });
});

describe('recoverable (AG EF p)', () => {
  it('fails on a trap state, reporting the shortest path into it', async () => {
    // 0 <-> 1 -> 2 -> 3 -> 3 (trap: never back to 0); also 0 -> 4 -> 3.
    const g = graphModel([[1, 4], [0, 2], [3], [3], [3]], -1).variant();
    const m = defineModel({
      id: 'trap',
      machine: g.machine,
      events: g.events,
      invariants: {},
      properties: { canGoHome: recoverable((s) => (s.context as { at: number }).at === 0) },
    });
    const r = await explore(m.variant());
    const v = r.violations.find((x) => x.property === 'canGoHome');
    expect(v?.kind).toBe('unrecoverable');
    // State 4 is one step away and can never get home: the shortest path into a trap.
    expect(v?.trace.map((s) => s.event)).toEqual([{ type: 'Go', to: 4 }]);
  });

  it('holds where every state can get back', async () => {
    const g = graphModel([[1], [2, 0], [0]], -1).variant();
    const m = defineModel({
      id: 'home',
      machine: g.machine,
      events: g.events,
      invariants: {},
      properties: { canGoHome: recoverable((s) => (s.context as { at: number }).at === 0) },
    });
    expect((await explore(m.variant())).properties.find((p) => p.name === 'canGoHome')?.status).toBe('holds');
  });
});
