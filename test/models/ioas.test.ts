/**
 * The IOAS model (machines/ioas.ts, spec/ioas.md): each variant's verdict at
 * its default bounds, each invariant shown firing on a variant or a mutant
 * with its shortest counterexample, and iommufd-selftest-style scenarios (one
 * scenario a test, the predicted errno asserted at each step), including the
 * conformance probes for UAPI-FACTS §7 U1, U2 and U3.
 */
import { describe, expect, it } from 'vitest';
import { type AnyMachineSnapshot, getInitialSnapshot, transition } from 'xstate';
import { unexplained } from '../../explorer/coverage.ts';
import { explore } from '../../explorer/explore.ts';
import type { ModelSnapshot, ResolvedVariant } from '../../explorer/model.ts';
import { formatStepLabel } from '../../explorer/report-text.ts';
import type { ExploreResult } from '../../explorer/result.ts';
import model, {
  createIoasMachine,
  IOAS_EVENT_TYPES,
  type IoasCtx,
  type IoasDesign,
  type IoasEv,
  ioasDesign,
  ioasEvents,
  ioasLabel,
  ioasWaits,
  sizedDesign,
} from '../../machines/ioas.ts';
import { WARN } from '../../machines/kernel/iommufd-pages.ts';
import { exploreOnce, traceOf as traceOfSteps, violated } from './support.ts';

const traceOf = (r: ExploreResult, property: string) =>
  traceOfSteps(r, property, (s) => {
    const e = s.event as IoasEv;
    const args = [e.ioas, e.slot].filter((x) => x !== undefined);
    return `${e.type}${args.length ? `(${args.join(',')})` : ''}${s.result ? `=${s.result}` : ''}`;
  });

const run = exploreOnce(model);

/** A variant's own design with test-only overrides (a mutant), explored at the variant's bounds. */
const runDesign = (name: Parameters<typeof ioasDesign>[0], over: Partial<IoasDesign>, depth?: number) => {
  const d = ioasDesign(name, over);
  return explore(
    {
      ...model.variant(name),
      machine: createIoasMachine(d),
      events: ioasEvents(d),
      label: ioasLabel(d),
      waitingFor: ioasWaits(d),
    } as ResolvedVariant,
    {
      ...(depth && { depth }),
    },
  );
};

describe('ioas verdicts at the default bounds', () => {
  it.each(model.variantNames)('%s: finds exactly what it expects, completely', async (name) => {
    const variant = model.variant(name);
    const r = await run(name);
    expect(r.complete).toBe(true);
    expect(violated(r)).toEqual([...(variant.expect?.violated ?? [])].sort());
    expect(r.states).toBe(variant.expect?.states);
  });

  it.each(model.variantNames)(
    '%s: every transition fires or is listed as unreachable, and every listed one never fires',
    async (name) => {
      const r = await run(name);
      expect(unexplained(r.coverage)).toEqual([]);
      expect(r.coverage.staleUnreachable).toEqual([]);
    },
  );
});

describe('the designs with the F1/F2 patches', () => {
  // What is left is what change-process (USER accounting, neither finding) violates too.
  it.each([
    ['change-process-mm-fixed', 'change-process-mm'],
    ['change-process-none-fixed', 'change-process-none'],
  ])('%s violates only what change-process does, and less than %s', async (fixed, broken) => {
    const base = violated(await run('change-process'));
    expect(violated(await run(fixed))).toEqual(base);
    expect(violated(await run(broken)).length).toBeGreaterThan(base.length);
  });
});

describe('each invariant fires, shortest counterexample first', () => {
  it('noUnmapRetryWarn: a non-compliant access makes UNMAP give up with EDEADLOCK (9 steps)', async () => {
    const t = traceOf(await run('access-unmap-noncompliant'), 'noUnmapRetryWarn');
    expect(t).toHaveLength(9);
    expect(t.slice(-4)).toEqual([
      'VmmUnmapScan',
      'VmmUnmapNotify',
      'VmmUnmapScan',
      'VmmUnmapNotify=EDEADLOCK',
    ]);
    expect(t).toContain('AccessPin(0)=0');
  });

  it('alwaysPageProvider and pinnableHasProvider: exec with a user-VA map pinned (4 steps)', async () => {
    const r = await run('change-process');
    for (const p of ['alwaysPageProvider', 'pinnableHasProvider']) {
      expect(traceOf(r, p)).toEqual(['VmmIoasMap(1,1)', 'VmmMapInsert', 'VmmMapFill=0', 'VmmExec=0']);
    }
  });

  it('failedChangeIsNoop, lastNpinnedSynced, noChangeProcessUnchargeWarn: U1, CHANGE_PROCESS after exec in MM mode (8 steps)', async () => {
    const r = await run('change-process-mm');
    const u1 = [
      'VmmIoasMapFile(1,0)',
      'VmmMapInsert',
      'VmmMapFill=0',
      'VmmExec=0',
      'VmmIoasChangeProcess',
      'VmmCpTakeCreation',
      'VmmCpTakeIoas',
      'VmmCpApply=EINVAL',
    ];
    for (const p of ['failedChangeIsNoop', 'lastNpinnedSynced', 'noChangeProcessUnchargeWarn']) {
      expect(traceOf(r, p)).toEqual(u1);
    }
  });

  it('accountingConserved and noLockedVmUnderflowWarn: after U1, the next owner is never charged (MM mode)', async () => {
    const r = await run('change-process-mm');
    const t = traceOf(r, 'noLockedVmUnderflowWarn');
    expect(t).toHaveLength(15);
    expect(t).toContain('VmmCpApply=EINVAL');
    expect(t).toContain('ChildCpApply=0');
    expect(t.at(-1)).toBe('VmmUnmapUnfill=0');
    expect(traceOf(r, 'accountingConserved').length).toBeLessThanOrEqual(15);
  });

  it('accountingConserved (7 steps) and accountingNonNegative (10 steps): U2, NONE pages change owner without pinned_vm', async () => {
    const r = await run('change-process-none');
    const moved = ['VmmIoasMapFile(1,0)', 'VmmMapInsert', 'VmmMapFill=0'];
    const conserved = traceOf(r, 'accountingConserved');
    expect(conserved.slice(0, 3)).toEqual(moved);
    expect(conserved.at(-1)).toBe('ChildCpApply=0');
    expect(conserved).toHaveLength(7);
    const negative = traceOf(r, 'accountingNonNegative');
    expect(negative).toHaveLength(10);
    expect(negative.at(-1)).toBe('VmmUnmapUnfill=0');
  });

  it('accessPinsInsideAreas: a mutant UNMAP that ignores the access pins (7 steps)', async () => {
    const r = await runDesign('access-unmap', { mutate: 'unmapIgnoresAccesses' });
    expect(violated(r)).toContain('accessPinsInsideAreas');
    const t = traceOf(r, 'accessPinsInsideAreas');
    expect(t).toHaveLength(7);
    expect(t.at(-1)).toBe('VmmUnmapUnfill=0');
  });

  it('deadlock: a mutant CHANGE_PROCESS without ioas_creation_lock and with the IOAS locks in reverse order (7 steps)', async () => {
    const r = await runDesign('copy-lifecycle', { mutate: 'cpNoCreationLock' });
    expect(violated(r)).toEqual(['deadlock']);
    // The VMM holds ioas_creation_lock and IOAS 1 and waits for IOAS 2, which the child took first.
    expect(traceOf(r, 'deadlock')).toEqual([
      'VmmIoasAlloc',
      'VmmIoasFinalize=0',
      'VmmIoasChangeProcess',
      'VmmCpTakeCreation',
      'VmmCpTakeIoas',
      'ChildIoasChangeProcess',
      'ChildCpTakeIoas',
    ]);
    const v = r.violations.find((x) => x.property === 'deadlock');
    expect(v?.trace.map((step) => formatStepLabel(step))).toEqual([
      'ioctl(iommufd, IOMMU_IOAS_ALLOC)',
      'vmm: iommufd_ioas_alloc_ioctl: iommufd_object_finalize = 0',
      'ioctl(iommufd, IOMMU_IOAS_CHANGE_PROCESS)',
      'vmm: iommufd_take_all_iova_rwsem: down_write(ioas_creation_lock)',
      "vmm: iommufd_take_all_iova_rwsem: down_write(ioas1's iova_rwsem)",
      'ioctl(iommufd, IOMMU_IOAS_CHANGE_PROCESS)',
      "child: iommufd_take_all_iova_rwsem: down_write(ioas2's iova_rwsem)",
    ]);
    expect(Object.fromEntries((v?.waiting ?? []).map((w) => [w.actor, w.for]))).toEqual({
      vmm:
        "in iommufd_take_all_iova_rwsem (holding ioas_creation_lock, ioas1's iova_rwsem): " +
        "on ioas2's iova_rwsem, held by child",
      child:
        "in iommufd_take_all_iova_rwsem (holding ioas2's iova_rwsem): on ioas1's iova_rwsem, held by vmm",
    });
  });
});

describe("in the thread's words (issue 11)", () => {
  it('the retries of an UNMAP that a non-compliant access ignores', async () => {
    const r = await run('access-unmap-noncompliant');
    const v = r.violations.find((x) => x.property === 'noUnmapRetryWarn');
    expect(v?.trace.slice(-2).map((step) => formatStepLabel(step))).toEqual([
      'vmm: iopt_unmap_iova_range: down_write(iova_rwsem)',
      'vmm: iommufd_access_notify_unmap → access->ops->unmap = EDEADLOCK',
    ]);
  });

  it('what waits for a CHANGE_PROCESS that holds the iova_rwsem: a map and the access', () => {
    const d = ioasDesign('access-unmap', { child: true });
    const f = fixture('access-unmap', { child: true });
    f.send('ChildIoasChangeProcess');
    f.send('ChildCpTakeCreation');
    f.send('ChildCpTakeIoas');
    f.send('VmmIoasMap', { ioas: 1, slot: 0 });
    const waits = ioasWaits(d);
    const at = f.snapshot();
    expect(waits(at, 'vmm')).toBe("in iopt_alloc_area_pages: on ioas1's iova_rwsem, held by child");
    expect(waits(at, 'access')).toBe(
      "in its next pin, unpin or destroy: on ioas1's iova_rwsem, held by child",
    );
    expect(waits(at, 'child')).toBeUndefined(); // its CpApply is enabled
    expect(ioasLabel(d)({ type: 'ChildCpApply' }, at)).toBe(
      'child: iommufd_ioas_change_process: move the owner, unlock',
    );
  });

  it('the witnesses fail where the access never pins (complete search)', async () => {
    const v = model.variant('access-unmap');
    const r = await explore({ ...v, events: (s) => v.events(s).filter((e) => e.type !== 'AccessPin') });
    const status = (name: string) => r.properties.find((p) => p.name === name)?.status;
    expect(r.complete).toBe(true);
    expect(status('accessPins')).toBe('violated');
    expect(status('unmapNotifiesTheAccess')).toBe('violated');
    expect(status('mapCompletes')).toBe('holds');
  });

  it('every event type has a label', () => {
    const d = ioasDesign('copy-lifecycle');
    const s = getInitialSnapshot(createIoasMachine(d)) as unknown as ModelSnapshot<IoasCtx>;
    for (const type of IOAS_EVENT_TYPES) {
      const label = ioasLabel(d)({ type, ioas: 1, slot: 0, srcIoas: 1, srcSlot: 0 }, s);
      expect(label, type).toMatch(/^(ioctl\(iommufd, IOMMU_|execve\(|exit\(|(vmm|child|access): )/);
      expect(label, type).not.toMatch(/undefined/);
    }
  });
});

// ---------------------------------------------------------------- scenarios

const VMM_STEPS = [
  'VmmIoasFinalize',
  'VmmMapInsert',
  'VmmMapFill',
  'VmmUnmapScan',
  'VmmUnmapNotify',
  'VmmUnmapUnfill',
  'VmmCpTakeCreation',
  'VmmCpTakeIoas',
  'VmmCpApply',
];
const CHILD_STEPS = ['ChildCpTakeCreation', 'ChildCpTakeIoas', 'ChildCpApply'];

/** Drive a design's machine with xstate's own transition(), one event at a time, as a selftest drives ioctls. */
function fixture(name: Parameters<typeof ioasDesign>[0], over: Partial<IoasDesign> = {}) {
  const machine = createIoasMachine(ioasDesign(name, over));
  let s: AnyMachineSnapshot = getInitialSnapshot(machine) as AnyMachineSnapshot;
  const can = (type: string, params: Partial<IoasEv> = {}) => s.can({ type, ...params });
  const send = (type: string, params: Partial<IoasEv> = {}) => {
    const ev = { type, ...params };
    if (!s.can(ev)) throw new Error(`${type} ${JSON.stringify(params)} is not enabled`);
    [s] = transition(machine, s, ev) as [AnyMachineSnapshot, unknown];
  };
  const ctx = () => s.context as IoasCtx;
  /** A call and every kernel step of it, as one ioctl returning: its predicted result. */
  const call = (type: string, params: Partial<IoasEv> = {}) => {
    const actor = type.startsWith('Child') ? 'child' : type.startsWith('Access') ? 'access' : 'vmm';
    send(type, params);
    const steps = actor === 'child' ? CHILD_STEPS : VMM_STEPS;
    while (ctx().ret[actor] === null) {
      const next = steps.find((e) => can(e));
      if (!next) throw new Error(`${type}: no kernel step of ${actor} is enabled`);
      send(next);
    }
    return ctx().ret[actor];
  };
  const mm = (name: string) => ctx().k.mms[name];
  const snapshot = () => s as unknown as ModelSnapshot<IoasCtx>;
  return { send, can, call, ctx, mm, snapshot };
}

describe('selftest change_process fixture (UAPI-FACTS §3.3), account_user', () => {
  it('basic: user-VA map EINVAL, MAP_FILE 0 in the same process, then the child takes it', () => {
    const f = fixture('change-process');
    expect(f.call('VmmIoasMap', { ioas: 1, slot: 1 })).toBe('0');
    expect(f.call('VmmIoasChangeProcess')).toBe('EINVAL'); // only MAP_FILE maps can move
    expect(f.call('VmmIoasUnmap', { ioas: 1, slot: 1 })).toBe('0');
    expect(f.call('VmmIoasMapFile', { ioas: 1, slot: 0 })).toBe('0');
    expect(f.call('VmmIoasChangeProcess')).toBe('0');
    expect(f.mm('vmm0')).toMatchObject({ pinnedVm: 1, lockedVm: 0 });
    expect(f.mm('child0')).toMatchObject({ pinnedVm: 0, lockedVm: 0 });
    expect(f.call('ChildIoasChangeProcess')).toBe('0');
    expect(f.mm('vmm0').pinnedVm).toBe(0);
    expect(f.mm('child0').pinnedVm).toBe(1);
    expect(f.ctx().k.users.u).toBe(1); // USER mode: one charge on the shared uid
  });

  it('account_mm: VmLck moves with VmPin', () => {
    const f = fixture('change-process-mm');
    expect(f.call('VmmIoasMapFile', { ioas: 1, slot: 0 })).toBe('0');
    expect(f.mm('vmm0')).toMatchObject({ pinnedVm: 1, lockedVm: 1 });
    expect(f.call('ChildIoasChangeProcess')).toBe('0');
    expect(f.mm('vmm0')).toMatchObject({ pinnedVm: 0, lockedVm: 0 });
    expect(f.mm('child0')).toMatchObject({ pinnedVm: 1, lockedVm: 1 });
  });

  it('CHANGE_PROCESS is EBUSY while a map is in flight (area->pages == NULL)', () => {
    const f = fixture('change-process');
    f.send('VmmIoasMapFile', { ioas: 1, slot: 0 });
    f.send('VmmMapInsert');
    expect(f.call('ChildIoasChangeProcess')).toBe('EBUSY');
    f.send('VmmMapFill');
    expect(f.ctx().ret.vmm).toBe('0');
  });

  it('a map waits for CHANGE_PROCESS holding the IOAS iova_rwsem', () => {
    const f = fixture('change-process');
    f.send('ChildIoasChangeProcess');
    f.send('ChildCpTakeCreation');
    f.send('ChildCpTakeIoas');
    f.send('VmmIoasMapFile', { ioas: 1, slot: 0 });
    expect(f.can('VmmMapInsert')).toBe(false);
    f.send('ChildCpApply');
    expect(f.call('VmmMapInsert')).toBe('0');
  });
});

describe('COPY and IOAS lifecycle', () => {
  it('COPY shares the pages: pinned and charged once, moved once by CHANGE_PROCESS', () => {
    const f = fixture('copy-lifecycle');
    expect(f.call('VmmIoasMapFile', { ioas: 1, slot: 0 })).toBe('0');
    expect(f.call('VmmIoasCopy', { ioas: 2, slot: 0, srcIoas: 1, srcSlot: 0 })).toBe('ENOENT'); // no IOAS 2 yet
    expect(f.call('VmmIoasAlloc')).toBe('0');
    expect(f.call('VmmIoasCopy', { ioas: 2, slot: 0, srcIoas: 1, srcSlot: 0 })).toBe('0');
    expect(f.ctx().k.pages).toHaveLength(1);
    expect(f.ctx().k.users.u).toBe(1);
    expect(f.call('ChildIoasChangeProcess')).toBe('0'); // needs 2 under RLIMIT 2: charged once, not per area
    expect(f.mm('child0').pinnedVm).toBe(1);
    expect(f.ctx().k.users.u).toBe(1);
  });

  it('IOAS_ALLOC waits for CHANGE_PROCESS (ioas_creation_lock), which then skips the unfinalized IOAS', () => {
    const f = fixture('copy-lifecycle');
    f.send('VmmIoasAlloc');
    f.send('ChildIoasChangeProcess');
    f.send('ChildCpTakeCreation');
    expect(f.can('VmmIoasFinalize')).toBe(false);
    f.send('ChildCpTakeIoas');
    expect(f.can('ChildCpTakeIoas')).toBe(false); // IOAS 2 is still XA_ZERO_ENTRY
    f.send('ChildCpApply');
    expect(f.call('VmmIoasFinalize')).toBe('0');
  });

  it('IOMMU_DESTROY of an IOAS with a domain attached is EBUSY (the HWPT holds a users reference)', () => {
    // hw_pagetable.c:iommufd_hwpt_paging_alloc refcount_inc(&ioas->obj.users); main.c:iommufd_object_remove
    // refcount_dec_if_one fails: confirmed on 7.3.4 by `vfio-mc conform ioas --variant copy-lifecycle`.
    const f = fixture('copy-lifecycle');
    expect(f.call('VmmIoasDestroy', { ioas: 1 })).toBe('EBUSY');
    expect(f.call('VmmIoasAlloc')).toBe('0');
    expect(f.call('VmmIoasDestroy', { ioas: 2 })).toBe('0'); // no domain attached to an IOAS allocated later
  });

  it('IOMMU_DESTROY: ENOENT for a free id, EBUSY while CHANGE_PROCESS holds the IOAS, then 0 and unpinned', () => {
    const f = fixture('copy-lifecycle');
    expect(f.call('VmmIoasDestroy', { ioas: 2 })).toBe('ENOENT');
    expect(f.call('VmmIoasAlloc')).toBe('0');
    expect(f.call('VmmIoasMapFile', { ioas: 1, slot: 0 })).toBe('0');
    expect(f.call('VmmIoasCopy', { ioas: 2, slot: 0, srcIoas: 1, srcSlot: 0 })).toBe('0');
    f.send('ChildIoasChangeProcess');
    f.send('ChildCpTakeCreation');
    f.send('ChildCpTakeIoas');
    f.send('ChildCpTakeIoas');
    expect(f.call('VmmIoasDestroy', { ioas: 2 })).toBe('EBUSY');
    f.send('ChildCpApply');
    expect(f.call('VmmIoasDestroy', { ioas: 2 })).toBe('0');
    expect(f.ctx().k.pages[0]?.npinned).toBe(1); // still mapped in IOAS 1
    expect(f.call('VmmIoasUnmap', { ioas: 1, slot: 0 })).toBe('0');
    expect(f.ctx().k.pages).toEqual([]);
    expect(f.ctx().k.users.u).toBe(0);
  });
});

describe('accesses and the unmap notification', () => {
  it('access_pin_unmap: UNMAP of a pinned area succeeds, the item is gone (DESTROY_ACCESS_PAGES ENOENT)', () => {
    const f = fixture('access-unmap');
    expect(f.call('VmmIoasMapFile', { ioas: 1, slot: 1 })).toBe('0');
    f.send('AccessPin', { slot: 1 });
    expect(f.ctx().ret.access).toBe('0');
    expect(f.call('VmmIoasUnmap', { ioas: 1, slot: 1 })).toBe('0');
    f.send('AccessUnpin', { slot: 1 });
    expect(f.ctx().ret.access).toBe('ENOENT');
    expect(f.ctx().k.pages).toEqual([]);
  });

  it('an IOAS with an access attached cannot be destroyed (EBUSY); the access pin of a gap is ENOENT', () => {
    const f = fixture('access-unmap');
    expect(f.call('VmmIoasDestroy', { ioas: 1 })).toBe('EBUSY');
    f.send('AccessPin', { slot: 0 });
    expect(f.ctx().ret.access).toBe('ENOENT');
    expect(f.call('VmmIoasMap', { ioas: 1, slot: 0 })).toBe('0');
    expect(f.call('VmmIoasMap', { ioas: 1, slot: 0 })).toBe('EEXIST');
  });

  it('non-compliant access: EDEADLOCK after the retries, prevent_access left set, later pins EINVAL', () => {
    const f = fixture('access-unmap-noncompliant');
    expect(f.call('VmmIoasMapFile', { ioas: 1, slot: 0 })).toBe('0');
    f.send('AccessPin', { slot: 0 });
    expect(f.call('VmmIoasUnmap', { ioas: 1, slot: 0 })).toBe('EDEADLOCK');
    expect(f.ctx().k.warn).toEqual([WARN.unmapTries]);
    f.send('AccessUnpin', { slot: 0 });
    expect(f.ctx().ret.access).toBe('0');
    f.send('AccessPin', { slot: 0 });
    expect(f.ctx().ret.access).toBe('EINVAL');
    expect(f.call('VmmIoasUnmap', { ioas: 1, slot: 0 })).toBe('0');
  });

  it('without a domain only accesses pin; a user-VA pin after exec is EFAULT, a memfd pin still works', () => {
    const f = fixture('lazy-access');
    expect(f.call('VmmIoasMap', { ioas: 1, slot: 1 })).toBe('0');
    expect(f.call('VmmIoasMapFile', { ioas: 1, slot: 0 })).toBe('0');
    expect(f.mm('vmm0').pinnedVm).toBe(0); // lazy: nothing pinned at map time
    expect(f.call('VmmExec')).toBe('0');
    f.send('AccessPin', { slot: 1 });
    expect(f.ctx().ret.access).toBe('EFAULT'); // selftest fork_gone
    f.send('AccessPin', { slot: 0 });
    expect(f.ctx().ret.access).toBe('0');
    expect(f.ctx().k.users.u).toBe(1);
  });
});

/**
 * Conformance probes (UAPI-FACTS §7): the model's predictions, to be settled
 * by replaying these steps on the real kernel (conformance/). Each test
 * records the errno and the counters the model predicts after each call.
 */
describe('conformance probes', () => {
  it('probe U1 (MM mode, old mm dead): CHANGE_PROCESS returns EINVAL, WARNs, yet moved the owner', () => {
    const f = fixture('change-process-mm');
    expect(f.call('VmmIoasMapFile', { ioas: 1, slot: 0 })).toBe('0');
    expect(f.call('VmmExec')).toBe('0');
    expect(f.call('VmmIoasChangeProcess')).toBe('EINVAL');
    const p = f.ctx().k.pages[0]!;
    expect(p).toMatchObject({ mm: 'vmm1', npinned: 1, lastNpinned: 0 });
    expect(f.mm('vmm1')).toMatchObject({ lockedVm: 1, pinnedVm: 1 });
    expect(f.mm('vmm0')).toMatchObject({ alive: false, lockedVm: 1, pinnedVm: 1 }); // never uncharged
    expect(f.ctx().k.warn).toEqual([WARN.changeProcessUncharge]);
    // Knock-on (beyond §7): the stale last_npinned makes the next CHANGE_PROCESS charge nothing ...
    expect(f.call('ChildIoasChangeProcess')).toBe('0');
    expect(f.mm('child0')).toMatchObject({ lockedVm: 0, pinnedVm: 0 });
    expect(f.mm('vmm1')).toMatchObject({ lockedVm: 0, pinnedVm: 0 });
    // ... and the unmap then underflows the new owner's counters.
    expect(f.call('VmmIoasUnmap', { ioas: 1, slot: 0 })).toBe('0');
    expect(f.mm('child0')).toMatchObject({ lockedVm: -1, pinnedVm: -1 });
    expect(f.ctx().k.warn).toContain(WARN.mmUnderflow);
  });

  it('probe U1 in USER mode: the same sequence returns 0 and moves the charge', () => {
    const f = fixture('change-process');
    expect(f.call('VmmIoasMapFile', { ioas: 1, slot: 0 })).toBe('0');
    expect(f.call('VmmExec')).toBe('0');
    expect(f.call('VmmIoasChangeProcess')).toBe('0');
    expect(f.mm('vmm1').pinnedVm).toBe(1);
    expect(f.mm('vmm0').pinnedVm).toBe(0);
    expect(f.ctx().k.users.u).toBe(1);
  });

  it('probe U2 (NONE pages, mapper has CAP_IPC_LOCK): pinned_vm stays with the old mm, the unmap skews the new one', () => {
    const f = fixture('change-process-none');
    expect(f.call('VmmIoasMapFile', { ioas: 1, slot: 0 })).toBe('0');
    expect(f.mm('vmm0')).toMatchObject({ pinnedVm: 1, lockedVm: 0 });
    expect(f.ctx().k.users.u).toBe(0);
    expect(f.call('ChildIoasChangeProcess')).toBe('0');
    expect(f.ctx().k.pages[0]?.mm).toBe('child0');
    expect(f.mm('vmm0').pinnedVm).toBe(1);
    expect(f.mm('child0').pinnedVm).toBe(0);
    expect(f.call('VmmIoasUnmap', { ioas: 1, slot: 0 })).toBe('0');
    expect(f.mm('child0').pinnedVm).toBe(-1); // VmPin of the child reads as a wrapped counter
    expect(f.mm('vmm0').pinnedVm).toBe(1);
  });

  it('F1 fixed (conformance/kernel/patches/0001): the same U1 sequence returns 0 and moves the charge', () => {
    const f = fixture('change-process-mm-fixed');
    expect(f.call('VmmIoasMapFile', { ioas: 1, slot: 0 })).toBe('0');
    expect(f.call('VmmExec')).toBe('0');
    expect(f.call('VmmIoasChangeProcess')).toBe('0');
    expect(f.ctx().k.pages[0]).toMatchObject({ mm: 'vmm1', npinned: 1, lastNpinned: 1 });
    expect(f.mm('vmm1')).toMatchObject({ lockedVm: 1, pinnedVm: 1 });
    expect(f.ctx().k.warn).toEqual([]);
    expect(f.call('VmmIoasUnmap', { ioas: 1, slot: 0 })).toBe('0');
    expect(f.mm('vmm1')).toMatchObject({ lockedVm: 0, pinnedVm: 0 });
  });

  it('F2 fixed (conformance/kernel/patches/0002): NONE pages take their pinned_vm to the new owner', () => {
    const f = fixture('change-process-none-fixed');
    expect(f.call('VmmIoasMapFile', { ioas: 1, slot: 0 })).toBe('0');
    expect(f.call('ChildIoasChangeProcess')).toBe('0');
    expect(f.mm('vmm0').pinnedVm).toBe(0);
    expect(f.mm('child0').pinnedVm).toBe(1);
    expect(f.call('VmmIoasUnmap', { ioas: 1, slot: 0 })).toBe('0');
    expect(f.mm('child0').pinnedVm).toBe(0);
    expect(f.mm('vmm0').pinnedVm).toBe(0);
  });

  it('probe U3 (USER mode, same uid): CHANGE_PROCESS needs 2×N of RLIMIT_MEMLOCK headroom', () => {
    const tight = fixture('change-process', { rlimit: 1 });
    expect(tight.call('VmmIoasMapFile', { ioas: 1, slot: 0 })).toBe('0');
    expect(tight.call('ChildIoasChangeProcess')).toBe('ENOMEM');
    expect(tight.ctx().k.pages[0]?.mm).toBe('vmm0');
    expect(tight.ctx().k.users.u).toBe(1);
    expect(tight.mm('vmm0').pinnedVm).toBe(1);
    expect(tight.mm('child0').pinnedVm).toBe(0);
    const room = fixture('change-process', { rlimit: 2 });
    expect(room.call('VmmIoasMapFile', { ioas: 1, slot: 0 })).toBe('0');
    expect(room.call('ChildIoasChangeProcess')).toBe('0');
    expect(room.ctx().k.users.u).toBe(1);
  });
});

describe('sizes: the parameter areas', () => {
  it('three areas (areas=3): access-unmap holds completely, the access pinning all three', async () => {
    const v = model.variant('access-unmap', { areas: 3 });
    const r = await explore(v);
    expect(r.complete).toBe(true);
    expect(r.states).toBe(7_096);
    expect(violated(r)).toEqual([]);
    expect(unexplained(r.coverage)).toEqual([]);
    expect(r.coverage.staleUnreachable).toEqual([]);
  });

  it('areas=3: the non-compliant access still makes UNMAP give up, in the same 9 steps', async () => {
    const r = await explore(model.variant('access-unmap-noncompliant', { areas: 3 }));
    expect(r.complete).toBe(true);
    expect(violated(r)).toEqual(['noUnmapRetryWarn']);
    expect(traceOf(r, 'noUnmapRetryWarn')).toHaveLength(9);
  });

  it('a design grows by areas of alternating kinds, with RLIMIT_MEMLOCK and the map budget in step', () => {
    const d = sizedDesign('change-process-mm', 4);
    expect(d.maps.map((m) => `${m.slot}:${m.kind}`)).toEqual(['0:file', '1:user', '2:file', '3:user']);
    expect(d.rlimit).toBe(8); // 4 pages for 2 areas
    expect(d.mapBudget).toBe(5); // 3 for 2 areas
    const one = sizedDesign('access-unmap-noncompliant', 3);
    expect(one.maps.map((m) => m.kind)).toEqual(['file', 'user']);
    expect(one.accessSlots).toEqual([0, 1]);
    expect(sizedDesign('lazy-access', 2)).toEqual(ioasDesign('lazy-access'));
  });

  it('an out-of-range size or an unknown parameter is one clear error', () => {
    expect(() => model.variant('access-unmap', { areas: 5 })).toThrow(
      "model 'ioas': areas must be an integer from 2 to 4, got 5",
    );
    expect(() => model.variant('access-unmap', { areas: 1 })).toThrow(
      "model 'ioas': areas must be an integer from 2 to 4, got 1",
    );
    expect(() => model.variant('access-unmap', { accesses: 2 })).toThrow(
      "model 'ioas' has no parameter 'accesses' (parameters: areas)",
    );
  });
});
