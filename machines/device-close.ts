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
 * - `unmapper` (variants two-unmappers*): a second thread with the container
 *   fd that also calls UNMAP_DMA; `unmapper2` a third (parameter unmappers=3).
 *
 * The container holds only the mdev's emulated group (no IOMMU domain, as
 * with the in-tree samples), so MAP_DMA pins nothing and the driver's pins
 * are what locked_vm counts. Kernel 7.3 rules throughout; what varies is the
 * notification trigger and the driver's behaviour.
 *
 * One factory (`buildMachine`) makes every variant from a `Design`; the
 * model's parameters (`dmas`, `unmappers`) are fields of it.
 */
import { setup } from 'xstate';
import {
  defineModel,
  leadsTo,
  type ModelBody,
  type ModelSnapshot,
  type Params,
  type StatePredicate,
  sometimes,
} from '../explorer/model.ts';
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
import {
  closeDeviceWait,
  closingDeviceWait,
  mdevIdleWait,
  sharedLabel,
  stateOf,
  unmapPathWait,
  unregisterWait,
} from './kernel/type1-words.ts';
import { haltEvents, region, type States, type Tr } from './kernel/type1-xstate.ts';
import { DEVICE_CLOSE_FOOTPRINTS } from './footprints/device-close.ts';
import { forgetDeadCounters, forgetResults } from './kernel/views.ts';

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
  /** Threads besides the VMM call UNMAP_DMA too (the two-unmappers variants). */
  readonly twoUnmappers: boolean;
  /** With twoUnmappers, how many threads call UNMAP_DMA, the VMM included (parameter `unmappers`). */
  readonly unmappers: number;
  /** One-page dmas in the container (parameter `dmas`). */
  readonly dmas: number;
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

/** The unmapping threads besides the VMM: actor and event prefix (`unmapper`/`Unmapper`, `unmapper2`/`Unmapper2`). */
export const extraUnmappers = (d: Pick<Design, 'twoUnmappers' | 'unmappers'>) =>
  d.twoUnmappers
    ? Array.from({ length: d.unmappers - 1 }, (_x, j) => {
        const n = j === 0 ? '' : String(j + 1);
        return { actor: `unmapper${n}`, prefix: `Unmapper${n}` };
      })
    : [];

/** The registered devices' dma_unmap callbacks: only the mdev is registered. */
const callbackOf =
  (kind: DriverKind) =>
  (c: Ctx, _dev: string, i: number): Callback<Ctx> => ({
    needsLock: callbackNeedsLock(kind, kstate(c), i, MDEV),
    apply: (cc) => {
      const r = dmaUnmapCallback(kind, cc.drv, kstate(cc), i, MDEV);
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
            lockFree(context) && wantsPin(context.drv, kstate(context), event.dma as number, d.repin, MDEV),
          update: ({ context, event }) => {
            const i = event.dma as number;
            const r = pinPage(kstate(context), i, design, MDEV);
            const drv = r.ret === '0' ? learn(context.drv, i) : context.drv;
            return { ...withK(r.k), drv, ret: ok(context, 'mdev', r.ret) };
          },
        },
      ],
      MdevUnpinPages: [
        {
          guard: ({ context, event }) =>
            lockFree(context) &&
            wantsUnpin(d.driver, context.drv, kstate(context), event.dma as number, MDEV),
          update: ({ context, event }) => {
            const r = workerUnpin(context.drv, kstate(context), event.dma as number, MDEV);
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
            context.closing && (!closeNeedsLock(d.driver, kstate(context), MDEV) || lockFree(context)),
          update: ({ context }) => {
            const r = closeDevice(d.driver, context.drv, kstate(context), MDEV);
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
  const extra = extraUnmappers(d);
  const perUnmapper = <V>(v: V) => Object.fromEntries([['vmm', v], ...extra.map((u) => [u.actor, v])]);
  const context: Ctx = {
    t1: newType1(d.dmas, { emulated: [MDEV], devices: [MDEV], domain: false }),
    mms: { mm0: liveMm() },
    drv: openDriver(d.dmas),
    deviceFd: true,
    closing: false,
    ret: { vmm: null, mdev: null, ...Object.fromEntries(extra.map((u) => [u.actor, null])) },
    walk: perUnmapper(null),
    lastUnmap: perUnmapper(null),
    kernelBug: false,
  };
  const states: Record<string, unknown> = {
    vmm: region('Vmm', 'idle', vmmActor(d)),
    mdev: region('Mdev', 'idle', mdevActor(d)),
    release: region('Release', 'idle', releaseActor(d)),
    ...Object.fromEntries(
      extra.map((u) => {
        const own = unmapperStates(d, u.actor, u.prefix);
        return [u.actor, region(u.prefix, 'idle', { idle: own.idle, ...own.rest })];
      }),
    ),
  };
  return setup({ types: { context: {} as Ctx, events: {} as Ev } }).createMachine({
    id: 'device-close',
    type: 'parallel',
    context,
    states,
  } as any);
}

/** Every event of a design (the engine drops those no actor handles: the unmappers' in most variants). */
function eventsOf(d: Pick<Design, 'dmas' | 'unmappers'>): readonly Ev[] {
  const dmaIds = Array.from({ length: d.dmas }, (_x, i) => i);
  const ranges: readonly Range[] = [...dmaIds, 'all'];
  const byDma = (type: string) => dmaIds.map((dma) => ({ type, dma }));
  const unmapEvents = (p: string) => [
    ...ranges.map((range) => ({ type: `${p}UnmapDma`, range })),
    ...['UnmapListLock', 'UnmapCallback', 'UnmapListUnlock', 'UnmapRelock'].map((s) => ({
      type: `${p}${s}`,
    })),
  ];
  const prefixes = extraUnmappers({ twoUnmappers: true, unmappers: d.unmappers }).map((u) => u.prefix);
  return [
    ...byDma('VmmMapDma'),
    ...unmapEvents('Vmm'),
    { type: 'VmmCloseDevice' },
    { type: 'VmmCloseDeviceReturn' },
    ...prefixes.flatMap(unmapEvents),
    ...byDma('MdevPinPages'),
    ...byDma('MdevUnpinPages'),
    ...['ReleaseCloseDevice', 'ReleaseUnregisterLock', 'ReleaseUnregisterListLock', 'ReleaseFinish'].map(
      (type) => ({
        type,
      }),
    ),
    ...haltEvents(['Vmm', 'Mdev', 'Release', ...prefixes]),
  ];
}

export const CALLS = ['VmmMapDma', 'VmmUnmapDma', 'VmmCloseDevice', 'UnmapperUnmapDma', 'Unmapper2UnmapDma'];

/** Steps whose result the trace shows: the calls, the driver's kernel-API calls, and the steps that end a call. */
const SHOWN = new Set([
  ...CALLS,
  'MdevPinPages',
  'MdevUnpinPages',
  'VmmUnmapRelock',
  'UnmapperUnmapRelock',
  'Unmapper2UnmapRelock',
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
  unmappers: 2,
  dmas: 2,
  maxRetries: 10,
  dmaAddressReuse: false,
};

/** The model factory the tests also use for mutants. */
export const machineFor = (over: Partial<Design>) => buildMachine({ ...BASE, ...over });

// ---------------------------------------------------------------- in the thread's words

const UNMAPPERS = { Vmm: 'vmm', Unmapper: 'unmapper', Unmapper2: 'unmapper2' };

/** How each event reads in seeds 002 and 004 (the reports append the result). */
export function deviceCloseLabel(e: Ev, s: ModelSnapshot<Ctx>): string {
  const label = sharedLabel(e, s.context, UNMAPPERS);
  if (label === undefined) throw new Error(`no label for ${e.type}`);
  return label;
}

/** What a blocked actor waits for, from its state and the locks in the context. */
export const deviceCloseWaits =
  (d: Design) =>
  (s: ModelSnapshot<Ctx>, actor: string): string | undefined => {
    const c = s.context;
    if (c.kernelBug) return undefined; // every actor has its Halt step
    const state = stateOf(s.value, actor);
    const k = kstate(c);
    switch (actor) {
      case 'mdev':
        return mdevIdleWait(
          c,
          (i) => wantsPin(c.drv, k, i, d.repin, MDEV),
          (i) => wantsUnpin(d.driver, c.drv, k, i, MDEV),
        );
      case 'release':
        if (state === 'idle')
          return c.closing ? closeDeviceWait(c, c.drv, closeNeedsLock(d.driver, k, MDEV)) : undefined;
        return unregisterWait(state, c);
      default:
        // The vmm and the other unmapping threads.
        if (state === 'closingDevice') return closingDeviceWait(c.closing);
        return unmapPathWait(state, actor, c, (_dev, i) => callbackNeedsLock(d.driver, k, i, MDEV));
    }
  };

// ---------------------------------------------------------------- coverage

/** Why a transition never fires, by the variants' common situations. */
const NO_BUG = {
  '*#*Halt': 'no kernel BUG in this variant (noKernelBug holds): the halt steps follow BUG_ON only',
};

/** Two compliant unmappers: no walk notifies a dma twice, so the relock never notifies again. */
const NO_RENOTIFY = {
  '*.unmapRelock#*UnmapRelock[0]':
    'the compliant callback unpins the dma and drops it from its view; only the vmm maps, and a ' +
    'dma it frees and maps again is a new object the walk forgets (dma_last): no dma is notified ' +
    'twice, BUG_ON(++retries > 10) cannot fire',
};

/** BUG_ON at the call: a compliant close_device leaves no page pinned once device_list is empty. */
const NO_BUG_AT_CALL = {
  '*.idle#*UnmapDma[0]':
    'a fresh walk notifies at the first pinned dma; it spins into BUG_ON(++retries > 10) only with ' +
    'device_list empty, and then nothing is pinned: vfio_pin_pages is EINVAL without a device, and ' +
    'the compliant close_device unpins all before unregister_device',
};

/** BUG_ON after the relock, one UNMAP thread, a compliant driver that does not re-pin. */
const NO_BUG_AT_RELOCK = {
  'vmm.unmapRelock#VmmUnmapRelock[0]':
    'the compliant dma_unmap callback unpins the dma and drops it from its view, and only the VMM, ' +
    'inside this UNMAP, could teach it again: no dma is notified twice, BUG_ON(++retries > 10) cannot fire',
};

/** The VMM is the only thread that unmaps: it is the one that BUGs, and it closes the device. */
const ONE_UNMAPPER = {
  'vmm.*#VmmHalt':
    'the vmm is the only thread that unmaps, so every BUG is its own: it ends in kernelBug, it never ' +
    "halts after another thread's BUG",
  'release.unregister*#ReleaseHalt':
    'the release path is past close_device only while the vmm, the only thread that unmaps, waits in ' +
    'close(): no walk runs to BUG',
  'release.finish#ReleaseHalt': 'as for release.unregister: the vmm waits in close() meanwhile',
};

/** A non-compliant driver never unpins. */
const NEVER_UNPINS = {
  'mdev.idle#MdevUnpinPages':
    'a non-compliant driver never calls vfio_unpin_pages (not in dma_unmap, close_device or its worker)',
};

/** Witnesses that the verdicts are not vacuous: the driver pins, an unmap notifies it and returns, a close finishes. */
const WITNESSES = {
  mdevPins: sometimes<Ctx>((s) => s.context.t1.dmas.some((x) => x.pin !== null)),
  unmapNotifiesTheDriver: sometimes<Ctx>((s) => (s.context.walk.vmm?.target ?? null) !== null),
  unmapReturns: sometimes<Ctx>((s) => s.context.lastUnmap.vmm !== null),
  closeCompletes: sometimes<Ctx>((s) => !s.context.drv.vfioOpen && !s.context.closing),
};

/**
 * The variants at the sizes `p`. Their pinned state counts are those of the
 * default sizes (dmas=2, unmappers=2); their expected verdicts and unreachable
 * lists hold at every size, an entry depending on it where the size changes
 * what can happen (spec/device-close.md, "Sizes").
 */
function body(p: Params): ModelBody<Ctx, Ev> {
  const size = { dmas: p.dmas, unmappers: p.unmappers };
  const defaults = p.dmas === BASE.dmas && p.unmappers === BASE.unmappers;
  /** A variant's machine and its waits, from one design. */
  const designed = (over: Partial<Design>) => ({
    machine: buildMachine({ ...BASE, ...size, ...over }),
    waitingFor: deviceCloseWaits({ ...BASE, ...size, ...over }),
  });
  const expect = (violated: string[], states: number) => ({ violated, ...(defaults && { states }) });
  const events = eventsOf(size);
  /**
   * One dma: the vmm's walk notifies it once. The compliant callback unpins
   * it and drops the range, and only the vmm maps (never while inside its
   * UNMAP), so nothing pins it again and the relock removes it.
   */
  const oneDma: Record<string, string> =
    p.dmas === 1
      ? {
          'vmm.unmapRelock#VmmUnmapRelock[1]':
            "with one dma the vmm's walk notifies it once: the compliant callback unpins it and drops " +
            'the range, and only the vmm maps (not while inside this UNMAP): the relock finds nothing to notify',
        }
      : {};
  const cross = (
    notify: NotifyTrigger,
    driver: DriverKind,
    violated: string[],
    states: number,
    unreachable: Readonly<Record<string, string>>,
  ) => ({
    description: `notify ${notify}, ${driver} driver`,
    ...designed({ notify, driver }),
    unreachable,
    expect: expect(violated, states),
  });
  return {
    ...designed({}),
    events: () => events,
    calls: CALLS,
    label: deviceCloseLabel,
    result: (after, actor, event) =>
      SHOWN.has(event.type) ? (after.context.ret[actor] ?? undefined) : undefined,
    invariants: {
      noPinWithoutPageProvider,
      unmapLeavesNoPins,
      accountingConserved,
      noKernelBug,
      driverViewConsistent,
    },
    properties: { everyCloseCompletes: leadsTo(closeRequested, closeCompleted), ...WITNESSES },
    fairness: { weak: 'all' },
    footprints: DEVICE_CLOSE_FOOTPRINTS,
    view: { forget: [forgetResults, forgetDeadCounters] },
    defaultVariant: 'notify-if-pinned-compliant',
    variants: {
      'notify-if-pinned-compliant': cross('if-pinned', 'compliant', ['driverViewConsistent'], 640, {
        ...NO_BUG,
        ...NO_BUG_AT_CALL,
        ...NO_BUG_AT_RELOCK,
        ...oneDma,
      }),
      'notify-if-pinned-late': cross(
        'if-pinned',
        'late',
        ['driverViewConsistent', 'noKernelBug'],
        4556,
        ONE_UNMAPPER,
      ),
      'notify-if-pinned-non-compliant': cross(
        'if-pinned',
        'non-compliant',
        ['driverViewConsistent', 'noKernelBug'],
        2693,
        {
          ...ONE_UNMAPPER,
          ...NEVER_UNPINS,
          'vmm.unmapRelock#VmmUnmapRelock[2]':
            'only a pinned dma is notified (if-pinned) and a non-compliant driver never unpins: every ' +
            'relock meets the same pinned dma again, and notifies or BUGs instead of returning',
        },
      ),
      'notify-always-compliant': cross('always', 'compliant', [], 465, {
        ...NO_BUG,
        ...NO_BUG_AT_CALL,
        ...NO_BUG_AT_RELOCK,
        ...oneDma,
      }),
      'notify-always-late': cross('always', 'late', ['noKernelBug'], 2817, ONE_UNMAPPER),
      'notify-always-non-compliant': cross(
        'always',
        'non-compliant',
        ['driverViewConsistent', 'noKernelBug'],
        3032,
        { ...ONE_UNMAPPER, ...NEVER_UNPINS },
      ),
      'notify-always-once-compliant': {
        description: "seed 002's patch as written: one `advised` flag per UNMAP call",
        ...designed({ notify: 'always-once' }),
        unreachable: { ...NO_BUG, ...NO_BUG_AT_CALL, ...NO_BUG_AT_RELOCK, ...oneDma },
        // The patch announces only the first dma of a walk: its flaw needs a second one in the range.
        expect: expect(p.dmas > 1 ? ['driverViewConsistent'] : [], 695),
      },
      'repin-compliant': {
        description:
          'compliant driver whose guest keeps pinning a range while the VMM unmaps it (seed 004 re-pin race)',
        ...designed({ notify: 'always', repin: true }),
        unreachable: { ...ONE_UNMAPPER, ...NO_BUG_AT_CALL },
        expect: expect(['driverViewConsistent', 'noKernelBug'], 6819),
      },
      'two-unmappers': {
        description: 'two threads call UNMAP_DMA with a compliant driver (iommu->lock vs device_list_lock)',
        ...designed({ twoUnmappers: true }),
        unreachable: {
          ...NO_BUG,
          ...NO_BUG_AT_CALL,
          ...NO_RENOTIFY,
          ...oneDma,
        },
        // With a third thread two of them can deadlock while the vmm waits in close(): the release path
        // then waits for iommu->lock too, and the close never completes.
        expect: expect(
          ['deadlock', 'driverViewConsistent', ...(p.unmappers > 2 ? ['everyCloseCompletes'] : [])],
          19_209,
        ),
      },
      'two-unmappers-reuse': {
        description: "two UNMAP_DMA threads; a re-mapped dma reuses the freed one's address (dma_last ABA)",
        // maxRetries 2 keeps this one small (65,903 states); at 10 it takes 80 steps and 209,071 states.
        ...designed({ twoUnmappers: true, dmaAddressReuse: true, maxRetries: 2 }),
        unreachable: {
          ...NO_BUG_AT_CALL,
          'vmm.unmapRelock#VmmUnmapRelock[0]':
            "only the other threads' walks can meet a dma freed and mapped again at the same address: " +
            'that takes another thread that maps, and only the vmm maps (never while inside its own UNMAP)',
          ...(p.unmappers > 2
            ? {
                '*.unmapListLock#*Halt':
                  'a thread in unmapListLock holds iommu->lock (device_list_lock is taken before ' +
                  "iommu->lock is dropped), and another's BUG_ON runs in its walk, under iommu->lock",
              }
            : {
                'unmapper.*#UnmapperHalt':
                  "the BUG is always the unmapper's own (the vmm's walk cannot BUG, above): it ends in " +
                  "kernelBug, it never halts after another thread's BUG",
                'vmm.unmapListLock#VmmHalt':
                  'the vmm holds iommu->lock in unmapListLock (device_list_lock is taken before iommu->lock ' +
                  "is dropped), and the unmapper's BUG_ON runs in its walk, under iommu->lock",
              }),
          'release.unregister*#ReleaseHalt':
            'the compliant close_device has unpinned every page and closed the driver (no new pins) before ' +
            'the release leaves idle: no walk has a pinned dma left to retry on',
          'release.finish#ReleaseHalt': 'as for release.unregister: nothing is pinned after close_device',
          ...oneDma,
          ...(p.dmas === 1 && {
            'vmm.unmapRelock#VmmHalt':
              'with one dma the vmm waits in unmapRelock only after its callback unpinned that dma and ' +
              "dropped it, and only the vmm maps: the unmapper's walk finds it unpinned and removes it, no BUG",
          }),
        },
        expect: expect(['deadlock', 'driverViewConsistent', 'everyCloseCompletes', 'noKernelBug'], 65_903),
      },
      'two-unmappers-fixed': {
        description: 'two UNMAP_DMA threads on a kernel with the U6 patch: no lock inversion left',
        ...designed({ twoUnmappers: true, lockOrder: 'list-first' }),
        unreachable: {
          ...NO_BUG,
          ...NO_BUG_AT_CALL,
          ...NO_RENOTIFY,
          ...oneDma,
        },
        expect: expect(['driverViewConsistent'], 55_970),
      },
    },
    // Far above the default sizes' largest variant; each dma or unmapper multiplies the space, so the cap grows.
    bounds: {
      depth: 200,
      maxStates: 400_000 * 10 ** Math.max(0, p.dmas - BASE.dmas + p.unmappers - BASE.unmappers),
    },
  };
}

export default defineModel<Ctx, Ev>({
  id: 'device-close',
  description: 'DMA-unmap notification to an mdev driver (seeds 002, 004) and the device close path',
  params: {
    dmas: { default: 2, min: 1, max: 8, description: 'one-page DMA mappings in the container' },
    unmappers: {
      default: 2,
      min: 2,
      max: 3,
      description:
        'threads calling UNMAP_DMA in the two-unmappers variants, the VMM included (the others: 1)',
    },
  },
  build: body,
});
