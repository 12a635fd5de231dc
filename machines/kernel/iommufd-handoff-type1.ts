/**
 * The VFIO type1 pieces the exec-handoff designs need: a vfio_dma's owner and
 * vaddr state, the in-tree owner change (vfio_iommu_type1.c), and the two
 * proposed ioctls that never landed (CHANGE_MM from seeds/000, and
 * VFIO_CHANGE_DMA_OWNER from seeds/001 in its staged and array forms).
 *
 * Written here, not imported, because machines/kernel/type1*.ts did not exist
 * when this model was written; to be merged into it later. It covers only
 * what the handoff touches: every dma is pinned in a domain (no mdev, no
 * vaddr_invalid blocking), accounting is mm->locked_vm through
 * __account_locked_vm, and a vaddr is abstracted to the address-space layout
 * it belongs to.
 */
import type { Acct, Errno } from './iommufd-pages.ts';

/**
 * Where a vaddr points. fork() keeps the layout ('L0' in the VMM and its
 * holder child); the image after exec maps guest memory elsewhere ('L1').
 */
export type Layout = 'L0' | 'L1';

/** struct vfio_dma, reduced. */
export interface Dma {
  /** dma->mm (mmgrab'd) and dma->task. */
  mm: string;
  task: string;
  /** dma->vaddr's layout, or null while vaddr_invalid (after VFIO_DMA_UNMAP_FLAG_VADDR). */
  vaddr: Layout | null;
  /** Seed-001 staged design: a new vaddr registered by MAP_DMA with VFIO_DMA_MAP_FLAG_VADDR, not yet applied. */
  staged: Layout | null;
  /** Pinned pages; equals dma->locked_vm here (no external pins, no rsvd pfns). */
  readonly npages: number;
}

/** vfio_iommu_type1.c:mm_lock_acct → __account_locked_vm(mm, |n|, n > 0, task, lock_cap=false). */
function mmLockAcct(a: Acct, task: string, mm: string, n: number): Errno | null {
  const m = a.mms[mm];
  if (n > 0 && m.lockedVm + n > a.procs[task].rlimit) return 'ENOMEM';
  a.mms = { ...a.mms, [mm]: { ...m, lockedVm: m.lockedVm + n } };
  return null;
}

/**
 * Move dmas to the caller after charging it for all of them at once: the
 * in-tree vfio_change_dma_owner (one dma) and the proposed all-dma ioctls
 * (charge first; "no changes are made to ownership or limits" on failure).
 * The old owner is uncharged only if mmget_not_zero(dma->mm) succeeds: after
 * exec it does not, and its locked_vm is left as it was.
 */
function moveDmas(a: Acct, dmas: Dma[], pid: string, layout: Layout | null): Errno | null {
  const callerMm = a.procs[pid].mm;
  const moving = dmas.filter((d) => d.mm !== callerMm);
  const total = moving.reduce((n, d) => n + d.npages, 0);
  if (total > 0) {
    const err = mmLockAcct(a, pid, callerMm, total);
    if (err) return err;
  }
  for (const d of moving) {
    if (a.mms[d.mm].alive) mmLockAcct(a, d.task, d.mm, -d.npages);
    d.mm = callerMm;
    d.task = pid;
  }
  if (layout !== null) {
    for (const d of dmas) {
      d.vaddr = layout;
      d.staged = null;
    }
  }
  return null;
}

/**
 * VFIO_IOMMU_UNMAP_DMA with VADDR|ALL (vfio_dma_do_unmap): every dma becomes
 * vaddr_invalid; a dma already invalid rolls back the ones invalidated so far
 * and gives EINVAL. Pages stay pinned and mapped.
 */
export function invalidateAllVaddr(dmas: Dma[]): Errno | null {
  if (dmas.some((d) => d.vaddr === null)) return 'EINVAL';
  for (const d of dmas) d.vaddr = null;
  return null;
}

/**
 * VFIO_IOMMU_MAP_DMA with VADDR (vfio_dma_do_map, set_vaddr path): the dma
 * must be invalid (else EINVAL); vfio_change_dma_owner moves it to the caller
 * (ENOMEM leaves it invalid); then the vaddr is valid again.
 */
export function mapDmaVaddr(a: Acct, dmas: Dma[], i: number, pid: string, layout: Layout): Errno | null {
  const d = dmas[i];
  if (d.vaddr !== null) return 'EINVAL';
  const err = moveDmas(a, [d], pid, null);
  if (err) return err;
  d.vaddr = layout;
  return null;
}

/** Seed 000's CHANGE_MM ("switch all maps to this mm"): no vaddr involved, the caller must map the same memory at the same VA. */
export function changeMm(a: Acct, dmas: Dma[], pid: string): Errno | null {
  return moveDmas(a, dmas, pid, null);
}

/**
 * Seed 001, staged form: VFIO_DMA_MAP_FLAG_VADDR on a valid dma registers a
 * new vaddr for the next VFIO_CHANGE_DMA_OWNER. "There is no interface to
 * cancel the new vaddr's": the model refuses a second registration (EINVAL),
 * as type1's set_vaddr refuses a dma that is not invalid (an assumption; the
 * patch itself is not in the seeds).
 */
export function stageVaddr(dmas: Dma[], i: number, layout: Layout): Errno | null {
  const d = dmas[i];
  if (d.staged !== null) return 'EINVAL';
  d.staged = layout;
  return null;
}

/**
 * Seed 001, staged form, VFIO_CHANGE_DMA_OWNER: EINVAL if a new vaddr was
 * staged for some but not all dmas; ENXIO if a vaddr (the staged one, else the
 * current one) does not map the same memory object in the caller (modelled as
 * a layout other than the caller's); ENOMEM from the charge. Atomic.
 */
export function changeDmaOwnerStaged(a: Acct, dmas: Dma[], pid: string, layout: Layout): Errno | null {
  const staged = dmas.filter((d) => d.staged !== null).length;
  if (staged > 0 && staged < dmas.length) return 'EINVAL';
  if (dmas.some((d) => (d.staged ?? d.vaddr) !== layout)) return 'ENXIO';
  return moveDmas(a, dmas, pid, layout);
}

/**
 * Seed 001's alternative: one VFIO_CHANGE_DMA_OWNER carrying every
 * (iova, new vaddr). An array that misses a dma is EINVAL; the caller passes
 * its own vaddrs, so they always match its layout. All or nothing.
 */
export function changeDmaOwnerArray(
  a: Acct,
  dmas: Dma[],
  pid: string,
  layout: Layout,
  complete: boolean,
): Errno | null {
  if (!complete) return 'EINVAL';
  return moveDmas(a, dmas, pid, layout);
}
