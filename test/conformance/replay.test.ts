// The replay runner against a fake target: which kernel answers match a path, by the set of
// results the model allows (interleavings of internal steps), 'blocked', splats, fail-nth.
import { match } from 'ts-pattern';
import { describe, expect, it } from 'vitest';
import { assign, setup } from 'xstate';
import {
  type Adapter,
  call,
  type Mapping,
  type PathRun,
  type ReplayTarget,
} from '../../conformance/adapters/adapter.ts';
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

/**
 * A second toy: a and b each take one lock and then need the other (a deadlock when both go
 * first), c's call hits a BUG_ON, d's driver unpin WARNs on a closed device.
 */
interface Ctx2 {
  la: string | null;
  lb: string | null;
  kernelBug: boolean;
  ret: Record<string, string | null>;
}
const set2 = (c: Ctx2, actor: string, r: string) => ({ ret: { ...c.ret, [actor]: r } });
const machine2 = setup({ types: { context: {} as Ctx2, events: {} as { type: string } } }).createMachine({
  id: 'toy2',
  type: 'parallel',
  context: { la: null, lb: null, kernelBug: false, ret: { a: null, b: null, c: null, d: null } },
  states: {
    a: {
      initial: 'idle',
      states: {
        idle: {
          on: {
            AGo: {
              guard: ({ context }) => context.la === null,
              target: 'hold',
              actions: assign(({ context }) => ({ la: 'a', ...set2(context, 'a', 'blocked') })),
            },
          },
        },
        hold: {
          on: {
            AFinish: {
              guard: ({ context }) => context.lb === null,
              target: 'idle',
              actions: assign(({ context }) => ({ la: null, ...set2(context, 'a', '0') })),
            },
          },
        },
      },
    },
    b: {
      initial: 'idle',
      states: {
        idle: {
          on: {
            BGo: {
              guard: ({ context }) => context.lb === null,
              target: 'hold',
              actions: assign(({ context }) => ({ lb: 'b', ...set2(context, 'b', 'blocked') })),
            },
          },
        },
        hold: {
          on: {
            BFinish: {
              guard: ({ context }) => context.la === null,
              target: 'idle',
              actions: assign(({ context }) => ({ lb: null, ...set2(context, 'b', '0') })),
            },
          },
        },
      },
    },
    c: {
      initial: 'idle',
      states: {
        idle: {
          on: {
            CBoom: {
              target: 'dead',
              actions: assign(({ context }) => ({ kernelBug: true, ...set2(context, 'c', 'BUG') })),
            },
          },
        },
        dead: { type: 'final' },
      },
    },
    d: {
      initial: 'idle',
      states: {
        idle: { on: { DUnpin: { actions: assign(({ context }) => set2(context, 'd', 'WARN')) } } },
      },
    },
  },
});
const TOY2_EVENTS = ['AGo', 'AFinish', 'BGo', 'BFinish', 'CBoom', 'DUnpin'] as const;
const toy2 = defineModel<Ctx2, { type: string }>({
  id: 'toy2',
  machine: machine2,
  events: () => TOY2_EVENTS.map((type) => ({ type })),
  invariants: {},
  calls: ['AGo', 'BGo', 'CBoom', 'DUnpin'],
}).variant();
const toy2Adapter: Adapter = {
  ...toyAdapter,
  model: 'toy2',
  eventTypes: TOY2_EVENTS,
  map: (e): Mapping =>
    match(e.type as (typeof TOY2_EVENTS)[number])
      .with('AFinish', 'BFinish', () => ({ kind: 'internal' as const }))
      .with('DUnpin', () => ({
        kind: 'call' as const,
        compare: 'errno' as const,
        run: async (r: PathRun) => {
          const o = await r.call('d', 'unpin', {});
          return o.splat ? { ...o, errno: 'WARN' } : o;
        },
      }))
      .otherwise((type) => ({
        kind: 'call' as const,
        compare: 'errno' as const,
        run: call(type[0].toLowerCase(), type, () => ({})),
      })),
};
const path2 = (...steps: [string, string?][]): ConformancePath => ({
  id: 'toy2/default/p001',
  covers: [],
  steps: steps.map(([type, result]) => ({
    actor: type[0].toLowerCase(),
    event: { type },
    call: !type.endsWith('Finish'),
    ...(result !== undefined && { result }),
  })),
});

/** A fake target whose calls can stay blocked, with settle() answering late or never. */
function blockingTarget(
  blocked: Set<string>,
  late: Record<string, Answer | undefined> = {},
  splats: Record<string, string> = {},
) {
  const lines: string[] = [];
  const ops: string[] = [];
  const target: ReplayTarget = {
    actor: (name) => ({
      call: async (op) => {
        ops.push(`${name} ${op}`);
        if (splats[op]) lines.push(...splats[op].split('\n'));
        const splat = splats[op] ? { splat: splats[op] } : {};
        if (blocked.has(op))
          return { status: 'blocked', seq: 1, ret: null, errno: 'BLOCKED', out: {}, ...splat };
        return { status: 'done', seq: 1, ret: 0, errno: '0', out: {}, ...splat };
      },
      settle: async () => {
        const l = late[name.split('-').pop() ?? ''];
        return l ? ({ status: 'done', seq: 1, ret: 0, errno: '0', out: {}, ...l } as CallResult) : undefined;
      },
    }),
    log: () => [...lines],
  };
  return { target, ops };
}

describe("facts besides the result (a load's page fault and SIGBUS in bar-mmap)", () => {
  // The toy's map reports whether it mapped something new ('fresh'); the model predicts it from
  // the state the call is made in: fresh when the map succeeds on an unmapped state.
  const withFacts: Adapter = {
    ...toyAdapter,
    map: (e, actor, variant, run) => {
      const m = toyAdapter.map(e, actor, variant, run);
      if (e.type !== 'VmmMap' || m.kind !== 'call') return m;
      return {
        ...m,
        facts: {
          observed: (o) => ({ fresh: Number(o.out.fresh) }),
          predicted: (before, _actor, result) => ({ fresh: result === '0' && !before.mapped ? 1 : 0 }),
        },
      };
    },
  };
  const freshOnce = (second: number) => {
    let n = 0;
    return fakeTarget((_a, op) => (op === 'map' ? { out: { fresh: n++ === 0 ? 1 : second } } : {}));
  };

  it('match when the kernel does what the model predicts from the state the call is made in; the step carries both', async () => {
    const r = await replayPath(toy, withFacts, path('VmmMap', 'VmmMap'), freshOnce(0).target, opts);
    expect(r.status).toBe('match');
    expect(r.steps.map((s) => s.facts)).toEqual([
      { observed: { fresh: 1 }, predicted: [{ fresh: 1 }], ok: true },
      { observed: { fresh: 0 }, predicted: [{ fresh: 0 }], ok: true },
    ]);
  });

  it('a fact the model does not predict is a divergence, as a wrong errno is', async () => {
    const r = await replayPath(toy, withFacts, path('VmmMap', 'VmmMap'), freshOnce(1).target, opts);
    expect(r.status).toBe('diverge');
    expect(r.failedStep).toBe(1);
    expect(r.reason).toBe(
      'VmmMap by vmm: 0 with {"fresh":1} observed, the model predicts 0 with {"fresh":0}',
    );
    expect(r.steps[1]).toMatchObject({ ok: false, facts: { ok: false, observed: { fresh: 1 } } });
  });

  it('the prediction is taken per state: a result that several states allow keeps the states whose prediction fits', async () => {
    // Before any map the kernel thread may flip busy at any time: the first map is 0 (fresh) or
    // EBUSY (not fresh); a kernel that reports EBUSY and fresh fits neither state.
    const busyFresh = fakeTarget((_a, op) => (op === 'map' ? { errno: 'EBUSY', out: { fresh: 1 } } : {}));
    const r = await replayPath(toy, withFacts, path('VmmMap'), busyFresh.target, opts);
    expect(r.status).toBe('diverge');
    expect(r.reason).toContain('EBUSY with {"fresh":1} observed, the model predicts EBUSY with {"fresh":0}');
  });
});

describe('calls left in flight, deadlocks, BUG_ON and lockdep', () => {
  const deadlockPath = path2(['AGo', 'blocked'], ['BGo', 'blocked']);

  it('a deadlock the model predicts: the first call stays in flight, both stay blocked, the target must restart', async () => {
    const { target } = blockingTarget(new Set(['AGo', 'BGo']));
    const r = await replayPath(toy2, toy2Adapter, deadlockPath, target, { ...opts, settleMs: 1 });
    expect(r.status).toBe('match');
    expect(r.restartTarget).toBe(true);
    expect(r.reason).toContain('deadlock: the calls of a are still blocked');
    expect(r.steps[0].note).toContain('in flight');
  });

  it('the same calls on a kernel without the deadlock: the first returns late, which the model does not allow there', async () => {
    const { target } = blockingTarget(new Set(['AGo', 'BGo']), { a: { errno: '0' } });
    const r = await replayPath(toy2, toy2Adapter, deadlockPath, target, { ...opts, settleMs: 1 });
    expect(r.status).toBe('diverge');
    expect(r.reason).toContain('the call of a left in flight returned 0 late');
  });

  it('a call that must block while the next one runs but returned at once diverges', async () => {
    const { target } = blockingTarget(new Set(['BGo']));
    const r = await replayPath(toy2, toy2Adapter, deadlockPath, target, { ...opts, settleMs: 1 });
    expect(r.status).not.toBe('match');
  });

  it('a call in flight until the step that ends it: other calls run meanwhile, then its late result is checked', async () => {
    const warn =
      '[    3.0] ------------[ cut here ]------------\n[    3.0] WARNING: at vfio_assert_device_open';
    const p = path2(['AGo', 'blocked'], ['DUnpin'], ['AFinish', '0']);
    const ok = blockingTarget(new Set(['AGo']), { a: { errno: '0' } }, { unpin: warn });
    const r = await replayPath(toy2, toy2Adapter, p, ok.target, { ...opts, settleMs: 1 });
    expect(r.status).toBe('match');
    expect(r.steps[0].note).toBe('in flight until step 3');
    expect(ok.ops.slice(0, 2)).toEqual(['t-a AGo', 't-d unpin']);
    const wrong = blockingTarget(new Set(['AGo']), { a: { errno: 'EINVAL' } }, { unpin: warn });
    const bad = await replayPath(toy2, toy2Adapter, p, wrong.target, { ...opts, settleMs: 1 });
    expect(bad.status).toBe('diverge');
    expect(bad.reason).toContain('returned EINVAL, which the model does not allow here');
  });

  it('a BUG_ON the model predicts: the killed caller never answers, the oops makes it BUG; the path is kernel-bug', async () => {
    const { target } = blockingTarget(
      new Set(['CBoom']),
      {},
      {
        CBoom:
          '[    9.1] ------------[ cut here ]------------\n[    9.1] kernel BUG at drivers/vfio/vfio_iommu_type1.c:1522!\n[    9.1] Oops: invalid opcode: 0000',
      },
    );
    const r = await replayPath(toy2, toy2Adapter, path2(['CBoom']), target, opts);
    expect(r.status).toBe('kernel-bug');
    expect(r.restartTarget).toBe(true);
    expect(r.steps[0].observed).toBe('BUG');
  });

  it('a driver result WARN matches the WARN splat the kernel printed, and only with one', async () => {
    const warn =
      '[    3.0] ------------[ cut here ]------------\n[    3.0] WARNING: drivers/vfio/vfio_main.c:529 at vfio_assert_device_open';
    const withSplat = blockingTarget(new Set(), {}, { unpin: warn });
    expect((await replayPath(toy2, toy2Adapter, path2(['DUnpin']), withSplat.target, opts)).status).toBe(
      'match',
    );
    const without = blockingTarget(new Set());
    expect((await replayPath(toy2, toy2Adapter, path2(['DUnpin']), without.target, opts)).status).toBe(
      'diverge',
    );
  });

  it('a lockdep report is attached to the step that ran, not compared', async () => {
    const lockdep = [
      '[    4.7] ======================================================',
      '[    4.7] WARNING: possible circular locking dependency detected',
      '[    4.7] u6/50 is trying to acquire lock:',
      '[    4.7] ff11 (&iommu->lock#2){+.+.}-{4:4}, at: vfio_iommu_type1_unpin_pages+0x4a/0xac',
      '[    4.7] but task is already holding lock:',
      '[    4.7] ff12 (&iommu->device_list_lock){+.+.}-{4:4}, at: vfio_iommu_type1_ioctl+0xccc/0x114a',
      '[    4.8]  </TASK>',
    ].join('\n');
    const { target } = blockingTarget(new Set(), {}, { AGo: lockdep });
    const r = await replayPath(toy2, toy2Adapter, path2(['AGo', 'blocked'], ['AFinish', '0']), target, opts);
    expect(r.status).toBe('match');
    expect(r.steps[0].lockdep?.[0]).toContain('possible circular locking dependency');
  });
});
