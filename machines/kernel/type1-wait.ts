/**
 * vfio_wait(), the sleep of v5.12-v6.1 type1 (reverted in 6.2), and the
 * close-flag fix seed 000 proposes for it. Pure data and functions; the
 * container model wires them into its mdev and release actors.
 *
 * v6.1 T1:vfio_wait(): prepare_to_wait(&iommu->vaddr_wait, TASK_KILLABLE),
 * mutex_unlock(iommu->lock), schedule(), mutex_lock(iommu->lock),
 * finish_wait(); then EFAULT if kthread_should_stop(), !iommu->container_open
 * or a fatal signal, else WAITED and the caller looks again. The wakers are
 * wake_up_all(&iommu->vaddr_wait) in vfio_dma_do_map (set_vaddr),
 * vfio_remove_dma (an invalid dma unmapped) and vfio_iommu_type1_notify
 * (VFIO_IOMMU_CONTAINER_CLOSE from vfio_fops_release, which also clears
 * container_open).
 *
 * Seed 000's close-flag proposal adds a waiters list of (task, mdev,
 * close_flag): vfio_device_fops_release notifies the iommu driver, which sets
 * close_flag on that mdev's elements and wakes their tasks, whose vfio_wait
 * then fails. 'per-waiter' is the proposal as written (only the elements on
 * the list at that moment); 'sticky' is the variant that settles Jason's
 * objection (the device is marked closing, so a pin that starts waiting
 * later fails at once).
 */

/** One element of the waiters list (v6.1's waitqueue entry, plus the proposal's close_flag). */
export interface Waiter {
  /** The task sleeping in vfio_wait(), named by the actor that runs it. */
  readonly actor: string;
  /** The device the pin is for. */
  readonly device: string;
  /** wake_up_all()/wake_up_process() ran since it went to sleep. */
  readonly woken: boolean;
  readonly closeFlag: boolean;
}

export type CloseFlag = 'none' | 'per-waiter' | 'sticky';

export interface VaddrWait {
  /** iommu->container_open: cleared by VFIO_IOMMU_CONTAINER_CLOSE. */
  readonly containerOpen: boolean;
  /** Sorted by actor. */
  readonly waiters: readonly Waiter[];
  /** Devices marked closing ('sticky' close flag only), sorted. */
  readonly closing: readonly string[];
}

export const WAIT_IDLE: VaddrWait = { containerOpen: true, waiters: [], closing: [] };

const byActor = (a: Waiter, b: Waiter) => (a.actor < b.actor ? -1 : a.actor > b.actor ? 1 : 0);

/** prepare_to_wait() (under iommu->lock, just before it is dropped). */
export const sleep = (w: VaddrWait, actor: string, device: string): VaddrWait => ({
  ...w,
  waiters: [
    ...w.waiters.filter((x) => x.actor !== actor),
    { actor, device, woken: false, closeFlag: false },
  ].sort(byActor),
});

/** wake_up_all(&iommu->vaddr_wait). */
export const wakeAll = (w: VaddrWait): VaddrWait =>
  w.waiters.some((x) => !x.woken) ? { ...w, waiters: w.waiters.map((x) => ({ ...x, woken: true })) } : w;

export const waiterOf = (w: VaddrWait, actor: string): Waiter | undefined =>
  w.waiters.find((x) => x.actor === actor);

/** finish_wait(), after mutex_lock(iommu->lock) again. */
export const finishWait = (w: VaddrWait, actor: string): VaddrWait => ({
  ...w,
  waiters: w.waiters.filter((x) => x.actor !== actor),
});

/** vfio_iommu_type1_notify(VFIO_IOMMU_CONTAINER_CLOSE): container_open = false, then wake_up_all. */
export const containerClose = (w: VaddrWait): VaddrWait => wakeAll({ ...w, containerOpen: false });

/** The close-flag notification from vfio_device_fops_release for `device`. */
export function notifyClose(w: VaddrWait, device: string, mode: CloseFlag): VaddrWait {
  if (mode === 'none') return w;
  const waiters = w.waiters.map((x) => (x.device === device ? { ...x, closeFlag: true, woken: true } : x));
  const closing =
    mode === 'sticky' && !w.closing.includes(device) ? [...w.closing, device].sort() : w.closing;
  return { ...w, waiters, closing };
}

/** The close of `device` completed: a later open starts without the mark. */
export const closeDone = (w: VaddrWait, device: string): VaddrWait =>
  w.closing.includes(device) ? { ...w, closing: w.closing.filter((d) => d !== device) } : w;

/**
 * What vfio_wait() returns once its task runs again with iommu->lock held:
 * EFAULT when the container closed, its close_flag is set, or (sticky) the
 * device is closing; otherwise the caller looks at the vaddr again. The
 * model's pinning thread is a driver worker, not a killable user thread and
 * not a kthread the driver stops in close_device (see spec/container.md).
 */
export function waitResult(w: VaddrWait, me: Waiter): 'EFAULT' | 'again' {
  if (!w.containerOpen || me.closeFlag || w.closing.includes(me.device)) return 'EFAULT';
  return 'again';
}

/** A pin about to sleep fails at once on a device marked closing ('sticky' only). */
export const closingNow = (w: VaddrWait, device: string): boolean => w.closing.includes(device);
