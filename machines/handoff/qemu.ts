/**
 * QEMU's live update as it calls the kernel (spec/findings/qemu-cpr.md): the
 * cpr-exec and cpr-transfer migration modes, with the iommufd back end or
 * the legacy type1 container. Read from QEMU's source (about 10.1-10.2; the
 * exact version of each piece is not settled, see the findings page):
 *
 * - iommufd (backends/iommufd.c, hw/vfio/cpr-iommufd.c): every QEMU calls
 *   IOMMU_IOAS_CHANGE_PROCESS at its first connect as a capability probe
 *   (iommufd_change_process_capable(); a failure adds a CPR blocker and the
 *   connect goes on), the old QEMU again in pre_save (a failure fails the
 *   migration and the VM resumes), the new one in post_load (a failure fails
 *   the load: the new QEMU exits). In the incoming QEMU MAP_FILE and UNMAP
 *   return 0 without a call (cpr_is_incoming()): the mappings are the old
 *   ones.
 * - legacy (hw/vfio/cpr-legacy.c): pre_save is one
 *   VFIO_IOMMU_UNMAP_DMA(VADDR|ALL); post_load replays every section with
 *   VFIO_IOMMU_MAP_DMA(VADDR) and the new vaddrs; if the exec fails, the
 *   MIG_EVENT_PRECOPY_FAILED notifier replays them with the old vaddrs. QEMU
 *   refuses CPR up front when an mdev is attached (VFIO_CHECK_EXTENSION
 *   VFIO_UPDATE_VADDR is 0 then: T1:vfio_iommu_type1_check_extension).
 * - cpr-exec (migration/cpr-exec.c): the old QEMU execs the new binary in
 *   place after the state is saved; an exec failure resumes the VM.
 * - cpr-transfer: the new QEMU is a second process, started beforehand,
 *   that receives the fds; it realizes its devices (the probe) before the
 *   old one saves its state.
 *
 * Then the new QEMU runs the guest, and at some later point unmaps a region
 * (hot-unplug, a vIOMMU unmap, or shutdown): the step F2 needs.
 */
import { changeProcessBody } from '../kernel/iommufd-change-process.ts';
import { removeArea, update } from '../kernel/iommufd-ioas.ts';
import type { StepFn, StepResult } from '../kernel/iommufd-steps.ts';
import { mapVaddr, unmapOne, unmapVaddr, VA0 } from '../kernel/type1.ts';
import {
  type Actor,
  callerOf,
  type HandoffCtx,
  type HandoffDesign,
  type HandoffEv,
  mapsOf,
  onType1,
  withType1,
  ownerChange,
  pidOf,
  setRet,
  setSig,
  T1_73,
  VA_NEW,
} from './context.ts';
import type { Protocol, Row } from './protocol.ts';
import { execImage, exitProcess, mapGuest, mmapLabel, row } from './seed.ts';

type Step = StepFn<HandoffCtx, HandoffEv>;

/** Every dma of the design (QEMU's pre_save invalidates them all). */
const allDmas = (d: HandoffDesign) => Array.from({ length: mapsOf(d) }, (_, i) => i);

const CP = 'ioctl(iommufd, IOMMU_IOAS_CHANGE_PROCESS)';

/** IOMMU_IOAS_CHANGE_PROCESS from `a` (7.3 rules), recorded in the owner-change history. */
function changeProcess(d: HandoffDesign, c: HandoffCtx, a: Actor, label: string) {
  const pid = pidOf(d, a);
  return ownerChange(d, c, a, label, (k, t1) => ({ t1, err: changeProcessBody(k, [1], pid, '7.3') }));
}

/** The lowest dma whose vaddr is invalid (QEMU replays sections in address order). */
const nextInvalid = (c: HandoffCtx): number | undefined => {
  const i = c.t1!.dmas.findIndex((x) => x.mapped && x.vaddrMm === null);
  return i < 0 ? undefined : i;
};

const rollbackLabel = (c: HandoffCtx) =>
  `fail notifier: ioctl(container, VFIO_IOMMU_MAP_DMA, VADDR, dma${nextInvalid(c) ?? 0}, vaddr=${VA0})`;
const postLoadLabel = (c: HandoffCtx) =>
  `post_load: ioctl(container, VFIO_IOMMU_MAP_DMA, VADDR, dma${nextInvalid(c) ?? 0}, vaddr=${VA_NEW})`;

export function qemuProtocol(d: HandoffDesign): Protocol {
  const flow = d.qemu!;
  const transfer = flow.mode === 'cpr-transfer';
  const iommufd = flow.backend === 'iommufd';
  const imagePid = pidOf(d, 'image');

  // ------------------------------------------------------------ the old QEMU

  /** The migration's pre_save: CHANGE_PROCESS (iommufd) or UNMAP_DMA(VADDR|ALL) (legacy). */
  const preSave: Step = (c) => {
    // cpr-transfer: the main channel opens once the new QEMU realized its devices.
    const imageReady = iommufd ? c.sig.image === 'probed' : imageMapped(c);
    if (transfer && !imageReady) return null;
    const { ctx, err } = iommufd
      ? changeProcess(d, c, 'vmm', `pre_save: ${CP}`)
      : (() => {
          const r = withType1(c, (ks) => unmapVaddr(ks, allDmas(d), T1_73));
          return { ctx: setRet(r.ctx, 'vmm', r.err), err: r.err };
        })();
    // A failed pre_save fails the migration and the VM resumes (qemu_savevm_state_complete_precopy).
    return err
      ? { next: 'resumed', ctx: setSig(ctx, { vmm: 'resumed' }) }
      : { next: 'saved', ctx: setSig(ctx, { vmm: 'saved' }) };
  };
  const exec: Step = (c) => ({
    next: 'execed',
    ctx: setSig(setRet(execImage(c, null), 'vmm', null), { vmm: 'execed' }),
  });
  /** execvp() failed: cpr_exec_cb sets the migration FAILED; the legacy notifier restores the vaddrs, then vm_start(). */
  const execFails: Step = (c) => {
    const ctx = setRet(c, 'vmm', 'ENOENT');
    return iommufd
      ? { next: 'resumed', ctx: setSig(ctx, { vmm: 'resumed' }) }
      : { next: 'rollback', ctx: setSig(ctx, { vmm: 'execFailed' }) };
  };
  /** vfio_cpr_fail_notifier → vfio_region_remap → MAP_DMA(VADDR) with the old vaddr, section by section. */
  const rollback: Step = (c) => {
    const i = nextInvalid(c);
    if (i === undefined) return null;
    const caller = callerOf(d, c, 'vmm');
    const label = rollbackLabel(c);
    const { ctx, err } = ownerChange(
      d,
      c,
      'vmm',
      label,
      (k, t1) => onType1(k, t1, (ks) => mapVaddr(ks, i, caller.mm, T1_73, { va: VA0, limit: caller.limit })),
      i,
    );
    if (err) return { next: 'rollback', ctx };
    return nextInvalid(ctx) === undefined
      ? { next: 'resumed', ctx: setSig(ctx, { vmm: 'resumed' }) }
      : { next: 'rollback', ctx };
  };
  /** The manager quits the source once the new QEMU runs the guest. */
  const vmmExit: Step = (c) =>
    c.sig.image === 'done'
      ? { next: 'exited', ctx: setSig(setRet(exitProcess(c, 'vmm'), 'vmm', null), { vmm: 'exited' }) }
      : null;
  /** The new QEMU failed: the source, stopped after sending its state, is resumed (`cont`). */
  const vmmResume: Step = (c) =>
    !c.running.includes(imagePid) ? { next: 'resumed', ctx: setSig(c, { vmm: 'resumed' }) } : null;

  // ------------------------------------------------------------ the new QEMU

  const imageMapped = (c: HandoffCtx) => c.as[c.k.procs[imagePid].mm]?.[VA_NEW] !== undefined;
  const imageMmap: Step = (c) => {
    if (!transfer && c.sig.vmm !== 'execed') return null;
    return { next: 'mapped', ctx: setRet(mapGuest(c, c.k.procs[imagePid].mm, VA_NEW), 'image', null) };
  };
  const loaded = (ctx: HandoffCtx, err: string | null, finished = true): StepResult<HandoffCtx> => {
    if (err) return { next: 'failed', ctx: setSig(ctx, { image: 'failed' }) };
    return finished ? { next: 'done', ctx: setSig(ctx, { image: 'done' }) } : { next: 'mapped', ctx };
  };
  /** iommufd_backend_connect → vfio_iommufd_cpr_register_iommufd: the probe; a failure only adds a CPR blocker. */
  const probe: Step = (c) => {
    const { ctx, err } = changeProcess(d, c, 'image', `connect: ${CP}`);
    return { next: 'probed', ctx: setSig(ctx, { image: 'probed', ...(err && { cprBlocked: true }) }) };
  };
  const postLoad: Step = (c) => {
    if (c.sig.vmm !== 'saved' && c.sig.vmm !== 'execed') return null;
    const { ctx, err } = changeProcess(d, c, 'image', `post_load: ${CP}`);
    return loaded(ctx, err);
  };
  /** vfio_container_post_load: vfio_listener_register with dma_map diverted to MAP_DMA(VADDR), the new vaddrs. */
  const postLoadVaddr: Step = (c) => {
    if (c.sig.vmm !== 'saved' && c.sig.vmm !== 'execed') return null;
    const i = nextInvalid(c);
    if (i === undefined) return null;
    const caller = callerOf(d, c, 'image');
    const label = postLoadLabel(c);
    const { ctx, err } = ownerChange(
      d,
      c,
      'image',
      label,
      (k, t1) =>
        onType1(k, t1, (ks) => mapVaddr(ks, i, caller.mm, T1_73, { va: VA_NEW, limit: caller.limit })),
      i,
    );
    return loaded(ctx, err, nextInvalid(ctx) === undefined);
  };
  /** The load failed, or the source resumed: the new QEMU exits (closing its fds would then unmap everything). */
  const imageExit: Step = (c) => {
    if (c.sig.image !== 'failed' && c.sig.vmm !== 'resumed') return null;
    return { next: 'exited', ctx: setRet(exitProcess(c, imagePid), 'image', null) };
  };
  /** cpr-exec with no exec: there is no new QEMU. */
  const abandon: Step = (c) => (c.sig.vmm === 'resumed' ? { next: 'absent', ctx: c } : null);
  /** Later, the new QEMU unmaps the first region: IOMMU_IOAS_UNMAP or VFIO_IOMMU_UNMAP_DMA. */
  const unmap: Step = (c) => {
    const cur = c.k.procs[imagePid].mm;
    const ctx = iommufd
      ? { ...c, k: update(c.k, (k) => removeArea(k, 1, 0, cur)) }
      : withType1(c, (ks) => unmapOne(ks, 0, T1_73)).ctx;
    return { next: 'unmapped', ctx: setRet({ ...ctx, unmapped: c.unmapped + 1 }, 'image', null) };
  };

  const unmapLabel = iommufd
    ? 'ioctl(iommufd, IOMMU_IOAS_UNMAP, area0)'
    : 'ioctl(container, VFIO_IOMMU_UNMAP_DMA, dma0)';
  const preSaveLabel = iommufd
    ? `pre_save: ${CP}`
    : 'pre_save: ioctl(container, VFIO_IOMMU_UNMAP_DMA, VADDR|ALL)';
  const postLoadRows: Row[] = iommufd
    ? [
        row('image', 'mapped', 'ImageProbeChangeProcess', probe, ['probed'], () => `connect: ${CP}`),
        row(
          'image',
          'probed',
          'ImagePostLoadChangeProcess',
          postLoad,
          ['done', 'failed'],
          () => `post_load: ${CP}`,
        ),
        ...(transfer ? [row('image', 'probed', 'ImageExit', imageExit, ['exited'], () => 'exit(1)')] : []),
      ]
    : [
        row('image', 'mapped', 'ImageMapVaddr', postLoadVaddr, ['mapped', 'done', 'failed'], (_ev, c) =>
          postLoadLabel(c),
        ),
        ...(transfer ? [row('image', 'mapped', 'ImageExit', imageExit, ['exited'], () => 'exit(1)')] : []),
      ];
  const rows: Row[] = [
    row(
      'vmm',
      'start',
      iommufd ? 'VmmPreSaveChangeProcess' : 'VmmInvalidateVaddr',
      preSave,
      ['saved', 'resumed'],
      () => preSaveLabel,
    ),
    ...(transfer
      ? [
          row('vmm', 'saved', 'VmmExit', vmmExit, ['exited'], () => 'exit(0)'),
          row('vmm', 'saved', 'VmmResume', vmmResume, ['resumed'], () => 'qmp: cont'),
        ]
      : [
          row('vmm', 'saved', 'VmmExec', exec, ['execed'], () => 'execve(qemu)'),
          row(
            'vmm',
            'saved',
            'VmmExecFails',
            execFails,
            iommufd ? ['resumed'] : ['rollback'],
            () => 'execve(qemu)',
          ),
          ...(iommufd
            ? []
            : [
                row('vmm', 'rollback', 'VmmRollbackVaddr', rollback, ['rollback', 'resumed'], (_ev, c) =>
                  rollbackLabel(c),
                ),
              ]),
          row('image', 'unborn', 'ImageAbandon', abandon, ['absent'], () => '(no new QEMU: the exec failed)'),
        ]),
    row('image', 'unborn', 'ImageMmap', imageMmap, ['mapped'], mmapLabel, [{ va: VA_NEW }]),
    ...postLoadRows,
    row('image', 'failed', 'ImageExit', imageExit, ['exited'], () => 'exit(1)'),
    row('image', 'done', 'ImageUnmap', unmap, ['unmapped'], () => unmapLabel),
  ];
  return {
    rows,
    initial: { vmm: 'start', holder: 'absent', image: 'unborn' },
    finals: {
      vmm: transfer ? ['exited', 'resumed'] : ['execed', 'resumed'],
      holder: ['absent'],
      image: ['exited', 'unmapped', 'absent'],
    },
    waits: {
      'vmm.start': 'waiting for the new QEMU to connect the migration channel',
      'vmm.saved': transfer
        ? 'stopped after sending its state, waiting for the new QEMU to run the guest or fail'
        : 'never blocked',
      'image.unborn': transfer ? 'never blocked' : 'not started: the old QEMU has not exec()d',
      'image.mapped': 'waiting for the old QEMU to save its state',
      'image.probed': 'waiting for the old QEMU to save its state (post_load comes after)',
    },
  };
}
