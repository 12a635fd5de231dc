/**
 * bar-mmap (issue 8): verdicts at the default bounds, each invariant shown
 * firing (on a variant or a mutant) with its shortest trace, and scenarios in
 * the iommufd-selftest style: one scenario a test, the predicted result
 * asserted at each step.
 */

import { describe, expect, it } from 'vitest';
import { createActor, type Actor as XActor } from 'xstate';
import { explore } from '../../explorer/explore.ts';
import type { ExploreResult } from '../../explorer/result.ts';
import model, { buildMachine, type Ctx, DESIGNS, type Design, type Ev } from '../../machines/bar-mmap.ts';
import { exploreOnce, violated } from './support.ts';

type VariantName = keyof typeof DESIGNS;

/** A variant with its design changed (a mutant or a design option), expectations dropped. */
const variantWith = (name: VariantName, change: Partial<Design>) => ({
  ...model.variant(name),
  machine: buildMachine({ ...DESIGNS[name], ...change }),
  expect: undefined,
});

/** Each variant is explored once for all the tests that read its result. */
const resultOf: (name: VariantName) => Promise<ExploreResult> = exploreOnce(model);

const steps = (r: ExploreResult, property: string) => {
  const v = r.violations.find((x) => x.property === property);
  if (!v) throw new Error(`no counterexample for ${property}`);
  return v;
};

const label = (e: Ev & { memory?: boolean; d3?: boolean }) =>
  e.type +
  (e.memory === undefined ? '' : `(memory=${e.memory})`) +
  (e.d3 === undefined ? '' : `(d3=${e.d3})`);

describe('verdicts at the default bounds', () => {
  it.each(model.variantNames)(
    '%s: complete, violates exactly what it declares, state count pinned',
    async (name) => {
      const v = model.variant(name);
      const r = await resultOf(name as VariantName);
      expect(r.complete).toBe(true);
      expect(violated(r)).toEqual([...(v.expect?.violated ?? [])].sort());
      expect(r.states).toBe(v.expect?.states);
    },
  );

  it('the temporal properties are checked (not left unknown) on every variant', async () => {
    for (const name of model.variantNames) {
      const r = await resultOf(name as VariantName);
      for (const prop of ['accessAfterEnableWorks', 'guestCallsReturn', 'vmmCallsReturn']) {
        const p = r.properties.find((x) => x.name === prop);
        expect(p?.kind, `${name} ${prop}`).toBe('leadsTo');
        expect(['holds', 'violated'], `${name} ${prop}`).toContain(p?.status);
      }
    }
  });
});

describe('each invariant fires, with its shortest counterexample', () => {
  it("noStalePteAfterZap: seed 003's window, a zap that cannot see the populated, unlinked VMA (4 steps)", async () => {
    const r = await resultOf('remap-on-enable');
    const v = steps(r, 'noStalePteAfterZap');
    expect(v.kind).toBe('invariant');
    expect(v.trace.map((s) => label(s.event as Ev))).toEqual([
      'UserAMmap',
      'UserAMmapHook',
      'GuestCommandWrite(memory=false)',
      'GuestZapBars',
    ]);
  });

  it('noPteWhileDisabled: the same VMA left mapping the BAR once the disable commits (5 steps)', async () => {
    const r = await resultOf('remap-on-enable');
    const v = steps(r, 'noPteWhileDisabled');
    expect(v.kind).toBe('invariant');
    expect(v.trace.map((s) => label(s.event as Ev))).toEqual([
      'UserAMmap',
      'UserAMmapHook',
      'GuestCommandWrite(memory=false)',
      'GuestZapBars',
      'GuestCommit',
    ]);
    expect(v.trace[4].result).toBe('0');
  });

  it('noSigbusAfterEnable: a VMA created while disabled is missed by the enable walk (9 steps)', async () => {
    const r = await resultOf('remap-on-enable');
    const v = steps(r, 'noSigbusAfterEnable');
    expect(v.kind).toBe('invariant');
    expect(v.trace.map((s) => label(s.event as Ev))).toEqual([
      'UserAMmap',
      'GuestCommandWrite(memory=false)',
      'GuestZapBars',
      'GuestCommit',
      'UserAMmapHook',
      'GuestCommandWrite(memory=true)',
      'GuestRemapScan',
      'UserAMmapLink',
      'UserATouch',
    ]);
    expect(v.trace[8].result).toBe('SIGBUS');
  });

  it('deadlock: the walk under memory_lock write waits for an mmap_lock whose holder waits for memory_lock (9 steps)', async () => {
    const r = await resultOf('remap-on-enable-locked');
    const v = steps(r, 'deadlock');
    expect(v.kind).toBe('deadlock');
    expect(v.trace).toHaveLength(9);
    expect(v.trace.map((s) => label(s.event as Ev)).slice(-3)).toEqual([
      'VmmZapBars',
      'VmmCommit',
      'VmmRemapScan',
    ]);
    expect(v.trace[8].state).toMatchObject({
      userA: 'mmapComplete',
      userB: 'mmapComplete',
      vmm: 'remapLockMm',
    });
  });

  it('accessAfterEnableWorks (liveness): after the enable, userA gets SIGBUS forever (17-step lasso)', async () => {
    const r = await resultOf('remap-on-enable');
    const v = steps(r, 'accessAfterEnableWorks');
    expect(v.kind).toBe('liveness');
    expect(v.trace).toHaveLength(17);
    const cycle = v.trace.slice(v.cycleStart);
    expect(cycle.filter((s) => s.event.type === 'UserATouch').map((s) => s.result)).toEqual(['SIGBUS']);
    expect(cycle.every((s) => !s.event.type.startsWith('Guest') && !s.event.type.startsWith('Vmm'))).toBe(
      true,
    );
  });

  it("vmmCallsReturn (liveness): seed 003's walk spins once the guest turned memory off (19-step lasso)", async () => {
    const r = await resultOf('remap-on-enable');
    const v = steps(r, 'vmmCallsReturn');
    expect(v.kind).toBe('liveness');
    expect(v.trace).toHaveLength(19);
    const cycle = v.trace.slice(v.cycleStart).map((s) => s.event.type);
    expect(cycle.filter((t) => t.startsWith('Vmm'))).toEqual([
      'VmmRemapScan',
      'VmmRemapLockMm',
      'VmmRemapLockMemory',
      'VmmRemapVmas',
    ]);
  });

  it("vmmCallsReturn also fires on the issue's literal fixed design (walk without the exit); the rest holds", async () => {
    const r = await explore(variantWith('remap-on-enable-fixed', { walkAbortsWhenDisabled: false }));
    expect(violated(r)).toEqual(['vmmCallsReturn']);
    expect(steps(r, 'vmmCallsReturn').trace).toHaveLength(19);
  });

  it('guestCallsReturn and vmmCallsReturn: the deadlocked walk never returns', async () => {
    const r = await resultOf('remap-on-enable-locked');
    expect(steps(r, 'vmmCallsReturn').kind).toBe('liveness');
    expect(steps(r, 'guestCallsReturn').kind).toBe('liveness');
  });

  it('mutant noZap on current: noStalePteAfterZap (6 steps) and noPteWhileDisabled (7 steps)', async () => {
    const r = await explore(variantWith('current', { mutate: 'noZap' }));
    expect(violated(r)).toEqual(['noPteWhileDisabled', 'noStalePteAfterZap']);
    expect(steps(r, 'noStalePteAfterZap').trace).toHaveLength(6);
    expect(steps(r, 'noPteWhileDisabled').trace).toHaveLength(7);
    expect(steps(r, 'noStalePteAfterZap').trace.map((s) => label(s.event as Ev))).toEqual([
      'UserAMmap',
      'UserAMmapLink',
      'UserATouch',
      'UserAFaultInsert',
      'GuestCommandWrite(memory=false)',
      'GuestZapBars',
    ]);
  });

  it('mutant faultUnlocked on current: the insert lands after the zap (6 and 7 steps)', async () => {
    const r = await explore(variantWith('current', { mutate: 'faultUnlocked' }));
    expect(violated(r)).toEqual(['noPteWhileDisabled', 'noStalePteAfterZap']);
    expect(steps(r, 'noStalePteAfterZap').trace.map((s) => label(s.event as Ev))).toEqual([
      'UserAMmap',
      'UserAMmapLink',
      'UserATouch',
      'GuestCommandWrite(memory=false)',
      'GuestZapBars',
      'UserAFaultInsert',
    ]);
    expect(steps(r, 'noPteWhileDisabled').trace).toHaveLength(7);
  });

  it('mutant noZap on remap-on-enable-fixed: the populated, linked VMA survives the disable', async () => {
    const r = await explore(variantWith('remap-on-enable-fixed', { mutate: 'noZap' }));
    expect(violated(r)).toEqual(['noPteWhileDisabled', 'noStalePteAfterZap']);
    expect(steps(r, 'noStalePteAfterZap').trace).toHaveLength(5);
  });
});

// ---------------------------------------------------------------- scenarios

type Run = XActor<ReturnType<typeof buildMachine>>;

function start(name: VariantName, change: Partial<Design> = {}): Run {
  const a = createActor(buildMachine({ ...DESIGNS[name], ...change }));
  a.start();
  return a;
}
const ctx = (a: Run): Ctx => a.getSnapshot().context;
const state = (a: Run) => a.getSnapshot().value as Record<string, string>;

/** Send an event the machine must accept; return the predicted result of `actor`. */
function step(a: Run, e: Ev, actor: keyof Ctx['ret']): string | null {
  expect(a.getSnapshot().can(e), `${label(e)} should be enabled`).toBe(true);
  a.send(e);
  return ctx(a).ret[actor];
}
const blocked = (a: Run, e: Ev) => expect(a.getSnapshot().can(e), `${label(e)} should wait`).toBe(false);

/** mmap a BAR page in the 'current' or fixed shapes (no hook step): returns mmap's result. */
function mmapNoHook(a: Run, u: 'A' | 'B'): string | null {
  expect(step(a, { type: `User${u}Mmap` }, `user${u}`)).toBe('blocked');
  return step(a, { type: `User${u}MmapLink` }, `user${u}`);
}

describe('scenarios: current (7.3)', () => {
  it('a touch faults the pfn in; after memory off it gets SIGBUS; after memory on it works again', () => {
    const a = start('current');
    expect(mmapNoHook(a, 'A')).toBe('0');
    expect(ctx(a).vma.userA).toEqual({ linked: true, pte: false }); // nothing mapped at mmap time
    expect(step(a, { type: 'UserATouch' }, 'userA')).toBe('blocked'); // page fault
    expect(step(a, { type: 'UserAFaultInsert' }, 'userA')).toBe('0'); // vmf_insert_pfn under memory_lock read
    expect(step(a, { type: 'GuestCommandWrite', memory: false }, 'guest')).toBe('blocked');
    expect(step(a, { type: 'GuestZapBars' }, 'guest')).toBe('blocked');
    expect(ctx(a).vma.userA).toEqual({ linked: true, pte: false }); // unmap_mapping_range reached it
    expect(step(a, { type: 'GuestCommit' }, 'guest')).toBe('0');
    expect(step(a, { type: 'UserATouch' }, 'userA')).toBe('blocked');
    expect(step(a, { type: 'UserAFaultInsert' }, 'userA')).toBe('SIGBUS'); // !__vfio_pci_memory_enabled
    expect(step(a, { type: 'GuestCommandWrite', memory: true }, 'guest')).toBe('0'); // no prefault
    expect(ctx(a).vma.userA?.pte).toBe(false);
    expect(step(a, { type: 'UserATouch' }, 'userA')).toBe('blocked');
    expect(step(a, { type: 'UserAFaultInsert' }, 'userA')).toBe('0');
    expect(step(a, { type: 'UserAMunmap' }, 'userA')).toBe('blocked');
    expect(step(a, { type: 'UserAMunmapUnlink' }, 'userA')).toBe('0');
    expect(ctx(a).vma.userA).toBeNull();
  });

  it('a fault waits for memory_lock held by a disable, then sees memory off', () => {
    const a = start('current');
    mmapNoHook(a, 'A');
    expect(step(a, { type: 'UserATouch' }, 'userA')).toBe('blocked');
    expect(step(a, { type: 'VmmReset' }, 'vmm')).toBe('blocked');
    blocked(a, { type: 'UserAFaultInsert' }); // memory_lock is held for write
    expect(step(a, { type: 'VmmZapBars' }, 'vmm')).toBe('blocked');
    blocked(a, { type: 'UserAFaultInsert' });
    expect(step(a, { type: 'VmmCommit' }, 'vmm')).toBe('0'); // reset restores COMMAND: memory on again
    expect(step(a, { type: 'UserAFaultInsert' }, 'userA')).toBe('0');
  });

  it('D3hot zaps and faults SIGBUS even with COMMAND memory set; D0 restores access', () => {
    const a = start('current');
    mmapNoHook(a, 'B');
    step(a, { type: 'UserBTouch' }, 'userB');
    expect(step(a, { type: 'UserBFaultInsert' }, 'userB')).toBe('0');
    step(a, { type: 'GuestPowerWrite', d3: true }, 'guest');
    step(a, { type: 'GuestZapBars' }, 'guest');
    expect(step(a, { type: 'GuestCommit' }, 'guest')).toBe('0');
    expect(ctx(a)).toMatchObject({ cmdMemory: true, d3: true, vma: { userB: { linked: true, pte: false } } });
    step(a, { type: 'UserBTouch' }, 'userB');
    expect(step(a, { type: 'UserBFaultInsert' }, 'userB')).toBe('SIGBUS');
    expect(step(a, { type: 'GuestPowerWrite', d3: false }, 'guest')).toBe('0');
    step(a, { type: 'UserBTouch' }, 'userB');
    expect(step(a, { type: 'UserBFaultInsert' }, 'userB')).toBe('0');
  });
});

describe('scenarios: remap-on-enable (seed 003)', () => {
  it('the race: populated in f_op->mmap, zapped around, linked afterwards, mapping a disabled BAR', () => {
    const a = start('remap-on-enable');
    expect(step(a, { type: 'UserAMmap' }, 'userA')).toBe('blocked');
    step(a, { type: 'UserAMmapHook' }, 'userA'); // remap_pfn_range in the mmap hook, memory on
    expect(ctx(a).vma.userA).toEqual({ linked: false, pte: true });
    step(a, { type: 'GuestCommandWrite', memory: false }, 'guest');
    step(a, { type: 'GuestZapBars' }, 'guest'); // i_mmap has no VMA yet
    expect(ctx(a).vma.userA).toEqual({ linked: false, pte: true });
    expect(step(a, { type: 'GuestCommit' }, 'guest')).toBe('0');
    expect(step(a, { type: 'UserAMmapLink' }, 'userA')).toBe('0'); // vma_link_file, mmap returns
    expect(ctx(a)).toMatchObject({ cmdMemory: false, vma: { userA: { linked: true, pte: true } } });
    // The load is served by the MMU from the stale PTE: it reaches a BAR whose decode is off.
    expect(step(a, { type: 'UserATouch' }, 'userA')).toBe('0');
  });

  it('the walk loops forever once the other thread disabled memory (seed walk: while (1))', () => {
    const a = start('remap-on-enable');
    step(a, { type: 'UserAMmap' }, 'userA');
    step(a, { type: 'UserAMmapHook' }, 'userA');
    step(a, { type: 'UserAMmapLink' }, 'userA');
    step(a, { type: 'VmmReset' }, 'vmm');
    step(a, { type: 'VmmZapBars' }, 'vmm');
    step(a, { type: 'VmmCommit' }, 'vmm'); // memory still on after reset: walk
    expect(state(a).vmm).toBe('remapScan');
    step(a, { type: 'VmmRemapScan' }, 'vmm'); // finds userA's VMA without PTE
    expect(ctx(a).walk.vmm).toBe('userA');
    step(a, { type: 'GuestCommandWrite', memory: false }, 'guest');
    step(a, { type: 'GuestZapBars' }, 'guest');
    expect(step(a, { type: 'GuestCommit' }, 'guest')).toBe('0');
    step(a, { type: 'GuestQuit' }, 'guest');
    const loopStart = JSON.stringify(a.getSnapshot());
    for (let i = 0; i < 3; i++) {
      step(a, { type: 'VmmRemapLockMm' }, 'vmm');
      step(a, { type: 'VmmRemapLockMemory' }, 'vmm');
      step(a, { type: 'VmmRemapVmas' }, 'vmm'); // memory off: nothing remapped
      expect(step(a, { type: 'VmmRemapScan' }, 'vmm')).toBe('blocked'); // the same VMA again
      expect(JSON.stringify(a.getSnapshot())).toBe(loopStart);
    }
  });
});

describe('scenarios: remap-on-enable-fixed', () => {
  it('the same interleaving: nothing is populated before the VMA is linked; the enable walk maps it', () => {
    const a = start('remap-on-enable-fixed');
    step(a, { type: 'UserAMmap' }, 'userA');
    step(a, { type: 'UserAMmapLink' }, 'userA');
    step(a, { type: 'GuestCommandWrite', memory: false }, 'guest');
    blocked(a, { type: 'UserAMmapComplete' }); // populate needs memory_lock read
    step(a, { type: 'GuestZapBars' }, 'guest');
    step(a, { type: 'GuestCommit' }, 'guest');
    expect(step(a, { type: 'UserAMmapComplete' }, 'userA')).toBe('0');
    expect(ctx(a).vma.userA).toEqual({ linked: true, pte: false }); // memory off: not populated
    expect(step(a, { type: 'UserATouch' }, 'userA')).toBe('SIGBUS');
    expect(state(a).userA).toBe('touchSigbus');
    expect(step(a, { type: 'GuestCommandWrite', memory: true }, 'guest')).toBe('blocked'); // the walk runs
    step(a, { type: 'GuestRemapScan' }, 'guest');
    step(a, { type: 'GuestRemapLockMm' }, 'guest');
    blocked(a, { type: 'UserATouch' }); // the fault needs the mmap_lock the walk holds for write
    step(a, { type: 'GuestRemapLockMemory' }, 'guest');
    step(a, { type: 'GuestRemapVmas' }, 'guest');
    expect(ctx(a).vma.userA).toEqual({ linked: true, pte: true });
    expect(step(a, { type: 'GuestRemapScan' }, 'guest')).toBe('0'); // nothing left: the write returns
    expect(step(a, { type: 'UserATouch' }, 'userA')).toBe('0');
  });

  it('the walk returns when it finds memory disabled by the other thread', () => {
    const a = start('remap-on-enable-fixed');
    step(a, { type: 'UserAMmap' }, 'userA');
    step(a, { type: 'UserAMmapLink' }, 'userA');
    step(a, { type: 'UserAMmapComplete' }, 'userA');
    step(a, { type: 'VmmReset' }, 'vmm');
    step(a, { type: 'VmmZapBars' }, 'vmm');
    step(a, { type: 'VmmCommit' }, 'vmm');
    step(a, { type: 'VmmRemapScan' }, 'vmm');
    step(a, { type: 'GuestCommandWrite', memory: false }, 'guest');
    step(a, { type: 'GuestZapBars' }, 'guest');
    step(a, { type: 'GuestCommit' }, 'guest');
    step(a, { type: 'VmmRemapLockMm' }, 'vmm');
    step(a, { type: 'VmmRemapLockMemory' }, 'vmm');
    expect(step(a, { type: 'VmmRemapVmas' }, 'vmm')).toBe('0');
    expect(state(a).vmm).toBe('idle');
    expect(ctx(a)).toMatchObject({
      memoryLock: { writer: null, readers: [] },
      mmapLock: { userA: { writer: null, readers: [] } },
      vma: { userA: { linked: true, pte: false } },
    });
  });
});

describe('scenarios: remap-on-enable-locked', () => {
  it('ABBA: the walk holds memory_lock and wants mmap_lock; mmap holds mmap_lock and wants memory_lock', () => {
    const a = start('remap-on-enable-locked');
    step(a, { type: 'UserAMmap' }, 'userA');
    step(a, { type: 'UserAMmapLink' }, 'userA'); // linked, not yet populated, mmap_lock held
    step(a, { type: 'GuestCommandWrite', memory: false }, 'guest');
    blocked(a, { type: 'UserAMmapComplete' });
    step(a, { type: 'GuestZapBars' }, 'guest');
    step(a, { type: 'GuestCommit' }, 'guest');
    step(a, { type: 'GuestCommandWrite', memory: true }, 'guest'); // walk with memory_lock still held
    step(a, { type: 'GuestRemapScan' }, 'guest');
    expect(ctx(a).memoryLock.writer).toBe('guest');
    expect(ctx(a).mmapLock.userA.writer).toBe('userA');
    blocked(a, { type: 'GuestRemapLockMm' });
    blocked(a, { type: 'UserAMmapComplete' });
  });
});

describe('the design factory', () => {
  it('rejects a design in which nothing would ever install a PTE', () => {
    expect(() => buildMachine({ ...DESIGNS.current, fault: 'sigbus' })).toThrow(
      /nothing would ever install a PTE/,
    );
  });
  it('rejects walk options without a walk', () => {
    expect(() => buildMachine({ ...DESIGNS.current, remapUnderWriteLock: true })).toThrow(
      /need remapOnEnable/,
    );
  });
});
