/**
 * The live-update (exec) handoff of DMA mappings (spec/exec-handoff.md): a VMM
 * with pinned, mapped guest memory exec()s itself and its new image must end
 * up owning every mapping, with a page provider throughout. Designs (one
 * factory, one variant each): type1 VADDR (in tree), seed 000's fork +
 * CHANGE_MM, seed 001's VFIO_CHANGE_DMA_OWNER (staged vaddrs, or one array;
 * Steve Sistare's V1 code and the earlier readings), iommufd's
 * IOMMU_IOAS_CHANGE_PROCESS (7.3 and the draft in seed 001, flaw by flaw),
 * and QEMU's own cpr-exec and cpr-transfer flows on 7.3 under each
 * accounting mode.
 *
 * Actors: `vmm` (the process before exec; the old QEMU), `holder` (a forked
 * child that holds the mappings across the exec), `image` (the VMM after
 * exec; the new QEMU). The protocols are tables (machines/handoff/): the
 * seed designs' in seed.ts, QEMU's in qemu.ts.
 */
import {
  defineModel,
  leadsTo,
  type Params,
  recoverable,
  sometimes,
  type VariantSpec,
} from '../explorer/model.ts';
import {
  guestRuns,
  handoffInvariantsOf,
  newQemuRuns,
  oneLiveOwner,
  updateStarted,
} from '../invariants/exec-handoff.ts';
import type { HandoffCtx, HandoffDesign, HandoffEv } from './handoff/context.ts';
import {
  buildMachine,
  type Protocol,
  protocolEvents,
  protocolLabel,
  protocolWaitingFor,
} from './handoff/protocol.ts';
import { NMAPS } from './handoff/context.ts';
import { qemuProtocol } from './handoff/qemu.ts';
import { CHANGE_CALL, seedProtocol } from './handoff/seed.ts';
import { forgetResults } from './kernel/views.ts';

export type { Actor, HandoffCtx, HandoffDesign, HandoffEv } from './handoff/context.ts';
export { initialContext, NMAPS, RLIMIT, rlimits } from './handoff/context.ts';

/**
 * Every event type of the model, one place: the conformance adapter's
 * exhaustive match is over this list, so a new event type without a mapping
 * to the kernel fails to compile (and a test checks the list is exactly the
 * event types the machines handle).
 */
export const HANDOFF_EVENT_TYPES = [
  'VmmInvalidateVaddr',
  'VmmFork',
  'VmmExec',
  'VmmExecFails',
  'VmmRollbackVaddr',
  'VmmPreSaveChangeProcess',
  'VmmExit',
  'VmmResume',
  'HolderExit',
  'HolderKilled',
  'HolderStageVaddr',
  'ImageMmap',
  'ImageSetrlimit',
  'ImageMapVaddr',
  'ImageStageVaddr',
  'ImageProbeChangeProcess',
  'ImagePostLoadChangeProcess',
  'ImageExit',
  'ImageAbandon',
  'ImageUnmap',
  'HolderChangeMm',
  'ImageChangeMm',
  'HolderChangeDmaOwner',
  'ImageChangeDmaOwner',
  'HolderChangeDmaOwnerArray',
  'ImageChangeDmaOwnerArray',
  'HolderIoasChangeProcess',
  'ImageIoasChangeProcess',
] as const;

/** Not calls: QEMU's `cont` of the source and the absent new QEMU after a failed exec. */
export const HANDOFF_CALLS = HANDOFF_EVENT_TYPES.filter((t) => t !== 'VmmResume' && t !== 'ImageAbandon');

export { CHANGE_CALL };

export const protocolOf = (d: HandoffDesign): Protocol =>
  d.protocol === 'qemu' ? qemuProtocol(d) : seedProtocol(d);

export function createHandoffMachine(d: HandoffDesign) {
  return buildMachine(d, protocolOf(d));
}

export function handoffEvents(d: HandoffDesign) {
  return protocolEvents(protocolOf(d));
}

const type1 = { holder: true } as const;
const iommufd = { protocol: 'changeProcess', impl: '7.3', mapKind: 'file' } as const;
const draft = { protocol: 'changeProcess', holder: true, impl: 'draft', mapKind: 'user' } as const;
const qemu = (mode: 'cpr-exec' | 'cpr-transfer', backend: 'iommufd' | 'legacy') =>
  ({ protocol: 'qemu', holder: false, qemu: { mode, backend }, memlock: 'tight' }) as const;

export const DESIGNS = {
  vaddr: { protocol: 'vaddr', holder: false },
  'vaddr-setrlimit': { protocol: 'vaddr', holder: false, setrlimit: true },
  'fork-change-mm': { protocol: 'changeMm', ...type1 },
  'change-dma-owner-staged': { protocol: 'staged', ...type1, reading: 'v1' },
  'change-dma-owner-staged-holder-killed': {
    protocol: 'staged',
    ...type1,
    reading: 'v1',
    holderMayDie: true,
  },
  'change-dma-owner-staged-norestage': { protocol: 'staged', ...type1, reading: 'norestage' },
  'change-dma-owner-staged-norestage-setrlimit': {
    protocol: 'staged',
    ...type1,
    reading: 'norestage',
    setrlimit: true,
  },
  'change-dma-owner-array': { protocol: 'array', ...type1, reading: 'v1' },
  'change-dma-owner-array-holder-killed': { protocol: 'array', ...type1, reading: 'v1', holderMayDie: true },
  'change-dma-owner-array-nocheck': { protocol: 'array', ...type1, reading: 'nocheck' },
  'iommufd-change-process': { ...iommufd, holder: true },
  'iommufd-change-process-holder-killed': { ...iommufd, holder: true, holderMayDie: true },
  'iommufd-change-process-mm-holder-killed': { ...iommufd, holder: true, holderMayDie: true, ctxMode: 'mm' },
  'iommufd-change-process-noholder': { ...iommufd, holder: false },
  'iommufd-change-process-noholder-setrlimit': { ...iommufd, holder: false, setrlimit: true },
  'iommufd-change-process-noholder-mm': { ...iommufd, holder: false, ctxMode: 'mm' },
  'iommufd-change-process-noholder-mm-fixed': {
    ...iommufd,
    holder: false,
    ctxMode: 'mm',
    fixes: ['F1', 'F2'],
  },
  'iommufd-change-process-noholder-mm-setrlimit': {
    ...iommufd,
    holder: false,
    ctxMode: 'mm',
    setrlimit: true,
  },
  'iommufd-draft': { ...draft },
  'iommufd-draft-mm': { ...draft, ctxMode: 'mm' },
  'iommufd-draft-mm-mmput': { ...draft, ctxMode: 'mm', flaws: { mmput: true } },
  'iommufd-draft-mm-ioas-test': { ...draft, ctxMode: 'mm', flaws: { literalIoasTest: true } },
  'iommufd-draft-mm-junk-none': { ...draft, ctxMode: 'mm', flaws: { junkSlot: 'none' } },
  'iommufd-draft-mm-junk-user': { ...draft, ctxMode: 'mm', flaws: { junkSlot: 'user' } },
  'iommufd-draft-mm-junk-mm': { ...draft, ctxMode: 'mm', flaws: { junkSlot: 'mm' } },
  'qemu-cpr-exec-iommufd-user': { ...qemu('cpr-exec', 'iommufd'), ctxMode: 'user' },
  'qemu-cpr-exec-iommufd-user-memlock2x': { ...qemu('cpr-exec', 'iommufd'), ctxMode: 'user', memlock: 'ok' },
  'qemu-cpr-exec-iommufd-mm': { ...qemu('cpr-exec', 'iommufd'), ctxMode: 'mm' },
  'qemu-cpr-exec-iommufd-none': { ...qemu('cpr-exec', 'iommufd'), cap: true },
  'qemu-cpr-transfer-iommufd-user': { ...qemu('cpr-transfer', 'iommufd'), ctxMode: 'user' },
  'qemu-cpr-transfer-iommufd-user-memlock2x': {
    ...qemu('cpr-transfer', 'iommufd'),
    ctxMode: 'user',
    memlock: 'ok',
  },
  'qemu-cpr-transfer-iommufd-mm': { ...qemu('cpr-transfer', 'iommufd'), ctxMode: 'mm' },
  'qemu-cpr-transfer-iommufd-none': { ...qemu('cpr-transfer', 'iommufd'), cap: true },
  'qemu-cpr-exec-legacy': { ...qemu('cpr-exec', 'legacy') },
  'qemu-cpr-exec-legacy-root': { ...qemu('cpr-exec', 'legacy'), cap: true },
  'qemu-cpr-transfer-legacy': { ...qemu('cpr-transfer', 'legacy') },
  'qemu-cpr-transfer-legacy-root': { ...qemu('cpr-transfer', 'legacy'), cap: true },
} satisfies Record<string, HandoffDesign>;

export type DesignName = keyof typeof DESIGNS;

/** QEMU variants: does the update complete at all (EF), and does the guest always keep running (leads-to, fair). */
const QEMU_PROPERTIES = {
  updateCompletes: sometimes(newQemuRuns),
  guestSurvives: leadsTo(updateStarted, guestRuns),
};

// ---------------------------------------------------------------- knowingly unreachable transitions

const INVALIDATE_OK =
  'UNMAP_DMA(VADDR|ALL) fails only on an already invalid vaddr or with an mdev attached; it runs once, before any invalidation, and there is no mdev';
const DRAFT_NEVER_FAILS =
  'the call charges nothing here (USER mode, one uid: need_charge_update is false; or, as written, it holds no IOAS), so it cannot fail';

/**
 * QEMU's failure paths that a deployment never takes, derived from whether
 * its update completes (spec/findings/qemu-cpr.md): the old QEMU's pre_save
 * cannot fail (it owns everything); post_load always or never fails.
 */
function qemuUnreachable(d: HandoffDesign, completes: boolean): Record<string, string> {
  const { mode, backend } = d.qemu!;
  const transfer = mode === 'cpr-transfer';
  const iommufd = backend === 'iommufd';
  const preSave = iommufd ? 'VmmPreSaveChangeProcess' : 'VmmInvalidateVaddr';
  const loadOk = iommufd
    ? 'post_load succeeds in this deployment: enough RLIMIT_MEMLOCK for the charge, or no charge to make'
    : 'MAP_DMA(VADDR) charges the new mm once, within its RLIMIT_MEMLOCK (or with CAP_IPC_LOCK): post_load cannot fail';
  const loadFails =
    'post_load always gets ENOMEM here: USER mode needs 2x the guest memory in RLIMIT_MEMLOCK (U3)';
  const postLoad = iommufd ? 'image.probed#ImagePostLoadChangeProcess' : 'image.mapped#ImageMapVaddr';
  const u: Record<string, string> = {
    [`vmm.start#${preSave}[1]`]: iommufd
      ? 'the old QEMU owns every mapping, so its pre_save CHANGE_PROCESS is a no-op and returns 0'
      : INVALIDATE_OK,
  };
  if (completes) {
    u[`${postLoad}[${iommufd ? 1 : 2}]`] = loadOk;
    u['image.failed#ImageExit[0]'] = loadOk;
    if (transfer) u['vmm.saved#VmmResume[0]'] = 'the new QEMU never fails, so the source is never resumed';
  } else {
    u[`${postLoad}[0]`] = loadFails;
    u['image.done#ImageUnmap[0]'] = loadFails;
    if (transfer)
      u['vmm.saved#VmmExit[0]'] = 'the new QEMU never runs the guest, so the source is never quit';
  }
  // The new QEMU exits before post_load only when the source resumed after a failed pre_save, which cannot fail.
  if (transfer)
    u[`image.${iommufd ? 'probed' : 'mapped'}#ImageExit[0]`] =
      'the source never resumes before post_load: its pre_save cannot fail';
  return u;
}

function unreachableOf(
  name: DesignName,
  d: HandoffDesign,
  violated: readonly string[],
): Record<string, string> {
  if (d.protocol === 'qemu') return qemuUnreachable(d, !violated.includes('updateCompletes'));
  if (d.protocol === 'vaddr') return { 'vmm.start#VmmInvalidateVaddr[0]': INVALIDATE_OK };
  if (name === 'iommufd-draft' || name === 'iommufd-draft-mm-ioas-test')
    return { 'image.mapped#ImageIoasChangeProcess[0]': DRAFT_NEVER_FAILS };
  return {};
}

/**
 * A design at `maps` mappings. Its pinned state count is the default size's
 * (maps=2); its expected verdicts and unreachable list hold at every size
 * (spec/exec-handoff.md, "Sizes").
 */
const variant = (
  name: DesignName,
  description: string,
  violated: string[],
  states: number,
  maps: number,
): VariantSpec<HandoffCtx, HandoffEv> => {
  const d: HandoffDesign = { ...DESIGNS[name], maps };
  const p = protocolOf(d);
  return {
    description,
    machine: buildMachine(d, p),
    events: protocolEvents(p),
    label: protocolLabel(p),
    waitingFor: protocolWaitingFor(p),
    expect: { violated, ...(maps === NMAPS && { states }) },
    unreachable: unreachableOf(name, d, violated),
    ...(d.protocol === 'qemu' && { properties: QEMU_PROPERTIES, fairness: { weak: 'all' } }),
  };
};

/** Each design's description and what it is expected to show at the default bounds (measured; spec/exec-handoff.md). */
const VARIANTS: Record<DesignName, { description: string; violated: string[]; states: number }> = {
  vaddr: {
    description: 'type1 today: UNMAP_DMA(VADDR|ALL), exec, MAP_DMA(VADDR) per dma (vfio_change_dma_owner)',
    violated: ['alwaysPageProvider', 'atomicOwnerChange', 'recoverable', 'sameMemory'],
    states: 64,
  },
  'vaddr-setrlimit': {
    description: 'vaddr, and the image may raise its RLIMIT_MEMLOCK after exec',
    violated: ['alwaysPageProvider', 'atomicOwnerChange', 'sameMemory'],
    states: 80,
  },
  'fork-change-mm': {
    description: 'seed 000: fork a holder, CHANGE_MM to it, exec, CHANGE_MM back, holder exits',
    violated: ['sameMemory'],
    states: 15,
  },
  'change-dma-owner-staged': {
    description:
      "seed 001 in V1's code: MAP_DMA(VADDR) stages (overwrites) a new vaddr, VFIO_CHANGE_DMA_OWNER applies all",
    violated: [],
    states: 573,
  },
  'change-dma-owner-staged-holder-killed': {
    description:
      'V1 staged, and the holder may be killed while it owns the mappings (close_dma_owner, ESRCH)',
    violated: ['mappingsKept', 'recoverable'],
    states: 658,
  },
  'change-dma-owner-staged-norestage': {
    description: 'seed 001 staged as first read: a staged vaddr cannot be replaced, EINVAL before ENXIO',
    violated: ['recoverable'],
    states: 474,
  },
  'change-dma-owner-staged-norestage-setrlimit': {
    description: 'staged-norestage, and the image may raise its RLIMIT_MEMLOCK after exec',
    violated: ['recoverable'],
    states: 530,
  },
  'change-dma-owner-array': {
    description:
      "seed 001's alternative in V1's code: one VFIO_CHANGE_DMA_OWNER carrying every (iova, new vaddr)",
    violated: [],
    states: 28,
  },
  'change-dma-owner-array-holder-killed': {
    description: 'V1 array, and the holder may be killed while it owns the mappings',
    violated: ['mappingsKept', 'recoverable'],
    states: 64,
  },
  'change-dma-owner-array-nocheck': {
    description: 'the array as first read: the vaddrs are taken on trust (no same_file_mapping check)',
    violated: ['sameMemory'],
    states: 30,
  },
  'iommufd-change-process': {
    description:
      'kernel 7.3: MAP_FILE areas, USER accounting, a holder child, IOMMU_IOAS_CHANGE_PROCESS both ways',
    violated: [],
    states: 10,
  },
  'iommufd-change-process-holder-killed': {
    description: 'kernel 7.3, USER accounting, and the holder may be killed while it owns the mappings',
    violated: ['recoverable'],
    states: 16,
  },
  'iommufd-change-process-mm-holder-killed': {
    description: 'kernel 7.3, MM accounting, and the holder may be killed while it owns the mappings',
    violated: ['failedChangeIsNoop', 'lastNpinnedSynced', 'noChangeProcessUnchargeWarn', 'recoverable'],
    states: 17,
  },
  'iommufd-change-process-noholder': {
    description: 'kernel 7.3, USER accounting, no holder: exec first, then CHANGE_PROCESS from the image',
    violated: ['recoverable'],
    states: 7,
  },
  'iommufd-change-process-noholder-setrlimit': {
    description: 'noholder, and the image may raise its RLIMIT_MEMLOCK after exec',
    violated: [],
    states: 8,
  },
  'iommufd-change-process-noholder-mm': {
    description:
      'kernel 7.3, MM accounting, no holder (U1): the old owner is dead when the image calls CHANGE_PROCESS',
    violated: ['failedChangeIsNoop', 'lastNpinnedSynced', 'noChangeProcessUnchargeWarn', 'recoverable'],
    states: 8,
  },
  // With the F1 patch only what the USER no-holder design violates is left.
  'iommufd-change-process-noholder-mm-fixed': {
    description:
      'iommufd-change-process-noholder-mm on a kernel with the F1 and F2 patches: CHANGE_PROCESS after exec succeeds',
    violated: ['recoverable'],
    states: 7,
  },
  'iommufd-change-process-noholder-mm-setrlimit': {
    description: 'noholder-mm, and the image may raise its RLIMIT_MEMLOCK after exec',
    violated: ['failedChangeIsNoop', 'lastNpinnedSynced', 'noChangeProcessUnchargeWarn'],
    states: 9,
  },
  'iommufd-draft': {
    description: "seed 001's draft CHANGE_PROCESS as intended, user-VA maps, USER accounting, a holder child",
    violated: ['alwaysPageProvider', 'changeReachesCaller', 'pinnableHasProvider', 'recoverable'],
    states: 17,
  },
  'iommufd-draft-mm': {
    description:
      "seed 001's draft as intended, MM accounting (the /dev/vfio/vfio compat default), a holder child",
    violated: ['sameMemory'],
    states: 15,
  },
  'iommufd-draft-mm-mmput': {
    description: 'the draft, MM accounting, with change_mm as written: mmgrab(new), mmput(old)',
    violated: ['mmRefcountsBalanced', 'sameMemory'],
    states: 15,
  },
  'iommufd-draft-mm-ioas-test': {
    description:
      'the draft, MM accounting, with its IOAS test as written (obj->type == IOMMUFD_OBJ_IOAS → skip)',
    violated: [
      'alwaysPageProvider',
      'changeReachesCaller',
      'kernelMemorySafe',
      'pinnableHasProvider',
      'recoverable',
    ],
    states: 17,
  },
  'iommufd-draft-mm-junk-none': {
    description: 'the draft, MM accounting, all_npinned[NONE] uninitialised',
    violated: ['accountingConserved', 'sameMemory'],
    states: 77,
  },
  'iommufd-draft-mm-junk-user': {
    description: 'the draft, MM accounting, all_npinned[USER] uninitialised',
    violated: ['accountingConserved', 'sameMemory'],
    states: 49,
  },
  'iommufd-draft-mm-junk-mm': {
    description: 'the draft, MM accounting, all_npinned[MM] uninitialised',
    violated: ['accountingConserved', 'sameMemory'],
    states: 49,
  },
  'qemu-cpr-exec-iommufd-user': {
    description:
      'QEMU cpr-exec, iommufd, USER accounting (plain QEMU, not root), RLIMIT_MEMLOCK below 2x guest memory',
    violated: ['guestSurvives', 'recoverable', 'updateCompletes'],
    states: 9,
  },
  'qemu-cpr-exec-iommufd-user-memlock2x': {
    description: 'QEMU cpr-exec, iommufd, USER accounting, RLIMIT_MEMLOCK at least 2x guest memory',
    violated: [],
    states: 9,
  },
  'qemu-cpr-exec-iommufd-mm': {
    description: 'QEMU cpr-exec, iommufd, MM accounting (libvirt sets it on the /dev/iommu fd it passes)',
    violated: [
      'accountingConserved',
      'failedChangeIsNoop',
      'lastNpinnedSynced',
      'noChangeProcessUnchargeWarn',
    ],
    states: 9,
  },
  'qemu-cpr-exec-iommufd-none': {
    description: 'QEMU cpr-exec, iommufd, QEMU as root (CAP_IPC_LOCK: NONE pages)',
    violated: ['accountingConserved', 'accountingNonNegative'],
    states: 9,
  },
  'qemu-cpr-transfer-iommufd-user': {
    description: 'QEMU cpr-transfer, iommufd, USER accounting, RLIMIT_MEMLOCK below 2x guest memory',
    violated: ['updateCompletes'],
    states: 7,
  },
  'qemu-cpr-transfer-iommufd-user-memlock2x': {
    description: 'QEMU cpr-transfer, iommufd, USER accounting, RLIMIT_MEMLOCK at least 2x guest memory',
    violated: [],
    states: 8,
  },
  'qemu-cpr-transfer-iommufd-mm': {
    description: 'QEMU cpr-transfer, iommufd, MM accounting (libvirt)',
    violated: [],
    states: 8,
  },
  'qemu-cpr-transfer-iommufd-none': {
    description: 'QEMU cpr-transfer, iommufd, QEMU as root (NONE pages)',
    violated: ['accountingConserved', 'accountingNonNegative'],
    states: 8,
  },
  'qemu-cpr-exec-legacy': {
    description: 'QEMU cpr-exec, legacy type1 container, not root (mm->locked_vm under RLIMIT_MEMLOCK)',
    violated: ['alwaysPageProvider', 'atomicOwnerChange'],
    states: 11,
  },
  'qemu-cpr-exec-legacy-root': {
    description: 'QEMU cpr-exec, legacy type1 container, root (CAP_IPC_LOCK: no rlimit check)',
    violated: ['alwaysPageProvider', 'atomicOwnerChange'],
    states: 11,
  },
  'qemu-cpr-transfer-legacy': {
    description: 'QEMU cpr-transfer, legacy type1 container, not root',
    violated: ['atomicOwnerChange'],
    states: 8,
  },
  'qemu-cpr-transfer-legacy-root': {
    description: 'QEMU cpr-transfer, legacy type1 container, root',
    violated: ['atomicOwnerChange'],
    states: 8,
  },
};

export default defineModel<HandoffCtx, HandoffEv>({
  id: 'exec-handoff',
  description:
    'Live-update handoff of DMA mappings across exec: type1 VADDR, CHANGE_MM, CHANGE_DMA_OWNER, CHANGE_PROCESS, QEMU cpr',
  params: {
    maps: {
      default: NMAPS,
      min: 2,
      max: 6,
      description:
        'one-page DMA mappings (type1 dmas or IOAS areas) the VMM hands over; RLIMIT_MEMLOCK scales with them',
    },
  },
  build: (p: Params) => {
    const first = { ...DESIGNS.vaddr, maps: p.maps };
    return {
      machine: createHandoffMachine(first),
      events: handoffEvents(first),
      invariants: handoffInvariantsOf(p.maps),
      properties: { recoverable: recoverable(oneLiveOwner) },
      calls: HANDOFF_CALLS,
      view: { forget: [forgetResults] },
      variants: Object.fromEntries(
        (Object.keys(VARIANTS) as DesignName[]).map((name) => {
          const v = VARIANTS[name];
          return [name, variant(name, v.description, v.violated, v.states, p.maps)];
        }),
      ),
    };
  },
});
