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
 * - `hotplug` (variant current-hotplug): a second VMM thread that opens and
 *   then closes a second emulated device once (register/unregister_device),
 *   for U6. Once: a thread that did it forever would starve the release path
 *   under weak fairness, which Linux mutexes prevent by handing the lock off
 *   to a starved waiter.
 *
 * Kernel objects (context): the type1 iommu (two one-page dmas, so that
 * "some vaddr invalid" differs from "this vaddr invalid"; an IOMMU domain
 * from a vfio-pci group the VMM also holds; the mdev's emulated group), the
 * vfio_wait waiters, the mms and their locked_vm, and the driver's state.
 *
 * One factory (`buildMachine`) makes every variant from a `Design`.
 */
import { setup } from 'xstate';
import {
  defineModel,
  leadsTo,
  type ModelSnapshot,
  type StatePredicate,
  sometimes,
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
  haltLabel,
  heldBy,
  IOMMU_LOCK,
  LIST_LOCK,
  lockPairWait,
  mdevIdleWait,
  sharedLabel,
  stateOf,
  unmapPathWait,
  unregisterWait,
} from './kernel/type1-words.ts';
import { haltEvents, region, type States, type Tr } from './kernel/type1-xstate.ts';
import { CONTAINER_FOOTPRINTS } from './footprints/container.ts';

export const DMAS = 2;
const MDEV = 'mdev';
const DEV2 = 'dev2';

export interface Ctx extends Type1Ctx {
  readonly wait: VaddrWait;
  readonly drv: Driver;
  readonly vmm: {
    /** The process's mm; null once it exited. */
    readonly mm: string | null;
    /** The container fd (with the vfio-pci group fd, closed together). */
    readonly containerFd: boolean;
    /** The mdev's device fd. */
    readonly deviceFd: boolean;
  };
  /** The mdev's last close is in progress: the release path runs and the closer waits. */
  readonly closing: boolean;
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
}

export interface Design {
  readonly kernel: Type1Kernel;
  /** Seed 000's close-flag proposal (v6.1 only): none, as written, or sticky. */
  readonly closeFlag: CloseFlag;
  /** Add the `hotplug` thread that opens and closes a second emulated device (U6). */
  readonly hotplug: boolean;
  /** BUG_ON(++retries > maxRetries) in vfio_dma_do_unmap (the kernel's is 10). */
  readonly maxRetries: number;
  /** iommu->lock / device_list_lock order: 7.3.4, or with the U6 patch (Type1Design.lockOrder). */
  readonly lockOrder?: LockOrder;
  readonly mutate?: Type1Mutation;
}

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
const vmmGone = (c: Ctx) => c.vmm.mm === null && !c.vmm.containerFd && !c.vmm.deviceFd;

/**
 * Once the VMM is gone and the device released, the kernel-side actors have
 * nothing left to do; their Done step ends them, so that a finished run is
 * `done` rather than reported as a deadlock.
 */
const doneWhenGone = (extra: (c: Ctx) => boolean): T[] => [
  { guard: ({ context }) => vmmGone(context) && extra(context), target: 'done' },
];

/** The closer leaves once nothing it holds is left: `gone` after exit and the last fd. */
const homeOrGone = (c: Ctx) => (c.vmm.mm === null && !c.vmm.containerFd && !c.vmm.deviceFd ? 'gone' : 'idle');

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
  const callback = (c: Ctx, dev: string, i: number): Callback<Ctx> => {
    if (dev !== MDEV) return { needsLock: false, apply: () => ({}) }; // dev2 pins nothing
    return {
      needsLock: callbackNeedsLock('compliant', kstate(c), i),
      apply: (cc) => {
        const r = dmaUnmapCallback('compliant', cc.drv, kstate(cc), i);
        return { drv: r.drv, ...withK(r.k) };
      },
    };
  };
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
          return {
            ...withK(r.k),
            drv: registrationEvent(context.drv, i),
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
          const r = unmapVaddr(kstate(context), rangeOf(event.range ?? 'all', DMAS), design);
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
    VmmCloseDevice: [
      {
        guard: ({ context }) => context.vmm.deviceFd,
        update: ({ context }) => ({
          vmm: { ...context.vmm, deviceFd: false },
          closing: true,
          ret: ok(context, 'vmm', 'blocked'),
        }),
        target: 'closingDevice',
      },
    ],
    // close(container fd) and close(vfio-pci group fd): v6.1's vfio_fops_release sends
    // VFIO_IOMMU_CONTAINER_CLOSE; the pci group detaches (VCONT:vfio_group_detach_container),
    // and so does the mdev group unless its open device still holds the group file.
    VmmCloseContainer: toHomeOrGone(
      (c) => c.vmm.containerFd && lockFree(c),
      (c) => {
        let k = detachDomain(kstate(c), design);
        if (k.t1.emulated.includes(MDEV) && !c.drv.vfioOpen) k = detachEmulated(k, MDEV, design);
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
    VmmDetachGroup: [
      {
        guard: ({ context }) => ioctl(context),
        update: ({ context }) => {
          if (!context.t1.emulated.includes(MDEV)) return { ret: ok(context, 'vmm', 'EINVAL') };
          if (context.drv.vfioOpen || context.closing) return { ret: ok(context, 'vmm', 'EBUSY') };
          return { ...withK(detachEmulated(kstate(context), MDEV, design)), ret: ok(context, 'vmm', '0') };
        },
      },
    ],
    // VFIO_GROUP_SET_CONTAINER on the mdev group -> T1:vfio_iommu_type1_attach_group.
    VmmAttachGroup: [
      {
        guard: ({ context }) => ioctl(context),
        update: ({ context }) => {
          const r = attachEmulated(context.t1, MDEV, d.kernel);
          return { t1: r.t1, ret: ok(context, 'vmm', r.ret) };
        },
      },
    ],
    // VFIO_GROUP_GET_DEVICE_FD: first open registers the device (iommu->lock, then
    // device_list_lock), then ops->open_device; the driver learns the existing ranges.
    VmmOpenDevice: [
      {
        guard: ({ context }) =>
          ioctl(context) && !context.vmm.deviceFd && !context.closing && context.t1.listLock === null,
        update: ({ context }) => {
          if (!context.t1.emulated.includes(MDEV)) return { ret: ok(context, 'vmm', 'EINVAL') };
          const t1 = registerDevice<Ctx>(MDEV)(context).t1 ?? context.t1;
          const drv = t1.dmas.reduce((acc, x, i) => (x.mapped ? learn(acc, i) : acc), openDriver(DMAS));
          return { t1, drv, vmm: { ...context.vmm, deviceFd: true }, ret: ok(context, 'vmm', '0') };
        },
      },
    ],
  };

  return {
    idle,
    ...unmapStatesWithWake(unmap.states, withWake),
    closingDevice: {
      VmmCloseDeviceReturn: toHomeOrGone(
        (c) => !c.closing,
        (c) => ({ ret: ok(c, 'vmm', '0') }),
      ),
    },
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

function mdevActor(d: Design): States<Ctx, Ev> {
  const design = t1Design(d);
  /** vfio_pin_pages() reached the point where v6.1 sleeps: sleep, or fail at once on a closing device. */
  const pinOrSleep = (c: Ctx, i: number): Partial<Ctx> & { sleeping: boolean } => {
    const r = pinPage(kstate(c), i, design);
    if (r.ret !== 'wait') {
      const drv = r.ret === '0' ? learn({ ...c.drv, inflight: null }, i) : { ...c.drv, inflight: null };
      return { ...withK(r.k), drv, ret: ok(c, 'mdev', r.ret), sleeping: false };
    }
    if (closingNow(c.wait, MDEV)) {
      return { drv: { ...c.drv, inflight: null }, ret: ok(c, 'mdev', 'EFAULT'), sleeping: false };
    }
    return {
      wait: sleep(c.wait, 'mdev', MDEV),
      drv: { ...c.drv, inflight: i },
      ret: ok(c, 'mdev', 'blocked'),
      sleeping: true,
    };
  };
  const strip = ({ sleeping: _s, ...rest }: Partial<Ctx> & { sleeping: boolean }): Partial<Ctx> => rest;
  const pinEnabled = (c: Ctx, i: number) => lockFree(c) && wantsPin(c.drv, kstate(c), i, false);
  const woken = (c: Ctx) => lockFree(c) && waiterOf(c.wait, 'mdev')?.woken === true;
  /** After vfio_wait() returns with the lock held again. */
  const afterWake = (c: Ctx): Partial<Ctx> & { sleeping: boolean } => {
    const me = waiterOf(c.wait, 'mdev');
    const cc = { ...c, wait: finishWait(c.wait, 'mdev') };
    if (me && waitResult(c.wait, me) === 'EFAULT') {
      return {
        wait: cc.wait,
        drv: { ...c.drv, inflight: null },
        ret: ok(c, 'mdev', 'EFAULT'),
        sleeping: false,
      };
    }
    return { wait: cc.wait, ...pinOrSleep(cc, c.drv.inflight as number) };
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
            lockFree(context) && wantsUnpin('compliant', context.drv, kstate(context), event.dma as number),
          update: ({ context, event }) => {
            const r = workerUnpin(context.drv, kstate(context), event.dma as number);
            return { drv: r.drv, ...withK(r.k), ret: ok(context, 'mdev', r.ret) };
          },
        },
      ],
      MdevDone: doneWhenGone((c) => !c.drv.vfioOpen),
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

function releaseActor(d: Design): States<Ctx, Ev> {
  const design = t1Design(d);
  const closeDev: T = {
    guard: ({ context }) =>
      context.closing &&
      context.drv.inflight === null &&
      (!closeNeedsLock('compliant', kstate(context)) || lockFree(context)),
    update: ({ context }) => {
      const r = closeDevice('compliant', context.drv, kstate(context));
      return { drv: r.drv, ...withK(r.k) };
    },
    target: 'unregister',
  };
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
  const notify: States<Ctx, Ev> =
    d.closeFlag === 'none'
      ? { idle: { ReleaseCloseDevice: [closeDev], ReleaseDone: doneWhenGone((c) => !c.closing) } }
      : {
          idle: {
            ReleaseDone: doneWhenGone((c) => !c.closing),
            // The proposal's hook in vfio_device_fops_release, under iommu->lock.
            ReleaseNotifyClose: [
              {
                guard: ({ context }) => context.closing && lockFree(context),
                update: ({ context }) => ({ wait: notifyClose(context.wait, MDEV, d.closeFlag) }),
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
              : detachEmulated(kstate(context), MDEV, design);
            return {
              ...withK(k),
              drv: { ...context.drv, vfioOpen: false },
              wait: closeDone(context.wait, MDEV),
              closing: false,
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
  const emulated = d.hotplug ? [MDEV, DEV2] : [MDEV];
  const context: Ctx = {
    t1: newType1(DMAS, { emulated, devices: [MDEV], domain: true }),
    mms: { mm0: liveMm() },
    wait: WAIT_IDLE,
    drv: openDriver(DMAS),
    vmm: { mm: 'mm0', containerFd: true, deviceFd: true },
    closing: false,
    ret: d.hotplug ? { vmm: null, mdev: null, hotplug: null } : { vmm: null, mdev: null },
    walk: { vmm: null },
    lastUnmap: { vmm: null },
    kernelBug: false,
  };
  const states: Record<string, unknown> = {
    vmm: region('Vmm', 'idle', vmmActor(d)),
    mdev: region('Mdev', 'idle', mdevActor(d)),
    release: region('Release', 'idle', releaseActor(d)),
    ...(d.hotplug && { hotplug: region('Hotplug', 'closed', hotplugActor(d)) }),
  };
  return setup({ types: { context: {} as Ctx, events: {} as Ev } }).createMachine({
    id: 'container',
    type: 'parallel',
    context,
    states,
  } as any);
}

const DMA_IDS = Array.from({ length: DMAS }, (_x, i) => i);
const RANGES: readonly Range[] = [...DMA_IDS, 'all'];
type EvType = Ev['type'];
const byDma = (type: EvType) => DMA_IDS.map((dma) => ({ type, dma }));
const byRange = (type: EvType) => RANGES.map((range) => ({ type, range }));

const EVENTS: readonly Ev[] = [
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
 * the property fails only by a deadlock, a livelock or a halt (BUG).
 */
const closeRequested: StatePredicate<Ctx> = (s) => s.context.closing;
const closeCompleted: StatePredicate<Ctx> = (s) => !s.context.closing;

// ---------------------------------------------------------------- in the thread's words

/** The events only this model has: the live-update calls (include/uapi/linux/vfio.h) and its kernel steps. */
const OWN_LABELS: Partial<Record<EvType, (e: Ev, c: Ctx) => string>> = {
  VmmUnmapVaddr: (e) =>
    `ioctl(container, VFIO_IOMMU_UNMAP_DMA, ${e.range === 'all' ? 'VADDR|ALL' : `VADDR, ${dmaName(e.range)}`})`,
  VmmMapVaddr: (e) => `ioctl(container, VFIO_IOMMU_MAP_DMA, VADDR, ${dmaName(e.dma)})`,
  VmmExec: () => 'execve(vmm)',
  VmmExit: () => 'exit(vmm)',
  VmmCloseContainer: () => 'close(container fd)',
  VmmDetachGroup: () => 'ioctl(mdev group, VFIO_GROUP_UNSET_CONTAINER)',
  VmmAttachGroup: () => 'ioctl(mdev group, VFIO_GROUP_SET_CONTAINER)',
  VmmOpenDevice: () => 'ioctl(mdev group, VFIO_GROUP_GET_DEVICE_FD)',
  MdevPinWake: (_e, c) => `mdev: vfio_pin_pages(${dmaName(c.drv.inflight)}): woken in vfio_wait`,
  MdevDone: () => 'mdev: worker ends (VMM gone, device released)',
  ReleaseNotifyClose: () => 'release: vfio_device_fops_release → set close_flag, wake waiters',
  ReleaseDone: () => 'release: ends (VMM gone, nothing to release)',
  HotplugOpenDevice: () => 'ioctl(dev2 group, VFIO_GROUP_GET_DEVICE_FD)',
  HotplugRegisterListLock: () => `hotplug: register_device: mutex_lock(${LIST_LOCK})`,
  HotplugCloseDevice: () => 'close(dev2 fd)',
  HotplugUnregisterListLock: () => `hotplug: unregister_device: mutex_lock(${LIST_LOCK})`,
  HotplugDone: () => 'hotplug: thread ends (VMM gone)',
  HotplugHalt: () => haltLabel('hotplug'),
};

/** How each event reads in seed 000's thread (the reports append the result). */
export function containerLabel(e: Ev, s: ModelSnapshot<Ctx>): string {
  const shared = sharedLabel(e, s.context, { Vmm: 'vmm' });
  if (shared !== undefined) return shared;
  const own = OWN_LABELS[e.type];
  if (own === undefined) throw new Error(`no label for ${e.type}`);
  return own(e, s.context);
}

/** The mdev's dma_unmap callback for `dma` takes iommu->lock (vfio_unpin_pages) when it has a page there. */
const callbackLocks = (c: Ctx) => (dev: string, dma: number) =>
  dev === MDEV && callbackNeedsLock('compliant', kstate(c), dma);

function vmmWait(state: string, c: Ctx): string | undefined {
  if (state === 'closingDevice') return closingDeviceWait(c.closing);
  if (state !== 'idle') return unmapPathWait(state, 'vmm', c, callbackLocks(c));
  // A live VMM can always exit; after exit, exit_files() closes the container fd under iommu->lock.
  if (alive(c) || c.vmm.deviceFd || !c.vmm.containerFd) return undefined;
  const on = heldBy(c.t1.lock, 'vmm', IOMMU_LOCK);
  return on && `in exit(), closing the container fd: ${on}`;
}

function mdevWait(state: string, c: Ctx): string | undefined {
  if (state === 'idle') {
    const k = kstate(c);
    return mdevIdleWait(
      c,
      (i) => wantsPin(c.drv, k, i, false),
      (i) => wantsUnpin('compliant', c.drv, k, i),
    );
  }
  if (state !== 'waiting') return undefined;
  if (waiterOf(c.wait, 'mdev')?.woken === false) {
    return `in vfio_wait() for ${dmaName(c.drv.inflight)}'s vaddr (vfio_pin_pages)`;
  }
  const on = heldBy(c.t1.lock, 'mdev', IOMMU_LOCK);
  return on && `in vfio_wait(), woken, to retake ${IOMMU_LOCK}: ${on}`;
}

function releaseWait(d: Design, state: string, c: Ctx): string | undefined {
  const closeDev = () => closeDeviceWait(c, closeNeedsLock('compliant', kstate(c)));
  switch (state) {
    case 'idle': {
      if (!c.closing) return undefined;
      if (d.closeFlag === 'none') return closeDev();
      // The proposal's hook runs under iommu->lock.
      const on = heldBy(c.t1.lock, 'release', IOMMU_LOCK);
      return on && `in vfio_device_fops_release, to set close_flag: ${on}`;
    }
    case 'closeDevice':
      return closeDev();
    case 'finish': {
      // With the container fd closed, the group file's last reference goes and the mdev group detaches.
      const on = c.vmm.containerFd ? undefined : heldBy(c.t1.lock, 'release', IOMMU_LOCK);
      return on && `in vfio_df_close, detaching the mdev group: ${on}`;
    }
    default:
      return unregisterWait(state, c);
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
    if (actor === 'mdev') return mdevWait(state, c);
    if (actor === 'release') return releaseWait(d, state, c);
    if (actor === 'hotplug') return hotplugWait(state, c);
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

/** 7.3 variants: vfio_pin_pages never sleeps. */
const NO_VFIO_WAIT = {
  'mdev.idle#MdevPinPages[0]':
    "7.3's vfio_iommu_type1_pin_pages never sleeps: vfio_wait is gone (reverted in 6.2), a pin " +
    'while any vaddr is invalid is EBUSY',
  'mdev.waiting#MdevPinWake': 'no pin ever sleeps in vfio_wait on 7.3, so none wakes',
};

const BASE: Design = { kernel: '7.3', closeFlag: 'none', hotplug: false, maxRetries: 10 };

/** The model factory the tests also use for mutants. */
export const machineFor = (over: Partial<Design>) => buildMachine({ ...BASE, ...over });

/** A variant's machine and its waits, from one design. */
const designed = (over: Partial<Design>) => ({
  machine: machineFor(over),
  waitingFor: containerWaits({ ...BASE, ...over }),
});

/** Witnesses that the verdicts are not vacuous: the driver pins, the unmap notifies it, a close finishes. */
const WITNESSES = {
  mdevPins: sometimes<Ctx>((s) => s.context.t1.dmas.some((x) => x.pin !== null)),
  unmapNotifiesTheDriver: sometimes<Ctx>((s) => (s.context.walk.vmm?.target ?? null) !== null),
  closeCompletes: sometimes<Ctx>((s) => !s.context.drv.vfioOpen && !s.context.closing),
};

/** v6.1 variants: a pin does sleep in vfio_wait. */
const SLEEPS = { pinSleeps: sometimes<Ctx>((s) => s.context.wait.waiters.length > 0) };

export default defineModel<Ctx, Ev>({
  id: 'container',
  description:
    'VFIO type1 container live update (VADDR unmap/map, exec) with a pinning mdev and device close',
  ...designed({}),
  events: () => EVENTS,
  calls: CALLS,
  label: containerLabel,
  result: (after, actor, event) =>
    SHOWN.has(event.type) ? (after.context.ret[actor] ?? undefined) : undefined,
  invariants: { noPinWithoutPageProvider, unmapLeavesNoPins, accountingConserved, noKernelBug },
  properties: { everyCloseCompletes: leadsTo(closeRequested, closeCompleted), ...WITNESSES },
  fairness: { weak: 'all' },
  unreachable: UNREACHABLE,
  footprints: CONTAINER_FOOTPRINTS,
  defaultVariant: 'current',
  variants: {
    'vfio-wait': {
      description:
        'v6.1 (seed 000): pins sleep in vfio_wait while their vaddr is invalid; pages follow the task',
      ...designed({ kernel: '6.1' }),
      properties: SLEEPS,
      expect: {
        violated: ['deadlock', 'everyCloseCompletes', 'noPinWithoutPageProvider', 'accountingConserved'],
        states: 54_695,
      },
    },
    'close-flag': {
      description:
        "seed 000's fix as proposed: device close sets close_flag on the mdev's waiters and wakes them",
      ...designed({ kernel: '6.1', closeFlag: 'per-waiter' }),
      properties: SLEEPS,
      expect: {
        violated: ['deadlock', 'everyCloseCompletes', 'noPinWithoutPageProvider', 'accountingConserved'],
        states: 71_232,
      },
    },
    'close-flag-sticky': {
      description: 'the close flag kept on the device until the close completes, so later pins fail too',
      ...designed({ kernel: '6.1', closeFlag: 'sticky' }),
      properties: SLEEPS,
      expect: { violated: ['noPinWithoutPageProvider', 'accountingConserved'], states: 70_342 },
    },
    current: {
      description: '7.3: pins EBUSY while any vaddr is invalid; VADDR unmap EBUSY with an mdev; attach EBUSY',
      ...designed({}),
      invariants: { vaddrInvalidExcludesMdev },
      unreachable: NO_VFIO_WAIT,
      expect: { violated: [], states: 19_158 },
    },
    'current-hotplug': {
      description: '7.3 with a second VMM thread opening a second emulated device (U6 lock order)',
      ...designed({ hotplug: true }),
      invariants: { vaddrInvalidExcludesMdev },
      unreachable: NO_VFIO_WAIT,
      expect: { violated: ['deadlock'], states: 96_904 },
    },
    'current-hotplug-fixed': {
      description:
        '7.3 with the U6 patch (device_list_lock before iommu->lock everywhere) and the hotplug thread',
      ...designed({ hotplug: true, lockOrder: 'list-first' }),
      invariants: { vaddrInvalidExcludesMdev },
      unreachable: NO_VFIO_WAIT,
      expect: { violated: [], states: 100_197 },
    },
  },
  bounds: { depth: 200, maxStates: 400_000 },
});
