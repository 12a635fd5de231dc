/**
 * The emulated-IOMMU (mdev) driver as the type1 models see it: which IOVA
 * ranges it believes are mapped, what it does in its dma_unmap callback and
 * in close_device, and its worker's later unpins. Pure functions over the
 * driver record and the kernel state; the models decide which actor runs
 * each (the callback runs in the unmapping task, close_device in the release
 * path, the worker in the driver's own actor).
 *
 * How the driver learns a range (`view`): a registration event when the VMM
 * maps it (seed 002's muser-style driver, which tracks DMA regions without
 * pinning them) or a successful vfio_pin_pages(). A view-gated driver pins
 * only ranges in its view, so a compliant one never pins a range again after
 * its invalidation; `repin` lifts that (a guest that keeps DMA going to a
 * range the VMM is unmapping), which is the race seed 004's retry loop is for.
 *
 * The functions that touch pins take the device `dev` the driver drives: on
 * a container with several pinning devices each holds its own reference to a
 * shared page (type1.ts Pin.refs), and unpins only that.
 */
import { holds, type Kstate, unpinPage } from './type1.ts';

/**
 * - 'compliant': unpins in the callback and in close_device, as the comment
 *   on T1:vfio_notify_dma_unmap demands ("Drivers MUST unpin pages in
 *   response to an invalidation"); kvmgt, vfio-ccw and vfio-ap do.
 * - 'late': queues the unpin to a worker that runs some time later.
 * - 'non-compliant': never unpins.
 */
export type DriverKind = 'compliant' | 'late' | 'non-compliant';

export interface Driver {
  /** Between ops->open_device and ops->close_device. */
  readonly open: boolean;
  /** device->open_count > 0: until vfio_df_close() has finished the last close (after unregister). */
  readonly vfioOpen: boolean;
  /** Per dma: the driver believes the range is mapped (and may use it). */
  readonly view: readonly boolean[];
  /** Per dma: an invalidation the 'late' driver's worker has not processed yet. */
  readonly pending: readonly boolean[];
  /** The dma of a vfio_pin_pages() call that has not returned (sleeping in vfio_wait), or null. */
  readonly inflight: number | null;
}

export const openDriver = (dmas: number): Driver => ({
  open: true,
  vfioOpen: true,
  view: Array.from({ length: dmas }, () => false),
  pending: Array.from({ length: dmas }, () => false),
  inflight: null,
});

const setAt = <T>(xs: readonly T[], i: number, v: T): readonly T[] =>
  xs[i] === v ? xs : xs.map((x, j) => (j === i ? v : x));

export const learn = (drv: Driver, i: number): Driver => ({ ...drv, view: setAt(drv.view, i, true) });

/** A registration event for dma `i` (the VMM mapped it) reaches an open driver. */
export const registrationEvent = (drv: Driver, i: number): Driver => (drv.open ? learn(drv, i) : drv);

/** May the driver's own thread try vfio_pin_pages() on dma `i` now? (It holds no page there yet.) */
export const wantsPin = (drv: Driver, k: Kstate, i: number, repin: boolean, dev: string): boolean =>
  drv.open && drv.inflight === null && !holds(k.t1, i, dev) && (repin || drv.view[i]);

/** Does `dev`'s dma_unmap callback for dma `i` call vfio_unpin_pages(), which takes iommu->lock? */
export const callbackNeedsLock = (kind: DriverKind, k: Kstate, i: number, dev: string): boolean =>
  kind === 'compliant' && holds(k.t1, i, dev);

/**
 * `dev`'s ops->dma_unmap(vdev, dma->iova, dma->size) for dma `i`, run by the
 * unmapping task under device_list_lock. The compliant driver drops the range
 * and unpins its page; the late one drops the range and queues the unpin; the
 * non-compliant one ignores it.
 */
export function dmaUnmapCallback(
  kind: DriverKind,
  drv: Driver,
  k: Kstate,
  i: number,
  dev: string,
): { drv: Driver; k: Kstate } {
  if (kind === 'non-compliant') return { drv, k };
  const dropped = { ...drv, view: setAt(drv.view, i, false) };
  if (kind === 'compliant') return { drv: dropped, k: unpinPage(k, i, dev) };
  const pinned = holds(k.t1, i, dev);
  return { drv: { ...dropped, pending: setAt(drv.pending, i, drv.pending[i] || pinned) }, k };
}

export const closeNeedsLock = (kind: DriverKind, k: Kstate, dev: string): boolean =>
  kind === 'compliant' && k.t1.dmas.some((_d, i) => holds(k.t1, i, dev));

/**
 * ops->close_device, run by the release path after the driver's in-flight
 * pins returned (the model's driver waits for them). A driver must unpin
 * everything here (UAPI-FACTS §1.10); the late one queues it.
 */
export function closeDevice(
  kind: DriverKind,
  drv: Driver,
  k: Kstate,
  dev: string,
): { drv: Driver; k: Kstate } {
  const closed = { ...drv, open: false, view: drv.view.map(() => false) };
  if (kind === 'compliant') {
    return { drv: closed, k: k.t1.dmas.reduce((acc, _d, i) => unpinPage(acc, i, dev), k) };
  }
  if (kind === 'late') {
    return {
      drv: { ...closed, pending: k.t1.dmas.map((_d, i) => drv.pending[i] || holds(k.t1, i, dev)) },
      k,
    };
  }
  return { drv: closed, k };
}

/** May the driver's worker call vfio_unpin_pages() on dma `i` now? (A non-compliant driver never does.) */
export const wantsUnpin = (kind: DriverKind, drv: Driver, k: Kstate, i: number, dev: string): boolean => {
  if (kind === 'non-compliant') return false;
  if (kind === 'late' && drv.pending[i]) return true;
  return drv.open && holds(k.t1, i, dev);
};

/**
 * The worker's vfio_unpin_pages() of dma `i`. Once device->open_count is 0
 * VMAIN:vfio_unpin_pages() only WARNs (vfio_assert_device_open) and returns:
 * the page stays pinned. Returns the call's result for the trace.
 */
export function workerUnpin(
  drv: Driver,
  k: Kstate,
  i: number,
  dev: string,
): { drv: Driver; k: Kstate; ret: string } {
  const done = { ...drv, pending: setAt(drv.pending, i, false) };
  if (!drv.vfioOpen) return { drv: done, k, ret: 'WARN' };
  return { drv: done, k: unpinPage(k, i, dev), ret: '0' };
}
