/**
 * The live-update (exec) handoff of DMA mappings (spec/exec-handoff.md): a VMM
 * with pinned, mapped guest memory exec()s itself and its new image must end
 * up owning every mapping, with a page provider throughout. Designs (one
 * factory, one variant each): type1 VADDR (in tree), seed 000's fork +
 * CHANGE_MM, seed 001's VFIO_CHANGE_DMA_OWNER (staged vaddrs, or one array),
 * and iommufd's IOMMU_IOAS_CHANGE_PROCESS (7.3 and the draft in seed 001).
 *
 * Actors: `vmm` (the process before exec), `holder` (a forked child that holds
 * the mappings across the exec), `image` (the VMM after exec). The app
 * follows each design's protocol and checks every return value; two
 * disturbances are left free: the image's RLIMIT_MEMLOCK may be too low
 * (chosen at exec), and the image may call the owner change before it staged
 * every new vaddr or with an incomplete array (seeds/001's application error).
 */
import { setup } from 'xstate';
import { defineModel, type ModelSnapshot, recoverable } from '../explorer/model.ts';
import { handoffInvariants, oneLiveOwner } from '../invariants/exec-handoff.ts';
import { type ChangeImpl, changeProcessBody } from './kernel/iommufd-change-process.ts';
import {
  changeDmaOwnerArray,
  changeDmaOwnerStaged,
  changeMm,
  type Dma,
  invalidateAllVaddr,
  type Layout,
  mapDmaVaddr,
  stageVaddr,
} from './kernel/iommufd-handoff-type1.ts';
import { type Iommufd, insertArea, update } from './kernel/iommufd-ioas.ts';
import { mappings, type OwnerLog, ownerLog } from './kernel/iommufd-owners.ts';
import { allocPages, type Errno, type KernelFix, killProcMm, pinAll } from './kernel/iommufd-pages.ts';
import { type StepFn, type StepResult, transitions } from './kernel/iommufd-steps.ts';
import { RWSEM_FREE } from './kernel/locks.ts';

export type Actor = 'vmm' | 'holder' | 'image';

export interface Signals {
  /** Where the VMM is (the other actors wait on it). */
  readonly vmm: 'start' | 'invalidated' | 'forked' | 'execed';
  /** The holder's owner change returned 0 (the holder signals the parent). */
  readonly holderTook: boolean;
  /** The image's last owner change failed, or it finished (it signals the holder to exit). */
  readonly image: 'none' | 'failed' | 'done';
}

export interface HandoffCtx {
  readonly ret: Readonly<Record<Actor, string | null>>;
  /** iommufd state (areas and pages for the iommufd designs) and the accounting every design uses. */
  readonly k: Iommufd;
  /** The type1 container's dmas (type1 designs). */
  readonly dmas: readonly Dma[];
  readonly sig: Signals;
  readonly log: OwnerLog | null;
}

/**
 * Every event type of the model, one place: the conformance adapter's
 * exhaustive match is over this list, so a new event type without a mapping
 * to the kernel fails to compile (and a test checks the list is exactly the
 * event types the machine handles).
 */
export const HANDOFF_EVENT_TYPES = [
  'VmmInvalidateVaddr',
  'VmmFork',
  'VmmExec',
  'HolderExit',
  'ImageMmap',
  'ImageMapVaddr',
  'ImageStageVaddr',
  'HolderChangeMm',
  'ImageChangeMm',
  'HolderChangeDmaOwner',
  'ImageChangeDmaOwner',
  'HolderChangeDmaOwnerArray',
  'ImageChangeDmaOwnerArray',
  'HolderIoasChangeProcess',
  'ImageIoasChangeProcess',
] as const;

export interface HandoffEv {
  /** One of HANDOFF_EVENT_TYPES (the event generators build some names, so not narrowed here; a test checks the list). */
  readonly type: string;
  /** VmmExec: the image's RLIMIT_MEMLOCK. */
  readonly rlimit?: 'ok' | 'low';
  /** Which dma (ImageMapVaddr, ImageStageVaddr). */
  readonly dma?: number;
  /** ...DmaOwnerArray: whether the array carries every dma. */
  readonly complete?: boolean;
  /** ...IoasChangeProcess of the draft: what the uninitialised all_npinned[] slot held. */
  readonly junk?: number;
}

export type Protocol = 'vaddr' | 'changeMm' | 'staged' | 'array' | 'changeProcess';

export interface HandoffDesign {
  readonly protocol: Protocol;
  readonly holder: boolean;
  /** iommufd designs. */
  readonly impl?: ChangeImpl;
  readonly ctxMode?: 'user' | 'mm';
  /** iommufd designs: MAP_FILE of a memfd, or MAP of a user VA (the draft predates MAP_FILE). */
  readonly mapKind?: 'user' | 'file';
  /** iommufd designs: the patched kernel's fixes (conformance/kernel/patches/). */
  readonly fixes?: readonly KernelFix[];
}

/** Two mappings of one page each; RLIMIT_MEMLOCK 'ok' leaves room for two full charges (U3), 'low' not for one. */
const NMAPS = 2;
export const RLIMIT = { ok: 2 * NMAPS, low: NMAPS - 1 } as const;

/** Where an actor's vaddrs point: the image mapped guest memory anew after exec; fork kept the layout. */
const layoutOf = (a: Actor): Layout => (a === 'image' ? 'L1' : 'L0');
/** The image is the VMM's pid after exec. */
const pidOf = (a: Actor): string => (a === 'holder' ? 'holder' : 'vmm');

// ---------------------------------------------------------------- initial state

export function initialContext(d: HandoffDesign): HandoffCtx {
  const k: Iommufd = {
    procs: { vmm: { mm: 'mm0', uid: 'u', rlimit: RLIMIT.ok, cap: false } },
    mms: { mm0: { alive: true, lockedVm: 0, pinnedVm: 0 } },
    users: { u: 0 },
    pages: [],
    warn: [],
    ctxMode: d.ctxMode ?? 'user',
    domain: true,
    ioas: [{ id: 1, live: true, users: 1, iova: RWSEM_FREE }],
    areas: [],
    creation: RWSEM_FREE,
    access: null,
    ...(d.fixes && d.fixes.length > 0 && { fixes: d.fixes }),
  };
  if (d.protocol === 'changeProcess') {
    // IOMMU_IOAS_MAP(_FILE) into an IOAS with a domain: pinned and charged at map time.
    const mapped = update(k, (k) => {
      for (let slot = 0; slot < NMAPS; slot++) {
        const id = allocPages(k, d.mapKind ?? 'file', 'vmm', k.ctxMode, 1);
        insertArea(k, { ioas: 1, slot, pages: id, busy: false, filled: true, accesses: 0, prevent: false });
        pinAll(k, k.pages[id]!, 'mm0');
      }
    });
    return base(mapped, []);
  }
  // VFIO_IOMMU_MAP_DMA with a domain: pinned from current->mm and charged to its locked_vm.
  const dmas: Dma[] = Array.from({ length: NMAPS }, () => ({
    mm: 'mm0',
    task: 'vmm',
    vaddr: 'L0',
    staged: null,
    npages: 1,
  }));
  return base({ ...k, mms: { mm0: { alive: true, lockedVm: NMAPS, pinnedVm: 0 } } }, dmas);
}

const base = (k: Iommufd, dmas: Dma[]): HandoffCtx => ({
  ret: { vmm: null, holder: null, image: null },
  k,
  dmas,
  sig: { vmm: 'start', holderTook: false, image: 'none' },
  log: null,
});

// ---------------------------------------------------------------- helpers

const setRet = (c: HandoffCtx, a: Actor, r: Errno | null): HandoffCtx => ({
  ...c,
  ret: { ...c.ret, [a]: r ?? '0' },
});
const setSig = (c: HandoffCtx, s: Partial<Signals>): HandoffCtx => ({ ...c, sig: { ...c.sig, ...s } });
const holderAlive = (c: HandoffCtx): boolean =>
  c.k.procs.holder !== undefined && c.k.mms[c.k.procs.holder.mm].alive;

/**
 * Run an owner-change call on a private copy of the kernel state and record
 * it in the history variable the atomicity invariants read.
 */
function ownerChange(
  c: HandoffCtx,
  a: Actor,
  call: string,
  targets: readonly number[],
  body: (k: Iommufd, dmas: Dma[]) => Errno | null,
): { ctx: HandoffCtx; err: Errno | null } {
  const dmas = structuredClone(c.dmas) as Dma[];
  let err: Errno | null = null;
  const k = update(c.k, (k) => {
    err = body(k, dmas);
  });
  const after: HandoffCtx = { ...c, k, dmas };
  const log = ownerLog(c, after, { by: a, call, ret: err ?? '0', callerMm: c.k.procs[pidOf(a)].mm, targets });
  return { ctx: setRet({ ...after, log }, a, err), err };
}

const uapiName = (d: HandoffDesign): string => (d.protocol === 'vaddr' ? '' : UAPI_NAME[d.protocol]);

const allTargets = (c: HandoffCtx): number[] => mappings(c).map((_, i) => i);

/** The design's all-mapping owner change, as called by `a`. */
function changeBody(d: HandoffDesign, a: Actor, ev: HandoffEv) {
  const pid = pidOf(a);
  return (k: Iommufd, dmas: Dma[]): Errno | null => {
    const layout = layoutOf(a);
    switch (d.protocol) {
      case 'changeMm':
        return changeMm(k, dmas, pid);
      case 'staged':
        return changeDmaOwnerStaged(k, dmas, pid, layout);
      case 'array':
        return changeDmaOwnerArray(k, dmas, pid, layout, ev.complete ?? true);
      case 'changeProcess':
        return changeProcessBody(k, [1], pid, d.impl ?? '7.3', ev.junk ?? 0);
      default:
        throw new Error(`design ${d.protocol} has no all-mapping owner change`);
    }
  };
}

export const CHANGE_CALL: Record<Exclude<Protocol, 'vaddr'>, string> = {
  changeMm: 'ChangeMm',
  staged: 'ChangeDmaOwner',
  array: 'ChangeDmaOwnerArray',
  changeProcess: 'IoasChangeProcess',
};

/** The ioctl each owner-change event stands for (the first two never landed). */
const UAPI_NAME: Record<Exclude<Protocol, 'vaddr'>, string> = {
  changeMm: 'CHANGE_MM (seed 000)',
  staged: 'VFIO_CHANGE_DMA_OWNER (seed 001, staged)',
  array: 'VFIO_CHANGE_DMA_OWNER (seed 001, array)',
  changeProcess: 'IOMMU_IOAS_CHANGE_PROCESS',
};

// ---------------------------------------------------------------- vmm

/** VFIO_IOMMU_UNMAP_DMA(VADDR | ALL): the old vaddrs are invalid, pages stay pinned and mapped. */
const vmmInvalidate: StepFn<HandoffCtx, HandoffEv> = (c) => {
  const dmas = structuredClone(c.dmas) as Dma[];
  const err = invalidateAllVaddr(dmas);
  const next = setRet({ ...c, dmas }, 'vmm', err);
  return err
    ? { next: 'start', ctx: next }
    : { next: 'invalidated', ctx: setSig(next, { vmm: 'invalidated' }) };
};

/** fork(): the holder shares the container/iommufd and the guest memory at the same VA (MAP_SHARED). */
const vmmFork: StepFn<HandoffCtx, HandoffEv> = (c) => {
  const k = update(c.k, (k) => {
    k.procs = { ...k.procs, holder: { ...k.procs.vmm, mm: 'mmH' } };
    k.mms = { ...k.mms, mmH: { alive: true, lockedVm: 0, pinnedVm: 0 } };
  });
  return { next: 'forked', ctx: setSig(setRet({ ...c, k }, 'vmm', null), { vmm: 'forked' }) };
};

/** exec(): the old mm dies; the image starts with the rlimit the event chooses. The fds survive. */
const vmmExec =
  (d: HandoffDesign): StepFn<HandoffCtx, HandoffEv> =>
  (c, ev) => {
    const ready =
      d.protocol === 'vaddr'
        ? c.sig.vmm === 'invalidated'
        : d.holder
          ? c.sig.vmm === 'forked' && c.sig.holderTook && holderAlive(c)
          : c.sig.vmm === 'start';
    if (!ready) return null;
    const k = update(c.k, (k) => {
      killProcMm(k, 'vmm', 'mm1');
      k.procs = { ...k.procs, vmm: { ...k.procs.vmm, rlimit: RLIMIT[ev.rlimit ?? 'ok'] } };
    });
    return { next: 'execed', ctx: setSig(setRet({ ...c, k }, 'vmm', null), { vmm: 'execed' }) };
  };

// ---------------------------------------------------------------- holder

/**
 * The holder's owner change: after fork, until it succeeds (then it signals
 * the parent, which may exec); after exec again only to take the mappings
 * back when the image's change failed.
 */
const holderChange =
  (d: HandoffDesign): StepFn<HandoffCtx, HandoffEv> =>
  (c, ev) => {
    const enabled =
      holderAlive(c) &&
      ((c.sig.vmm === 'forked' && !c.sig.holderTook) || (c.sig.vmm === 'execed' && c.sig.image === 'failed'));
    if (!enabled) return null;
    const { ctx, err } = ownerChange(c, 'holder', uapiName(d), allTargets(c), changeBody(d, 'holder', ev));
    return { next: 'running', ctx: err || c.sig.vmm !== 'forked' ? ctx : setSig(ctx, { holderTook: true }) };
  };

/** exit(0) once the image signalled that it owns everything: the holder's mm dies. */
const holderExit: StepFn<HandoffCtx, HandoffEv> = (c) => {
  if (c.sig.image !== 'done') return null;
  return {
    next: 'exited',
    ctx: setRet({ ...c, k: update(c.k, (k) => killProcMm(k, 'holder', null)) }, 'holder', null),
  };
};

// ---------------------------------------------------------------- image

/** mmap() of the guest memory (the memfd) in the new image: its vaddrs exist from now on. */
const imageMmap: StepFn<HandoffCtx, HandoffEv> = (c) =>
  c.sig.vmm === 'execed' ? { next: 'mapped', ctx: setRet(c, 'image', null) } : null;

const imageOutcome = (ctx: HandoffCtx, err: Errno | null, finished: boolean): StepResult<HandoffCtx> => {
  if (err) return { next: 'mapped', ctx: setSig(ctx, { image: 'failed' }) };
  return finished ? { next: 'done', ctx: setSig(ctx, { image: 'done' }) } : { next: 'mapped', ctx };
};

/** The image's all-mapping owner change; done on success. */
const imageChange =
  (d: HandoffDesign): StepFn<HandoffCtx, HandoffEv> =>
  (c, ev) => {
    const { ctx, err } = ownerChange(c, 'image', uapiName(d), allTargets(c), changeBody(d, 'image', ev));
    return imageOutcome(ctx, err, true);
  };

/** VFIO_IOMMU_MAP_DMA(VADDR) for one dma: vfio_change_dma_owner, then the vaddr is valid. */
const imageMapVaddr: StepFn<HandoffCtx, HandoffEv> = (c, ev) => {
  const i = ev.dma!;
  const { ctx, err } = ownerChange(c, 'image', 'VFIO_IOMMU_MAP_DMA(VADDR)', [i], (k, dmas) =>
    mapDmaVaddr(k, dmas, i, 'vmm', 'L1'),
  );
  return imageOutcome(
    ctx,
    err,
    ctx.dmas.every((x) => x.vaddr !== null),
  );
};

/** Seed 001, staged: MAP_DMA(VADDR) on a valid dma registers the new vaddr for the next CHANGE_DMA_OWNER. */
const imageStage: StepFn<HandoffCtx, HandoffEv> = (c, ev) => {
  const dmas = structuredClone(c.dmas) as Dma[];
  const err = stageVaddr(dmas, ev.dma!, 'L1');
  return { next: 'mapped', ctx: setRet({ ...c, dmas }, 'image', err) };
};

// ---------------------------------------------------------------- machine

export function createHandoffMachine(d: HandoffDesign) {
  const call = d.protocol === 'vaddr' ? '' : CHANGE_CALL[d.protocol];
  const vmm = {
    initial: 'start',
    states: {
      start: {
        on: {
          ...(d.protocol === 'vaddr' && {
            VmmInvalidateVaddr: transitions(vmmInvalidate, ['start', 'invalidated']),
          }),
          ...(d.holder && { VmmFork: transitions(vmmFork, ['forked']) }),
          ...(!d.holder && d.protocol !== 'vaddr' && { VmmExec: transitions(vmmExec(d), ['execed']) }),
        },
      },
      invalidated: { on: { VmmExec: transitions(vmmExec(d), ['execed']) } },
      forked: { on: { VmmExec: transitions(vmmExec(d), ['execed']) } },
      execed: { type: 'final' },
    },
  };
  const holder = d.holder
    ? {
        initial: 'running',
        states: {
          running: {
            on: {
              [`Holder${call}`]: transitions(holderChange(d), ['running']),
              HolderExit: transitions(holderExit, ['exited']),
            },
          },
          exited: { type: 'final' },
        },
      }
    : { initial: 'absent', states: { absent: { type: 'final' } } };
  const imageCalls =
    d.protocol === 'vaddr'
      ? { ImageMapVaddr: transitions(imageMapVaddr, ['mapped', 'done']) }
      : {
          ...(d.protocol === 'staged' && { ImageStageVaddr: transitions(imageStage, ['mapped']) }),
          [`Image${call}`]: transitions(imageChange(d), ['mapped', 'done']),
        };
  const image = {
    initial: 'unborn',
    states: {
      unborn: { on: { ImageMmap: transitions(imageMmap, ['mapped']) } },
      mapped: { on: imageCalls },
      done: { type: 'final' },
    },
  };
  return setup({ types: { context: {} as HandoffCtx, events: {} as HandoffEv } }).createMachine({
    id: 'exec-handoff',
    type: 'parallel',
    context: initialContext(d),
    states: { vmm, holder, image },
  } as any);
}

export function handoffEvents(d: HandoffDesign): (s: ModelSnapshot<HandoffCtx>) => HandoffEv[] {
  const call = d.protocol === 'vaddr' ? '' : CHANGE_CALL[d.protocol];
  const params: Partial<HandoffEv>[] =
    d.protocol === 'array'
      ? [{ complete: true }, { complete: false }]
      : d.protocol === 'changeProcess' && d.impl === 'draft'
        ? [{ junk: 0 }, { junk: 1 }]
        : [{}];
  const dmaEvents = (type: string) => Array.from({ length: NMAPS }, (_, dma) => ({ type, dma }));
  const all: HandoffEv[] = [
    ...(d.protocol === 'vaddr' ? [{ type: 'VmmInvalidateVaddr' }] : []),
    ...(d.holder ? [{ type: 'VmmFork' }] : []),
    { type: 'VmmExec', rlimit: 'ok' },
    { type: 'VmmExec', rlimit: 'low' },
    ...(d.holder ? [...params.map((p) => ({ type: `Holder${call}`, ...p })), { type: 'HolderExit' }] : []),
    { type: 'ImageMmap' },
    ...(d.protocol === 'vaddr' ? dmaEvents('ImageMapVaddr') : []),
    ...(d.protocol === 'staged' ? dmaEvents('ImageStageVaddr') : []),
    ...(d.protocol !== 'vaddr' ? params.map((p) => ({ type: `Image${call}`, ...p })) : []),
  ];
  return () => all;
}

export const HANDOFF_CALLS = [
  'VmmInvalidateVaddr',
  'VmmFork',
  'VmmExec',
  'HolderExit',
  'ImageMmap',
  'ImageMapVaddr',
  'ImageStageVaddr',
  ...Object.values(CHANGE_CALL).flatMap((c) => [`Holder${c}`, `Image${c}`]),
];

export const DESIGNS = {
  vaddr: { protocol: 'vaddr', holder: false },
  'fork-change-mm': { protocol: 'changeMm', holder: true },
  'change-dma-owner-staged': { protocol: 'staged', holder: true },
  'change-dma-owner-array': { protocol: 'array', holder: true },
  'iommufd-change-process': { protocol: 'changeProcess', holder: true, impl: '7.3', mapKind: 'file' },
  'iommufd-change-process-noholder': {
    protocol: 'changeProcess',
    holder: false,
    impl: '7.3',
    mapKind: 'file',
  },
  'iommufd-change-process-noholder-mm': {
    protocol: 'changeProcess',
    holder: false,
    impl: '7.3',
    mapKind: 'file',
    ctxMode: 'mm',
  },
  'iommufd-change-process-noholder-mm-fixed': {
    protocol: 'changeProcess',
    holder: false,
    impl: '7.3',
    mapKind: 'file',
    ctxMode: 'mm',
    fixes: ['F1', 'F2'],
  },
  'iommufd-draft': { protocol: 'changeProcess', holder: true, impl: 'draft', mapKind: 'user' },
  'iommufd-draft-mm': {
    protocol: 'changeProcess',
    holder: true,
    impl: 'draft',
    mapKind: 'user',
    ctxMode: 'mm',
  },
} satisfies Record<string, HandoffDesign>;

export type DesignName = keyof typeof DESIGNS;

const variant = (name: DesignName, description: string, violated: string[], states: number) => {
  const d: HandoffDesign = DESIGNS[name];
  return {
    description,
    machine: createHandoffMachine(d),
    events: handoffEvents(d),
    expect: { violated, states },
  };
};

export default defineModel<HandoffCtx, HandoffEv>({
  id: 'exec-handoff',
  description:
    'Live-update handoff of DMA mappings across exec: type1 VADDR, CHANGE_MM, CHANGE_DMA_OWNER, CHANGE_PROCESS',
  machine: createHandoffMachine(DESIGNS.vaddr),
  events: handoffEvents(DESIGNS.vaddr),
  invariants: handoffInvariants,
  properties: { recoverable: recoverable(oneLiveOwner) },
  calls: HANDOFF_CALLS,
  variants: {
    vaddr: variant(
      'vaddr',
      'type1 today: UNMAP_DMA(VADDR|ALL), exec, MAP_DMA(VADDR) per dma (vfio_change_dma_owner)',
      ['alwaysPageProvider', 'atomicOwnerChange', 'recoverable'],
      18,
    ),
    'fork-change-mm': variant(
      'fork-change-mm',
      'seed 000: fork a holder, CHANGE_MM to it, exec, CHANGE_MM back, holder exits',
      [],
      11,
    ),
    'change-dma-owner-staged': variant(
      'change-dma-owner-staged',
      'seed 001 as proposed: new vaddrs staged one by one with MAP_DMA(VADDR), then VFIO_CHANGE_DMA_OWNER; no cancel',
      ['recoverable'],
      90,
    ),
    'change-dma-owner-array': variant(
      'change-dma-owner-array',
      "seed 001's alternative: one VFIO_CHANGE_DMA_OWNER carrying every (iova, new vaddr), all or nothing",
      [],
      23,
    ),
    'iommufd-change-process': variant(
      'iommufd-change-process',
      'kernel 7.3: MAP_FILE areas, USER accounting, a holder child, IOMMU_IOAS_CHANGE_PROCESS both ways',
      [],
      11,
    ),
    'iommufd-change-process-noholder': variant(
      'iommufd-change-process-noholder',
      'kernel 7.3, USER accounting, no holder: exec first, then CHANGE_PROCESS from the image',
      ['recoverable'],
      7,
    ),
    'iommufd-change-process-noholder-mm': variant(
      'iommufd-change-process-noholder-mm',
      'kernel 7.3, MM accounting, no holder (U1): the old owner is dead when the image calls CHANGE_PROCESS',
      ['failedChangeIsNoop', 'lastNpinnedSynced', 'noChangeProcessUnchargeWarn', 'recoverable'],
      8,
    ),
    // With the F1 patch only what the USER no-holder design violates is left: an image
    // whose RLIMIT_MEMLOCK is too low cannot take the pages, and nobody else can.
    'iommufd-change-process-noholder-mm-fixed': variant(
      'iommufd-change-process-noholder-mm-fixed',
      'iommufd-change-process-noholder-mm on a kernel with the F1 and F2 patches: CHANGE_PROCESS after exec succeeds',
      ['recoverable'],
      7,
    ),
    'iommufd-draft': variant(
      'iommufd-draft',
      "seed 001's draft CHANGE_PROCESS, user-VA maps, USER accounting (the /dev/iommu default), a holder child",
      [
        'alwaysPageProvider',
        'pinnableHasProvider',
        'changeReachesCaller',
        'accountingConserved',
        'recoverable',
      ],
      37,
    ),
    'iommufd-draft-mm': variant(
      'iommufd-draft-mm',
      "seed 001's draft CHANGE_PROCESS with MM accounting (the /dev/vfio/vfio compat default), a holder child",
      ['accountingConserved'],
      30,
    ),
  },
});
