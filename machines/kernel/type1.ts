/**
 * The VFIO type1 IOMMU backend (drivers/vfio/vfio_iommu_type1.c) as plain
 * data and pure functions: the dma list, each dma's vaddr and owner mm, the
 * pages an emulated (mdev) device pinned (pfn_list), locked_vm accounting,
 * the device list that DMA-unmap notifications go to, and the
 * vfio_dma_do_unmap() walk with its notify-and-retry loop.
 *
 * Shared by the container and device-close models (and open to the iommufd
 * models). Everything here runs under iommu->lock in the kernel, so each
 * function is one atomic step; the paths that drop a lock are assembled from
 * these steps in type1-notify.ts. No default export: this is not a model.
 *
 * Abstractions (spec/container.md "Abstraction"): a dma is one page at a
 * fixed iova, so an UNMAP range is a list of dma indices in iova order and
 * the v2 bisect rule never applies; the RLIMIT_MEMLOCK check always passes
 * (the mapper has CAP_IPC_LOCK, which still charges locked_vm); a driver pins
 * a page at most once (pfn_list ref_count 0 or 1).
 */
import type { Mutex } from './locks.ts';
import { accountLockedVm, type Mms } from './mm.ts';

/**
 * Which kernel's type1 rules apply.
 * - '6.1': v5.12 to v6.1, the design seed 000 discusses: vfio_pin_pages()
 *   sleeps in vfio_wait() while the vaddr of the dma it pins is invalid;
 *   pages and locked_vm follow dma->task->mm (so they follow exec).
 * - '7.3': the kernel UAPI-FACTS §1.5-1.10 describes: nothing sleeps; a pin
 *   is EBUSY while any vaddr is invalid; VADDR unmap is EBUSY while an
 *   emulated group is attached; attach is EBUSY while a vaddr is invalid;
 *   pages and locked_vm belong to dma->mm, which only MAP_DMA and
 *   vfio_change_dma_owner() set.
 */
export type Type1Kernel = '6.1' | '7.3';

/**
 * When vfio_dma_do_unmap() calls the drivers' dma_unmap callbacks.
 * - 'if-pinned': only for a dma whose pfn_list is not empty (every kernel).
 * - 'always': seed 002's proposal as intended: every dma is announced once
 *   before it is removed, pinned or not.
 * - 'always-once': seed 002's patch as written: one `advised` flag per
 *   UNMAP call, so only the first dma of the walk is announced unpinned.
 */
export type NotifyTrigger = 'if-pinned' | 'always' | 'always-once';

/** Deliberate breakages, used only by the tests to show that each invariant can fire. */
export type Type1Mutation =
  /** vfio_dma_do_unmap() removes a dma without notifying even when pages are pinned in it. */
  | 'removeWithPins'
  /** UNMAP_DMA with VFIO_DMA_UNMAP_FLAG_VADDR skips its "mdev present" EBUSY check. */
  | 'vaddrWithMdev'
  /** vfio_remove_dma() forgets to uncharge locked_vm. */
  | 'skipUncharge';

export interface Type1Design {
  readonly kernel: Type1Kernel;
  readonly notify: NotifyTrigger;
  /** The BUG_ON(++retries > N) bound of vfio_dma_do_unmap(); 10 in the kernel, smaller in the models. */
  readonly maxRetries: number;
  /**
   * A walk remembers dmas by pointer (dma_last, and the `advised` of seed
   * 002). Normally a dma freed by another thread and mapped again is a new
   * object, so the walk forgets it (forgetFreed). With address reuse the slab
   * hands the new vfio_dma the old address and the pointer compares equal.
   */
  readonly dmaAddressReuse?: boolean;
  /**
   * The order of iommu->lock and device_list_lock. 'notify-nests' is 7.3.4:
   * vfio_notify_dma_unmap() and register/unregister_device take device_list_lock
   * inside iommu->lock, while a compliant driver's callback takes iommu->lock inside
   * device_list_lock (U6). 'list-first' is the patch of
   * conformance/kernel/patches/0003: notify drops iommu->lock before it takes
   * device_list_lock, register/unregister take device_list_lock first.
   */
  readonly lockOrder?: LockOrder;
  readonly mutate?: Type1Mutation;
}

export type LockOrder = 'notify-nests' | 'list-first';

/** A page pinned by vfio_pin_pages(), with where it came from (for noPinWithoutPageProvider). */
export interface Pin {
  /** The mm whose page tables the pin walked (vfio_pin_page_external's mm). */
  readonly from: string;
  /** The mm whose address space dma->vaddr belonged to at that moment; null if it was invalid. */
  readonly vaddrMm: string | null;
}

/** struct vfio_dma, one page. An unmapped slot is exactly NO_DMA so that equal states encode equally. */
export interface Dma {
  readonly mapped: boolean;
  /** The mm whose address space dma->vaddr refers to; null while vaddr_invalid. */
  readonly vaddrMm: string | null;
  /** The mm pages come from and locked_vm is charged to: dma->mm (7.3), dma->task->mm (6.1). */
  readonly mm: string | null;
  /** dma->locked_vm: pages of this dma charged to `mm`. */
  readonly lockedVm: number;
  /** The pfn_list: the page a driver pinned in this dma, if any. */
  readonly pin: Pin | null;
}

export const NO_DMA: Dma = { mapped: false, vaddrMm: null, mm: null, lockedVm: 0, pin: null };

/** struct vfio_iommu, the parts the protocols touch. */
export interface Type1 {
  /** iommu->lock. */
  readonly lock: Mutex;
  /** iommu->device_list_lock. */
  readonly listLock: Mutex;
  readonly dmas: readonly Dma[];
  /** iommu->device_list: devices with ops->dma_unmap between register_device and unregister_device (sorted). */
  readonly devices: readonly string[];
  /** iommu->emulated_iommu_groups (sorted). */
  readonly emulated: readonly string[];
  /** !list_empty(&iommu->domain_list): an IOMMU-backed (vfio-pci) group is attached. */
  readonly domain: boolean;
  /** Pages still pinned after vfio_remove_dma() freed their dma (its WARN_ON), sorted by dma. */
  readonly leaked: readonly Leak[];
}

/** A page nobody will ever unpin: where it was, and the mm still charged for it (null: not charged). */
export interface Leak {
  readonly dma: number;
  readonly charged: string | null;
}

export const newType1 = (dmas: number, opts: { emulated: string[]; devices: string[]; domain: boolean }) =>
  ({
    lock: null,
    listLock: null,
    dmas: Array.from({ length: dmas }, () => NO_DMA),
    devices: [...opts.devices].sort(),
    emulated: [...opts.emulated].sort(),
    domain: opts.domain,
    leaked: [],
  }) satisfies Type1;

/** The kernel state a type1 step reads and writes: the iommu and the processes' mms. */
export interface Kstate {
  readonly t1: Type1;
  readonly mms: Mms;
}

/** An ioctl or kernel-API result: '0' or an errno name. */
export type Ret = string;

/** iommu->vaddr_invalid_count, derived: the dmas whose vaddr is invalid (UAPI-FACTS §6.2 makes them equal). */
export const vaddrInvalidCount = (t1: Type1): number =>
  t1.dmas.reduce((n, d) => n + (d.mapped && d.vaddrMm === null ? 1 : 0), 0);

const setDma = (t1: Type1, i: number, d: Dma): Type1 => ({
  ...t1,
  dmas: t1.dmas.map((x, j) => (j === i ? d : x)),
});

const sortedAdd = (xs: readonly string[], x: string) => (xs.includes(x) ? xs : [...xs, x].sort());
const addLeak = (xs: readonly Leak[], x: Leak) =>
  [...xs, x].sort((a, b) => a.dma - b.dma || String(a.charged).localeCompare(String(b.charged)));
const without = <T>(xs: readonly T[], x: T) => xs.filter((y) => y !== x);

// ---------------------------------------------------------------- accounting

/**
 * vfio_lock_acct(dma, npage, async=true) / mm_lock_acct() on `mm`: a dead mm
 * (mmget_not_zero fails) is ESRCH and nothing changes; otherwise
 * mm/util.c:__account_locked_vm() (mm.ts; CAP_IPC_LOCK: never ENOMEM). A
 * decrement below zero wraps in the kernel (WARN_ON_ONCE, then subtract): a
 * negative number here, which accountingConserved looks for.
 */
export function lockAcct(mms: Mms, mm: string | null, delta: number): { mms: Mms; ok: boolean } {
  if (mm === null) return { mms, ok: false };
  const r = accountLockedVm(mms, mm, delta, { rlimit: 0, capIpcLock: true });
  return { mms: r.mms, ok: r.err === undefined };
}

/** Charge `n` pages of dma `i` to its mm; dma->locked_vm moves only when the charge happened (vfio_lock_acct). */
function chargeDma(k: Kstate, i: number, n: number): Kstate {
  const d = k.t1.dmas[i];
  if (n === 0) return k;
  const r = lockAcct(k.mms, d.mm, n);
  if (!r.ok) return k;
  return { t1: setDma(k.t1, i, { ...d, lockedVm: d.lockedVm + n }), mms: r.mms };
}

// ---------------------------------------------------------------- MAP_DMA

/**
 * VFIO_IOMMU_MAP_DMA without VADDR (T1:vfio_dma_do_map). An overlap is
 * EEXIST. The dma records the caller's mm (dma->mm = current->mm in 7.3,
 * dma->task = group_leader in 6.1: the same mm at this point). With an IOMMU
 * domain the page is pinned and charged now (vfio_pin_map_dma ->
 * vfio_pin_pages_remote); without one nothing is pinned (lazy, §1.3 step 8).
 */
export function mapDma(k: Kstate, i: number, callerMm: string): { k: Kstate; ret: Ret } {
  if (k.t1.dmas[i].mapped) return { k, ret: 'EEXIST' };
  const dma: Dma = { mapped: true, vaddrMm: callerMm, mm: callerMm, lockedVm: 0, pin: null };
  const mapped = { ...k, t1: setDma(k.t1, i, dma) };
  return { k: k.t1.domain ? chargeDma(mapped, i, 1) : mapped, ret: '0' };
}

// ---------------------------------------------------------------- vaddr update (live update)

/**
 * VFIO_IOMMU_UNMAP_DMA with VFIO_DMA_UNMAP_FLAG_VADDR over `range`
 * (T1:vfio_dma_do_unmap, invalidate_vaddr). 7.3 first refuses while an
 * emulated group is attached (EBUSY, "Cannot update vaddr if mdev is
 * present"); 6.1 has no such check. Each dma in the range becomes invalid;
 * meeting one that already is rolls back those invalidated by this call and
 * returns EINVAL. Pins stay: DMA to pinned pages continues.
 */
export function unmapVaddr(
  k: Kstate,
  range: readonly number[],
  design: Type1Design,
): { k: Kstate; ret: Ret } {
  if (design.kernel === '7.3' && k.t1.emulated.length > 0 && design.mutate !== 'vaddrWithMdev') {
    return { k, ret: 'EBUSY' };
  }
  let t1 = k.t1;
  for (const i of range) {
    const d = t1.dmas[i];
    if (!d.mapped) continue;
    if (d.vaddrMm === null) return { k, ret: 'EINVAL' }; // rollback: the state before the call
    t1 = setDma(t1, i, { ...d, vaddrMm: null });
  }
  return { k: { ...k, t1 }, ret: '0' };
}

/**
 * VFIO_IOMMU_MAP_DMA with VFIO_DMA_MAP_FLAG_VADDR on dma `i`
 * (T1:vfio_dma_do_map, set_vaddr): ENOENT without a dma, EINVAL unless it is
 * invalid (and matches exactly, which a whole-dma request always does). 7.3
 * then runs vfio_change_dma_owner(): if the caller's mm differs, charge it
 * dma->locked_vm first, uncharge the old mm only if it is still alive, and
 * make the caller's mm the owner. 6.1 only stores the vaddr (its owner is the
 * task, whose mm exec already replaced) and wakes the vfio_wait() sleepers,
 * which the caller does (type1-wait.ts) when `woke` is set.
 */
export function mapVaddr(
  k: Kstate,
  i: number,
  callerMm: string,
  design: Type1Design,
): { k: Kstate; ret: Ret; woke: boolean } {
  const d = k.t1.dmas[i];
  if (!d.mapped) return { k, ret: 'ENOENT', woke: false };
  if (d.vaddrMm !== null) return { k, ret: 'EINVAL', woke: false };
  if (design.kernel === '6.1') {
    return { k: { ...k, t1: setDma(k.t1, i, { ...d, vaddrMm: callerMm }) }, ret: '0', woke: true };
  }
  let mms = k.mms;
  if (d.mm !== callerMm) {
    const charged = lockAcct(mms, callerMm, d.lockedVm);
    if (!charged.ok) return { k, ret: 'ENOMEM', woke: false };
    mms = lockAcct(charged.mms, d.mm, -d.lockedVm).mms; // skipped when the old mm is dead
  }
  const owned: Dma = { ...d, vaddrMm: callerMm, mm: callerMm };
  return { k: { t1: setDma(k.t1, i, owned), mms }, ret: '0', woke: false };
}

/**
 * exec() or exit() of the process that owns the dmas. 6.1 follows the task:
 * dma->task->mm is now `newMm` (null after exit) for every dma, so later pins
 * and uncharges use it although its charge stayed with the dead mm. 7.3 keeps
 * dma->mm (mmgrab), now dead, until vfio_change_dma_owner().
 */
export function ownerExec(t1: Type1, oldMm: string, newMm: string | null, kernel: Type1Kernel): Type1 {
  if (kernel === '7.3') return t1;
  return { ...t1, dmas: t1.dmas.map((d) => (d.mapped && d.mm === oldMm ? { ...d, mm: newMm } : d)) };
}

// ---------------------------------------------------------------- pins

export type PinOutcome = { k: Kstate; ret: Ret } | { k: Kstate; ret: 'wait' };

/**
 * vfio_pin_pages() of one page in dma `i` by a registered device
 * (VMAIN:vfio_pin_pages -> T1:vfio_iommu_type1_pin_pages), under iommu->lock.
 * 7.3: any invalid vaddr is EBUSY (with a WARN_ONCE). 6.1: an invalid vaddr
 * of *this* dma (vfio_find_dma_valid) means sleeping in vfio_wait(): the
 * result 'wait', which the caller turns into a waiter. Then: an empty device
 * list is EINVAL, no dma is EINVAL, a dead source mm is ENODEV
 * (mmget_not_zero in 7.3, get_task_mm in 6.1). The page is charged only when
 * no IOMMU domain exists (do_accounting).
 */
export function pinPage(k: Kstate, i: number, design: Type1Design): PinOutcome {
  const { t1 } = k;
  const d = t1.dmas[i];
  if (design.kernel === '7.3' && vaddrInvalidCount(t1) > 0) return { k, ret: 'EBUSY' };
  if (design.kernel === '6.1' && vaddrInvalidCount(t1) > 0) {
    if (!d.mapped) return { k, ret: 'EINVAL' };
    if (d.vaddrMm === null) return { k, ret: 'wait' };
  }
  if (t1.devices.length === 0) return { k, ret: 'EINVAL' };
  if (!d.mapped) return { k, ret: 'EINVAL' };
  if (d.mm === null || !k.mms[d.mm]?.alive) return { k, ret: 'ENODEV' };
  const pinned = { ...k, t1: setDma(t1, i, { ...d, pin: { from: d.mm, vaddrMm: d.vaddrMm } }) };
  return { k: t1.domain ? pinned : chargeDma(pinned, i, 1), ret: '0' };
}

/**
 * vfio_unpin_pages() of the page in dma `i` (T1:vfio_iommu_type1_unpin_pages
 * -> vfio_unpin_page_external): a page with no vpfn is skipped silently; the
 * uncharge happens only without an IOMMU domain, and only if dma->mm lives.
 */
export function unpinPage(k: Kstate, i: number): Kstate {
  const d = k.t1.dmas[i];
  if (!d.mapped || d.pin === null) return k;
  const unpinned = { ...k, t1: setDma(k.t1, i, { ...d, pin: null }) };
  return k.t1.domain ? unpinned : chargeDma(unpinned, i, -1);
}

// ---------------------------------------------------------------- removal and teardown

/**
 * vfio_remove_dma(): WARN_ON(!RB_EMPTY_ROOT(&dma->pfn_list)), then unmap and
 * unpin the IOMMU mapping with its uncharge (vfio_unmap_unpin ->
 * vfio_lock_acct(-unlocked, async): skipped when the mm is dead), and free
 * the dma. A page still in the pfn_list is never put: it stays pinned, and
 * its charge (if any) stays on the mm, with nothing left that refers to it.
 */
export function removeDma(k: Kstate, i: number, design: Type1Design): Kstate {
  const d = k.t1.dmas[i];
  if (!d.mapped) return k;
  const iommuPages = k.t1.domain ? 1 : 0;
  const uncharged = design.mutate === 'skipUncharge' ? k : chargeDma(k, i, -Math.min(iommuPages, d.lockedVm));
  const t1 = setDma(uncharged.t1, i, NO_DMA);
  if (d.pin === null) return { mms: uncharged.mms, t1 };
  // Without a domain the driver's pin was charged to dma->mm (if it lived), and stays charged.
  const charged = !k.t1.domain && d.lockedVm > 0 ? d.mm : null;
  return { mms: uncharged.mms, t1: { ...t1, leaked: addLeak(t1.leaked, { dma: i, charged }) } };
}

/** vfio_iommu_unmap_unpin_all(): every dma removed, whatever is pinned (iommu release, last group detach). */
export const removeAll = (k: Kstate, design: Type1Design): Kstate =>
  k.t1.dmas.reduce((acc, _d, i) => removeDma(acc, i, design), k);

/**
 * vfio_iommu_unmap_unpin_reaccount(): the last IOMMU domain went away while
 * emulated groups remain. The IOMMU pins are dropped and uncharged, and only
 * the pages drivers pinned are charged again (locked - unlocked per dma).
 */
export function reaccount(k: Kstate): Kstate {
  let acc: Kstate = { ...k, t1: { ...k.t1, domain: false } };
  acc.t1.dmas.forEach((d, i) => {
    if (d.mapped) acc = chargeDma(acc, i, (d.pin ? 1 : 0) - d.lockedVm);
  });
  return acc;
}

// ---------------------------------------------------------------- groups and devices

/**
 * VFIO_GROUP_SET_CONTAINER of an emulated group: a group already in a
 * container is EINVAL (VGRP:vfio_group_ioctl_set_container, before the
 * iommu driver is asked); then T1:vfio_iommu_type1_attach_group, which in 7.3
 * refuses while any vaddr is invalid ("Attach could require pinning":
 * EBUSY). Nothing is pinned (an emulated group has no domain).
 */
export function attachEmulated(t1: Type1, group: string, kernel: Type1Kernel): { t1: Type1; ret: Ret } {
  if (t1.emulated.includes(group)) return { t1, ret: 'EINVAL' };
  if (kernel === '7.3' && vaddrInvalidCount(t1) > 0) return { t1, ret: 'EBUSY' };
  return { t1: { ...t1, emulated: sortedAdd(t1.emulated, group) }, ret: '0' };
}

/**
 * vfio_iommu_type1_detach_group() of an emulated group. The last group of a
 * container with no domain left takes every dma with it
 * (WARN_ON(!list_empty(device_list)) + vfio_iommu_unmap_unpin_all).
 */
export function detachEmulated(k: Kstate, group: string, design: Type1Design): Kstate {
  const t1 = { ...k.t1, emulated: without(k.t1.emulated, group) };
  if (t1.emulated.length === 0 && !t1.domain) return removeAll({ ...k, t1 }, design);
  return { ...k, t1 };
}

/**
 * vfio_iommu_type1_detach_group() of the IOMMU-backed group, the only one
 * with a domain: with emulated groups left the accounting moves to their
 * pins (reaccount); without, everything is unmapped and unpinned.
 */
export function detachDomain(k: Kstate, design: Type1Design): Kstate {
  if (k.t1.emulated.length > 0) return reaccount(k);
  // vfio_iommu_unmap_unpin_all() runs while the domain is still listed, so it unpins and uncharges.
  const removed = removeAll(k, design);
  return { ...removed, t1: { ...removed.t1, domain: false } };
}

/** The list_add/list_del of register_device/unregister_device (both locks held by the caller). */
export const addDevice = (t1: Type1, dev: string): Type1 => ({ ...t1, devices: sortedAdd(t1.devices, dev) });
export const removeDevice = (t1: Type1, dev: string): Type1 => ({ ...t1, devices: without(t1.devices, dev) });

// ---------------------------------------------------------------- the unmap walk

/** The state of one vfio_dma_do_unmap() call between its lock windows. */
export interface Walk {
  /** The dmas the UNMAP range covers, in iova order. */
  readonly range: readonly number[];
  /** dma_last and retries of the BUG_ON(++retries > 10) loop. */
  readonly dmaLast: number | null;
  readonly retries: number;
  /** seed 002's `advised`: dmas already announced by this call ('always'), or [first] ('always-once'). */
  readonly advised: readonly number[];
  /** The dma whose notification is in progress. */
  readonly target: number | null;
  /** How many devices of device_list have had their callback (the list cannot change under device_list_lock). */
  readonly called: number;
}

export const newWalk = (range: readonly number[]): Walk => ({
  range,
  dmaLast: null,
  retries: 0,
  advised: [],
  target: null,
  called: 0,
});

export type WalkOutcome =
  /** Every dma in the range is gone: the call returns 0. */
  | { readonly kind: 'done'; readonly k: Kstate }
  /** vfio_notify_dma_unmap() for walk.target: take device_list_lock, drop iommu->lock. */
  | { readonly kind: 'notify'; readonly k: Kstate; readonly walk: Walk }
  /** BUG_ON(++retries > maxRetries) fired. */
  | { readonly kind: 'bug'; readonly k: Kstate; readonly walk: Walk };

const needsNotify = (d: Dma, i: number, w: Walk, design: Type1Design): boolean => {
  if (design.mutate === 'removeWithPins') return false;
  if (d.pin !== null) return true;
  if (design.notify === 'always') return !w.advised.includes(i);
  if (design.notify === 'always-once') return w.advised.length === 0;
  return false;
};

/**
 * The part of vfio_dma_do_unmap() that runs under iommu->lock, from `again:`
 * to the next lock drop: walk the range in iova order, remove each dma that
 * needs no notification, and stop at the first that does. Its retry
 * bookkeeping is the kernel's: the same dma as last time counts a retry, a
 * new one resets. With an empty device list vfio_notify_dma_unmap() returns
 * at once without dropping the lock and the loop spins here until the BUG.
 */
export function walkUnmap(k0: Kstate, w0: Walk, design: Type1Design): WalkOutcome {
  let k = k0;
  let w = w0;
  for (;;) {
    const i = w.range.find((j) => k.t1.dmas[j].mapped && needsNotify(k.t1.dmas[j], j, w, design));
    // Everything before the first dma needing a notification is removed (rb-tree order).
    for (const j of w.range) {
      if (j === i) break;
      k = removeDma(k, j, design);
    }
    if (i === undefined) return { kind: 'done', k };
    const retries = w.dmaLast === i ? w.retries + 1 : 0;
    w = { ...w, dmaLast: i, retries, advised: w.advised.includes(i) ? w.advised : [...w.advised, i] };
    if (retries > design.maxRetries) return { kind: 'bug', k, walk: w };
    if (k.t1.devices.length > 0) return { kind: 'notify', k, walk: { ...w, target: i, called: 0 } };
  }
}

/**
 * Another thread's walk, after this step freed dmas it may remember: a freed
 * dma is a new object when mapped again (unless Type1Design.dmaAddressReuse),
 * so dma_last and `advised` no longer refer to it.
 */
export function forgetFreed(w: Walk, before: Type1, after: Type1, design: Type1Design): Walk {
  if (design.dmaAddressReuse) return w;
  const freed = (i: number) => before.dmas[i].mapped && !after.dmas[i].mapped;
  const lastFreed = w.dmaLast !== null && freed(w.dmaLast);
  const advised = w.advised.filter((i) => !freed(i));
  if (!lastFreed && advised.length === w.advised.length) return w;
  return { ...w, advised, ...(lastFreed && { dmaLast: null, retries: 0 }) };
}
