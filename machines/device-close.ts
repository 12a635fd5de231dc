/**
 * DMA-unmap notification to an mdev driver, and the mdev's device close
 * (seeds 002 and 004, UAPI-FACTS §1.7, §1.9, §1.10). spec/device-close.md is
 * the prose version, with the verdict table.
 *
 * Actors (top-level regions):
 * - `vmm`: the VMM thread: MAP_DMA (which the driver hears about, as seed
 *   002's muser-style driver does), UNMAP_DMA with the notification path of
 *   type1-notify.ts (lock windows, callbacks, the BUG_ON retry loop), and
 *   close() of the mdev's device fd.
 * - `mdev`: the driver's worker: vfio_pin_pages() on ranges it knows
 *   (any mapped range with `repin`), vfio_unpin_pages() when its work is done
 *   or (late driver) when it gets to a queued invalidation.
 * - `release`: the device's last close: ops->close_device, unregister_device
 *   (iommu->lock, then device_list_lock), the end of vfio_df_close.
 * - `unmapper` (variant two-unmappers): a second thread with the container
 *   fd that also calls UNMAP_DMA.
 *
 * The container holds only the mdev's emulated group (no IOMMU domain, as
 * with the in-tree samples), so MAP_DMA pins nothing and the driver's pins
 * are what locked_vm counts. Kernel 7.3 rules throughout; what varies is the
 * notification trigger and the driver's behaviour.
 *
 * One factory (`buildMachine`) makes every variant from a `Design`.
 */
import { setup } from 'xstate';
import { defineModel, leadsTo, type StatePredicate } from '../explorer/model.ts';
import {
  accountingConserved,
  driverViewConsistent,
  noKernelBug,
  noPinWithoutPageProvider,
  unmapLeavesNoPins,
} from '../invariants/type1.ts';
import { liveMm } from './kernel/mm.ts';
import {
  type Kstate,
  mapDma,
  type NotifyTrigger,
  newType1,
  pinPage,
  type Type1Design,
  type LockOrder,
  type Type1Mutation,
} from './kernel/type1.ts';
import {
  callbackNeedsLock,
  closeDevice,
  closeNeedsLock,
  type Driver,
  type DriverKind,
  dmaUnmapCallback,
  learn,
  openDriver,
  registrationEvent,
  wantsPin,
  wantsUnpin,
  workerUnpin,
} from './kernel/type1-mdev.ts';
import {
  type Callback,
  kstate,
  lockPair,
  type Range,
  type Type1Ctx,
  unmapPath,
  unregisterDevice,
} from './kernel/type1-notify.ts';
import { haltEvents, region, type States, type Tr } from './kernel/type1-xstate.ts';

export const DMAS = 2;
const MDEV = 'mdev';

export interface Ctx extends Type1Ctx {
  readonly drv: Driver;
  /** The VMM still holds the mdev's device fd. */
  readonly deviceFd: boolean;
  /** The mdev's last close is in progress: the release path runs and the closer waits. */
  readonly closing: boolean;
}

/**
 * Every event type of the model, one place: the conformance adapter's exhaustive match is over
 * this list (a test checks it is exactly the event types the machine handles).
 */
export const DEVICE_CLOSE_EVENT_TYPES = [
  'VmmMapDma',
  'VmmUnmapDma',
  'VmmUnmapListLock',
  'VmmUnmapCallback',
  'VmmUnmapListUnlock',
  'VmmUnmapRelock',
  'VmmCloseDevice',
  'VmmCloseDeviceReturn',
  'UnmapperUnmapDma',
  'UnmapperUnmapListLock',
  'UnmapperUnmapCallback',
  'UnmapperUnmapListUnlock',
  'UnmapperUnmapRelock',
  'MdevPinPages',
  'MdevUnpinPages',
  'ReleaseCloseDevice',
  'ReleaseUnregisterLock',
  'ReleaseUnregisterListLock',
  'ReleaseFinish',
  'VmmHalt',
  'MdevHalt',
  'ReleaseHalt',
  'UnmapperHalt',
] as const;

export interface Ev {
  readonly type: string;
  readonly dma?: number;
  readonly range?: Range;
}

export interface Design {
  readonly notify: NotifyTrigger;
  readonly driver: DriverKind;
  /** The driver pins any mapped range, even one it was told is going away (a guest that keeps DMA going). */
  readonly repin: boolean;
  /** A second thread calls UNMAP_DMA too. */
  readonly twoUnmappers: boolean;
  /** BUG_ON(++retries > maxRetries) in vfio_dma_do_unmap (the kernel's is 10). */
  readonly maxRetries: number;
  /** iommu->lock / device_list_lock order: 7.3.4, or with the U6 patch (Type1Design.lockOrder). */
  readonly lockOrder?: LockOrder;
  /** A re-mapped dma gets the freed one's address (Type1Design.dmaAddressReuse). */
  readonly dmaAddressReuse: boolean;
  readonly mutate?: Type1Mutation;
}

const t1Design = (d: Design): Type1Design => ({
  kernel: '7.3',
  notify: d.notify,
  maxRetries: d.maxRetries,
  ...(d.lockOrder && { lockOrder: d.lockOrder }),
  dmaAddressReuse: d.dmaAddressReuse,
  ...(d.mutate && { mutate: d.mutate }),
});

type T = Tr<Ctx, Ev>;
const ok = (c: Ctx, actor: string, r: string) => ({ ...c.ret, [actor]: r });
const lockFree = (c: Ctx) => c.t1.lock === null;
const withK = (k: Kstate): Partial<Ctx> => ({ t1: k.t1, mms: k.mms });

/** The registered devices' dma_unmap callbacks: only the mdev is registered. */
const callbackOf =
  (kind: DriverKind) =>
  (c: Ctx, _dev: string, i: number): Callback<Ctx> => ({
    needsLock: callbackNeedsLock(kind, kstate(c), i),
    apply: (cc) => {
      const r = dmaUnmapCallback(kind, cc.drv, kstate(cc), i);
      return { drv: r.drv, ...withK(r.k) };
    },
  });

function unmapperStates(
  d: Design,
  actor: string,
  prefix: string,
): { idle: Record<string, readonly T[]>; rest: States<Ctx, Ev> } {
  const unmap = unmapPath<Ctx, Ev>({
    actor,
    prefix,
    design: t1Design(d),
    home: 'idle',
    canCall: () => true,
    callback: callbackOf(d.driver),
  });
  return { idle: { [`${prefix}UnmapDma`]: unmap.call }, rest: unmap.states };
}

function vmmActor(d: Design): States<Ctx, Ev> {
  const unmap = unmapperStates(d, 'vmm', 'Vmm');
  return {
    idle: {
      ...unmap.idle,
      VmmMapDma: [
        {
          guard: ({ context }) => lockFree(context),
          update: ({ context, event }) => {
            const i = event.dma as number;
            const r = mapDma(kstate(context), i, 'mm0');
            if (r.ret !== '0') return { ret: ok(context, 'vmm', r.ret) };
            const last = context.lastUnmap;
            return {
              ...withK(r.k),
              drv: registrationEvent(context.drv, i),
              ret: ok(context, 'vmm', '0'),
              lastUnmap: Object.fromEntries(
                Object.entries(last).map(([a, range]) => [
                  a,
                  range === null ? null : range.filter((j) => j !== i),
                ]),
              ),
            };
          },
        },
      ],
      // close(device fd): vfio_device_fops_release runs before close() returns.
      VmmCloseDevice: [
        {
          guard: ({ context }) => context.deviceFd,
          update: ({ context }) => ({ deviceFd: false, closing: true, ret: ok(context, 'vmm', 'blocked') }),
          target: 'closingDevice',
        },
      ],
    },
    ...unmap.rest,
    closingDevice: {
      VmmCloseDeviceReturn: [
        {
          guard: ({ context }) => !context.closing,
          update: ({ context }) => ({ ret: ok(context, 'vmm', '0') }),
          target: 'idle',
        },
      ],
    },
  };
}

function mdevActor(d: Design): States<Ctx, Ev> {
  const design = t1Design(d);
  return {
    idle: {
      MdevPinPages: [
        {
          guard: ({ context, event }) =>
            lockFree(context) && wantsPin(context.drv, kstate(context), event.dma as number, d.repin),
          update: ({ context, event }) => {
            const i = event.dma as number;
            const r = pinPage(kstate(context), i, design);
            const drv = r.ret === '0' ? learn(context.drv, i) : context.drv;
            return { ...withK(r.k), drv, ret: ok(context, 'mdev', r.ret) };
          },
        },
      ],
      MdevUnpinPages: [
        {
          guard: ({ context, event }) =>
            lockFree(context) && wantsUnpin(d.driver, context.drv, kstate(context), event.dma as number),
          update: ({ context, event }) => {
            const r = workerUnpin(context.drv, kstate(context), event.dma as number);
            return { drv: r.drv, ...withK(r.k), ret: ok(context, 'mdev', r.ret) };
          },
        },
      ],
    },
  };
}

function releaseActor(d: Design): States<Ctx, Ev> {
  const unreg = lockPair<Ctx, Ev>({
    actor: 'release',
    lockEvent: 'ReleaseUnregisterLock',
    listEvent: 'ReleaseUnregisterListLock',
    middle: 'unregisterList',
    next: 'finish',
    when: () => true,
    apply: unregisterDevice<Ctx>(MDEV),
    ...(d.lockOrder && { order: d.lockOrder }),
  });
  return {
    idle: {
      ReleaseCloseDevice: [
        {
          guard: ({ context }) =>
            context.closing && (!closeNeedsLock(d.driver, kstate(context)) || lockFree(context)),
          update: ({ context }) => {
            const r = closeDevice(d.driver, context.drv, kstate(context));
            return { drv: r.drv, ...withK(r.k) };
          },
          target: 'unregister',
        },
      ],
    },
    unregister: { ReleaseUnregisterLock: unreg.first },
    ...unreg.middle,
    finish: {
      // The end of vfio_df_close(): device->open_count drops to 0.
      ReleaseFinish: [
        {
          update: ({ context }) => ({ drv: { ...context.drv, vfioOpen: false }, closing: false }),
          target: 'idle',
        },
      ],
    },
  };
}

export function buildMachine(d: Design) {
  const context: Ctx = {
    t1: newType1(DMAS, { emulated: [MDEV], devices: [MDEV], domain: false }),
    mms: { mm0: liveMm() },
    drv: openDriver(DMAS),
    deviceFd: true,
    closing: false,
    ret: d.twoUnmappers ? { vmm: null, mdev: null, unmapper: null } : { vmm: null, mdev: null },
    walk: d.twoUnmappers ? { vmm: null, unmapper: null } : { vmm: null },
    lastUnmap: d.twoUnmappers ? { vmm: null, unmapper: null } : { vmm: null },
    kernelBug: false,
  };
  const second = unmapperStates(d, 'unmapper', 'Unmapper');
  const states: Record<string, unknown> = {
    vmm: region('Vmm', 'idle', vmmActor(d)),
    mdev: region('Mdev', 'idle', mdevActor(d)),
    release: region('Release', 'idle', releaseActor(d)),
    ...(d.twoUnmappers && { unmapper: region('Unmapper', 'idle', { idle: second.idle, ...second.rest }) }),
  };
  return setup({ types: { context: {} as Ctx, events: {} as Ev } }).createMachine({
    id: 'device-close',
    type: 'parallel',
    context,
    states,
  } as any);
}

const DMA_IDS = Array.from({ length: DMAS }, (_x, i) => i);
const RANGES: readonly Range[] = [...DMA_IDS, 'all'];
const byDma = (type: string) => DMA_IDS.map((dma) => ({ type, dma }));
const unmapEvents = (p: string) => [
  ...RANGES.map((range) => ({ type: `${p}UnmapDma`, range })),
  ...['UnmapListLock', 'UnmapCallback', 'UnmapListUnlock', 'UnmapRelock'].map((s) => ({ type: `${p}${s}` })),
];

const EVENTS: readonly Ev[] = [
  ...byDma('VmmMapDma'),
  ...unmapEvents('Vmm'),
  { type: 'VmmCloseDevice' },
  { type: 'VmmCloseDeviceReturn' },
  ...unmapEvents('Unmapper'),
  ...byDma('MdevPinPages'),
  ...byDma('MdevUnpinPages'),
  ...['ReleaseCloseDevice', 'ReleaseUnregisterLock', 'ReleaseUnregisterListLock', 'ReleaseFinish'].map(
    (type) => ({
      type,
    }),
  ),
  ...haltEvents(['Vmm', 'Mdev', 'Release', 'Unmapper']),
];

export const CALLS = ['VmmMapDma', 'VmmUnmapDma', 'VmmCloseDevice', 'UnmapperUnmapDma'];

/** Steps whose result the trace shows: the calls, the driver's kernel-API calls, and the steps that end a call. */
const SHOWN = new Set([
  ...CALLS,
  'MdevPinPages',
  'MdevUnpinPages',
  'VmmUnmapRelock',
  'UnmapperUnmapRelock',
  'VmmCloseDeviceReturn',
]);

/** p ~> q of "every device close eventually completes", every actor weakly fair (see machines/container.ts). */
const closeRequested: StatePredicate<Ctx> = (s) => s.context.closing;
const closeCompleted: StatePredicate<Ctx> = (s) => !s.context.closing;

const BASE: Design = {
  notify: 'if-pinned',
  driver: 'compliant',
  repin: false,
  twoUnmappers: false,
  maxRetries: 10,
  dmaAddressReuse: false,
};

/** The model factory the tests also use for mutants. */
export const machineFor = (over: Partial<Design>) => buildMachine({ ...BASE, ...over });

/**
 * Transitions a variant never fires, with the reason. With a compliant driver that does not
 * re-pin, no notification is retried, so the BUG_ON never fires (the Halt steps follow only a
 * BUG). With a late or non-compliant one the VMM, the only thread that unmaps, is the one that
 * hits it; the release path runs inside its close(), so it cannot be in UNMAP_DMA then.
 */
const NO_BUG = {
  '*.idle#*UnmapDma[0]':
    'the BUG_ON in the first walk needs a pinned dma with no device to notify; the compliant close_device unpins before unregister',
  '*.unmapRelock#*UnmapRelock[0]':
    'the compliant driver unpins in the first callback, so no notification is retried up to the BUG_ON',
  '*#*Halt': 'a Halt step follows a BUG_ON, which a compliant driver never lets happen',
};
const IN_CLOSE =
  "the release path runs inside the VMM's close(), so the VMM cannot be in UNMAP_DMA to hit the BUG_ON then";
const VMM_BUGS = {
  'vmm.*#VmmHalt': 'the VMM is the thread that hits the BUG_ON (it ends in kernelBug, not halted)',
  'release.unregister*#ReleaseHalt': IN_CLOSE,
  'release.finish#ReleaseHalt': IN_CLOSE,
};
const REUSE_CLOSED =
  'the compliant close_device has unpinned everything before these states, so no unmap retries its notification then';
const NEVER_UNPINS = { 'mdev.idle#MdevUnpinPages[0]': 'a non-compliant driver never unpins' };

const UNREACHABLE: Readonly<Record<DriverKind, Record<string, string>>> = {
  compliant: NO_BUG,
  late: VMM_BUGS,
  'non-compliant': { ...VMM_BUGS, ...NEVER_UNPINS },
};

const cross = (notify: NotifyTrigger, driver: DriverKind, violated: string[], states: number) => ({
  description: `notify ${notify}, ${driver} driver`,
  machine: machineFor({ notify, driver }),
  unreachable:
    notify === 'if-pinned' && driver === 'non-compliant'
      ? {
          ...UNREACHABLE[driver],
          'vmm.unmapRelock#VmmUnmapRelock[2]':
            'a non-compliant driver never unpins: a notified dma stays pinned and the retries end in the BUG_ON',
        }
      : UNREACHABLE[driver],
  expect: { violated, states },
});

export default defineModel<Ctx, Ev>({
  id: 'device-close',
  description: 'DMA-unmap notification to an mdev driver (seeds 002, 004) and the device close path',
  machine: machineFor({}),
  events: () => EVENTS,
  calls: CALLS,
  result: (after, actor, event) =>
    SHOWN.has(event.type) ? (after.context.ret[actor] ?? undefined) : undefined,
  invariants: {
    noPinWithoutPageProvider,
    unmapLeavesNoPins,
    accountingConserved,
    noKernelBug,
    driverViewConsistent,
  },
  properties: { everyCloseCompletes: leadsTo(closeRequested, closeCompleted) },
  fairness: { weak: 'all' },
  defaultVariant: 'notify-if-pinned-compliant',
  variants: {
    'notify-if-pinned-compliant': cross('if-pinned', 'compliant', ['driverViewConsistent'], 640),
    'notify-if-pinned-late': cross('if-pinned', 'late', ['driverViewConsistent', 'noKernelBug'], 4556),
    'notify-if-pinned-non-compliant': cross(
      'if-pinned',
      'non-compliant',
      ['driverViewConsistent', 'noKernelBug'],
      2693,
    ),
    'notify-always-compliant': cross('always', 'compliant', [], 465),
    'notify-always-late': cross('always', 'late', ['noKernelBug'], 2817),
    'notify-always-non-compliant': cross(
      'always',
      'non-compliant',
      ['driverViewConsistent', 'noKernelBug'],
      3032,
    ),
    'notify-always-once-compliant': {
      description: "seed 002's patch as written: one `advised` flag per UNMAP call",
      machine: machineFor({ notify: 'always-once' }),
      unreachable: NO_BUG,
      expect: { violated: ['driverViewConsistent'], states: 695 },
    },
    'repin-compliant': {
      description:
        'compliant driver whose guest keeps pinning a range while the VMM unmaps it (seed 004 re-pin race)',
      machine: machineFor({ notify: 'always', repin: true }),
      unreachable: { 'vmm.idle#VmmUnmapDma[0]': NO_BUG['*.idle#*UnmapDma[0]'], ...VMM_BUGS },
      expect: { violated: ['driverViewConsistent', 'noKernelBug'], states: 6819 },
    },
    'two-unmappers': {
      description: 'two threads call UNMAP_DMA with a compliant driver (iommu->lock vs device_list_lock)',
      machine: machineFor({ twoUnmappers: true }),
      unreachable: NO_BUG,
      expect: { violated: ['deadlock', 'driverViewConsistent'], states: 19_209 },
    },
    'two-unmappers-reuse': {
      description: "two UNMAP_DMA threads; a re-mapped dma reuses the freed one's address (dma_last ABA)",
      // maxRetries 2 keeps this one small (65,903 states); at 10 it takes 80 steps and 209,071 states.
      machine: machineFor({ twoUnmappers: true, dmaAddressReuse: true, maxRetries: 2 }),
      unreachable: {
        '*.idle#*UnmapDma[0]': NO_BUG['*.idle#*UnmapDma[0]'],
        'vmm.unmapRelock#VmmUnmapRelock[0]':
          "only the VMM maps, so only the unmapper's dma_last can be fooled by a re-mapped dma at the freed one's address",
        'vmm.unmapListLock#VmmHalt':
          'the VMM holds iommu->lock here, so the unmapper cannot be in the walk that BUGs',
        'release.unregister*#ReleaseHalt': REUSE_CLOSED,
        'release.finish#ReleaseHalt': REUSE_CLOSED,
        'unmapper.*#UnmapperHalt':
          'the unmapper is the thread that hits the BUG_ON (it ends in kernelBug, not halted)',
      },
      expect: {
        violated: ['deadlock', 'driverViewConsistent', 'everyCloseCompletes', 'noKernelBug'],
        states: 65_903,
      },
    },
    'two-unmappers-fixed': {
      description: 'two UNMAP_DMA threads on a kernel with the U6 patch: no lock inversion left',
      machine: machineFor({ twoUnmappers: true, lockOrder: 'list-first' }),
      unreachable: NO_BUG,
      expect: { violated: ['driverViewConsistent'], states: 55_970 },
    },
  },
  bounds: { depth: 200, maxStates: 400_000 },
});
