/**
 * How the type1 paths of type1-notify.ts read in a mailing-list thread: the
 * label of each step (the kernel function and the step within it, as
 * `vmm: vfio_notify_dma_unmap: mutex_lock(device_list_lock)`) and what an
 * actor stopped in one of their states waits for ("on device_list_lock, held
 * by hotplug"). Shared by the container and device-close models, whose own
 * `label` and `waitingFor` cover the rest of their events and states.
 */
import type { Mutex } from './locks.ts';
import type { Driver } from './type1-mdev.ts';
import type { Range, Type1Ctx } from './type1-notify.ts';

export const dmaName = (i: number | null | undefined): string => `dma${i ?? '?'}`;

/** An UNMAP_DMA range as the ioctl's argument: one dma, or VFIO_DMA_UNMAP_FLAG_ALL. */
export const rangeArg = (r: Range | undefined): string =>
  r === undefined || r === 'all' ? 'ALL' : dmaName(r);

/** `on iommu->lock, held by vmm` when another actor holds `m`; undefined when it is free or ours. */
export function heldBy(m: Mutex, me: string, name: string): string | undefined {
  return m !== null && m !== me ? `on ${name}, held by ${m}` : undefined;
}

export const IOMMU_LOCK = 'iommu->lock';
export const LIST_LOCK = 'device_list_lock';

/** The steps of vfio_dma_do_unmap() after the call, by event suffix (type1-notify.ts unmapPath). */
const UNMAP_STEPS = ['UnmapListLock', 'UnmapCallback', 'UnmapListUnlock', 'UnmapRelock'] as const;
type UnmapStep = (typeof UNMAP_STEPS)[number];

/** The step of the unmap path an event type stands for, with the actor prefix removed, or undefined. */
export function unmapStepOf(type: string, prefix: string): UnmapStep | undefined {
  const rest = type.startsWith(prefix) ? type.slice(prefix.length) : '';
  return (UNMAP_STEPS as readonly string[]).includes(rest) ? (rest as UnmapStep) : undefined;
}

/**
 * T1:vfio_notify_dma_unmap, one label per lock window. The relock returns to
 * vfio_dma_do_unmap's `goto again`, where the call returns, notifies again, or
 * hits the BUG_ON: the report appends that result.
 */
export function unmapStepLabel(step: UnmapStep, actor: string, c: Type1Ctx): string {
  const fn = `${actor}: vfio_notify_dma_unmap`;
  switch (step) {
    case 'UnmapListLock':
      return `${fn}: mutex_lock(${LIST_LOCK})`;
    case 'UnmapCallback': {
      const w = c.walk[actor];
      const dev = w ? c.t1.devices[w.called] : undefined;
      return `${fn}: ${dev ?? '?'}->ops->dma_unmap(${dmaName(w?.target)})`;
    }
    case 'UnmapListUnlock':
      return `${fn}: mutex_unlock(${LIST_LOCK})`;
    case 'UnmapRelock':
      return `${fn}: mutex_lock(${IOMMU_LOCK}), goto again`;
  }
}

/**
 * What an actor stopped inside vfio_dma_do_unmap's notification waits for,
 * in its state `state` (unmapListLock, unmapCallbacks, unmapRelock);
 * `callbackNeedsLock` says whether the next device's dma_unmap callback calls
 * vfio_unpin_pages(), which takes iommu->lock.
 */
export function unmapPathWait(
  state: string,
  actor: string,
  c: Type1Ctx,
  callbackNeedsLock: (dev: string, dma: number) => boolean,
): string | undefined {
  const w = c.walk[actor];
  switch (state) {
    case 'unmapListLock': {
      const on = heldBy(c.t1.listLock, actor, LIST_LOCK);
      return on && `in vfio_notify_dma_unmap (holding ${IOMMU_LOCK}): ${on}`;
    }
    case 'unmapCallbacks': {
      if (!w || w.called >= c.t1.devices.length) return undefined;
      const dev = c.t1.devices[w.called];
      if (!callbackNeedsLock(dev, w.target as number)) return undefined;
      const on = heldBy(c.t1.lock, actor, IOMMU_LOCK);
      return (
        on &&
        `in ${dev}'s dma_unmap callback (holding ${LIST_LOCK}): ` +
          `vfio_unpin_pages(${dmaName(w.target)}) ${on}`
      );
    }
    case 'unmapRelock': {
      const on = heldBy(c.t1.lock, actor, IOMMU_LOCK);
      return on && `in vfio_notify_dma_unmap, to walk again: ${on}`;
    }
    default:
      return undefined;
  }
}

/**
 * register_device / unregister_device (T1:vfio_iommu_type1_register_device,
 * _unregister_device): iommu->lock first (`first` true), then
 * device_list_lock while holding it.
 */
export function lockPairWait(fn: string, first: boolean, actor: string, c: Type1Ctx): string | undefined {
  const on = first ? heldBy(c.t1.lock, actor, IOMMU_LOCK) : heldBy(c.t1.listLock, actor, LIST_LOCK);
  if (on === undefined) return undefined;
  return first ? `in ${fn}: ${on}` : `in ${fn} (holding ${IOMMU_LOCK}): ${on}`;
}

/** An event of the type1 models: a type, and the dma or UNMAP range it is about. */
export interface Type1Event {
  readonly type: string;
  readonly dma?: number;
  readonly range?: Range;
}

/** How one mdev's actors and fd are named in the reports: the first is `mdev`, `release`, `device fd`. */
export interface MdevNames {
  /** The driver's worker (its pins and unpins). */
  readonly worker: string;
  /** The device's release path. */
  readonly release: string;
  /** The VMM's device fd of it. */
  readonly fd: string;
}

export const FIRST_MDEV: MdevNames = { worker: 'mdev', release: 'release', fd: 'device fd' };

/**
 * The labels of the events the container and device-close models share: the
 * VMM's MAP_DMA, UNMAP_DMA (by any unmapping actor, with its notification
 * steps) and device close, the driver's pin and unpin, the release path, and
 * the halts. `unmappers` maps each unmapping actor's event prefix to the actor
 * (`{ Vmm: 'vmm' }`); `mdev` names the device the event is about. Undefined
 * for an event the model must label itself.
 */
export function sharedLabel(
  e: Type1Event,
  c: Type1Ctx,
  unmappers: Readonly<Record<string, string>>,
  mdev: MdevNames = FIRST_MDEV,
): string | undefined {
  for (const [prefix, actor] of Object.entries(unmappers)) {
    if (e.type === `${prefix}UnmapDma`) return `ioctl(container, VFIO_IOMMU_UNMAP_DMA, ${rangeArg(e.range)})`;
    const step = unmapStepOf(e.type, prefix);
    if (step) return unmapStepLabel(step, actor, c);
    if (e.type === `${prefix}Halt`) return haltLabel(actor);
  }
  switch (e.type) {
    case 'VmmMapDma':
      return `ioctl(container, VFIO_IOMMU_MAP_DMA, ${dmaName(e.dma)})`;
    case 'VmmCloseDevice':
      return `close(${mdev.fd})`;
    case 'VmmCloseDeviceReturn':
      // The close that blocked returns: "close(device fd) … blocks", later "… close(device fd) = 0".
      return `… close(${mdev.fd})`;
    case 'MdevPinPages':
      return `${mdev.worker}: vfio_pin_pages(${dmaName(e.dma)})`;
    case 'MdevUnpinPages':
      return `${mdev.worker}: vfio_unpin_pages(${dmaName(e.dma)})`;
    case 'ReleaseCloseDevice':
      return `${mdev.release}: vfio_device_fops_release → ops->close_device`;
    case 'ReleaseUnregisterLock':
      return `${mdev.release}: unregister_device: mutex_lock(${IOMMU_LOCK})`;
    case 'ReleaseUnregisterListLock':
      return `${mdev.release}: unregister_device: mutex_lock(${LIST_LOCK})`;
    case 'ReleaseFinish':
      return `${mdev.release}: vfio_df_close: open_count--`;
    case 'MdevHalt':
      return haltLabel(mdev.worker);
    case 'ReleaseHalt':
      return haltLabel(mdev.release);
    default:
      return undefined;
  }
}

/** The closer of a mdev's device fd (`fd`): its close() returns only after the release path (the last fput). */
export const closingDeviceWait = (closing: boolean, fd = 'device fd'): string | undefined =>
  closing
    ? `in close(${fd}): the last close waits for the release path (vfio_device_fops_release)`
    : undefined;

/**
 * The release path (actor `release`) at ops->close_device of the device
 * whose driver is `drv`: the driver first waits for its pin in flight (v6.1's
 * sleeping vfio_pin_pages), then unpins under iommu->lock when `needsLock`.
 */
export function closeDeviceWait(
  c: Type1Ctx,
  drv: Driver,
  needsLock: boolean,
  release = 'release',
): string | undefined {
  if (drv.inflight !== null) {
    return `in ops->close_device: the driver waits for its vfio_pin_pages(${dmaName(drv.inflight)}) to return`;
  }
  const on = needsLock ? heldBy(c.t1.lock, release, IOMMU_LOCK) : undefined;
  return on && `in ops->close_device, to unpin: ${on}`;
}

/** The driver's worker between calls: blocked only if it has a pin or unpin to make and iommu->lock is taken. */
export function mdevIdleWait(
  c: Type1Ctx,
  wantsPin: (dma: number) => boolean,
  wantsUnpin: (dma: number) => boolean,
  worker = 'mdev',
): string | undefined {
  const on = heldBy(c.t1.lock, worker, IOMMU_LOCK);
  if (on === undefined) return undefined;
  const dmas = c.t1.dmas.map((_d, i) => i);
  const pin = dmas.find(wantsPin);
  if (pin !== undefined) return `in vfio_pin_pages(${dmaName(pin)}): ${on}`;
  const unpin = dmas.find(wantsUnpin);
  return unpin === undefined ? undefined : `in vfio_unpin_pages(${dmaName(unpin)}): ${on}`;
}

/** The release path's unregister_device (unregister, unregisterList states); undefined elsewhere. */
export function unregisterWait(state: string, c: Type1Ctx, release = 'release'): string | undefined {
  if (state === 'unregister') return lockPairWait('unregister_device', true, release, c);
  if (state === 'unregisterList') return lockPairWait('unregister_device', false, release, c);
  return undefined;
}

/** The `<Prefix>Halt` step after a kernel BUG (type1-xstate.ts): the actor stops with the machine. */
export const haltLabel = (actor: string): string => `${actor}: stops, kernel BUG (panic_on_oops)`;

/** The state of `actor` in a parallel machine's value: its top-level region's state name. */
export const stateOf = (value: unknown, actor: string): string => {
  const v = (value as Record<string, unknown>)[actor];
  return typeof v === 'string' ? v : Object.keys((v ?? {}) as object)[0];
};
