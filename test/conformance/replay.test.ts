// The replay runner against a fake target: which kernel answers match a path, by the set of
// results the model allows (interleavings of internal steps), 'blocked', splats, fail-nth.
import { match } from 'ts-pattern';
import { describe, expect, it } from 'vitest';
import { assign, setup } from 'xstate';
import { type Adapter, call, type Mapping, type ReplayTarget } from '../../conformance/adapters/adapter.ts';
import type { ConformancePath } from '../../conformance/paths.ts';
import { replayPath } from '../../conformance/replay.ts';
import { ModelTracker } from '../../conformance/replay-model.ts';
import type { CallResult } from '../../conformance/target.ts';
import { defineModel } from '../../explorer/model.ts';

/**
 * A toy kernel: the VMM maps (EBUSY once the kernel thread has flipped `busy`, which it may
 * do at any time), waits (blocks for good), or pokes (the kernel WARNs: k.warn grows).
 */
interface Ctx {
  busy: boolean;
  mapped: boolean;
  k: { warn: string[] };
  ret: { vmm: string | null; kernel: string | null };
}
const machine = setup({ types: { context: {} as Ctx, events: {} as { type: string } } }).createMachine({
  id: 'toy',
  type: 'parallel',
  context: { busy: false, mapped: false, k: { warn: [] }, ret: { vmm: null, kernel: null } },
  states: {
    vmm: {
      initial: 'idle',
      states: {
        idle: {
          on: {
            VmmMap: {
              actions: assign(({ context }) =>
                context.busy
                  ? { ret: { ...context.ret, vmm: 'EBUSY' } }
                  : { mapped: true, ret: { ...context.ret, vmm: '0' } },
              ),
            },
            VmmWait: {
              target: 'waiting',
              actions: assign(({ context }) => ({ ret: { ...context.ret, vmm: 'blocked' } })),
            },
            VmmPoke: {
              actions: assign(({ context }) => ({
                k: { warn: [...context.k.warn, 'poke'] },
                ret: { ...context.ret, vmm: '0' },
              })),
            },
          },
        },
        waiting: {},
      },
    },
    kernel: {
      initial: 'running',
      states: {
        running: { on: { KernelFlip: { target: 'flipped', actions: assign({ busy: true }) } } },
        flipped: {},
      },
    },
  },
});
const toy = defineModel<Ctx, { type: string }>({
  id: 'toy',
  machine,
  events: () => ['VmmMap', 'VmmWait', 'VmmPoke', 'KernelFlip'].map((type) => ({ type })),
  invariants: {},
  calls: ['VmmMap', 'VmmWait', 'VmmPoke'],
}).variant();

type Answer = Partial<CallResult>;

/** A fake target answering each op from a script; records the ops. */
function fakeTarget(script: (actor: string, op: string, args: Record<string, unknown>) => Answer) {
  const ops: string[] = [];
  const lines: string[] = [];
  const target: ReplayTarget = {
    actor: (name) => ({
      call: async (op, args = {}) => {
        ops.push(`${name} ${op}`);
        lines.push(`[    ${ops.length}.0] ${name} ${op}`);
        return { status: 'done', seq: ops.length, ret: 0, errno: '0', out: {}, ...script(name, op, args) };
      },
    }),
    log: () => [...lines],
  };
  return { target, ops };
}

const TOY_EVENTS = ['VmmMap', 'VmmWait', 'VmmPoke', 'KernelFlip'] as const;
const toyAdapter: Adapter = {
  model: 'toy',
  variants: ['default'],
  eventTypes: TOY_EVENTS,
  uuidsPerPath: 0,
  allow: () => [],
  async setup(r) {
    r.sym.set('fd', 3);
  },
  map: (e): Mapping =>
    match(e.type as (typeof TOY_EVENTS)[number])
      .with('VmmMap', () => ({
        kind: 'call' as const,
        compare: 'errno' as const,
        run: call('vmm', 'map', () => ({})),
      }))
      .with('VmmWait', () => ({
        kind: 'call' as const,
        compare: 'errno' as const,
        run: call('vmm', 'wait', () => ({})),
      }))
      .with('VmmPoke', () => ({
        kind: 'call' as const,
        compare: 'errno' as const,
        run: call('vmm', 'poke', () => ({})),
      }))
      .with('KernelFlip', () => ({ kind: 'internal' as const }))
      .exhaustive(),
  async teardown(r) {
    await r.exitAll();
  },
};

const path = (...types: string[]): ConformancePath => ({
  id: 'toy/default/p001',
  covers: [],
  steps: types.map((type) => ({
    actor: type.startsWith('Kernel') ? 'kernel' : 'vmm',
    event: { type },
    call: !type.startsWith('Kernel'),
  })),
});
const opts = { prefix: 't', uuids: [] };

describe('ModelTracker: results allowed by any interleaving of internal steps', () => {
  it('a call whose result depends on an internal step allows both results', () => {
    const t = new ModelTracker(toy);
    expect([...t.allowed('vmm', { type: 'VmmMap' }).keys()].sort()).toEqual(['0', 'EBUSY']);
  });

  it("'blocked' only where no internal step can make the call return", () => {
    const t = new ModelTracker(toy);
    expect([...t.allowed('vmm', { type: 'VmmWait' }).keys()]).toEqual(['blocked']);
  });

  it('an observed result narrows the set: after EBUSY, a map is EBUSY for good', () => {
    const t = new ModelTracker(toy);
    t.commit(t.allowed('vmm', { type: 'VmmMap' }).get('EBUSY') as Map<string, unknown>);
    expect([...t.allowed('vmm', { type: 'VmmMap' }).keys()]).toEqual(['EBUSY']);
  });

  it('an absent driver step is never taken: the allowed set shrinks to the runs without it', () => {
    const t = new ModelTracker(toy, new Set(['KernelFlip']));
    expect([...t.allowed('vmm', { type: 'VmmMap' }).keys()]).toEqual(['0']);
  });
});

describe('replayPath against a fake target', () => {
  it('matches when every observed errno is one the model allows, skipping internal steps', async () => {
    const { target, ops } = fakeTarget((_a, op) => (op === 'map' ? { errno: 'EBUSY' } : {}));
    const r = await replayPath(toy, toyAdapter, path('KernelFlip', 'VmmMap', 'VmmMap'), target, opts);
    expect(r.status).toBe('match');
    expect(r.steps.map((s) => s.kind)).toEqual(['internal', 'call', 'call']);
    expect(ops).toEqual(['t-vmm map', 't-vmm map', 't-vmm exit']);
  });

  it('diverges on a result the model does not allow, naming the step, the allowed set and the observation', async () => {
    const { target } = fakeTarget((_a, op) => (op === 'map' ? { errno: 'ENOMEM' } : {}));
    const r = await replayPath(toy, toyAdapter, path('VmmMap'), target, opts);
    expect(r.status).toBe('diverge');
    expect(r.failedStep).toBe(0);
    expect(r.steps[0]).toMatchObject({ observed: 'ENOMEM', allowed: ['0', 'EBUSY'], ok: false });
    expect(r.reason).toContain('observed ENOMEM, the model allows 0 | EBUSY');
    expect(r.log).toEqual(['[    1.0] t-vmm map']); // the path's kernel lines, up to the failure
  });

  it('diverges when EBUSY was seen and a later map returns 0 (the kernel went back)', async () => {
    let n = 0;
    const { target } = fakeTarget((_a, op) => (op === 'map' ? { errno: n++ === 0 ? 'EBUSY' : '0' } : {}));
    const r = await replayPath(toy, toyAdapter, path('VmmMap', 'VmmMap'), target, opts);
    expect(r.status).toBe('diverge');
    expect(r.failedStep).toBe(1);
  });

  it("a blocked call matches only where the model predicts 'blocked'", async () => {
    const blocked: Answer = { status: 'blocked', errno: 'BLOCKED', ret: null };
    const waits = fakeTarget((_a, op) => (op === 'wait' ? blocked : {}));
    expect((await replayPath(toy, toyAdapter, path('VmmWait'), waits.target, opts)).status).toBe('match');
    const maps = fakeTarget((_a, op) => (op === 'map' ? blocked : {}));
    const r = await replayPath(toy, toyAdapter, path('VmmMap'), maps.target, opts);
    expect(r.status).toBe('diverge');
    expect(r.steps[0].observed).toBe('blocked');
    // and a wait that returns is a divergence too
    const returns = fakeTarget(() => ({}));
    expect((await replayPath(toy, toyAdapter, path('VmmWait'), returns.target, opts)).status).toBe('diverge');
  });

  it('a splat fails the step unless the model records a WARN there, and a predicted WARN must appear', async () => {
    const splat = 'WARNING: at toy.c:1';
    const mapSplat = fakeTarget((_a, op) => (op === 'map' ? { splat } : {}));
    const r = await replayPath(toy, toyAdapter, path('VmmMap'), mapSplat.target, opts);
    expect(r.status).toBe('diverge');
    expect(r.reason).toContain('splat the model does not predict');
    const pokeSplat = fakeTarget((_a, op) => (op === 'poke' ? { splat } : {}));
    expect((await replayPath(toy, toyAdapter, path('VmmPoke'), pokeSplat.target, opts)).status).toBe('match');
    const pokeQuiet = fakeTarget(() => ({}));
    const q = await replayPath(toy, toyAdapter, path('VmmPoke'), pokeQuiet.target, opts);
    expect(q.status).toBe('diverge');
    expect(q.reason).toContain('predicts a WARN/BUG here');
  });

  it('fail-nth: a call failed by the injected fault must leave the model state as before', async () => {
    // The first map fails by injection (ENOMEM): the model stays unmapped and not busy, so the
    // next map may still return 0.
    let n = 0;
    const { target, ops } = fakeTarget((_a, op) => {
      if (op !== 'map') return {};
      return n++ === 0 ? { errno: 'ENOMEM', out: { fail_injected: 1 } } : { errno: '0' };
    });
    const r = await replayPath(toy, toyAdapter, path('VmmMap', 'VmmMap'), target, {
      ...opts,
      failAt: { step: 0, nth: 1 },
    });
    expect(r.status).toBe('match');
    expect(r.steps[0].note).toContain('fail-nth 1: ENOMEM; model state kept');
    expect(ops.slice(0, 2)).toEqual(['t-vmm fail_nth', 't-vmm map']);
  });

  it('a fixture that fails is a setup error, not a divergence', async () => {
    const { target } = fakeTarget(() => ({}));
    const broken: Adapter = {
      ...toyAdapter,
      async setup(r) {
        await r.must('vmm', 'open', { path: '/dev/iommu' });
      },
    };
    const failing = fakeTarget((_a, op) => (op === 'open' ? { errno: 'ENOENT' } : {}));
    expect((await replayPath(toy, broken, path('VmmMap'), failing.target, opts)).status).toBe('setup-error');
    expect((await replayPath(toy, broken, path('VmmMap'), target, opts)).status).toBe('match');
  });
});
