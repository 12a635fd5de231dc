/**
 * The VFIO type1 container during a live update (seed 000, UAPI-FACTS §1):
 * the VMM invalidates its vaddrs (UNMAP_DMA with VFIO_DMA_UNMAP_FLAG_VADDR),
 * execs, and supplies them again (MAP_DMA with VFIO_DMA_MAP_FLAG_VADDR),
 * while an mdev driver pins guest pages and the mdev's device fd may close.
 * spec/container.md is the prose version, with the verdict table.
 *
 * Actors (top-level regions):
 * - `vmm`: one thread of the VMM process: MAP_DMA, UNMAP_DMA (with its
 *   DMA-unmap notification, type1-notify.ts), the two VADDR calls, exec,
 *   exit, SET_CONTAINER / UNSET_CONTAINER of the mdev group,
 *   GET_DEVICE_FD, and closing its device and container fds.
 * - `mdev`: the mdev driver's worker: vfio_pin_pages() (which may sleep in
 *   vfio_wait() on v6.1) and vfio_unpin_pages().
 * - `release`: the device release path of the mdev's last close
 *   (VMAIN:vfio_device_fops_release): the close-flag notification (seed
 *   000's proposal), ops->close_device, unregister_device, the end of the
 *   last close.
 * - `mdev2`, `release2` (parameter mdevs=2): a second pinning mdev on the
 *   same container, in its own emulated group, with its own driver and
 *   release path. Its events are the first one's with `dev: 1`; the VMM
 *   holds its device fd too.
 * - `hotplug` (variant current-hotplug): a second VMM thread that opens and
 *   then closes a second emulated device once (register/unregister_device),
 *   for U6. Once: a thread that did it forever would starve the release path
 *   under weak fairness, which Linux mutexes prevent by handing the lock off
 *   to a starved waiter.
 *
 * Kernel objects (context): the type1 iommu (`dmas` one-page dmas, two by
 * default, so that "some vaddr invalid" differs from "this vaddr invalid";
 * an IOMMU domain from a vfio-pci group the VMM also holds; the mdevs'
 * emulated groups), the vfio_wait waiters, the mms and their locked_vm, and
 * the drivers' state.
 *
 * One factory (`buildMachine`) makes every variant from a `Design`; the
 * model's parameters (`dmas`, `mdevs`) are fields of it.
 */
import { setup } from 'xstate';
import {
  defineModel,
  leadsTo,
  type ModelBody,
  type ModelSnapshot,
  type Params,
  sometimes,
  type TemporalProperty,
} from '../explorer/model.ts';
import {
  accountingConserved,
  noKernelBug,
  noPinWithoutPageProvider,
  unmapLeavesNoPins,
  vaddrInvalidExcludesMdev,
} from '../invariants/type1.ts';
import { killMm, liveMm } from './kernel/mm.ts';
import {
  attachEmulated,
  detachDomain,
  detachEmulated,
  type Kstate,
  mapDma,
  mapVaddr,
  newType1,
  ownerExec,
  pinPage,
  type Type1Design,
  type Type1Kernel,
  type LockOrder,
  type Type1Mutation,
  unmapVaddr,
} from './kernel/type1.ts';
import {
  callbackNeedsLock,
  closeDevice,
  closeNeedsLock,
  type Driver,
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
  rangeOf,
  registerDevice,
  type Type1Ctx,
  unmapPath,
  unregisterDevice,
} from './kernel/type1-notify.ts';
import {
  type CloseFlag,
  closeDone,
  closingNow,
  containerClose,
  finishWait,
  notifyClose,
  sleep,
  type VaddrWait,
  WAIT_IDLE,
  waiterOf,
  waitResult,
  wakeAll,
} from './kernel/type1-wait.ts';
import {
  closeDeviceWait,
  closingDeviceWait,
  dmaName,
  FIRST_MDEV,
  haltLabel,
  heldBy,
  IOMMU_LOCK,
  LIST_LOCK,
  lockPairWait,
  type MdevNames,
  mdevIdleWait,
  sharedLabel,
  stateOf,
  unmapPathWait,
  unregisterWait,
} from './kernel/type1-words.ts';
import { haltEvents, region, type States, type Tr } from './kernel/type1-xstate.ts';
import { CONTAINER_FOOTPRINTS } from './footprints/container.ts';
import { forgetDeadCounters, forgetResults } from './kernel/views.ts';

/** The hotplug thread's emulated device (variant current-hotplug): it pins nothing. */
const DEV2 = 'dev2';

/** One mdev on the container: its device (and group) name, its two actors, and how the reports name it. */
export interface Mdev {
  /** Index: 0 for the first mdev, 1 for the second; the second's events carry `dev: 1`. */
  readonly m: number;
  /** The device on device_list and its emulated group in emulated_iommu_groups. */
  readonly dev: string;
  readonly names: MdevNames;
  /** The VMM's state while its close() of this device's fd waits for the release path. */
  readonly closingState: string;
}

export const MDEVS: readonly Mdev[] = [
  { m: 0, dev: 'mdev', names: FIRST_MDEV, closingState: 'closingDevice' },
  {
    m: 1,
    dev: 'mdev2',
    names: { worker: 'mdev2', release: 'release2', fd: 'mdev2 device fd' },
    closingState: 'closingDevice2',
  },
];

/** One mdev's driver, the VMM's fd of it, and whether its last close is in progress. */
export interface MdevState {
  readonly drv: Driver;
  readonly deviceFd: boolean;
  /** Its last close is in progress: the release path runs and the closer waits. */
  readonly closing: boolean;
}

export interface Ctx extends Type1Ctx {
  readonly wait: VaddrWait;
  /** The first mdev's driver. */
  readonly drv: Driver;
  readonly vmm: {
    /** The process's mm; null once it exited. */
    readonly mm: string | null;
    /** The container fd (with the vfio-pci group fd, closed together). */
    readonly containerFd: boolean;
    /** The first mdev's device fd. */
    readonly deviceFd: boolean;
  };
  /** The first mdev's last close is in progress: the release path runs and the closer waits. */
  readonly closing: boolean;
  /** The second mdev (mdevs=2); the first one's state is in drv, vmm.deviceFd and closing, as with one. */
  readonly mdev2?: MdevState;
}

const drvOf = (c: Ctx, m: number): Driver => (m === 0 ? c.drv : (c.mdev2 as MdevState).drv);
const deviceFdOf = (c: Ctx, m: number): boolean =>
  m === 0 ? c.vmm.deviceFd : (c.mdev2 as MdevState).deviceFd;
const closingOf = (c: Ctx, m: number): boolean => (m === 0 ? c.closing : (c.mdev2 as MdevState).closing);
const anyDeviceFd = (c: Ctx): boolean => c.vmm.deviceFd || (c.mdev2?.deviceFd ?? false);

/** The context fields that hold mdev `m`'s state, with `p` laid over them. */
function setMdev(c: Ctx, m: number, p: Partial<MdevState>): Partial<Ctx> {
  if (m > 0) return { mdev2: { ...(c.mdev2 as MdevState), ...p } };
  return {
    ...(p.drv !== undefined && { drv: p.drv }),
    ...(p.closing !== undefined && { closing: p.closing }),
    ...(p.deviceFd !== undefined && { vmm: { ...c.vmm, deviceFd: p.deviceFd } }),
  };
}

/**
 * Every event type of the model, one place: the conformance adapter's
 * exhaustive match is over this list, so a new event type without a mapping
 * to the kernel fails to compile (and a test checks the list is exactly the
 * event types the machine handles).
 */
export const CONTAINER_EVENT_TYPES = [
  'VmmMapDma',
  'VmmUnmapDma',
  'VmmUnmapVaddr',
  'VmmMapVaddr',
  'VmmExec',
  'VmmExit',
  'VmmCloseDevice',
  'VmmCloseDeviceReturn',
  'VmmCloseContainer',
  'VmmDetachGroup',
  'VmmAttachGroup',
  'VmmOpenDevice',
  'VmmUnmapListLock',
  'VmmUnmapCallback',
  'VmmUnmapListUnlock',
  'VmmUnmapRelock',
  'MdevPinPages',
  'MdevUnpinPages',
  'MdevPinWake',
  'MdevDone',
  'ReleaseDone',
  'ReleaseNotifyClose',
  'ReleaseCloseDevice',
  'ReleaseUnregisterLock',
  'ReleaseUnregisterListLock',
  'ReleaseFinish',
  'HotplugOpenDevice',
  'HotplugRegisterListLock',
  'HotplugCloseDevice',
  'HotplugUnregisterListLock',
  'HotplugDone',
  'VmmHalt',
  'MdevHalt',
  'ReleaseHalt',
  'HotplugHalt',
] as const;

export interface Ev {
  readonly type: (typeof CONTAINER_EVENT_TYPES)[number];
  readonly dma?: number;
  readonly range?: Range;
  /** Which mdev a per-device event is about: absent for the first, 1 for the second (mdevs=2). */
  readonly dev?: number;
}

/** The mdev an event is about (0 unless it says otherwise). */
export const devOf = (e: Ev): number => e.dev ?? 0;

export interface Design {
  readonly kernel: Type1Kernel;
  /** Seed 000's close-flag proposal (v6.1 only): none, as written, or sticky. */
  readonly closeFlag: CloseFlag;
  /** Add the `hotplug` thread that opens and closes a second emulated device (U6). */
  readonly hotplug: boolean;
  /** BUG_ON(++retries > maxRetries) in vfio_dma_do_unmap (the kernel's is 10). */
  readonly maxRetries: number;
  /** One-page dmas in the container (parameter `dmas`). */
  readonly dmas: number;
  /** Pinning mdevs on the container, 1 or 2 (parameter `mdevs`). */
  readonly mdevs: number;
  /** iommu->lock / device_list_lock order: 7.3.4, or with the U6 patch (Type1Design.lockOrder). */
  readonly lockOrder?: LockOrder;
  readonly mutate?: Type1Mutation;
}

const mdevsOf = (d: Design): readonly Mdev[] => MDEVS.slice(0, d.mdevs);

const t1Design = (d: Design): Type1Design => ({
  kernel: d.kernel,
  notify: 'if-pinned',
  maxRetries: d.maxRetries,
  ...(d.lockOrder && { lockOrder: d.lockOrder }),
  ...(d.mutate && { mutate: d.mutate }),
});

type T = Tr<Ctx, Ev>;
const ok = (c: Ctx, actor: string, r: string) => ({ ...c.ret, [actor]: r });
const lockFree = (c: Ctx) => c.t1.lock === null;
const alive = (c: Ctx) => c.vmm.mm !== null;
const withK = (k: Kstate): Partial<Ctx> => ({ t1: k.t1, mms: k.mms });

/** The process exited and every fd it had is closed: nothing can start a call any more. */
const vmmGone = (c: Ctx) => c.vmm.mm === null && !c.vmm.containerFd && !anyDeviceFd(c);

/**
 * Once the VMM is gone and the device released, the kernel-side actors have
 * nothing left to do; their Done step ends them, so that a finished run is
 * `done` rather than reported as a deadlock.
 */
const doneWhenGone = (extra: (c: Ctx) => boolean): T[] => [
  { guard: ({ context }) => vmmGone(context) && extra(context), target: 'done' },
];

/** The closer leaves once nothing it holds is left: `gone` after exit and the last fd. */
const homeOrGone = (c: Ctx) => (vmmGone(c) ? 'gone' : 'idle');

/** Two transitions to `idle` or `gone`, for a step whose context update is `update`. */
const toHomeOrGone = (guard: (c: Ctx, e: Ev) => boolean, update: (c: Ctx, e: Ev) => Partial<Ctx>): T[] =>
  (['gone', 'idle'] as const).map((target) => ({
    guard: ({ context, event }) =>
      guard(context, event) && homeOrGone({ ...context, ...update(context, event) }) === target,
    update: ({ context, event }) => update(context, event),
    target,
  }));

/** v6.1's vfio_remove_dma() wakes the vfio_wait() sleepers when it frees an invalid dma. */
const wakeOnInvalidRemoved =
  (d: Design) =>
  (before: Ctx, after: Partial<Ctx>): Partial<Ctx> => {
    if (d.kernel !== '6.1' || !after.t1) return after;
    const freed = before.t1.dmas.some((x, i) => x.mapped && x.vaddrMm === null && !after.t1?.dmas[i].mapped);
    return freed ? { ...after, wait: wakeAll(before.wait) } : after;
  };

function vmmActor(d: Design): States<Ctx, Ev> {
  const design = t1Design(d);
  const mdevs = mdevsOf(d);
  const callback = (c: Ctx, dev: string, i: number): Callback<Ctx> => {
    const x = mdevs.find((y) => y.dev === dev);
    if (x === undefined) return { needsLock: false, apply: () => ({}) }; // dev2 pins nothing
    return {
      needsLock: callbackNeedsLock('compliant', kstate(c), i, dev),
      apply: (cc) => {
        const r = dmaUnmapCallback('compliant', drvOf(cc, x.m), kstate(cc), i, dev);
        return { ...setMdev(cc, x.m, { drv: r.drv }), ...withK(r.k) };
      },
    };
  };
  /** One transition list per mdev, each for the events about it only. */
  const perMdev = (f: (x: Mdev) => readonly T[]): T[] =>
    mdevs.flatMap((x) =>
      f(x).map((t) => ({ ...t, guard: (a) => devOf(a.event) === x.m && (t.guard?.(a) ?? true) })),
    );
  const unmap = unmapPath<Ctx, Ev>({
    actor: 'vmm',
    prefix: 'Vmm',
    design,
    home: 'idle',
    canCall: (c) => alive(c) && c.vmm.containerFd,
    callback,
  });
  const wake = wakeOnInvalidRemoved(d);
  const withWake = (ts: readonly T[]): T[] =>
    ts.map((t) => ({ ...t, update: t.update && ((a) => wake(a.context, t.update!(a))) }));
  const ioctl = (c: Ctx) => alive(c) && c.vmm.containerFd && lockFree(c);

  const idle: Record<string, readonly T[]> = {
    VmmMapDma: [
      {
        guard: ({ context }) => ioctl(context),
        update: ({ context, event }) => {
          const i = event.dma as number;
          const r = mapDma(kstate(context), i, context.vmm.mm as string);
          if (r.ret !== '0') return { ret: ok(context, 'vmm', r.ret) };
          const last = context.lastUnmap.vmm;
          const heard = mdevs.reduce<Partial<Ctx>>(
            (acc, x) => ({
              ...acc,
              ...setMdev(context, x.m, { drv: registrationEvent(drvOf(context, x.m), i) }),
            }),
            {},
          );
          return {
            ...withK(r.k),
            ...heard,
            ret: ok(context, 'vmm', '0'),
            lastUnmap: { vmm: last === null ? null : last.filter((j) => j !== i) },
          };
        },
      },
    ],
    VmmUnmapDma: withWake(unmap.call),
    VmmUnmapVaddr: [
      {
        guard: ({ context }) => ioctl(context),
        update: ({ context, event }) => {
          const r = unmapVaddr(kstate(context), rangeOf(event.range ?? 'all', d.dmas), design);
          return { ...withK(r.k), ret: ok(context, 'vmm', r.ret) };
        },
      },
    ],
    VmmMapVaddr: [
      {
        guard: ({ context }) => ioctl(context),
        update: ({ context, event }) => {
          const r = mapVaddr(kstate(context), event.dma as number, context.vmm.mm as string, design);
          return {
            ...withK(r.k),
            ret: ok(context, 'vmm', r.ret),
            ...(r.woke && { wait: wakeAll(context.wait) }),
          };
        },
      },
    ],
    // exec() keeps the fds (QEMU's cpr-exec clears FD_CLOEXEC on them); the old mm dies.
    VmmExec: [
      {
        guard: ({ context }) => context.vmm.mm === 'mm0',
        update: ({ context }) => ({
          mms: { ...killMm(context.mms, 'mm0'), mm1: liveMm() },
          t1: ownerExec(context.t1, 'mm0', 'mm1', d.kernel),
          vmm: { ...context.vmm, mm: 'mm1' },
          ret: ok(context, 'vmm', '0'),
        }),
      },
    ],
    // exit(): the mm dies; exit_files() then closes the fds still open (the close events below).
    VmmExit: toHomeOrGone(
      (c) => alive(c),
      (c) => ({
        mms: killMm(c.mms, c.vmm.mm as string),
        t1: ownerExec(c.t1, c.vmm.mm as string, null, d.kernel),
        vmm: { ...c.vmm, mm: null },
        ret: { ...c.ret, vmm: null }, // exit() does not return
      }),
    ),
    // close(device fd): the last fput runs vfio_device_fops_release before close() returns.
    VmmCloseDevice: perMdev((x) => [
      {
        guard: ({ context }) => deviceFdOf(context, x.m),
        update: ({ context }) => ({
          ...setMdev(context, x.m, { deviceFd: false, closing: true }),
          ret: ok(context, 'vmm', 'blocked'),
        }),
        target: x.closingState,
      },
    ]),
    // close(container fd) and close(vfio-pci group fd): v6.1's vfio_fops_release sends
    // VFIO_IOMMU_CONTAINER_CLOSE; the pci group detaches (VCONT:vfio_group_detach_container),
    // and so does the mdev group unless its open device still holds the group file.
    VmmCloseContainer: toHomeOrGone(
      (c) => c.vmm.containerFd && lockFree(c),
      (c) => {
        let k = detachDomain(kstate(c), design);
        for (const x of mdevs) {
          if (k.t1.emulated.includes(x.dev) && !drvOf(c, x.m).vfioOpen) k = detachEmulated(k, x.dev, design);
        }
        return {
          ...withK(k),
          wait: d.kernel === '6.1' ? containerClose(c.wait) : c.wait,
          vmm: { ...c.vmm, containerFd: false },
          ret: ok(c, 'vmm', '0'),
        };
      },
    ),
    // VFIO_GROUP_UNSET_CONTAINER on the mdev group: EBUSY while its device is open
    // (VGRP:vfio_group_ioctl_unset_container, container_users != 1), EINVAL when not set.
    VmmDetachGroup: perMdev((x) => [
      {
        guard: ({ context }) => ioctl(context),
        update: ({ context }) => {
          if (!context.t1.emulated.includes(x.dev)) return { ret: ok(context, 'vmm', 'EINVAL') };
          if (drvOf(context, x.m).vfioOpen || closingOf(context, x.m)) {
            return { ret: ok(context, 'vmm', 'EBUSY') };
          }
          return { ...withK(detachEmulated(kstate(context), x.dev, design)), ret: ok(context, 'vmm', '0') };
        },
      },
    ]),
    // VFIO_GROUP_SET_CONTAINER on the mdev group -> T1:vfio_iommu_type1_attach_group.
    VmmAttachGroup: perMdev((x) => [
      {
        guard: ({ context }) => ioctl(context),
        update: ({ context }) => {
          const r = attachEmulated(context.t1, x.dev, d.kernel);
          return { t1: r.t1, ret: ok(context, 'vmm', r.ret) };
        },
      },
    ]),
    // VFIO_GROUP_GET_DEVICE_FD: first open registers the device (iommu->lock, then
    // device_list_lock), then ops->open_device; the driver learns the existing ranges.
    VmmOpenDevice: perMdev((x) => [
      {
        guard: ({ context }) =>
          ioctl(context) &&
          !deviceFdOf(context, x.m) &&
          !closingOf(context, x.m) &&
          context.t1.listLock === null,
        update: ({ context }) => {
          if (!context.t1.emulated.includes(x.dev)) return { ret: ok(context, 'vmm', 'EINVAL') };
          const t1 = registerDevice<Ctx>(x.dev)(context).t1 ?? context.t1;
          const drv = t1.dmas.reduce((acc, y, i) => (y.mapped ? learn(acc, i) : acc), openDriver(d.dmas));
          return { t1, ...setMdev(context, x.m, { drv, deviceFd: true }), ret: ok(context, 'vmm', '0') };
        },
      },
    ]),
  };

  const closing = Object.fromEntries(
    mdevs.map((x) => [
      x.closingState,
      {
        VmmCloseDeviceReturn: toHomeOrGone(
          (c, e) => devOf(e) === x.m && !closingOf(c, x.m),
          (c) => ({ ret: ok(c, 'vmm', '0') }),
        ),
      },
    ]),
  );
  return {
    idle,
    ...unmapStatesWithWake(unmap.states, withWake),
    ...closing,
    gone: 'final',
  };
}

function unmapStatesWithWake(states: States<Ctx, Ev>, withWake: (ts: readonly T[]) => T[]): States<Ctx, Ev> {
  const out: States<Ctx, Ev> = {};
  for (const [name, on] of Object.entries(states)) {
    if (on === 'final') out[name] = on;
    else out[name] = Object.fromEntries(Object.entries(on).map(([ev, ts]) => [ev, withWake(ts)]));
  }
  return out;
}

/** Mdev `x`'s driver worker. */
function mdevActor(d: Design, x: Mdev): States<Ctx, Ev> {
  const design = t1Design(d);
  const me = x.names.worker;
  const drv = (c: Ctx) => drvOf(c, x.m);
  const withDrv = (c: Ctx, v: Driver) => setMdev(c, x.m, { drv: v });
  /** vfio_pin_pages() reached the point where v6.1 sleeps: sleep, or fail at once on a closing device. */
  const pinOrSleep = (c: Ctx, i: number): Partial<Ctx> & { sleeping: boolean } => {
    const r = pinPage(kstate(c), i, design, x.dev);
    const done = { ...drv(c), inflight: null };
    if (r.ret !== 'wait') {
      return {
        ...withK(r.k),
        ...withDrv(c, r.ret === '0' ? learn(done, i) : done),
        ret: ok(c, me, r.ret),
        sleeping: false,
      };
    }
    if (closingNow(c.wait, x.dev)) {
      return { ...withDrv(c, done), ret: ok(c, me, 'EFAULT'), sleeping: false };
    }
    return {
      wait: sleep(c.wait, me, x.dev),
      ...withDrv(c, { ...drv(c), inflight: i }),
      ret: ok(c, me, 'blocked'),
      sleeping: true,
    };
  };
  const strip = ({ sleeping: _s, ...rest }: Partial<Ctx> & { sleeping: boolean }): Partial<Ctx> => rest;
  const pinEnabled = (c: Ctx, i: number) => lockFree(c) && wantsPin(drv(c), kstate(c), i, false, x.dev);
  const woken = (c: Ctx) => lockFree(c) && waiterOf(c.wait, me)?.woken === true;
  /** After vfio_wait() returns with the lock held again. */
  const afterWake = (c: Ctx): Partial<Ctx> & { sleeping: boolean } => {
    const waiter = waiterOf(c.wait, me);
    const cc = { ...c, wait: finishWait(c.wait, me) };
    if (waiter && waitResult(c.wait, waiter) === 'EFAULT') {
      return {
        wait: cc.wait,
        ...withDrv(c, { ...drv(c), inflight: null }),
        ret: ok(c, me, 'EFAULT'),
        sleeping: false,
      };
    }
    return { wait: cc.wait, ...pinOrSleep(cc, drv(c).inflight as number) };
  };
  return {
    idle: {
      MdevPinPages: [
        {
          guard: ({ context, event }) =>
            pinEnabled(context, event.dma as number) && pinOrSleep(context, event.dma as number).sleeping,
          update: ({ context, event }) => strip(pinOrSleep(context, event.dma as number)),
          target: 'waiting',
        },
        {
          guard: ({ context, event }) => pinEnabled(context, event.dma as number),
          update: ({ context, event }) => strip(pinOrSleep(context, event.dma as number)),
        },
      ],
      MdevUnpinPages: [
        {
          guard: ({ context, event }) =>
            lockFree(context) &&
            wantsUnpin('compliant', drv(context), kstate(context), event.dma as number, x.dev),
          update: ({ context, event }) => {
            const r = workerUnpin(drv(context), kstate(context), event.dma as number, x.dev);
            return { ...withDrv(context, r.drv), ...withK(r.k), ret: ok(context, me, r.ret) };
          },
        },
      ],
      MdevDone: doneWhenGone((c) => !drv(c).vfioOpen),
    },
    waiting: {
      MdevPinWake: [
        {
          guard: ({ context }) => woken(context) && afterWake(context).sleeping,
          update: ({ context }) => strip(afterWake(context)),
        },
        {
          guard: ({ context }) => woken(context),
          update: ({ context }) => strip(afterWake(context)),
          target: 'idle',
        },
      ],
    },
    done: 'final',
  };
}

/** Mdev `x`'s release path (its last close). */
function releaseActor(d: Design, x: Mdev): States<Ctx, Ev> {
  const design = t1Design(d);
  const closing = (c: Ctx) => closingOf(c, x.m);
  const closeDev: T = {
    guard: ({ context }) =>
      closing(context) &&
      drvOf(context, x.m).inflight === null &&
      (!closeNeedsLock('compliant', kstate(context), x.dev) || lockFree(context)),
    update: ({ context }) => {
      const r = closeDevice('compliant', drvOf(context, x.m), kstate(context), x.dev);
      return { ...setMdev(context, x.m, { drv: r.drv }), ...withK(r.k) };
    },
    target: 'unregister',
  };
  const unreg = lockPair<Ctx, Ev>({
    actor: x.names.release,
    lockEvent: 'ReleaseUnregisterLock',
    listEvent: 'ReleaseUnregisterListLock',
    middle: 'unregisterList',
    next: 'finish',
    when: () => true,
    apply: unregisterDevice<Ctx>(x.dev),
    ...(d.lockOrder && { order: d.lockOrder }),
  });
  const notify: States<Ctx, Ev> =
    d.closeFlag === 'none'
      ? { idle: { ReleaseCloseDevice: [closeDev], ReleaseDone: doneWhenGone((c) => !closing(c)) } }
      : {
          idle: {
            ReleaseDone: doneWhenGone((c) => !closing(c)),
            // The proposal's hook in vfio_device_fops_release, under iommu->lock.
            ReleaseNotifyClose: [
              {
                guard: ({ context }) => closing(context) && lockFree(context),
                update: ({ context }) => ({ wait: notifyClose(context.wait, x.dev, d.closeFlag) }),
                target: 'closeDevice',
              },
            ],
          },
          closeDevice: { ReleaseCloseDevice: [closeDev] },
        };
  return {
    ...notify,
    unregister: { ReleaseUnregisterLock: unreg.first },
    ...unreg.middle,
    finish: {
      // End of vfio_df_close (open_count--). With the container fd already closed, the
      // group file's last reference goes too and the mdev group detaches (needs iommu->lock).
      ReleaseFinish: [
        {
          guard: ({ context }) => context.vmm.containerFd || lockFree(context),
          update: ({ context }) => {
            const k = context.vmm.containerFd
              ? kstate(context)
              : detachEmulated(kstate(context), x.dev, design);
            return {
              ...withK(k),
              ...setMdev(context, x.m, { drv: { ...drvOf(context, x.m), vfioOpen: false }, closing: false }),
              wait: closeDone(context.wait, x.dev),
            };
          },
          target: 'idle',
        },
      ],
    },
    done: 'final',
  };
}

function hotplugActor(d: Design): States<Ctx, Ev> {
  const done = (c: Ctx) => ({ ret: ok(c, 'hotplug', '0') });
  const open = lockPair<Ctx, Ev>({
    actor: 'hotplug',
    lockEvent: 'HotplugOpenDevice',
    listEvent: 'HotplugRegisterListLock',
    middle: 'registering',
    next: 'open',
    when: alive,
    start: (c) => ({ ret: ok(c, 'hotplug', 'blocked') }),
    apply: (c) => ({ ...registerDevice<Ctx>(DEV2)(c), ...done(c) }),
    ...(d.lockOrder && { order: d.lockOrder }),
  });
  const close = lockPair<Ctx, Ev>({
    actor: 'hotplug',
    lockEvent: 'HotplugCloseDevice',
    listEvent: 'HotplugUnregisterListLock',
    middle: 'unregistering',
    next: 'done',
    when: () => true,
    start: (c) => ({ ret: ok(c, 'hotplug', 'blocked') }),
    apply: (c) => ({ ...unregisterDevice<Ctx>(DEV2)(c), ...done(c) }),
    ...(d.lockOrder && { order: d.lockOrder }),
  });
  return {
    closed: { HotplugOpenDevice: open.first, HotplugDone: doneWhenGone(() => true) },
    ...open.middle,
    open: { HotplugCloseDevice: close.first },
    ...close.middle,
    done: 'final',
  };
}

export function buildMachine(d: Design) {
  const mdevs = mdevsOf(d);
  const devs = mdevs.map((x) => x.dev);
  const emulated = d.hotplug ? [...devs, DEV2] : devs;
  const fresh = (): MdevState => ({ drv: openDriver(d.dmas), deviceFd: true, closing: false });
  const context: Ctx = {
    t1: newType1(d.dmas, { emulated, devices: devs, domain: true }),
    mms: { mm0: liveMm() },
    wait: WAIT_IDLE,
    drv: openDriver(d.dmas),
    vmm: { mm: 'mm0', containerFd: true, deviceFd: true },
    closing: false,
    ...(d.mdevs > 1 && { mdev2: fresh() }),
    ret: {
      vmm: null,
      ...Object.fromEntries(mdevs.map((x) => [x.names.worker, null])),
      ...(d.hotplug && { hotplug: null }),
    },
    walk: { vmm: null },
    lastUnmap: { vmm: null },
    kernelBug: false,
  };
  // With two mdevs their actors share the event types and take only the events about their own device.
  const only = (x: Mdev) => (d.mdevs > 1 ? (e: Ev) => devOf(e) === x.m : undefined);
  const states: Record<string, unknown> = {
    vmm: region('Vmm', 'idle', vmmActor(d)),
    ...Object.fromEntries(
      mdevs.flatMap((x) => [
        [x.names.worker, region('Mdev', 'idle', mdevActor(d, x), only(x))],
        [x.names.release, region('Release', 'idle', releaseActor(d, x), only(x))],
      ]),
    ),
    ...(d.hotplug && { hotplug: region('Hotplug', 'closed', hotplugActor(d)) }),
  };
  return setup({ types: { context: {} as Ctx, events: {} as Ev } }).createMachine({
    id: 'container',
    type: 'parallel',
    context,
    states,
  } as any);
}

type EvType = Ev['type'];

/** The events about one mdev: the VMM's calls on its group and fd, its driver's steps, its release path. */
const PER_MDEV: readonly EvType[] = [
  'VmmCloseDevice',
  'VmmCloseDeviceReturn',
  'VmmDetachGroup',
  'VmmAttachGroup',
  'VmmOpenDevice',
  'MdevPinWake',
  'MdevDone',
  'ReleaseDone',
  'ReleaseNotifyClose',
  'ReleaseCloseDevice',
  'ReleaseUnregisterLock',
  'ReleaseUnregisterListLock',
  'ReleaseFinish',
  'MdevHalt',
  'ReleaseHalt',
  'MdevPinPages',
  'MdevUnpinPages',
];

/** Every event of a design; the first mdev's in the order of the one-mdev model, the second's after them. */
function eventsOf(d: Pick<Design, 'dmas' | 'mdevs'>): readonly Ev[] {
  const dmaIds = Array.from({ length: d.dmas }, (_x, i) => i);
  const ranges: readonly Range[] = [...dmaIds, 'all'];
  const byDma = (type: EvType) => dmaIds.map((dma) => ({ type, dma }));
  const byRange = (type: EvType) => ranges.map((range) => ({ type, range }));
  const first: Ev[] = [
    ...byDma('VmmMapDma'),
    ...byRange('VmmUnmapDma'),
    ...byRange('VmmUnmapVaddr'),
    ...byDma('VmmMapVaddr'),
    ...(
      [
        'VmmExec',
        'VmmExit',
        'VmmCloseDevice',
        'VmmCloseDeviceReturn',
        'VmmCloseContainer',
        'VmmDetachGroup',
        'VmmAttachGroup',
        'VmmOpenDevice',
        'VmmUnmapListLock',
        'VmmUnmapCallback',
        'VmmUnmapListUnlock',
        'VmmUnmapRelock',
      ] as const
    ).map((type) => ({ type })),
    ...byDma('MdevPinPages'),
    ...byDma('MdevUnpinPages'),
    { type: 'MdevPinWake' },
    { type: 'MdevDone' },
    { type: 'ReleaseDone' },
    { type: 'HotplugDone' },
    ...(
      [
        'ReleaseNotifyClose',
        'ReleaseCloseDevice',
        'ReleaseUnregisterLock',
        'ReleaseUnregisterListLock',
        'ReleaseFinish',
      ] as const
    ).map((type) => ({ type })),
    ...(
      [
        'HotplugOpenDevice',
        'HotplugRegisterListLock',
        'HotplugCloseDevice',
        'HotplugUnregisterListLock',
      ] as const
    ).map((type) => ({ type })),
    ...haltEvents(['Vmm', 'Mdev', 'Release', 'Hotplug'] as const),
  ];
  const about = (m: number): Ev[] =>
    first.filter((e) => PER_MDEV.includes(e.type)).map((e) => ({ ...e, dev: m }));
  return [...first, ...MDEVS.slice(1, d.mdevs).flatMap((x) => about(x.m))];
}

/** The uAPI calls (what the conformance adapter replays); the rest are kernel or driver steps. */
export const CALLS = [
  'VmmMapDma',
  'VmmUnmapDma',
  'VmmUnmapVaddr',
  'VmmMapVaddr',
  'VmmExec',
  'VmmExit',
  'VmmCloseDevice',
  'VmmCloseContainer',
  'VmmDetachGroup',
  'VmmAttachGroup',
  'VmmOpenDevice',
  'HotplugOpenDevice',
  'HotplugCloseDevice',
];

/** Steps whose result the trace shows: the calls, the driver's kernel-API calls, and the steps that end a call. */
const SHOWN = new Set([
  ...CALLS,
  'MdevPinPages',
  'MdevUnpinPages',
  'MdevPinWake',
  'VmmUnmapRelock',
  'VmmCloseDeviceReturn',
  'HotplugRegisterListLock',
  'HotplugUnregisterListLock',
]);

/**
 * p ~> q of "every device close eventually completes", under weak fairness
 * for every actor: a thread inside the kernel does not stop for ever, and
 * the property fails only by a deadlock, a livelock or a halt (BUG). One
 * property a mdev: `everyCloseCompletes` for the first, `everyMdev2CloseCompletes`.
 */
function closeProperties(d: Design): Record<string, TemporalProperty<Ctx>> {
  return Object.fromEntries(
    mdevsOf(d).map((x) => [
      x.m === 0 ? 'everyCloseCompletes' : 'everyMdev2CloseCompletes',
      leadsTo<Ctx>(
        (s) => closingOf(s.context, x.m),
        (s) => !closingOf(s.context, x.m),
      ),
    ]),
  );
}

// ---------------------------------------------------------------- in the thread's words

/** The events only this model has: the live-update calls (include/uapi/linux/vfio.h) and its kernel steps. */
const OWN_LABELS: Partial<Record<EvType, (e: Ev, c: Ctx, x: Mdev) => string>> = {
  VmmUnmapVaddr: (e) =>
    `ioctl(container, VFIO_IOMMU_UNMAP_DMA, ${e.range === 'all' ? 'VADDR|ALL' : `VADDR, ${dmaName(e.range)}`})`,
  VmmMapVaddr: (e) => `ioctl(container, VFIO_IOMMU_MAP_DMA, VADDR, ${dmaName(e.dma)})`,
  VmmExec: () => 'execve(vmm)',
  VmmExit: () => 'exit(vmm)',
  VmmCloseContainer: () => 'close(container fd)',
  VmmDetachGroup: (_e, _c, x) => `ioctl(${x.dev} group, VFIO_GROUP_UNSET_CONTAINER)`,
  VmmAttachGroup: (_e, _c, x) => `ioctl(${x.dev} group, VFIO_GROUP_SET_CONTAINER)`,
  VmmOpenDevice: (_e, _c, x) => `ioctl(${x.dev} group, VFIO_GROUP_GET_DEVICE_FD)`,
  MdevPinWake: (_e, c, x) =>
    `${x.names.worker}: vfio_pin_pages(${dmaName(drvOf(c, x.m).inflight)}): woken in vfio_wait`,
  MdevDone: (_e, _c, x) => `${x.names.worker}: worker ends (VMM gone, device released)`,
  ReleaseNotifyClose: (_e, _c, x) =>
    `${x.names.release}: vfio_device_fops_release → set close_flag, wake waiters`,
  ReleaseDone: (_e, _c, x) => `${x.names.release}: ends (VMM gone, nothing to release)`,
  HotplugOpenDevice: () => 'ioctl(dev2 group, VFIO_GROUP_GET_DEVICE_FD)',
  HotplugRegisterListLock: () => `hotplug: register_device: mutex_lock(${LIST_LOCK})`,
  HotplugCloseDevice: () => 'close(dev2 fd)',
  HotplugUnregisterListLock: () => `hotplug: unregister_device: mutex_lock(${LIST_LOCK})`,
  HotplugDone: () => 'hotplug: thread ends (VMM gone)',
  HotplugHalt: () => haltLabel('hotplug'),
};

/** How each event reads in seed 000's thread (the reports append the result). */
export function containerLabel(e: Ev, s: ModelSnapshot<Ctx>): string {
  const x = MDEVS[devOf(e)];
  const shared = sharedLabel(e, s.context, { Vmm: 'vmm' }, x.names);
  if (shared !== undefined) return shared;
  const own = OWN_LABELS[e.type];
  if (own === undefined) throw new Error(`no label for ${e.type}`);
  return own(e, s.context, x);
}

/** A mdev's dma_unmap callback for `dma` takes iommu->lock (vfio_unpin_pages) when it holds a page there. */
const callbackLocks = (c: Ctx) => (dev: string, dma: number) =>
  callbackNeedsLock('compliant', kstate(c), dma, dev);

function vmmWait(state: string, c: Ctx): string | undefined {
  const closing = MDEVS.find((x) => x.closingState === state);
  if (closing) return closingDeviceWait(closingOf(c, closing.m), closing.names.fd);
  if (state !== 'idle') return unmapPathWait(state, 'vmm', c, callbackLocks(c));
  // A live VMM can always exit; after exit, exit_files() closes the container fd under iommu->lock.
  if (alive(c) || anyDeviceFd(c) || !c.vmm.containerFd) return undefined;
  const on = heldBy(c.t1.lock, 'vmm', IOMMU_LOCK);
  return on && `in exit(), closing the container fd: ${on}`;
}

function mdevWait(x: Mdev, state: string, c: Ctx): string | undefined {
  const me = x.names.worker;
  const drv = drvOf(c, x.m);
  if (state === 'idle') {
    const k = kstate(c);
    return mdevIdleWait(
      c,
      (i) => wantsPin(drv, k, i, false, x.dev),
      (i) => wantsUnpin('compliant', drv, k, i, x.dev),
      me,
    );
  }
  if (state !== 'waiting') return undefined;
  if (waiterOf(c.wait, me)?.woken === false) {
    return `in vfio_wait() for ${dmaName(drv.inflight)}'s vaddr (vfio_pin_pages)`;
  }
  const on = heldBy(c.t1.lock, me, IOMMU_LOCK);
  return on && `in vfio_wait(), woken, to retake ${IOMMU_LOCK}: ${on}`;
}

function releaseWait(d: Design, x: Mdev, state: string, c: Ctx): string | undefined {
  const me = x.names.release;
  const closeDev = () => closeDeviceWait(c, drvOf(c, x.m), closeNeedsLock('compliant', kstate(c), x.dev), me);
  switch (state) {
    case 'idle': {
      if (!closingOf(c, x.m)) return undefined;
      if (d.closeFlag === 'none') return closeDev();
      // The proposal's hook runs under iommu->lock.
      const on = heldBy(c.t1.lock, me, IOMMU_LOCK);
      return on && `in vfio_device_fops_release, to set close_flag: ${on}`;
    }
    case 'closeDevice':
      return closeDev();
    case 'finish': {
      // With the container fd closed, the group file's last reference goes and the mdev group detaches.
      const on = c.vmm.containerFd ? undefined : heldBy(c.t1.lock, me, IOMMU_LOCK);
      return on && `in vfio_df_close, detaching the ${x.dev} group: ${on}`;
    }
    default:
      return unregisterWait(state, c, me);
  }
}

function hotplugWait(state: string, c: Ctx): string | undefined {
  switch (state) {
    case 'closed':
      return alive(c) ? lockPairWait('GET_DEVICE_FD → register_device', true, 'hotplug', c) : undefined;
    case 'registering':
      return lockPairWait('register_device', false, 'hotplug', c);
    case 'open':
      return lockPairWait('close(dev2 fd) → unregister_device', true, 'hotplug', c);
    case 'unregistering':
      return lockPairWait('unregister_device', false, 'hotplug', c);
    default:
      return undefined;
  }
}

/** What a blocked actor waits for, from its state and the locks and waiters in the context. */
export const containerWaits =
  (d: Design) =>
  (s: ModelSnapshot<Ctx>, actor: string): string | undefined => {
    const c = s.context;
    if (c.kernelBug) return undefined; // every actor has its Halt step
    const state = stateOf(s.value, actor);
    if (actor === 'vmm') return vmmWait(state, c);
    if (actor === 'hotplug') return hotplugWait(state, c);
    const worker = MDEVS.find((x) => x.names.worker === actor);
    if (worker) return mdevWait(worker, state, c);
    const release = MDEVS.find((x) => x.names.release === actor);
    if (release) return releaseWait(d, release, state, c);
    return undefined;
  };

// ---------------------------------------------------------------- coverage

/**
 * Transitions that never fire in any variant, with the reason. Both BUG_ON
 * branches of the unmap walk, and so every halt step after a BUG: the model's
 * driver is compliant, and vfio_pin_pages() needs the mdev on device_list.
 */
const UNREACHABLE = {
  'vmm.idle#VmmUnmapDma[0]':
    'a fresh walk notifies at the first pinned dma; it spins into BUG_ON(++retries > 10) only with ' +
    'device_list empty, and then nothing is pinned: vfio_pin_pages is EINVAL without a device, and ' +
    'close_device unpins all before unregister_device',
  'vmm.unmapRelock#VmmUnmapRelock[0]':
    'the compliant dma_unmap callback unpins the dma and drops it from its view, and only the VMM, ' +
    'inside this UNMAP, could teach it again: no dma is notified twice, BUG_ON(++retries > 10) cannot fire',
  '*#*Halt': 'no kernel BUG in this model (the two entries above): the halt steps follow BUG_ON only',
};

/** 7.3 variants: vfio_pin_pages never sleeps (in either mdev's worker). */
const noVfioWait = (d: Design) =>
  Object.fromEntries(
    mdevsOf(d).flatMap((x) => [
      [
        `${x.names.worker}.idle#MdevPinPages[0]`,
        "7.3's vfio_iommu_type1_pin_pages never sleeps: vfio_wait is gone (reverted in 6.2), a pin " +
          'while any vaddr is invalid is EBUSY',
      ],
      [`${x.names.worker}.waiting#MdevPinWake`, 'no pin ever sleeps in vfio_wait on 7.3, so none wakes'],
    ]),
  );

/**
 * With one dma the walk notifies it once: every driver's callback unpins its
 * page there and drops the range, so the relock finds nothing to notify
 * again. Except on v6.1 with two mdevs: one mdev's pin of that dma can be in
 * flight across the callbacks (asleep in vfio_wait, woken by MAP_DMA VADDR
 * before the UNMAP), and it lands after its callback ran.
 */
function oneDma(d: Design): Record<string, string> {
  if (d.dmas > 1 || (d.kernel === '6.1' && d.mdevs > 1)) return {};
  const why =
    d.kernel === '7.3'
      ? "7.3's pins never sleep, so none is in flight across the callbacks"
      : 'the only driver holds the page notified, so it has no pin in flight (one page at a time)';
  return {
    'vmm.unmapRelock#VmmUnmapRelock[1]':
      'with one dma the walk notifies it once: each callback unpins its page and drops the range, and ' +
      `${why}: the relock finds nothing to notify`,
  };
}

/** The design every variant starts from, at the default sizes. */
const BASE: Design = { kernel: '7.3', closeFlag: 'none', hotplug: false, maxRetries: 10, dmas: 2, mdevs: 1 };

/** The model factory the tests also use for mutants. */
export const machineFor = (over: Partial<Design>) => buildMachine({ ...BASE, ...over });

/** Witnesses that the verdicts are not vacuous: the driver pins, the unmap notifies it, a close finishes. */
const WITNESSES = {
  mdevPins: sometimes<Ctx>((s) => s.context.t1.dmas.some((x) => x.pin !== null)),
  unmapNotifiesTheDriver: sometimes<Ctx>((s) => (s.context.walk.vmm?.target ?? null) !== null),
  closeCompletes: sometimes<Ctx>((s) => !s.context.drv.vfioOpen && !s.context.closing),
};

/** With two mdevs: both hold one page (one vfio_pfn, ref_count 2), and the second's close finishes too. */
const TWO_MDEV_WITNESSES = {
  pageSharedByTwoMdevs: sometimes<Ctx>((s) => s.context.t1.dmas.some((x) => (x.pin?.refs.length ?? 0) > 1)),
  mdev2CloseCompletes: sometimes<Ctx>(
    (s) => s.context.mdev2 !== undefined && !closingOf(s.context, 1) && !s.context.mdev2.drv.vfioOpen,
  ),
};

/** v6.1 variants: a pin does sleep in vfio_wait. */
const SLEEPS = { pinSleeps: sometimes<Ctx>((s) => s.context.wait.waiters.length > 0) };

/** What the v6.1 close-flag-less designs violate: the deadlock (each mdev's close stays unfinished) and the exec gap. */
const closesNeverComplete = (d: Design) => ['deadlock', ...Object.keys(closeProperties(d))];
const EXEC_GAP = ['noPinWithoutPageProvider', 'accountingConserved'];

/**
 * The variants at the sizes `p`. Their pinned state counts are those of the
 * default sizes (dmas=2, mdevs=1); their expected verdicts and unreachable
 * lists hold at every size, an entry depending on it where the size changes
 * what can happen (spec/container.md, "Sizes").
 */
function body(p: Params): ModelBody<Ctx, Ev> {
  const size = { dmas: p.dmas, mdevs: p.mdevs };
  const design = (over: Partial<Design>): Design => ({ ...BASE, ...size, ...over });
  /** A variant's machine and waits, from one design. */
  const designed = (over: Partial<Design>) => ({
    machine: buildMachine(design(over)),
    waitingFor: containerWaits(design(over)),
  });
  const base = design({});
  const sized = (states: number) => (p.dmas === BASE.dmas && p.mdevs === BASE.mdevs ? { states } : {});
  const events = eventsOf(base);
  return {
    ...designed({}),
    events: () => events,
    calls: CALLS,
    label: containerLabel,
    result: (after, actor, event) =>
      SHOWN.has(event.type) ? (after.context.ret[actor] ?? undefined) : undefined,
    invariants: { noPinWithoutPageProvider, unmapLeavesNoPins, accountingConserved, noKernelBug },
    properties: { ...closeProperties(base), ...WITNESSES, ...(p.mdevs > 1 && TWO_MDEV_WITNESSES) },
    fairness: { weak: 'all' },
    unreachable: UNREACHABLE,
    footprints: CONTAINER_FOOTPRINTS,
    view: { forget: [forgetResults, forgetDeadCounters] },
    defaultVariant: 'current',
    variants: {
      'vfio-wait': {
        description:
          'v6.1 (seed 000): pins sleep in vfio_wait while their vaddr is invalid; pages follow the task',
        ...designed({ kernel: '6.1' }),
        properties: SLEEPS,
        unreachable: oneDma(design({ kernel: '6.1' })),
        expect: { violated: [...closesNeverComplete(base), ...EXEC_GAP], ...sized(54_695) },
      },
      'close-flag': {
        description:
          "seed 000's fix as proposed: device close sets close_flag on the mdev's waiters and wakes them",
        ...designed({ kernel: '6.1', closeFlag: 'per-waiter' }),
        properties: SLEEPS,
        unreachable: oneDma(design({ kernel: '6.1' })),
        expect: { violated: [...closesNeverComplete(base), ...EXEC_GAP], ...sized(71_232) },
      },
      'close-flag-sticky': {
        description: 'the close flag kept on the device until the close completes, so later pins fail too',
        ...designed({ kernel: '6.1', closeFlag: 'sticky' }),
        properties: SLEEPS,
        unreachable: oneDma(design({ kernel: '6.1' })),
        expect: { violated: EXEC_GAP, ...sized(70_342) },
      },
      current: {
        description:
          '7.3: pins EBUSY while any vaddr is invalid; VADDR unmap EBUSY with an mdev; attach EBUSY',
        ...designed({}),
        invariants: { vaddrInvalidExcludesMdev },
        unreachable: { ...noVfioWait(base), ...oneDma(base) },
        expect: { violated: [], ...sized(19_158) },
      },
      'current-hotplug': {
        description: '7.3 with a second VMM thread opening a second emulated device (U6 lock order)',
        ...designed({ hotplug: true }),
        invariants: { vaddrInvalidExcludesMdev },
        unreachable: { ...noVfioWait(base), ...oneDma(base) },
        expect: { violated: ['deadlock'], ...sized(96_904) },
      },
      'current-hotplug-fixed': {
        description:
          '7.3 with the U6 patch (device_list_lock before iommu->lock everywhere) and the hotplug thread',
        ...designed({ hotplug: true, lockOrder: 'list-first' }),
        invariants: { vaddrInvalidExcludesMdev },
        unreachable: { ...noVfioWait(base), ...oneDma(base) },
        expect: { violated: [], ...sized(100_197) },
      },
    },
    // 400,000 states is far above the default sizes' largest variant; each dma multiplies the
    // space by about 8 and the second mdev by more, so the cap grows with them.
    bounds: { depth: 200, maxStates: 400_000 * 10 ** (p.dmas - BASE.dmas + 2 * (p.mdevs - BASE.mdevs)) },
  };
}

export default defineModel<Ctx, Ev>({
  id: 'container',
  description: 'VFIO type1 container live update (VADDR unmap/map, exec) with pinning mdevs and device close',
  params: {
    dmas: { default: 2, min: 1, max: 8, description: 'one-page DMA mappings in the container' },
    mdevs: {
      default: 1,
      min: 1,
      max: 2,
      description: 'pinning mdevs on the container, each in its own group, with its own driver and release',
    },
  },
  build: body,
});
