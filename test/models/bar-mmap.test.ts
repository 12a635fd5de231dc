/**
 * bar-mmap (issues 8 and 14): verdicts at the default bounds, each invariant
 * shown firing (on a variant, a design option or a mutant) with its shortest
 * trace, the report fields (label, waitingFor), and scenarios in the
 * iommufd-selftest style: one scenario a test, the predicted result asserted
 * at each step.
 */

import { describe, expect, it } from 'vitest';
import { createActor, type Actor as XActor } from 'xstate';
import { explore } from '../../explorer/explore.ts';
import type { ModelSnapshot } from '../../explorer/model.ts';
import type { ExploreResult, TraceStep } from '../../explorer/result.ts';
import model, {
  buildMachine,
  type Ctx,
  DESIGNS,
  type Design,
  type Ev,
  label,
  waitingFor,
} from '../../machines/bar-mmap.ts';
import { exploreOnce, violated } from './support.ts';

type VariantName = keyof typeof DESIGNS;

/** A variant with its design changed (a mutant or a design option), expectations dropped. */
const variantWith = (name: VariantName, change: Partial<Design>) => ({
  ...model.variant(name),
  machine: buildMachine({ ...DESIGNS[name], ...change }),
  expect: undefined,
});

/** The design option "seed 003's walk with 7.3's fault-time insert" (no mmap populate), explored once. */
let sketchWalkRun: Promise<ExploreResult> | undefined;
const sketchWalkWithFaultInsert = () =>
  (sketchWalkRun ??= explore(variantWith('jason-sketch', { populate: 'fault', fault: 'insert' })));

/** Each variant is explored once for all the tests that read its result. */
const resultOf: (name: VariantName) => Promise<ExploreResult> = exploreOnce(model);

const counterexample = (r: ExploreResult, property: string) => {
  const v = r.violations.find((x) => x.property === property);
  if (!v) throw new Error(`no counterexample for ${property}`);
  return v;
};

/** An event as the trace tables print it: its type, with the call's parameter. */
const name = (e: Ev) =>
  e.type +
  ('memory' in e ? `(memory=${e.memory})` : '') +
  ('d3' in e ? `(d3=${e.d3})` : '') +
  ('mode' in e ? `(${e.mode})` : '');
const names = (trace: readonly TraceStep[]) => trace.map((s) => name(s.event as Ev));

type Run = XActor<ReturnType<typeof buildMachine>>;

function start(variant: VariantName, change: Partial<Design> = {}): Run {
  const a = createActor(buildMachine({ ...DESIGNS[variant], ...change }));
  a.start();
  return a;
}
const ctx = (a: Run): Ctx => a.getSnapshot().context;
const state = (a: Run) => a.getSnapshot().value as Record<string, string>;
const snap = (a: Run) => a.getSnapshot() as unknown as ModelSnapshot<Ctx>;

/** Replay a counterexample on a fresh machine of `variant`: the state it ends in. */
function replay(variant: VariantName, trace: readonly TraceStep[], change: Partial<Design> = {}): Run {
  const a = start(variant, change);
  for (const s of trace) a.send(s.event as Ev);
  return a;
}

/** Send an event the machine must accept; return the predicted result of `actor`. */
function step(a: Run, e: Ev, actor: keyof Ctx['ret']): string | null {
  expect(a.getSnapshot().can(e), `${name(e)} should be enabled`).toBe(true);
  a.send(e);
  return ctx(a).ret[actor];
}
const blocked = (a: Run, e: Ev) => expect(a.getSnapshot().can(e), `${name(e)} should wait`).toBe(false);

describe('verdicts at the default bounds', () => {
  it.each(model.variantNames)(
    '%s: complete, violates exactly what it declares, state count pinned',
    async (v) => {
      const variant = model.variant(v);
      const r = await resultOf(v as VariantName);
      expect(r.complete).toBe(true);
      expect(violated(r)).toEqual([...(variant.expect?.violated ?? [])].sort());
      expect(r.states).toBe(variant.expect?.states);
    },
  );

  it('the temporal properties are checked (not left unknown) on every variant', async () => {
    for (const v of model.variantNames) {
      const r = await resultOf(v as VariantName);
      for (const prop of ['accessAfterEnableWorks', 'guestCallsReturn', 'vmmCallsReturn']) {
        const p = r.properties.find((x) => x.name === prop);
        expect(p?.kind, `${v} ${prop}`).toBe('leadsTo');
        expect(['holds', 'violated'], `${v} ${prop}`).toContain(p?.status);
      }
    }
  });

  it('the reachability witnesses hold on every variant: a served load, a disable meeting a mapping, a SIGBUS while off', async () => {
    for (const v of model.variantNames) {
      const r = await resultOf(v as VariantName);
      for (const prop of ['aLoadIsServedByAPte', 'aDisableMeetsAMapping', 'aLoadGetsSigbusWhileOff']) {
        const p = r.properties.find((x) => x.name === prop);
        expect(p?.kind, `${v} ${prop}`).toBe('sometimes');
        expect(p?.status, `${v} ${prop}`).toBe('holds');
      }
    }
  });

  it('every variant names its kernel or says it is a proposal', () => {
    for (const v of model.variantNames) {
      expect(model.variant(v).description, v).toMatch(/^(kernel|kernels|seed 003|proposed \(ours\))/);
    }
  });
});

describe('pre-aac6db75 (kernels v5.8-v6.9): the design the thread is about', () => {
  it('remapHoldsMmapWriteLock: the fault reaches io_remap_pfn_range holding mmap_lock for read (5 steps)', async () => {
    const v = counterexample(await resultOf('pre-aac6db75'), 'remapHoldsMmapWriteLock');
    expect(v.kind).toBe('invariant');
    expect(names(v.trace)).toEqual([
      'UserAMmap',
      'UserAMmapLink',
      'UserATouch',
      'UserAFaultLockVma',
      'UserAFaultLockMemory',
    ]);
    const end = replay('pre-aac6db75', v.trace);
    expect(state(end).userA).toBe('faultRemapping');
    expect(ctx(end)).toMatchObject({
      mmapLock: { userA: { writer: null, readers: ['userA'] } },
      memoryLock: { readers: ['userA'] },
      vmaLock: 'userA',
    });
  });

  it("vfio's fault-versus-zap race, the one vma_lock guards (not the race the mmap_lock assertion is about): without vma_lock the remap lands after the zap (10 steps)", async () => {
    const r = await explore(variantWith('pre-aac6db75', { mutate: 'faultNoVmaLock' }));
    const v = counterexample(r, 'noPteWhileDisabled');
    expect(v.trace).toHaveLength(10);
    const n = names(v.trace);
    // The zap found vma_list empty (the fault had not listed its VMA yet) and
    // returned holding vma_lock; the remap, past its enable test, installs the
    // PTE and lists it; the disable then gets memory_lock and commits.
    expect(n.indexOf('GuestZapListLock')).toBeLessThan(n.indexOf('UserAFaultRemap'));
    expect(n.indexOf('UserAFaultRemap')).toBeLessThan(n.indexOf('GuestZapDownWrite'));
    expect(n.at(-1)).toBe('GuestCommit');
    // With vma_lock (the kernel as it was) the same race is closed:
    expect(violated(await resultOf('pre-aac6db75'))).not.toContain('noPteWhileDisabled');
  });

  it('guestCallsReturn: a user faulting in a loop starves the vma_list zap, which never reaches memory_lock (lasso)', async () => {
    const v = counterexample(await resultOf('pre-aac6db75'), 'guestCallsReturn');
    expect(v.kind).toBe('liveness');
    const cycle = names(v.trace.slice(v.cycleStart));
    expect(cycle.filter((t) => t.startsWith('Guest'))).toEqual([
      'GuestZapListLock',
      'GuestZapMmLock',
      'GuestZapListZap',
    ]);
    expect(cycle).toContain('UserAFaultRemap');
    expect(cycle).not.toContain('GuestZapDownWrite');
  });
});

describe('jason-sketch (seed 003 as written)', () => {
  it('noStalePteAfterZap: the zap cannot see the VMA populated in f_op->mmap and not linked yet (5 steps)', async () => {
    const v = counterexample(await resultOf('jason-sketch'), 'noStalePteAfterZap');
    expect(names(v.trace)).toEqual([
      'UserAMmap',
      'UserAMmapHook',
      'GuestCommandWrite(memory=false)',
      'GuestZapLock',
      'GuestZapBars',
    ]);
  });

  it('noPteWhileDisabled: the same VMA left mapping the BAR once the disable commits (6 steps)', async () => {
    const v = counterexample(await resultOf('jason-sketch'), 'noPteWhileDisabled');
    expect(names(v.trace).slice(-2)).toEqual(['GuestZapBars', 'GuestCommit']);
    expect(v.trace).toHaveLength(6);
    expect(v.trace[5].result).toBe('0');
  });

  it('noSigbusAfterEnable: a VMA created while disabled is missed by the enable walk (10 steps)', async () => {
    const v = counterexample(await resultOf('jason-sketch'), 'noSigbusAfterEnable');
    expect(names(v.trace)).toEqual([
      'UserAMmap',
      'GuestCommandWrite(memory=false)',
      'GuestZapLock',
      'GuestZapBars',
      'GuestCommit',
      'UserAMmapHook',
      'GuestCommandWrite(memory=true)',
      'GuestRemapScan',
      'UserAMmapLink',
      'UserATouch',
    ]);
    expect(v.trace[9].result).toBe('SIGBUS');
  });

  it('accessAfterEnableWorks (liveness): after the enable, userA gets SIGBUS forever', async () => {
    const v = counterexample(await resultOf('jason-sketch'), 'accessAfterEnableWorks');
    expect(v.kind).toBe('liveness');
    const cycle = v.trace.slice(v.cycleStart);
    expect(cycle.filter((s) => s.event.type === 'UserATouch').map((s) => s.result)).toEqual(['SIGBUS']);
    expect(cycle.every((s) => !/^(Guest|Vmm)/.test(s.event.type))).toBe(true);
  });

  it('the sketched walk terminates (vmmCallsReturn holds) but maps the BAR again after a concurrent disable (design option: no mmap populate, 13 steps)', async () => {
    expect(violated(await resultOf('jason-sketch'))).not.toContain('vmmCallsReturn');
    const r = await sketchWalkWithFaultInsert();
    const v = counterexample(r, 'noPteWhileDisabled');
    expect(v.trace).toHaveLength(13);
    const n = names(v.trace);
    // The guest's zap ran while the reset's walk held cur_mm's mmap_lock; the walk
    // then remaps without re-testing memory enable.
    expect(n.lastIndexOf('VmmRemapVmas')).toBeGreaterThan(n.indexOf('GuestZapBars'));
    expect(violated(r)).not.toContain('vmmCallsReturn');
  });
});

describe('jason-sketch: the walk as written (its mm references and its second loop)', () => {
  it('everyMmGrabDropped: the first loop grabs the mm of every unpopulated VMA but keeps only the last as cur_mm (11 steps)', async () => {
    const v = counterexample(await resultOf('jason-sketch'), 'everyMmGrabDropped');
    expect(v.trace).toHaveLength(11);
    // Both VMAs mapped while memory was on, zapped by a reset, whose commit starts the walk.
    expect(names(v.trace).slice(-4)).toEqual(['VmmZapLock', 'VmmZapBars', 'VmmCommit', 'VmmRemapScan']);
    const end = replay('jason-sketch', v.trace);
    expect(ctx(end).walk.vmm).toBe('userB'); // cur_mm: the last one
    expect(ctx(end).grabs.vmm).toEqual(['userA', 'userB']); // userA's grab has no pointer left
  });

  it("the leaked grab stays: after the pass drops cur_mm, userA's mm keeps a reference nobody drops", async () => {
    const v = counterexample(await resultOf('jason-sketch'), 'everyMmGrabDropped');
    const a = replay('jason-sketch', v.trace);
    step(a, { type: 'VmmRemapLockMm' }, 'vmm');
    step(a, { type: 'VmmRemapVmas' }, 'vmm'); // remap userB, mmdrop(cur_mm)
    expect(ctx(a)).toMatchObject({ grabs: { vmm: [] }, leakedMm: ['userA'], walk: { vmm: null } });
    step(a, { type: 'VmmRemapScan' }, 'vmm'); // userA is still unpopulated: grabbed again, and dropped this time
    step(a, { type: 'VmmRemapLockMm' }, 'vmm');
    step(a, { type: 'VmmRemapVmas' }, 'vmm');
    expect(step(a, { type: 'VmmRemapScan' }, 'vmm')).toBe('0'); // nothing left: the reset returns
    expect(ctx(a)).toMatchObject({ grabs: { vmm: [] }, leakedMm: ['userA'] });
  });

  it('noDoubleRemap: two walks pick the same mm, the second remaps the VMA the first populated: BUG_ON in remap_pte_range (18 steps)', async () => {
    const v = counterexample(await resultOf('jason-sketch'), 'noDoubleRemap');
    expect(v.trace).toHaveLength(18);
    const n = names(v.trace);
    // An enable's walk and a reset's walk both scan while userA's VMA is unpopulated...
    expect(n).toContain('GuestRemapScan');
    expect(n).toContain('VmmRemapScan');
    // ...the guest remaps it first, and the reset's second loop remaps it again.
    expect(n.indexOf('VmmRemapScan')).toBeLessThan(n.indexOf('GuestRemapVmas'));
    expect(n.at(-1)).toBe('VmmRemapVmas');
    const end = replay('jason-sketch', v.trace);
    expect(ctx(end).walk).toEqual({ guest: null, vmm: 'userA' });
    expect(state(end).vmm).toBe('remapBug');
    expect(ctx(end)).toMatchObject({ kernelBug: true, vma: { userA: { linked: true, pte: true } } });
    // The kernel is dead: nothing but the Halt steps, and then every actor has stopped.
    expect(end.getSnapshot().can({ type: 'GuestCommandWrite', memory: false })).toBe(false);
    expect(end.getSnapshot().can({ type: 'UserATouch' })).toBe(false);
    for (const e of ['UserAHalt', 'UserBHalt', 'GuestHalt'] as const) step(end, { type: e }, 'userA');
    expect(end.getSnapshot().status).toBe('done');
  });

  it("the project's walk, with only the sketch's walk put in, BUGs and leaks as well: the two differences are the point", async () => {
    // proposed-fault-only's design (7.3's fault, no populate at mmap) with seed 003's walk: the fault
    // inserts the PTE between the walk's scan and its remap. With the project's walk (grab the first
    // unpopulated mm only, remap only what vma_populated() finds empty) both properties hold.
    const r = await sketchWalkWithFaultInsert();
    expect(violated(r)).toEqual(expect.arrayContaining(['everyMmGrabDropped', 'noDoubleRemap']));
    const bug = names(counterexample(r, 'noDoubleRemap').trace);
    const last = bug.at(-1) as string;
    const x = last.startsWith('Guest') ? 'Guest' : 'Vmm';
    const u = bug.find((t) => /^User[AB]FaultInsert$/.test(t)) as string;
    expect(bug.lastIndexOf(u)).toBeGreaterThan(bug.lastIndexOf(`${x}RemapScan`));
    for (const v of ['proposed-fault-only', 'proposed-fixed-unhidden'] as const) {
      const ok = violated(await resultOf(v));
      expect(ok, v).not.toContain('noDoubleRemap');
      expect(ok, v).not.toContain('everyMmGrabDropped');
    }
  });
});

describe("the project's proposals", () => {
  it("proposed-fixed: 7.3's hide_from_rmap semantics deadlock the populate against the zap (8 steps)", async () => {
    const v = counterexample(await resultOf('proposed-fixed'), 'deadlock');
    expect(v.trace).toHaveLength(8);
    const end = replay('proposed-fixed', v.trace);
    expect(ctx(end).iMmap.writer).toBe('userA'); // vma_link_file(vma, hold_rmap_lock = true)
    expect(ctx(end).memoryLock.writer).toBe('guest');
    expect(waitingFor(snap(end), 'userA')).toBe(
      'in the populate after vma_link_file: down_read(memory_lock), queued; held by guest (write)',
    );
    expect(waitingFor(snap(end), 'guest')).toBe(
      'in vfio_pci_zap_bars (unmap_mapping_range): down_read(i_mmap_rwsem), queued; held by userA (write)',
    );
  });

  it('proposed-fixed-unhidden holds everything: only with a hook that drops the rmap lock before populating', async () => {
    expect(violated(await resultOf('proposed-fixed-unhidden'))).toEqual([]);
  });

  it('proposed-locked: the walk under memory_lock write waits for an mmap_lock whose holder waits for memory_lock (13 steps)', async () => {
    const v = counterexample(await resultOf('proposed-locked'), 'deadlock');
    expect(v.trace).toHaveLength(13);
    const end = replay('proposed-locked', v.trace);
    expect(state(end)).toMatchObject({ userA: 'mmapComplete', userB: 'mmapComplete', vmm: 'remapLockMm' });
    expect(waitingFor(snap(end), 'vmm')).toBe(
      "in the remap walk (mmap_write_lock(cur_mm)): down_write(userA's mmap_lock), queued; held by userA (write)",
    );
  });

  it('proposed-fault-only: with the writer-fair rwsem the walk is not starved by faulting readers (the old false finding is gone)', async () => {
    // With the old RwSem, which admitted new readers past a waiting writer,
    // vmmCallsReturn was violated here: two users faulting in turn kept
    // mmap_lock read-held, and the walk waiting for it to write was never
    // continuously enabled. rwsem.c queues new readers behind the writer.
    const r = await resultOf('proposed-fault-only');
    expect(r.properties.find((p) => p.name === 'vmmCallsReturn')?.status).toBe('holds');
    expect(violated(r)).toEqual([]);
  });
});

describe('current (7.3.4) and its mutants', () => {
  it('mutant noZap: noStalePteAfterZap (7 steps) and noPteWhileDisabled (8 steps)', async () => {
    const r = await explore(variantWith('current', { mutate: 'noZap' }));
    expect(violated(r)).toEqual(['noPteWhileDisabled', 'noStalePteAfterZap']);
    expect(names(counterexample(r, 'noStalePteAfterZap').trace)).toEqual([
      'UserAMmap',
      'UserAMmapLink',
      'UserATouch',
      'UserAFaultInsert',
      'GuestCommandWrite(memory=false)',
      'GuestZapLock',
      'GuestZapBars',
    ]);
    expect(counterexample(r, 'noPteWhileDisabled').trace).toHaveLength(8);
  });

  it('mutant faultUnlocked: the insert lands after the zap (7 and 8 steps)', async () => {
    const r = await explore(variantWith('current', { mutate: 'faultUnlocked' }));
    expect(violated(r)).toEqual(['noPteWhileDisabled', 'noStalePteAfterZap']);
    expect(names(counterexample(r, 'noStalePteAfterZap').trace)).toEqual([
      'UserAMmap',
      'UserAMmapLink',
      'UserATouch',
      'GuestCommandWrite(memory=false)',
      'GuestZapLock',
      'GuestZapBars',
      'UserAFaultInsert',
    ]);
  });
});

describe('report fields: label and waitingFor', () => {
  it('labels calls in the uAPI and kernel steps by their kernel function', () => {
    const a = start('current');
    const s = snap(a);
    expect(label({ type: 'UserAMmap' }, s)).toBe('mmap(device, BAR0)');
    expect(label({ type: 'UserBTouch' }, s)).toBe('load(BAR0)');
    expect(label({ type: 'UserAMunmap' }, s)).toBe('munmap(BAR0)');
    expect(label({ type: 'GuestCommandWrite', memory: false }, s)).toBe('pwrite(config, PCI_COMMAND, MEM=0)');
    expect(label({ type: 'GuestCommandWrite', memory: true }, s)).toBe('pwrite(config, PCI_COMMAND, MEM=1)');
    expect(label({ type: 'GuestPowerWrite', d3: true }, s)).toBe('pwrite(config, PCI_PM_CTRL, D3hot)');
    expect(label({ type: 'VmmReset' }, s)).toBe('ioctl(device, VFIO_DEVICE_RESET)');
    expect(label({ type: 'GuestZapBars' }, s)).toBe('unmap_mapping_range(): zap linked VMAs');
  });

  it('labels a Wait with the lock and the function that sleeps on it; waitingFor is undefined for an actor that can move', () => {
    const a = start('proposed-fixed');
    step(a, { type: 'UserAMmap' }, 'userA');
    step(a, { type: 'UserAMmapLink' }, 'userA'); // holds i_mmap_rwsem for write
    step(a, { type: 'UserBMmap' }, 'userB');
    const wait: Ev = { type: 'UserBWait', mode: 'write' };
    expect(label(wait, snap(a))).toBe('vma_link_file: down_write(i_mmap_rwsem) sleeps');
    expect(waitingFor(snap(a), 'userB')).toBeUndefined(); // not asleep yet: its Wait step is enabled
    step(a, wait, 'userB');
    expect(waitingFor(snap(a), 'userB')).toBe(
      'in vma_link_file: down_write(i_mmap_rwsem), queued; held by userA (write)',
    );
    expect(waitingFor(snap(a), 'userA')).toBeUndefined();
  });

  it('waitingFor names the vma_lock holder in the old design', () => {
    const a = start('pre-aac6db75');
    step(a, { type: 'UserAMmap' }, 'userA');
    step(a, { type: 'UserAMmapLink' }, 'userA');
    step(a, { type: 'UserATouch' }, 'userA');
    step(a, { type: 'UserAFaultLockVma' }, 'userA');
    step(a, { type: 'GuestCommandWrite', memory: false }, 'guest');
    blocked(a, { type: 'GuestZapListLock' });
    expect(waitingFor(snap(a), 'guest')).toBe(
      'in vfio_pci_zap_and_vma_lock: mutex_lock(vma_lock), held by userA',
    );
  });
});

// ---------------------------------------------------------------- scenarios

/** mmap a BAR page in the shapes without a hook step: returns mmap's result. */
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
    step(a, { type: 'GuestZapLock' }, 'guest'); // i_mmap_lock_read, held across the tree walk
    expect(ctx(a).iMmap.readers).toEqual(['guest']);
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

  it('a fault queues on memory_lock held by a reset, then sees memory on again', () => {
    const a = start('current');
    mmapNoHook(a, 'A');
    expect(step(a, { type: 'UserATouch' }, 'userA')).toBe('blocked');
    expect(step(a, { type: 'VmmReset' }, 'vmm')).toBe('blocked');
    blocked(a, { type: 'UserAFaultInsert' }); // memory_lock is held for write
    step(a, { type: 'UserAWait', mode: 'read' }, 'userA'); // rwsem_down_read_slowpath
    expect(ctx(a).memoryLock.waiters).toEqual([{ actor: 'userA', mode: 'read' }]);
    step(a, { type: 'VmmZapLock' }, 'vmm');
    step(a, { type: 'VmmZapBars' }, 'vmm');
    blocked(a, { type: 'UserAFaultInsert' });
    expect(step(a, { type: 'VmmCommit' }, 'vmm')).toBe('0'); // reset restores COMMAND: memory on again
    expect(step(a, { type: 'UserAFaultInsert' }, 'userA')).toBe('0');
    expect(ctx(a).memoryLock).toEqual({ writer: null, readers: [], waiters: [], granted: [] });
  });

  it('a config write that finds memory_lock held queues as it enters, and no new fault passes it', () => {
    const a = start('current');
    mmapNoHook(a, 'A');
    mmapNoHook(a, 'B');
    step(a, { type: 'UserATouch' }, 'userA');
    step(a, { type: 'VmmReset' }, 'vmm'); // memory_lock write
    expect(step(a, { type: 'GuestCommandWrite', memory: false }, 'guest')).toBe('blocked');
    expect(state(a).guest).toBe('disableQueued');
    step(a, { type: 'VmmZapLock' }, 'vmm');
    step(a, { type: 'VmmZapBars' }, 'vmm');
    step(a, { type: 'VmmCommit' }, 'vmm');
    step(a, { type: 'UserBTouch' }, 'userB');
    blocked(a, { type: 'UserBFaultInsert' }); // the queued writer shuts out a new reader (RWSEM_FLAG_WAITERS)
    step(a, { type: 'GuestLockMemory' }, 'guest');
    expect(ctx(a).memoryLock.writer).toBe('guest');
  });

  it('D3hot zaps and faults SIGBUS even with COMMAND memory set; D0 restores access', () => {
    const a = start('current');
    mmapNoHook(a, 'B');
    step(a, { type: 'UserBTouch' }, 'userB');
    expect(step(a, { type: 'UserBFaultInsert' }, 'userB')).toBe('0');
    step(a, { type: 'GuestPowerWrite', d3: true }, 'guest');
    step(a, { type: 'GuestZapLock' }, 'guest');
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

describe("the rwsem through the machine's guards (kernel/locking/rwsem.c)", () => {
  /** Both users fault with memory_lock held for write by the guest's disable; then the vmm's reset queues between them. */
  function readersAroundAWriter(): Run {
    const a = start('current');
    mmapNoHook(a, 'A');
    mmapNoHook(a, 'B');
    step(a, { type: 'UserATouch' }, 'userA');
    step(a, { type: 'UserBTouch' }, 'userB');
    step(a, { type: 'GuestCommandWrite', memory: false }, 'guest'); // memory_lock write
    step(a, { type: 'UserAWait', mode: 'read' }, 'userA'); // the fault sleeps on memory_lock
    expect(step(a, { type: 'VmmReset' }, 'vmm')).toBe('blocked'); // queues for write behind userA
    step(a, { type: 'UserBWait', mode: 'read' }, 'userB'); // queues behind the writer
    expect(ctx(a).memoryLock.waiters.map((w) => `${w.actor}:${w.mode}`)).toEqual([
      'userA:read',
      'vmm:write',
      'userB:read',
    ]);
    step(a, { type: 'GuestZapLock' }, 'guest');
    step(a, { type: 'GuestZapBars' }, 'guest');
    return a;
  }

  it('up_write grants every queued reader at once, also the one behind the writer (rwsem_mark_wake)', () => {
    const a = readersAroundAWriter();
    blocked(a, { type: 'UserBFaultInsert' });
    expect(step(a, { type: 'GuestCommit' }, 'guest')).toBe('0'); // up_write -> rwsem_wake
    expect(ctx(a).memoryLock).toEqual({
      writer: null,
      readers: ['userA', 'userB'],
      waiters: [{ actor: 'vmm', mode: 'write' }],
      granted: ['userA', 'userB'],
    });
    expect(waitingFor(snap(a), 'userB')).toBeUndefined(); // granted: it can move
  });

  it('a writer queued between two granted readers cannot take the lock after the first one drops it', () => {
    const a = readersAroundAWriter();
    step(a, { type: 'GuestCommit' }, 'guest');
    expect(step(a, { type: 'UserAFaultInsert' }, 'userA')).toBe('SIGBUS'); // took and dropped its grant
    // userB was granted the lock by the same wake-up: it still holds it, so the reset waits.
    blocked(a, { type: 'VmmLockMemory' });
    expect(waitingFor(snap(a), 'vmm')).toMatch(/down_write\(memory_lock\), queued; held by userB \(read\)/);
    expect(step(a, { type: 'UserBFaultInsert' }, 'userB')).toBe('SIGBUS');
    step(a, { type: 'VmmLockMemory' }, 'vmm');
    expect(ctx(a).memoryLock.writer).toBe('vmm');
  });

  it('a reader arriving while a writer is queued sleeps, and is granted only once that writer is done', () => {
    const a = start('current');
    mmapNoHook(a, 'A');
    mmapNoHook(a, 'B');
    step(a, { type: 'UserATouch' }, 'userA');
    step(a, { type: 'VmmReset' }, 'vmm'); // memory_lock write
    step(a, { type: 'GuestCommandWrite', memory: false }, 'guest'); // queues for write
    step(a, { type: 'UserAWait', mode: 'read' }, 'userA'); // behind the guest
    step(a, { type: 'VmmZapLock' }, 'vmm');
    step(a, { type: 'VmmZapBars' }, 'vmm');
    step(a, { type: 'VmmCommit' }, 'vmm'); // wakes the guest alone: a writer is first
    expect(ctx(a).memoryLock.granted).toEqual([]);
    blocked(a, { type: 'UserAFaultInsert' });
    step(a, { type: 'GuestLockMemory' }, 'guest');
    step(a, { type: 'GuestZapLock' }, 'guest');
    step(a, { type: 'GuestZapBars' }, 'guest');
    step(a, { type: 'GuestCommit' }, 'guest');
    expect(ctx(a).memoryLock.granted).toEqual(['userA']);
    expect(step(a, { type: 'UserAFaultInsert' }, 'userA')).toBe('SIGBUS');
  });
});

describe('scenarios: pre-aac6db75', () => {
  it('the fault maps the whole VMA and lists it; the zap unlists it per mm, then takes memory_lock', () => {
    const a = start('pre-aac6db75');
    expect(mmapNoHook(a, 'A')).toBe('0');
    step(a, { type: 'UserATouch' }, 'userA');
    step(a, { type: 'UserAFaultLockVma' }, 'userA');
    step(a, { type: 'UserAFaultLockMemory' }, 'userA');
    expect(step(a, { type: 'UserAFaultRemap' }, 'userA')).toBe('0');
    expect(ctx(a)).toMatchObject({ vmaList: ['userA'], vmaLock: null, vma: { userA: { pte: true } } });
    step(a, { type: 'GuestCommandWrite', memory: false }, 'guest');
    step(a, { type: 'GuestZapListLock' }, 'guest'); // first mm on vma_list
    expect(ctx(a).walk.guest).toBe('userA');
    step(a, { type: 'GuestZapMmLock' }, 'guest'); // mmap_read_lock(mm)
    step(a, { type: 'GuestZapListZap' }, 'guest'); // zap_vma_ptes, off the list
    expect(ctx(a)).toMatchObject({ vmaList: [], vma: { userA: { pte: false } } });
    step(a, { type: 'GuestZapListLock' }, 'guest'); // empty: returns holding vma_lock
    expect(ctx(a).vmaLock).toBe('guest');
    step(a, { type: 'GuestZapDownWrite' }, 'guest');
    expect(ctx(a)).toMatchObject({ vmaLock: null, memoryLock: { writer: 'guest' } });
    expect(step(a, { type: 'GuestCommit' }, 'guest')).toBe('0');
    step(a, { type: 'UserATouch' }, 'userA');
    step(a, { type: 'UserAFaultLockVma' }, 'userA');
    expect(step(a, { type: 'UserAFaultLockMemory' }, 'userA')).toBe('SIGBUS');
    expect(ctx(a).vmaLock).toBeNull();
  });
});

describe('scenarios: jason-sketch', () => {
  it('the race: populated in f_op->mmap, zapped around, linked afterwards, mapping a disabled BAR', () => {
    const a = start('jason-sketch');
    expect(step(a, { type: 'UserAMmap' }, 'userA')).toBe('blocked');
    step(a, { type: 'UserAMmapHook' }, 'userA'); // remap_pfn_range in the mmap hook, memory on
    expect(ctx(a).vma.userA).toEqual({ linked: false, pte: true });
    step(a, { type: 'GuestCommandWrite', memory: false }, 'guest');
    step(a, { type: 'GuestZapLock' }, 'guest');
    step(a, { type: 'GuestZapBars' }, 'guest'); // i_mmap has no VMA yet
    expect(ctx(a).vma.userA).toEqual({ linked: false, pte: true });
    expect(step(a, { type: 'GuestCommit' }, 'guest')).toBe('0');
    expect(step(a, { type: 'UserAMmapLink' }, 'userA')).toBe('0'); // vma_link_file, mmap returns
    expect(ctx(a)).toMatchObject({ cmdMemory: false, vma: { userA: { linked: true, pte: true } } });
    // The load is served by the MMU from the stale PTE: it reaches a BAR whose decode is off.
    expect(step(a, { type: 'UserATouch' }, 'userA')).toBe('0');
  });

  it("the walk takes the last unpopulated VMA's mm and remaps without testing memory enable", () => {
    const a = start('jason-sketch');
    step(a, { type: 'GuestCommandWrite', memory: false }, 'guest');
    step(a, { type: 'GuestZapLock' }, 'guest');
    step(a, { type: 'GuestZapBars' }, 'guest');
    step(a, { type: 'GuestCommit' }, 'guest');
    for (const u of ['A', 'B'] as const) {
      step(a, { type: `User${u}Mmap` }, `user${u}`);
      step(a, { type: `User${u}MmapHook` }, `user${u}`); // memory off: nothing mapped
      step(a, { type: `User${u}MmapLink` }, `user${u}`);
    }
    expect(step(a, { type: 'GuestCommandWrite', memory: true }, 'guest')).toBe('blocked');
    step(a, { type: 'GuestRemapScan' }, 'guest');
    expect(ctx(a).walk.guest).toBe('userB'); // cur_mm is overwritten for each unpopulated VMA
    step(a, { type: 'GuestRemapLockMm' }, 'guest');
    step(a, { type: 'VmmReset' }, 'vmm'); // memory_lock write: the walk does not take it
    step(a, { type: 'GuestRemapVmas' }, 'guest');
    expect(ctx(a).vma.userB?.pte).toBe(true);
  });
});

describe('scenarios: proposed-fixed-unhidden', () => {
  it('nothing is populated before the VMA is linked; the enable walk maps it', () => {
    const a = start('proposed-fixed-unhidden');
    step(a, { type: 'UserAMmap' }, 'userA');
    step(a, { type: 'UserAMmapLink' }, 'userA');
    step(a, { type: 'GuestCommandWrite', memory: false }, 'guest');
    blocked(a, { type: 'UserAMmapComplete' }); // populate needs memory_lock read
    step(a, { type: 'GuestZapLock' }, 'guest');
    step(a, { type: 'GuestZapBars' }, 'guest');
    step(a, { type: 'GuestCommit' }, 'guest');
    expect(step(a, { type: 'UserAMmapComplete' }, 'userA')).toBe('0');
    expect(ctx(a).vma.userA).toEqual({ linked: true, pte: false }); // memory off: not populated
    expect(step(a, { type: 'UserATouch' }, 'userA')).toBe('SIGBUS');
    expect(state(a).userA).toBe('touchSigbus');
    expect(step(a, { type: 'GuestCommandWrite', memory: true }, 'guest')).toBe('blocked'); // the walk runs
    step(a, { type: 'GuestRemapScan' }, 'guest');
    step(a, { type: 'GuestRemapLockMm' }, 'guest');
    // The fault sleeps on the mmap_lock the walk holds for write.
    expect(step(a, { type: 'UserATouch' }, 'userA')).toBe('blocked');
    expect(state(a).userA).toBe('touchQueued');
    blocked(a, { type: 'UserAFaultLock' });
    step(a, { type: 'GuestRemapLockMemory' }, 'guest');
    step(a, { type: 'GuestRemapVmas' }, 'guest');
    expect(ctx(a).vma.userA).toEqual({ linked: true, pte: true });
    expect(step(a, { type: 'GuestRemapScan' }, 'guest')).toBe('0'); // nothing left: the write returns
    expect(step(a, { type: 'UserAFaultLock' }, 'userA')).toBe('0'); // the PTE is there: a spurious fault
  });

  it('the walk returns when it finds memory disabled by the other thread', () => {
    const a = start('proposed-fixed-unhidden');
    step(a, { type: 'UserAMmap' }, 'userA');
    step(a, { type: 'UserAMmapLink' }, 'userA');
    step(a, { type: 'UserAMmapComplete' }, 'userA');
    step(a, { type: 'VmmReset' }, 'vmm');
    step(a, { type: 'VmmZapLock' }, 'vmm');
    step(a, { type: 'VmmZapBars' }, 'vmm');
    step(a, { type: 'VmmCommit' }, 'vmm');
    step(a, { type: 'VmmRemapScan' }, 'vmm');
    step(a, { type: 'GuestCommandWrite', memory: false }, 'guest');
    step(a, { type: 'GuestZapLock' }, 'guest');
    step(a, { type: 'GuestZapBars' }, 'guest');
    step(a, { type: 'GuestCommit' }, 'guest');
    step(a, { type: 'VmmRemapLockMm' }, 'vmm');
    step(a, { type: 'VmmRemapLockMemory' }, 'vmm');
    expect(step(a, { type: 'VmmRemapVmas' }, 'vmm')).toBe('0');
    expect(state(a).vmm).toBe('idle');
    expect(ctx(a)).toMatchObject({
      memoryLock: { writer: null, readers: [], waiters: [], granted: [] },
      mmapLock: { userA: { writer: null, readers: [], waiters: [], granted: [] } },
      vma: { userA: { linked: true, pte: false } },
    });
  });
});

describe('scenarios: proposed-locked and proposed-fixed', () => {
  it('ABBA on mmap_lock: the walk holds memory_lock and wants mmap_lock; mmap holds mmap_lock and wants memory_lock', () => {
    const a = start('proposed-locked');
    step(a, { type: 'UserAMmap' }, 'userA');
    step(a, { type: 'UserAMmapLink' }, 'userA'); // linked, not yet populated, mmap_lock held
    step(a, { type: 'GuestCommandWrite', memory: false }, 'guest');
    blocked(a, { type: 'UserAMmapComplete' });
    step(a, { type: 'GuestZapLock' }, 'guest');
    step(a, { type: 'GuestZapBars' }, 'guest');
    step(a, { type: 'GuestCommit' }, 'guest');
    step(a, { type: 'GuestCommandWrite', memory: true }, 'guest'); // walk with memory_lock still held
    step(a, { type: 'GuestRemapScan' }, 'guest');
    expect(ctx(a).memoryLock.writer).toBe('guest');
    expect(ctx(a).mmapLock.userA.writer).toBe('userA');
    blocked(a, { type: 'GuestRemapLockMm' });
    blocked(a, { type: 'UserAMmapComplete' });
  });

  it('ABBA on i_mmap_rwsem: the hidden VMA holds it for write and wants memory_lock; the zap holds memory_lock and wants it', () => {
    const a = start('proposed-fixed');
    step(a, { type: 'UserAMmap' }, 'userA');
    step(a, { type: 'UserAMmapLink' }, 'userA');
    expect(ctx(a).iMmap.writer).toBe('userA'); // hold_rmap_lock
    step(a, { type: 'GuestCommandWrite', memory: false }, 'guest');
    blocked(a, { type: 'GuestZapLock' });
    blocked(a, { type: 'UserAMmapComplete' });
  });
});

describe('the design factory', () => {
  it('rejects a design in which nothing would ever install a PTE', () => {
    expect(() => buildMachine({ ...DESIGNS.current, fault: 'sigbus' })).toThrow(
      /nothing would ever install a PTE/,
    );
  });
  it('rejects walk options without a walk, and a hidden rmap without a populate after link', () => {
    expect(() => buildMachine({ ...DESIGNS.current, walkUnderWriteLock: true })).toThrow(/needs a walk/);
    expect(() => buildMachine({ ...DESIGNS.current, hideFromRmap: true })).toThrow(
      /needs populate: afterLink/,
    );
  });
  it('rejects a vma_list fault without the vma_list zap', () => {
    expect(() => buildMachine({ ...DESIGNS.current, fault: 'remapVma' })).toThrow(/come together/);
  });
});
