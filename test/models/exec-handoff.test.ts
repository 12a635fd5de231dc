/**
 * The exec-handoff model (machines/exec-handoff.ts, spec/exec-handoff.md):
 * each design's verdict at its default bounds, each invariant shown firing
 * with its shortest counterexample, the `recoverable` property (AG EF
 * oneLiveOwner) cross-checked by an independent backward reachability, the
 * QEMU variants' liveness and reachability, the event labels and
 * waitingFor, and one scenario per design in the selftest style (the
 * predicted errno at each step).
 */
import { describe, expect, it } from 'vitest';
import { type AnyMachineSnapshot, type EventObject, getInitialSnapshot, transition } from 'xstate';
import { type CompiledState, createCompiledEngine } from '../../explorer/engine-compiled.ts';
import { explore } from '../../explorer/explore.ts';
import type { ModelSnapshot, ResolvedVariant } from '../../explorer/model.ts';
import type { ExploreResult } from '../../explorer/result.ts';
import model, {
  createHandoffMachine,
  DESIGNS,
  type DesignName,
  type HandoffCtx,
  type HandoffDesign,
  type HandoffEv,
  initialContext,
} from '../../machines/exec-handoff.ts';
import { changeProcessBody } from '../../machines/kernel/iommufd-change-process.ts';
import { WARN } from '../../machines/kernel/iommufd-pages.ts';
import { exploreOnce, traceOf as traceOfSteps, violated } from './support.ts';

const label = (e: HandoffEv) => {
  const args = [
    e.dma,
    e.va && `va=${e.va}`,
    e.rlimit,
    e.complete === false ? 'incomplete' : undefined,
    e.junk !== undefined ? `junk=${e.junk}` : undefined,
  ].filter((x) => x !== undefined && x !== '');
  return `${e.type}${args.length ? `(${args.join(',')})` : ''}`;
};

const traceOf = (r: ExploreResult, property: string) =>
  traceOfSteps(r, property, (s) => `${label(s.event as HandoffEv)}${s.result ? `=${s.result}` : ''}`);

const run = exploreOnce(model);

/**
 * An independent check of `recoverable` (AG EF p), to cross-check the
 * explorer's temporal checker on these models: explore the whole graph with
 * the compiled engine, mark every state from which a p-state is reachable,
 * and return the shortest path (BFS order) to a state outside that set.
 */
function recoverability(v: ResolvedVariant<HandoffCtx, HandoffEv>) {
  const prop = v.properties.recoverable;
  if (prop?.kind !== 'recoverable') throw new Error(`${v.name}: no recoverable property`);
  const engine = createCompiledEngine(v.machine);
  const index = new Map<string, number>();
  const states: CompiledState[] = [engine.initial()];
  const parent: { from: number; event: EventObject | null }[] = [{ from: -1, event: null }];
  const preds: number[][] = [[]];
  index.set(engine.encode(states[0]), 0);
  for (let i = 0; i < states.length; i++) {
    for (const ev of v.events(engine.view(states[i]) as never)) {
      const next = engine.step(states[i], ev);
      if (next === null) continue;
      const key = engine.encode(next);
      let j = index.get(key);
      if (j === undefined) {
        j = states.length;
        index.set(key, j);
        states.push(next);
        parent.push({ from: i, event: ev });
        preds.push([]);
      }
      preds[j].push(i);
    }
  }
  const good = new Set<number>();
  const stack: number[] = [];
  states.forEach((s, i) => {
    if (prop.p(engine.view(s) as never)) {
      good.add(i);
      stack.push(i);
    }
  });
  while (stack.length > 0) {
    for (const i of preds[stack.pop()!]) {
      if (!good.has(i)) {
        good.add(i);
        stack.push(i);
      }
    }
  }
  const bad = states.findIndex((_, i) => !good.has(i));
  const path: string[] = [];
  for (let i = bad; i > 0; i = parent[i].from) path.unshift(label(parent[i].event as HandoffEv));
  return { states: states.length, unrecoverable: states.length - good.size, path: bad < 0 ? null : path };
}

describe('exec-handoff verdicts at the default bounds', () => {
  it.each(model.variantNames)('%s: finds exactly what it expects, completely', async (name) => {
    const variant = model.variant(name);
    const r = await run(name);
    expect(r.complete).toBe(true);
    expect(violated(r)).toEqual([...(variant.expect?.violated ?? [])].sort());
    expect(r.states).toBe(variant.expect?.states);
    const rec = recoverability(variant);
    expect(rec.states).toBe(r.states);
    expect(rec.unrecoverable > 0).toBe(violated(r).includes('recoverable'));
  });
});

describe('each invariant fires, shortest counterexample first', () => {
  it('alwaysPageProvider: vaddr, exec right after the invalidation leaves the pins on a dead mm (2 steps)', async () => {
    expect(traceOf(await run('vaddr'), 'alwaysPageProvider')).toEqual([
      'VmmInvalidateVaddr=0',
      'VmmExec(ok)=0',
    ]);
  });

  it('pinnableHasProvider is not violated by vaddr: type1 refuses every pin while a vaddr is invalid', async () => {
    expect(violated(await run('vaddr'))).not.toContain('pinnableHasProvider');
  });

  it('atomicOwnerChange: vaddr, the first MAP_DMA(VADDR) splits the owners between mm1 and the dead mm0 (4 steps)', async () => {
    expect(traceOf(await run('vaddr'), 'atomicOwnerChange')).toEqual([
      'VmmInvalidateVaddr=0',
      'VmmExec(ok)=0',
      'ImageMmap(va=A)=0',
      'ImageMapVaddr(0,va=A)=0',
    ]);
  });

  it('sameMemory: VADDR takes any vaddr, CHANGE_MM any layout; V1 and 7.3 catch it', async () => {
    // The image mapped the guest memory at A and re-supplies dma0 with B, where nothing is mapped.
    expect(traceOf(await run('vaddr'), 'sameMemory')).toEqual([
      'VmmInvalidateVaddr=0',
      'VmmExec(ok)=0',
      'ImageMmap(va=A)=0',
      'ImageMapVaddr(0,va=B)=0',
    ]);
    // CHANGE_MM assumes the same VA: the image mapped elsewhere, and the dmas now read its other memory.
    expect(traceOf(await run('fork-change-mm'), 'sameMemory')).toEqual([
      'VmmFork=0',
      'HolderChangeMm=0',
      'VmmExec(ok)=0',
      'ImageMmap(va=B)=0',
      'ImageChangeMm=0',
    ]);
    expect(traceOf(await run('change-dma-owner-array-nocheck'), 'sameMemory')).toEqual([
      'VmmFork=0',
      'HolderChangeDmaOwnerArray=0',
      'VmmExec(ok)=0',
      'ImageMmap(va=A)=0',
      'ImageChangeDmaOwnerArray(va=B)=0',
    ]);
    for (const name of ['change-dma-owner-staged', 'change-dma-owner-array', 'iommufd-change-process']) {
      expect(violated(await run(name))).not.toContain('sameMemory');
    }
  });

  it('changeReachesCaller and pinnableHasProvider: the draft returns 0 and moves nothing (USER, same uid)', async () => {
    const r = await run('iommufd-draft');
    expect(traceOf(r, 'changeReachesCaller')).toEqual(['VmmFork=0', 'HolderIoasChangeProcess=0']);
    expect(traceOf(r, 'pinnableHasProvider')).toEqual([
      'VmmFork=0',
      'HolderIoasChangeProcess=0',
      'VmmExec(ok)=0',
    ]);
  });

  it('accountingConserved: each uninitialised all_npinned[] slot charges what the stack held (2 steps)', async () => {
    for (const name of [
      'iommufd-draft-mm-junk-none',
      'iommufd-draft-mm-junk-user',
      'iommufd-draft-mm-junk-mm',
    ]) {
      expect(traceOf(await run(name), 'accountingConserved')).toEqual([
        'VmmFork=0',
        'HolderIoasChangeProcess(junk=1)=0',
      ]);
    }
    // With the slots zero (the draft as intended) the accounting is exact.
    expect(violated(await run('iommufd-draft-mm'))).not.toContain('accountingConserved');
  });

  it('mmRefcountsBalanced: the draft change_mm mmput()s the live VMM mm, which pages only mmgrab (2 steps)', async () => {
    expect(traceOf(await run('iommufd-draft-mm-mmput'), 'mmRefcountsBalanced')).toEqual([
      'VmmFork=0',
      'HolderIoasChangeProcess=0',
    ]);
    expect(violated(await run('iommufd-draft-mm'))).not.toContain('mmRefcountsBalanced');
  });

  it('kernelMemorySafe: the draft IOAS test as written container_of()s the device and HWPT (2 steps)', async () => {
    expect(traceOf(await run('iommufd-draft-mm-ioas-test'), 'kernelMemorySafe')).toEqual([
      'VmmFork=0',
      'HolderIoasChangeProcess=0',
    ]);
  });

  it('mappingsKept: V1 close_dma_owner unmaps everything when the owning holder dies', async () => {
    for (const name of ['change-dma-owner-staged-holder-killed', 'change-dma-owner-array-holder-killed']) {
      expect(traceOf(await run(name), 'mappingsKept')).toEqual([
        'VmmFork=0',
        expect.stringMatching(/^HolderChangeDmaOwner(Array)?=0$/),
        'VmmExec(ok)=0',
        'HolderKilled=0',
      ]);
    }
    // iommufd keeps the pages when the holder dies: a MAP_FILE area needs no live mm.
    expect(violated(await run('iommufd-change-process-holder-killed'))).not.toContain('mappingsKept');
  });

  it('failedChangeIsNoop, lastNpinnedSynced, noChangeProcessUnchargeWarn: 7.3 MM mode without a holder (U1, 3 steps)', async () => {
    const r = await run('iommufd-change-process-noholder-mm');
    for (const p of ['failedChangeIsNoop', 'lastNpinnedSynced', 'noChangeProcessUnchargeWarn']) {
      expect(traceOf(r, p)).toEqual(['VmmExec(ok)=0', 'ImageMmap(va=B)=0', 'ImageIoasChangeProcess=EINVAL']);
    }
  });

  it('F1 at the new QEMU connect probe under MM accounting with cpr-exec (4 steps)', async () => {
    const r = await run('qemu-cpr-exec-iommufd-mm');
    const f1 = [
      'VmmPreSaveChangeProcess=0',
      'VmmExec=0',
      'ImageMmap(va=B)=0',
      'ImageProbeChangeProcess=EINVAL',
    ];
    for (const p of ['failedChangeIsNoop', 'lastNpinnedSynced', 'noChangeProcessUnchargeWarn']) {
      expect(traceOf(r, p)).toEqual(f1);
    }
    // post_load retries and gets 0; the stale last_npinned then keeps the charge after an unmap.
    expect(traceOf(r, 'accountingConserved')).toEqual([
      ...f1,
      'ImagePostLoadChangeProcess=0',
      'ImageUnmap=0',
    ]);
  });

  it('F2 after the later unmap when QEMU runs as root, in both modes', async () => {
    expect(traceOf(await run('qemu-cpr-exec-iommufd-none'), 'accountingNonNegative')).toEqual([
      'VmmPreSaveChangeProcess=0',
      'VmmExec=0',
      'ImageMmap(va=B)=0',
      'ImageProbeChangeProcess=0',
      'ImagePostLoadChangeProcess=0',
      'ImageUnmap=0',
    ]);
    expect(traceOf(await run('qemu-cpr-transfer-iommufd-none'), 'accountingNonNegative')).toEqual([
      'ImageMmap(va=B)=0',
      'ImageProbeChangeProcess=0',
      'VmmPreSaveChangeProcess=0',
      'ImagePostLoadChangeProcess=0',
      'ImageUnmap=0',
    ]);
  });
});

describe('recoverable (AG EF oneLiveOwner) and what V1 changed', () => {
  it('V1 staged is recoverable: the holder re-stages its own vaddrs (MAP_DMA(VADDR) overwrites) and takes back', () => {
    expect(recoverability(model.variant('change-dma-owner-staged')).unrecoverable).toBe(0);
  });

  it('the earlier staged reading is not: a staged vaddr that can never be replaced (5 steps)', async () => {
    const path = [
      'VmmFork',
      'HolderChangeDmaOwner',
      'VmmExec(ok)',
      'ImageMmap(va=A)',
      'ImageStageVaddr(0,va=B)',
    ];
    expect(recoverability(model.variant('change-dma-owner-staged-norestage')).path).toEqual(path);
    const r = await run('change-dma-owner-staged-norestage');
    expect(r.violations.find((v) => v.property === 'recoverable')?.kind).toBe('unrecoverable');
    expect(traceOf(r, 'recoverable').map((s) => s.replace(/=[^=()]*$/, ''))).toEqual(path);
    // ... and setrlimit() does not help: the wrong vaddr stays staged.
    expect(recoverability(model.variant('change-dma-owner-staged-norestage-setrlimit')).path).toEqual(path);
  });

  it('vaddr: invalidate and exec into a low-RLIMIT image is a dead end only while the rlimit is fixed', async () => {
    expect(recoverability(model.variant('vaddr')).path).toEqual(['VmmInvalidateVaddr', 'VmmExec(low)']);
    expect(recoverability(model.variant('vaddr-setrlimit')).unrecoverable).toBe(0);
    expect(recoverability(model.variant('iommufd-change-process-noholder')).path).toEqual(['VmmExec(low)']);
    expect(recoverability(model.variant('iommufd-change-process-noholder-setrlimit')).unrecoverable).toBe(0);
    expect(recoverability(model.variant('iommufd-change-process-noholder-mm-setrlimit')).unrecoverable).toBe(
      0,
    );
  });

  it('a killed V1 holder takes the guest mappings with it; ESRCH from then on', () => {
    expect(recoverability(model.variant('change-dma-owner-staged-holder-killed')).path).toEqual([
      'VmmFork',
      'HolderChangeDmaOwner',
      'VmmExec(ok)',
      'HolderKilled',
    ]);
  });

  it('the draft leaves the pages with the VMM, whose mm exec kills (3 steps)', () => {
    expect(recoverability(model.variant('iommufd-draft')).path).toEqual([
      'VmmFork',
      'HolderIoasChangeProcess',
      'VmmExec(ok)',
    ]);
  });

  it('recoverable holds where a live holder keeps the mappings', () => {
    for (const name of [
      'fork-change-mm',
      'change-dma-owner-staged',
      'change-dma-owner-array',
      'iommufd-change-process',
      'iommufd-draft-mm',
    ] as DesignName[]) {
      expect(recoverability(model.variant(name)).unrecoverable).toBe(0);
    }
  });
});

describe("QEMU's live update on 7.3: does it complete, does the guest survive", () => {
  it('cpr-exec, USER, memlock below 2x guest memory: the probe and post_load get ENOMEM, the new QEMU exits', async () => {
    const r = await run('qemu-cpr-exec-iommufd-user');
    expect(r.violations.find((v) => v.property === 'updateCompletes')?.kind).toBe('unreachable');
    expect(traceOf(r, 'guestSurvives')).toEqual([
      'VmmPreSaveChangeProcess=0',
      'VmmExec=0',
      'ImageMmap(va=B)=0',
      'ImageProbeChangeProcess=ENOMEM',
      'ImagePostLoadChangeProcess=ENOMEM',
      'ImageExit=0',
    ]);
  });

  it('cpr-transfer, USER, the same memlock: the update fails but the source resumes the guest', async () => {
    const r = await run('qemu-cpr-transfer-iommufd-user');
    expect(violated(r)).toEqual(['updateCompletes']);
  });

  it('every other deployment completes and keeps the guest', async () => {
    for (const name of model.variantNames.filter((n) => n.startsWith('qemu-') && !n.endsWith('-user'))) {
      const r = await run(name);
      expect(violated(r), name).not.toContain('updateCompletes');
      expect(violated(r), name).not.toContain('guestSurvives');
    }
  });
});

describe('labels and waitingFor (the model contract)', () => {
  it('labels read in uAPI terms', () => {
    const v = model.variant('qemu-cpr-exec-legacy');
    const s = { context: {} } as ModelSnapshot<HandoffCtx>;
    expect(v.label!({ type: 'VmmInvalidateVaddr' }, s)).toBe(
      'pre_save: ioctl(container, VFIO_IOMMU_UNMAP_DMA, VADDR|ALL)',
    );
    expect(v.label!({ type: 'VmmExec' }, s)).toBe('execve(qemu)');
    const vaddr = model.variant('vaddr');
    expect(vaddr.label!({ type: 'ImageMapVaddr', dma: 0, va: 'B' }, s)).toBe(
      'ioctl(container, VFIO_IOMMU_MAP_DMA, VADDR, dma0, vaddr=B)',
    );
    const mm = model.variant('qemu-cpr-exec-iommufd-mm');
    expect(mm.label!({ type: 'ImageProbeChangeProcess' }, s)).toBe(
      'connect: ioctl(iommufd, IOMMU_IOAS_CHANGE_PROCESS)',
    );
    expect(
      model.variant('iommufd-draft-mm-junk-user').label!({ type: 'HolderIoasChangeProcess', junk: 1 }, s),
    ).toBe('ioctl(iommufd, IOMMU_IOAS_CHANGE_PROCESS) [all_npinned[user] = 1]');
  });

  it('waitingFor names what a blocked actor waits for, and nothing for one that can move', () => {
    const d = DESIGNS['fork-change-mm'];
    const v = model.variant('fork-change-mm');
    const f = fixture(d);
    expect(v.waitingFor!(f.snap(), 'image')).toBe('not started: the VMM has not exec()d');
    expect(v.waitingFor!(f.snap(), 'vmm')).toBeUndefined(); // it can fork
    f.call('VmmFork');
    expect(v.waitingFor!(f.snap(), 'vmm')).toBe(
      "in the parent after fork(), waiting for the holder's signal that it owns every mapping",
    );
    f.call('HolderChangeMm');
    expect(v.waitingFor!(f.snap(), 'vmm')).toBeUndefined();
    // The holder took everything and now only waits to be told it may exit.
    expect(v.waitingFor!(f.snap(), 'holder')).toBe(
      "waiting for the image's signal that it owns every mapping, to exit",
    );
  });
});

describe('F1 needs no pinned page (a prediction for the VM probe)', () => {
  it('MM mode, a dead source mm, npinned 0: EINVAL and the WARN, the owner moved anyway', () => {
    // pages.c:update_mm_locked_vm has no npages == 0 shortcut before mmget_not_zero().
    const d = DESIGNS['iommufd-change-process-noholder-mm'];
    const k = structuredClone(initialContext(d).k);
    for (const p of k.pages) {
      p!.npinned = 0;
      p!.lastNpinned = 0;
    }
    k.mms = {
      ...k.mms,
      mm0: { alive: false, lockedVm: 0, pinnedVm: 0 },
      mm1: { alive: true, lockedVm: 0, pinnedVm: 0 },
    };
    k.procs = { ...k.procs, vmm: { ...k.procs.vmm, mm: 'mm1' } };
    expect(changeProcessBody(k, [1], 'vmm', '7.3')).toBe('EINVAL');
    expect(k.warn).toEqual([WARN.changeProcessUncharge]);
    expect(k.pages.map((p) => p!.mm)).toEqual(['mm1', 'mm1']);
  });
});

// ---------------------------------------------------------------- scenarios

function fixture(d: HandoffDesign) {
  const machine = createHandoffMachine(d);
  let s: AnyMachineSnapshot = getInitialSnapshot(machine) as AnyMachineSnapshot;
  const ctx = () => s.context as HandoffCtx;
  /** Send one call; returns its predicted result (the actor's ret). */
  const call = (type: string, params: Partial<HandoffEv> = {}) => {
    const ev = { type, ...params };
    if (!s.can(ev)) throw new Error(`${type} ${JSON.stringify(params)} is not enabled`);
    [s] = transition(machine, s, ev) as [AnyMachineSnapshot, unknown];
    const actor = type.startsWith('Holder') ? 'holder' : type.startsWith('Image') ? 'image' : 'vmm';
    return ctx().ret[actor];
  };
  const can = (type: string, params: Partial<HandoffEv> = {}) => s.can({ type, ...params });
  const owners = () => [
    ...ctx().k.areas.map((a) => ctx().k.pages[a.pages]!.mm),
    ...(ctx().t1?.dmas ?? []).filter((x) => x.mapped).map((x) => x.mm),
  ];
  const snap = () => s as unknown as ModelSnapshot<HandoffCtx>;
  return { call, can, ctx, owners, snap, done: () => s.status === 'done' };
}

describe('one handoff a scenario', () => {
  it('fork-change-mm: holder takes, exec, image maps at the same VA and takes back, holder exits', () => {
    const f = fixture(DESIGNS['fork-change-mm']);
    expect(f.call('VmmFork')).toBe('0');
    expect(f.can('VmmExec', { rlimit: 'ok' })).toBe(false); // waits for the holder's signal
    expect(f.call('HolderChangeMm')).toBe('0');
    expect(f.ctx().k.mms.mmH.lockedVm).toBe(2);
    expect(f.ctx().k.mms.mm0.lockedVm).toBe(0);
    expect(f.call('VmmExec', { rlimit: 'ok' })).toBe('0');
    expect(f.call('ImageMmap', { va: 'A' })).toBe('0');
    expect(f.call('ImageChangeMm')).toBe('0');
    expect(f.owners()).toEqual(['mm1', 'mm1']);
    expect(f.call('HolderExit')).toBe('0');
    expect(f.done()).toBe(true);
  });

  it('vaddr: per-dma re-supply; ENOMEM leaves the second dma invalid on the dead mm; setrlimit cures it', () => {
    const f = fixture(DESIGNS['vaddr-setrlimit']);
    expect(f.call('VmmInvalidateVaddr')).toBe('0');
    expect(f.call('VmmExec', { rlimit: 'low' })).toBe('0');
    expect(f.call('ImageMmap', { va: 'B' })).toBe('0');
    expect(f.call('ImageMapVaddr', { dma: 0, va: 'B' })).toBe('0');
    expect(f.call('ImageMapVaddr', { dma: 1, va: 'B' })).toBe('ENOMEM');
    expect(f.owners()).toEqual(['mm1', 'mm0']);
    expect(f.ctx().t1!.dmas[1].vaddrMm).toBeNull();
    expect(f.call('ImageMapVaddr', { dma: 0, va: 'B' })).toBe('EINVAL'); // already valid
    expect(f.ctx().k.mms.mm0).toMatchObject({ alive: false, lockedVm: 2 }); // never uncharged: it is dead
    expect(f.call('ImageSetrlimit')).toBe('0');
    expect(f.call('ImageMapVaddr', { dma: 1, va: 'B' })).toBe('0');
    expect(f.owners()).toEqual(['mm1', 'mm1']);
    expect(f.done()).toBe(true);
  });

  it("change-dma-owner-staged (V1): ENXIO before EINVAL, re-staging overwrites, the holder's revert works", () => {
    const f = fixture(DESIGNS['change-dma-owner-staged']);
    expect(f.call('VmmFork')).toBe('0');
    expect(f.call('HolderChangeDmaOwner')).toBe('0'); // fork kept the vaddrs: nothing to stage
    expect(f.ctx().t1!.task).toBe('holder');
    expect(f.call('VmmExec', { rlimit: 'low' })).toBe('0');
    expect(f.call('ImageMmap', { va: 'B' })).toBe('0');
    expect(f.call('ImageChangeDmaOwner')).toBe('ENXIO'); // A is other memory in the image
    expect(f.call('ImageStageVaddr', { dma: 0, va: 'B' })).toBe('0');
    // Some but not all staged, and dma1's old vaddr maps other memory here: V1 checks the memory first.
    expect(f.call('ImageChangeDmaOwner')).toBe('ENXIO');
    expect(f.call('ImageStageVaddr', { dma: 1, va: 'A' })).toBe('0'); // wrong: A is not the guest memory
    expect(f.call('ImageChangeDmaOwner')).toBe('ENXIO');
    expect(f.call('ImageStageVaddr', { dma: 1, va: 'B' })).toBe('0'); // V1 overwrites new_vaddr
    expect(f.call('ImageChangeDmaOwner')).toBe('ENOMEM');
    // The revert: the holder registers its own vaddrs again and takes back (2×N room for a moment).
    expect(f.call('HolderChangeDmaOwner')).toBe('ENXIO'); // B is nothing in the holder
    expect(f.call('HolderStageVaddr', { dma: 0 })).toBe('0');
    expect(f.call('HolderStageVaddr', { dma: 1 })).toBe('0');
    expect(f.call('HolderChangeDmaOwner')).toBe('0');
    expect(f.owners()).toEqual(['mmH', 'mmH']);
    expect(f.ctx().t1!.dmas.every((x) => x.newVa === null && x.va === 'A')).toBe(true);
    expect(f.ctx().k.mms.mmH.lockedVm).toBe(2);
  });

  it('change-dma-owner-staged (V1): EINVAL when only the staging is partial and the old vaddrs still fit', () => {
    const f = fixture(DESIGNS['change-dma-owner-staged']);
    expect(f.call('VmmFork')).toBe('0');
    expect(f.call('HolderChangeDmaOwner')).toBe('0');
    expect(f.call('VmmExec', { rlimit: 'ok' })).toBe('0');
    expect(f.call('ImageMmap', { va: 'A' })).toBe('0'); // the same VA as before
    expect(f.call('ImageStageVaddr', { dma: 0, va: 'A' })).toBe('0');
    expect(f.call('ImageChangeDmaOwner')).toBe('EINVAL');
    expect(f.call('ImageStageVaddr', { dma: 1, va: 'A' })).toBe('0');
    expect(f.call('ImageChangeDmaOwner')).toBe('0');
    expect(f.owners()).toEqual(['mm1', 'mm1']);
  });

  it('change-dma-owner-staged-norestage: EINVAL first, and a staged vaddr cannot be replaced', () => {
    const f = fixture(DESIGNS['change-dma-owner-staged-norestage']);
    expect(f.call('VmmFork')).toBe('0');
    expect(f.call('HolderChangeDmaOwner')).toBe('0');
    expect(f.call('VmmExec', { rlimit: 'ok' })).toBe('0');
    expect(f.call('ImageMmap', { va: 'B' })).toBe('0');
    expect(f.call('ImageStageVaddr', { dma: 0, va: 'B' })).toBe('0');
    expect(f.call('ImageChangeDmaOwner')).toBe('EINVAL'); // this reading checks "some but not all" first
    expect(f.call('ImageStageVaddr', { dma: 0, va: 'A' })).toBe('EINVAL');
  });

  it('change-dma-owner-staged-holder-killed: close_dma_owner unmaps, then ESRCH for good', () => {
    const f = fixture(DESIGNS['change-dma-owner-staged-holder-killed']);
    expect(f.call('VmmFork')).toBe('0');
    expect(f.call('HolderChangeDmaOwner')).toBe('0');
    expect(f.call('VmmExec', { rlimit: 'ok' })).toBe('0');
    expect(f.call('HolderKilled')).toBe('0');
    expect(f.ctx().t1!.dmas.some((x) => x.mapped)).toBe(false);
    expect(f.ctx().k.mms.mmH).toMatchObject({ alive: false, lockedVm: 2 }); // get_task_mm fails: no uncharge
    expect(f.call('ImageMmap', { va: 'A' })).toBe('0');
    expect(f.call('ImageChangeDmaOwner')).toBe('ESRCH');
  });

  it('change-dma-owner-array (V1): a wrong vaddr is ENXIO, an incomplete array EINVAL, nothing stays staged', () => {
    const f = fixture(DESIGNS['change-dma-owner-array']);
    expect(f.call('VmmFork')).toBe('0');
    expect(f.call('HolderChangeDmaOwnerArray', { complete: true })).toBe('0');
    expect(f.call('VmmExec', { rlimit: 'low' })).toBe('0');
    expect(f.call('ImageMmap', { va: 'B' })).toBe('0');
    expect(f.call('ImageChangeDmaOwnerArray', { complete: true, va: 'A' })).toBe('ENXIO');
    expect(f.call('ImageChangeDmaOwnerArray', { complete: false, va: 'B' })).toBe('ENXIO'); // dma1's A is other memory
    expect(f.call('ImageChangeDmaOwnerArray', { complete: true, va: 'B' })).toBe('ENOMEM');
    expect(f.ctx().t1!.dmas.every((x) => x.newVa === null)).toBe(true);
    expect(f.owners()).toEqual(['mmH', 'mmH']);
    expect(f.can('HolderChangeDmaOwnerArray', { complete: true })).toBe(false); // nothing to revert
  });

  it('iommufd-change-process: 7.3, USER mode; the holder needs 2×N under RLIMIT_MEMLOCK (U3), which "ok" gives', () => {
    const f = fixture(DESIGNS['iommufd-change-process']);
    expect(f.ctx().k.users.u).toBe(2);
    expect(f.call('VmmFork')).toBe('0');
    expect(f.call('HolderIoasChangeProcess')).toBe('0');
    expect(f.ctx().k.users.u).toBe(2);
    expect(f.ctx().k.mms.mmH.pinnedVm).toBe(2);
    expect(f.call('VmmExec', { rlimit: 'ok' })).toBe('0');
    expect(f.call('ImageMmap', { va: 'B' })).toBe('0');
    expect(f.call('ImageIoasChangeProcess')).toBe('0');
    expect(f.owners()).toEqual(['mm1', 'mm1']);
    expect(f.call('HolderExit')).toBe('0');
    expect(f.done()).toBe(true);
    expect(f.ctx().k.mmRefs).toEqual({
      mm0: { users: 0, count: 0 },
      mmH: { users: 0, count: 0 },
      mm1: { users: 1, count: 2 },
    });
  });

  it('iommufd-change-process-mm-holder-killed: a dead holder in MM mode is U1 again', () => {
    const f = fixture(DESIGNS['iommufd-change-process-mm-holder-killed']);
    expect(f.call('VmmFork')).toBe('0');
    expect(f.call('HolderIoasChangeProcess')).toBe('0');
    expect(f.call('VmmExec', { rlimit: 'ok' })).toBe('0');
    expect(f.call('HolderKilled')).toBe('0');
    expect(f.call('ImageMmap', { va: 'B' })).toBe('0');
    expect(f.call('ImageIoasChangeProcess')).toBe('EINVAL');
    expect(f.owners()).toEqual(['mm1', 'mm1']);
    expect(f.ctx().k.warn).toEqual([WARN.changeProcessUncharge]);
  });

  it('iommufd-change-process-noholder-mm: U1 in the handoff, EINVAL although the image already owns everything', () => {
    const f = fixture(DESIGNS['iommufd-change-process-noholder-mm']);
    expect(f.call('VmmExec', { rlimit: 'ok' })).toBe('0');
    expect(f.call('ImageMmap', { va: 'B' })).toBe('0');
    expect(f.call('ImageIoasChangeProcess')).toBe('EINVAL');
    expect(f.owners()).toEqual(['mm1', 'mm1']);
    expect(f.ctx().k.warn).toEqual([WARN.changeProcessUncharge]);
    expect(f.ctx().k.pages.map((p) => p?.lastNpinned)).toEqual([0, 0]);
    expect(f.call('ImageIoasChangeProcess')).toBe('0'); // a retry finds nothing to move
  });

  it('F1 fixed (conformance/kernel/patches/0001): the image takes the charge and CHANGE_PROCESS returns 0', () => {
    const f = fixture(DESIGNS['iommufd-change-process-noholder-mm-fixed']);
    expect(f.call('VmmExec', { rlimit: 'ok' })).toBe('0');
    expect(f.call('ImageMmap')).toBe('0');
    expect(f.call('ImageIoasChangeProcess')).toBe('0');
    expect(f.owners()).toEqual(['mm1', 'mm1']);
    expect(f.ctx().k.warn).toEqual([]);
    expect(f.ctx().k.pages.map((p) => p?.lastNpinned)).toEqual([1, 1]);
    expect(f.ctx().k.mms.mm1).toMatchObject({ lockedVm: 2, pinnedVm: 2 });
  });

  it('F1 fixed: the design violates only what the USER no-holder design does (recoverable)', async () => {
    expect(violated(await run('iommufd-change-process-noholder-mm-fixed'))).toEqual(
      violated(await run('iommufd-change-process-noholder')),
    );
  });

  it('the draft with MM mode and a dead old mm ignores the failed uncharge and returns 0', () => {
    const f = fixture({ ...DESIGNS['iommufd-draft-mm'], holder: false });
    expect(f.call('VmmExec', { rlimit: 'ok' })).toBe('0');
    expect(f.call('ImageMmap', { va: 'A' })).toBe('0');
    expect(f.call('ImageIoasChangeProcess')).toBe('0');
    expect(f.owners()).toEqual(['mm1', 'mm1']);
    expect(f.ctx().k.pages.map((p) => p?.lastNpinned)).toEqual([1, 1]);
    expect(f.ctx().k.warn).toEqual([]);
  });

  it('iommufd-draft: USER mode, same uid, CHANGE_PROCESS returns 0 and the owner stays the VMM', () => {
    const f = fixture(DESIGNS['iommufd-draft']);
    expect(f.call('VmmFork')).toBe('0');
    expect(f.call('HolderIoasChangeProcess')).toBe('0');
    expect(f.owners()).toEqual(['mm0', 'mm0']);
    expect(f.call('VmmExec', { rlimit: 'ok' })).toBe('0');
    expect(f.ctx().k.mms.mm0.alive).toBe(false);
  });

  it('iommufd-draft-mm-mmput: the holder change tears down the running VMM address space', () => {
    const f = fixture(DESIGNS['iommufd-draft-mm-mmput']);
    expect(f.call('VmmFork')).toBe('0');
    expect(f.call('HolderIoasChangeProcess')).toBe('0');
    expect(f.ctx().k.mmRefs!.mm0).toEqual({ users: -1, count: 2 }); // two mmputs, no mmdrop
    expect(f.ctx().k.mms.mm0.alive).toBe(false); // __mmput → exit_mmap under a running VMM
  });

  it('iommufd-draft-mm-junk-mm: a large uninitialised slot is a spurious ENOMEM that changes nothing', () => {
    const f = fixture(DESIGNS['iommufd-draft-mm-junk-mm']);
    expect(f.call('VmmFork')).toBe('0');
    expect(f.call('HolderIoasChangeProcess', { junk: 5 })).toBe('ENOMEM');
    expect(f.owners()).toEqual(['mm0', 'mm0']);
    expect(f.ctx().k.mms.mmH.lockedVm).toBe(0);
    expect(f.call('HolderIoasChangeProcess', { junk: 0 })).toBe('0');
  });

  it('qemu-cpr-exec-iommufd-mm: F1 at the probe, a CPR blocker, post_load 0, the guest runs', () => {
    const f = fixture(DESIGNS['qemu-cpr-exec-iommufd-mm']);
    expect(f.call('VmmPreSaveChangeProcess')).toBe('0');
    expect(f.call('VmmExec')).toBe('0');
    expect(f.call('ImageMmap', { va: 'B' })).toBe('0');
    expect(f.call('ImageProbeChangeProcess')).toBe('EINVAL');
    expect(f.ctx().sig.cprBlocked).toBe(true);
    expect(f.owners()).toEqual(['mm1', 'mm1']);
    expect(f.call('ImagePostLoadChangeProcess')).toBe('0');
    expect(f.call('ImageUnmap')).toBe('0');
    expect(f.ctx().k.mms.mm1).toMatchObject({ lockedVm: 2, pinnedVm: 2 }); // one page left pinned, two charged
  });

  it('qemu-cpr-transfer-iommufd-mm: ownership goes new → old → new, and the source quits after', () => {
    const f = fixture(DESIGNS['qemu-cpr-transfer-iommufd-mm']);
    expect(f.can('VmmPreSaveChangeProcess')).toBe(false); // the new QEMU has not connected yet
    expect(f.call('ImageMmap', { va: 'B' })).toBe('0');
    expect(f.call('ImageProbeChangeProcess')).toBe('0');
    expect(f.owners()).toEqual(['mmB', 'mmB']);
    expect(f.call('VmmPreSaveChangeProcess')).toBe('0');
    expect(f.owners()).toEqual(['mm0', 'mm0']);
    expect(f.call('ImagePostLoadChangeProcess')).toBe('0');
    expect(f.owners()).toEqual(['mmB', 'mmB']);
    expect(f.call('VmmExit')).toBe('0');
    expect(f.call('ImageUnmap')).toBe('0');
    expect(f.ctx().k.mms.mmB).toMatchObject({ lockedVm: 1, pinnedVm: 1 });
    expect(f.done()).toBe(true);
  });

  it('qemu-cpr-exec-legacy: UNMAP_DMA(VADDR|ALL), exec, MAP_DMA(VADDR) per section; or the rollback', () => {
    const f = fixture(DESIGNS['qemu-cpr-exec-legacy']);
    expect(f.call('VmmInvalidateVaddr')).toBe('0');
    expect(f.call('VmmExec')).toBe('0');
    expect(f.call('ImageMmap', { va: 'B' })).toBe('0');
    expect(f.call('ImageMapVaddr')).toBe('0');
    expect(f.owners()).toEqual(['mm1', 'mm0']);
    expect(f.call('ImageMapVaddr')).toBe('0');
    expect(f.owners()).toEqual(['mm1', 'mm1']);
    expect(f.ctx().t1!.dmas.map((x) => x.va)).toEqual(['B', 'B']);
    const g = fixture(DESIGNS['qemu-cpr-exec-legacy']);
    expect(g.call('VmmInvalidateVaddr')).toBe('0');
    expect(g.call('VmmExecFails')).toBe('ENOENT');
    expect(g.call('VmmRollbackVaddr')).toBe('0');
    expect(g.call('VmmRollbackVaddr')).toBe('0');
    expect(g.ctx().t1!.dmas.map((x) => x.va)).toEqual(['A', 'A']);
    expect(g.call('ImageAbandon')).toBeNull();
    expect(g.done()).toBe(true);
  });
});

describe('sizes: the parameter maps', () => {
  const at = (name: DesignName, maps: number) => explore(model.variant(name, { maps }));

  it('three mappings: the per-dma designs grow as the spec table says, the all-at-once calls do not', async () => {
    const counts: Record<string, number> = {};
    for (const name of [
      'vaddr',
      'change-dma-owner-staged',
      'change-dma-owner-array',
      'iommufd-change-process',
    ] as const) {
      const r = await at(name, 3);
      expect(r.complete).toBe(true);
      expect(violated(r)).toEqual([...(model.variant(name).expect?.violated ?? [])].sort());
      expect(r.coverage.staleUnreachable).toEqual([]);
      counts[name] = r.states;
    }
    expect(counts).toEqual({
      vaddr: 416,
      'change-dma-owner-staged': 1_763,
      'change-dma-owner-array': 28,
      'iommufd-change-process': 10,
    });
  });

  it('the holder killed with three mappings: close_dma_owner unmaps all three (mappingsKept)', async () => {
    const r = await at('change-dma-owner-staged-holder-killed', 3);
    expect(violated(r)).toEqual(['mappingsKept', 'recoverable']);
  });

  it('RLIMIT_MEMLOCK scales with the mappings: ok is 2×N, low N−1, tight N+1', () => {
    const d = { ...DESIGNS['qemu-cpr-exec-iommufd-user'], maps: 3 };
    expect(initialContext(d).k.procs.vmm.rlimit).toBe(4);
    expect(initialContext({ ...d, memlock: 'ok' }).k.procs.vmm.rlimit).toBe(6);
    expect(initialContext(d).k.areas).toHaveLength(3);
  });

  it('an out-of-range size or an unknown parameter is one clear error', () => {
    expect(() => model.variant('vaddr', { maps: 1 })).toThrow(
      "model 'exec-handoff': maps must be an integer from 2 to 6, got 1",
    );
    expect(() => model.variant('vaddr', { dmas: 3 })).toThrow(
      "model 'exec-handoff' has no parameter 'dmas' (parameters: maps)",
    );
  });
});
