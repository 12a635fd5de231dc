/**
 * Invariants of the VFIO type1 models (container, device-close). Each is
 * one named predicate over a snapshot, stated once, with the kernel check or
 * seed thread it comes from; spec/container.md and spec/device-close.md say
 * which variant breaks which and why.
 */
import type { StatePredicate } from '../explorer/model.ts';
import type { Mms } from '../machines/kernel/mm.ts';
import { type Type1, vaddrInvalidCount } from '../machines/kernel/type1.ts';
import type { Driver } from '../machines/kernel/type1-mdev.ts';

interface T1View {
  readonly t1: Type1;
  readonly mms: Mms;
  readonly kernelBug: boolean;
  readonly lastUnmap: Readonly<Record<string, readonly number[] | null>>;
}

/**
 * Every pinned page was taken from the address space its dma's vaddr belongs
 * to, while that vaddr was valid. This is what the kernel can guarantee, not
 * "every pinned page has a live provider": pins outlive exec and exit by
 * design (UAPI-FACTS §1.5: DMA to pinned pages continues), until UNMAP or
 * teardown. 7.3 keeps it with dma->mm + mmget_not_zero (ENODEV from a dead
 * mm) and the EBUSY while any vaddr is invalid (T1:vfio_pin_page_external,
 * T1:vfio_iommu_type1_pin_pages). v6.1 pinned from dma->task->mm, the task's
 * mm after exec, at the old process's vaddr unless the VMM invalidated it
 * first: the "no page provider" gap of seed 000.
 */
export const noPinWithoutPageProvider: StatePredicate<T1View> = (s) =>
  s.context.t1.dmas.every((d) => d.pin === null || (d.pin.vaddrMm !== null && d.pin.from === d.pin.vaddrMm));

/**
 * An UNMAP_DMA that returned 0 left no pinned page in its range: the walk
 * notifies and retries until pfn_list is empty before vfio_remove_dma()
 * (T1:vfio_dma_do_unmap; its WARN_ON in T1:vfio_remove_dma). Cleared for a
 * dma when it is mapped again.
 */
export const unmapLeavesNoPins: StatePredicate<T1View> = (s) => {
  const { t1, lastUnmap } = s.context;
  return Object.values(lastUnmap).every(
    (range) =>
      range === null || range.every((i) => t1.dmas[i].pin === null && !t1.leaked.some((l) => l.dma === i)),
  );
};

/**
 * An invalid vaddr and an attached emulated group never coexist (UAPI-FACTS
 * §6.1): UNMAP_DMA with VADDR is EBUSY while one is attached
 * (T1:vfio_dma_do_unmap) and attach is EBUSY while a vaddr is invalid
 * (T1:vfio_iommu_type1_attach_group). 7.3 only: v6.1 allowed both and made
 * the pin sleep instead.
 */
export const vaddrInvalidExcludesMdev: StatePredicate<T1View> = (s) =>
  vaddrInvalidCount(s.context.t1) === 0 || s.context.t1.emulated.length === 0;

/** Pages of one dma charged to locked_vm: the IOMMU mapping's page with a domain, else the driver's pin. */
const accountedPages = (t1: Type1, i: number): number => {
  const d = t1.dmas[i];
  if (!d.mapped) return 0;
  return t1.domain ? 1 : d.pin ? 1 : 0;
};

/**
 * For every live mm, mm->locked_vm equals the pages pinned and accounted to
 * it: those of the dmas it owns (dma->mm in 7.3, dma->task->mm in v6.1) plus
 * leaked pages still charged to it, and is never negative (the
 * WARN_ON_ONCE(pages > locked_vm) of mm/util.c:__account_locked_vm, after
 * which the kernel's unsigned counter wraps). UAPI-FACTS §1.8, §6.10.
 */
export const accountingConserved: StatePredicate<T1View> = (s) => {
  const { t1, mms } = s.context;
  return Object.entries(mms).every(([name, mm]) => {
    if (!mm.alive) return true;
    let want = 0;
    t1.dmas.forEach((d, i) => {
      if (d.mm === name) want += accountedPages(t1, i);
    });
    for (const l of t1.leaked) if (l.charged === name) want += 1;
    return mm.lockedVm >= 0 && mm.lockedVm === want;
  });
};

/** The BUG_ON(++retries > 10) of T1:vfio_dma_do_unmap never fires (seed 004). */
export const noKernelBug: StatePredicate<T1View> = (s) => !s.context.kernelBug;

/**
 * A driver never believes a range is mapped after the container removed it
 * (seed 002): every range in the driver's view is still a dma.
 */
export const driverViewConsistent: StatePredicate<{ readonly t1: Type1; readonly drv: Driver }> = (s) =>
  s.context.drv.view.every((v, i) => !v || s.context.t1.dmas[i].mapped);
