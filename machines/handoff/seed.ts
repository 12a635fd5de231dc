/**
 * The seed designs' protocols (spec/exec-handoff.md "Designs"): type1 VADDR,
 * seed 000's fork + CHANGE_MM, seed 001's VFIO_CHANGE_DMA_OWNER (staged and
 * array, in V1's code or the earlier readings), iommufd CHANGE_PROCESS (7.3
 * and the draft). The application follows the design's protocol and checks
 * every return value; the disturbances the threads name are left free: the
 * image's RLIMIT_MEMLOCK (chosen at exec), the application errors (a vaddr
 * missing or wrong, the guest memory mapped elsewhere), and, where the
 * design says so, setrlimit() after exec and the holder being killed.
 */
import { changeProcessBody } from '../kernel/iommufd-change-process.ts';
import { update } from '../kernel/iommufd-ioas.ts';
import { mappings } from '../kernel/iommufd-owners.ts';
import { killProcMm, mmRef } from '../kernel/iommufd-pages.ts';
import type { StepFn, StepResult } from '../kernel/iommufd-steps.ts';
import {
  changeDmaOwner,
  changeDmaOwnerArray,
  changeMm,
  closeDmaOwner,
  mapVaddr,
  stageVaddr,
  unmapVaddr,
  VA0,
} from '../kernel/type1.ts';
import {
  type Actor,
  type Body,
  callerOf,
  GUEST,
  type HandoffCtx,
  type HandoffDesign,
  type HandoffEv,
  isRunning,
  junkOf,
  mapsOf,
  onType1,
  OTHER,
  ownerChange,
  pidOf,
  rlimits,
  setRet,
  setSig,
  sorted,
  T1_73,
  taskMm,
  VA_NEW,
  withType1,
} from './context.ts';
import type { Protocol, Row } from './protocol.ts';

type Step = StepFn<HandoffCtx, HandoffEv>;

/** The design's dma indices. */
const dmaIdx = (d: HandoffDesign) => Array.from({ length: mapsOf(d) }, (_, i) => i);
const VAS = [VA0, VA_NEW];
const dmaName = (i: number | undefined) => `dma${i ?? 0}`;

// ---------------------------------------------------------------- process steps

/** fork(): the holder shares the container/iommufd and, MAP_SHARED, the guest memory at the same VA. */
export const vmmFork: Step = (c) => {
  const k = update(c.k, (k) => {
    k.procs = { ...k.procs, holder: { ...k.procs.vmm, mm: 'mmH' } };
    k.mms = { ...k.mms, mmH: { alive: true, lockedVm: 0, pinnedVm: 0 } };
    mmRef(k, 'mmH', 'mmget');
  });
  const ctx = { ...c, k, as: { ...c.as, mmH: c.as.mm0 }, running: sorted([...c.running, 'holder']) };
  return { next: 'forked', ctx: setSig(setRet(ctx, 'vmm', null), { vmm: 'forked' }) };
};

/**
 * execve(): the old mm dies (exec_mmap → mmput), the image starts with an
 * empty address space and keeps the fds. V1: the old mm's canary vma closes
 * and close_dma_owner() unmaps everything if the VMM was iommu->task.
 */
export function execImage(c: HandoffCtx, rlimit: number | null): HandoffCtx {
  let t1 = c.t1;
  const k = update(c.k, (k) => {
    killProcMm(k, 'vmm', 'mm1');
    if (rlimit !== null) k.procs = { ...k.procs, vmm: { ...k.procs.vmm, rlimit } };
    if (t1?.task === 'vmm') {
      const r = closeDmaOwner({ t1, mms: k.mms }, 'vmm', 'mm1');
      t1 = r.t1;
      k.mms = r.mms;
    }
  });
  return { ...c, k, t1, as: { ...c.as, mm1: {} } };
}

/** A process exits (exit(), or killed): its mm dies; V1's close_dma_owner runs in it. */
export function exitProcess(c: HandoffCtx, pid: string): HandoffCtx {
  let t1 = c.t1;
  const k = update(c.k, (k) => {
    killProcMm(k, pid, null);
    if (t1?.task === pid) {
      const r = closeDmaOwner({ t1, mms: k.mms }, pid, null);
      t1 = r.t1;
      k.mms = r.mms;
    }
  });
  return { ...c, k, t1, running: c.running.filter((p) => p !== pid) };
}

/**
 * mmap() of the guest memory in the image. At the old VA, or elsewhere; then
 * the old VA holds other memory of the image (the worst case of seed 000's
 * "the new process should re-establish the same mappings at the same VA").
 */
export function mapGuest(c: HandoffCtx, mm: string, va: string): HandoffCtx {
  const layout = va === VA0 ? { [VA0]: GUEST } : { [VA0]: OTHER, [va]: GUEST };
  return { ...c, as: { ...c.as, [mm]: layout } };
}

const imageMm = (d: HandoffDesign, c: HandoffCtx) => c.k.procs[pidOf(d, 'image')].mm;

// ---------------------------------------------------------------- owner-change bodies

/** The design's all-mapping owner change, as called by `a` with event `ev`. */
export function changeBody(d: HandoffDesign, c: HandoffCtx, a: Actor, ev: HandoffEv): Body {
  const caller = callerOf(d, c, a);
  const reading = d.reading ?? 'v1';
  return (k, t1) => {
    switch (d.protocol) {
      case 'changeMm':
        return onType1(k, t1, (ks) => changeMm(ks, caller));
      case 'staged':
        return onType1(k, t1, (ks) => changeDmaOwner(ks, caller, taskMm(c), c.as, reading));
      case 'array': {
        // The caller passes the VA where it believes each dma's memory is: its own guest memory.
        const va = ev.va ?? VA0;
        const n = mapsOf(d);
        const entries = dmaIdx(d).map((i) => (ev.complete === false && i === n - 1 ? null : va));
        return onType1(k, t1, (ks) => changeDmaOwnerArray(ks, caller, taskMm(c), c.as, entries, reading));
      }
      case 'changeProcess': {
        const { junkSlot, ...flaws } = d.flaws ?? {};
        const junk = junkSlot ? { [junkSlot]: ev.junk ?? 0 } : {};
        return { t1, err: changeProcessBody(k, [1], caller.pid, d.impl ?? '7.3', { ...flaws, junk }) };
      }
      default:
        throw new Error(`design ${d.protocol} has no all-mapping owner change`);
    }
  };
}

export const CHANGE_CALL: Record<'changeMm' | 'staged' | 'array' | 'changeProcess', string> = {
  changeMm: 'ChangeMm',
  staged: 'ChangeDmaOwner',
  array: 'ChangeDmaOwnerArray',
  changeProcess: 'IoasChangeProcess',
};

const changeLabel =
  (d: HandoffDesign) =>
  (ev: HandoffEv): string => {
    switch (d.protocol) {
      case 'changeMm':
        return 'ioctl(container, CHANGE_MM)';
      case 'staged':
        return 'ioctl(container, VFIO_CHANGE_DMA_OWNER)';
      case 'array': {
        const va = ev.va ?? VA0;
        const n = ev.complete === false ? mapsOf(d) - 1 : mapsOf(d);
        return `ioctl(container, VFIO_CHANGE_DMA_OWNER, [${dmaIdx(d)
          .slice(0, n)
          .map((i) => `${dmaName(i)}@${va}`)
          .join(', ')}])`;
      }
      default: {
        const slot = d.flaws?.junkSlot;
        return `ioctl(iommufd, IOMMU_IOAS_CHANGE_PROCESS)${slot ? ` [all_npinned[${slot}] = ${ev.junk ?? 0}]` : ''}`;
      }
    }
  };

const changeParams = (d: HandoffDesign, a: Actor): Partial<HandoffEv>[] => {
  if (d.protocol === 'array')
    return a === 'holder'
      ? [{ complete: true }, { complete: false }]
      : VAS.flatMap((va) => [
          { complete: true, va },
          { complete: false, va },
        ]);
  if (d.flaws?.junkSlot) return junkOf(mapsOf(d)).map((junk) => ({ junk }));
  return [{}];
};

// ---------------------------------------------------------------- the protocol

export const mmapLabel = (ev: HandoffEv) => `mmap(memfd, MAP_SHARED) at ${ev.va ?? VA_NEW}`;

/** Where the image may map the guest memory: anywhere where a VA matters; a MAP_FILE design never reads one. */
const mmapVas = (d: HandoffDesign): string[] =>
  d.protocol === 'changeProcess' && (d.mapKind ?? 'file') === 'file' ? [VA_NEW] : VAS;

const holderAlive = (c: HandoffCtx) => isRunning(c, 'holder');

export function seedProtocol(d: HandoffDesign): Protocol {
  const call = d.protocol === 'vaddr' ? '' : CHANGE_CALL[d.protocol as keyof typeof CHANGE_CALL];
  const imageDone = (ctx: HandoffCtx, err: string | null, finished: boolean): StepResult<HandoffCtx> => {
    if (err) return { next: 'mapped', ctx: setSig(ctx, { image: 'failed' }) };
    return finished ? { next: 'done', ctx: setSig(ctx, { image: 'done' }) } : { next: 'mapped', ctx };
  };

  const vmmInvalidate: Step = (c) => {
    const r = withType1(c, (ks) => unmapVaddr(ks, dmaIdx(d), T1_73));
    const next = setRet(r.ctx, 'vmm', r.err);
    return r.err
      ? { next: 'start', ctx: next }
      : { next: 'invalidated', ctx: setSig(next, { vmm: 'invalidated' }) };
  };
  const vmmExec: Step = (c, ev) => {
    const ready =
      d.protocol === 'vaddr'
        ? c.sig.vmm === 'invalidated'
        : d.holder
          ? c.sig.vmm === 'forked' && c.sig.holderTook && holderAlive(c)
          : c.sig.vmm === 'start';
    if (!ready) return null;
    const ctx = execImage(c, rlimits(mapsOf(d))[ev.rlimit ?? 'ok']);
    return { next: 'execed', ctx: setSig(setRet(ctx, 'vmm', null), { vmm: 'execed' }) };
  };
  /**
   * The holder's change: after fork until it succeeds; after exec again only
   * to take the mappings back, when the image's failed call left them with
   * someone else or left a vaddr change pending (a failure that changed
   * nothing needs no revert).
   */
  const revertPhase = (c: HandoffCtx) =>
    c.sig.vmm === 'execed' &&
    c.sig.image === 'failed' &&
    mappings(c).some((m) => m.owner !== c.k.procs.holder.mm || m.pending);
  const holderChange: Step = (c, ev) => {
    if (!holderAlive(c) || !((c.sig.vmm === 'forked' && !c.sig.holderTook) || revertPhase(c))) return null;
    const { ctx, err } = ownerChange(d, c, 'holder', changeLabel(d)(ev), changeBody(d, c, 'holder', ev));
    return { next: 'running', ctx: err || c.sig.vmm !== 'forked' ? ctx : setSig(ctx, { holderTook: true }) };
  };
  /** V1: the holder re-registers its own vaddrs (MAP_DMA(VADDR) overwrites new_vaddr) before taking back. */
  const holderStage: Step = (c, ev) => {
    if (!holderAlive(c) || !revertPhase(c)) return null;
    const r = stageVaddr(c.t1!, ev.dma!, VA0, d.reading ?? 'v1');
    return { next: 'running', ctx: setRet({ ...c, t1: r.t1 }, 'holder', r.ret === '0' ? null : r.ret) };
  };
  const holderExit: Step = (c) =>
    c.sig.image === 'done' ? { next: 'exited', ctx: setRet(exitProcess(c, 'holder'), 'holder', null) } : null;
  // Only in the window the holder exists for: after the exec, before the image took over (before the
  // exec the VMM itself can still take the mappings back).
  const holderKilled: Step = (c) =>
    c.sig.vmm === 'execed' && c.sig.image !== 'done'
      ? { next: 'killed', ctx: setRet(exitProcess(c, 'holder'), 'holder', null) }
      : null;

  const imageMmap: Step = (c, ev) =>
    c.sig.vmm === 'execed'
      ? { next: 'mapped', ctx: setRet(mapGuest(c, imageMm(d, c), ev.va!), 'image', null) }
      : null;
  const imageSetrlimit: Step = (c) => {
    const p = c.k.procs.vmm;
    const ok = rlimits(mapsOf(d)).ok;
    if (p.rlimit >= ok) return null;
    const k = { ...c.k, procs: { ...c.k.procs, vmm: { ...p, rlimit: ok } } };
    return { next: 'mapped', ctx: setRet({ ...c, k }, 'image', null) };
  };
  const imageChange: Step = (c, ev) => {
    const { ctx, err } = ownerChange(d, c, 'image', changeLabel(d)(ev), changeBody(d, c, 'image', ev));
    return imageDone(ctx, err, true);
  };
  /** 7.3 VFIO_IOMMU_MAP_DMA(VADDR) for one dma: vfio_change_dma_owner, then the vaddr is valid. */
  const imageMapVaddr: Step = (c, ev) => {
    const caller = callerOf(d, c, 'image');
    const label = `ioctl(container, VFIO_IOMMU_MAP_DMA, VADDR, ${dmaName(ev.dma)})`;
    const { ctx, err } = ownerChange(
      d,
      c,
      'image',
      label,
      (k, t1) =>
        onType1(k, t1, (ks) => mapVaddr(ks, ev.dma!, caller.mm, T1_73, { va: ev.va, limit: caller.limit })),
      ev.dma,
    );
    return imageDone(
      ctx,
      err,
      ctx.t1!.dmas.every((x) => !x.mapped || x.vaddrMm !== null),
    );
  };
  /** V1 MAP_DMA(VADDR): registers the new vaddr for the next VFIO_CHANGE_DMA_OWNER. */
  const imageStage: Step = (c, ev) => {
    const r = stageVaddr(c.t1!, ev.dma!, ev.va!, d.reading ?? 'v1');
    return { next: 'mapped', ctx: setRet({ ...c, t1: r.t1 }, 'image', r.ret === '0' ? null : r.ret) };
  };

  const vaddrLabel = (ev: HandoffEv) =>
    `ioctl(container, VFIO_IOMMU_MAP_DMA, VADDR, ${dmaName(ev.dma)}, vaddr=${ev.va ?? VA0})`;
  const dmaVa = dmaIdx(d).flatMap((dma) => VAS.map((va) => ({ dma, va })));
  const execParams = [{ rlimit: 'ok' as const }, { rlimit: 'low' as const }];
  const execLabel = (ev: HandoffEv) => `execve(qemu) [RLIMIT_MEMLOCK ${ev.rlimit ?? 'ok'}]`;

  const rows: Row[] = [
    ...(d.protocol === 'vaddr'
      ? [
          row(
            'vmm',
            'start',
            'VmmInvalidateVaddr',
            vmmInvalidate,
            ['start', 'invalidated'],
            () => 'ioctl(container, VFIO_IOMMU_UNMAP_DMA, VADDR|ALL)',
          ),
          row('vmm', 'invalidated', 'VmmExec', vmmExec, ['execed'], execLabel, execParams),
        ]
      : d.holder
        ? [
            row('vmm', 'start', 'VmmFork', vmmFork, ['forked'], () => 'fork()'),
            row('vmm', 'forked', 'VmmExec', vmmExec, ['execed'], execLabel, execParams),
          ]
        : [row('vmm', 'start', 'VmmExec', vmmExec, ['execed'], execLabel, execParams)]),
    ...(d.holder
      ? [
          row(
            'holder',
            'running',
            `Holder${call}`,
            holderChange,
            ['running'],
            changeLabel(d),
            changeParams(d, 'holder'),
          ),
          ...(d.protocol === 'staged' && (d.reading ?? 'v1') === 'v1'
            ? [
                row(
                  'holder',
                  'running',
                  'HolderStageVaddr',
                  holderStage,
                  ['running'],
                  vaddrLabel,
                  dmaIdx(d).map((dma) => ({ dma })),
                ),
              ]
            : []),
          row('holder', 'running', 'HolderExit', holderExit, ['exited'], () => 'exit(0)'),
          ...(d.holderMayDie
            ? [
                row(
                  'holder',
                  'running',
                  'HolderKilled',
                  holderKilled,
                  ['killed'],
                  () => 'kill(holder, SIGKILL)',
                ),
              ]
            : []),
        ]
      : []),
    row(
      'image',
      'unborn',
      'ImageMmap',
      imageMmap,
      ['mapped'],
      mmapLabel,
      mmapVas(d).map((va) => ({ va })),
    ),
    ...(d.setrlimit
      ? [
          row(
            'image',
            'mapped',
            'ImageSetrlimit',
            imageSetrlimit,
            ['mapped'],
            () => `setrlimit(RLIMIT_MEMLOCK, ${rlimits(mapsOf(d)).ok} pages)`,
          ),
        ]
      : []),
    ...(d.protocol === 'vaddr'
      ? [row('image', 'mapped', 'ImageMapVaddr', imageMapVaddr, ['mapped', 'done'], vaddrLabel, dmaVa)]
      : [
          ...(d.protocol === 'staged'
            ? [row('image', 'mapped', 'ImageStageVaddr', imageStage, ['mapped'], vaddrLabel, dmaVa)]
            : []),
          row(
            'image',
            'mapped',
            `Image${call}`,
            imageChange,
            ['mapped', 'done'],
            changeLabel(d),
            changeParams(d, 'image'),
          ),
        ]),
  ];
  return {
    rows,
    initial: { vmm: 'start', holder: d.holder ? 'running' : 'absent', image: 'unborn' },
    finals: { vmm: ['execed'], holder: d.holder ? ['exited', 'killed'] : ['absent'], image: ['done'] },
    waits: {
      'vmm.forked': "in the parent after fork(), waiting for the holder's signal that it owns every mapping",
      'vmm.invalidated': 'never blocked: exec is always possible',
      'holder.running': "waiting for the image's signal that it owns every mapping, to exit",
      'image.unborn': 'not started: the VMM has not exec()d',
      'image.mapped': 'after its owner change failed, with no call left that can change the outcome',
    },
  };
}

/** One row of a protocol table. */
export function row(
  actor: Actor,
  from: string,
  event: string,
  step: Step,
  targets: readonly string[],
  label: (ev: HandoffEv, before: HandoffCtx) => string,
  params?: readonly Partial<HandoffEv>[],
): Row {
  return { actor, from, event, step, targets, label, ...(params && { params }) };
}
