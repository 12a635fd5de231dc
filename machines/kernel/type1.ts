/**
 * The VFIO type1 IOMMU backend (drivers/vfio/vfio_iommu_type1.c) as plain
 * data and pure functions: the dma list, each dma's vaddr and owner mm, the
 * pages an emulated (mdev) device pinned (pfn_list), locked_vm accounting,
 * the device list that DMA-unmap notifications go to, and the
 * vfio_dma_do_unmap() walk with its notify-and-retry loop.
 *
 * Shared by the container, device-close and exec-handoff models. The last
 * part ("Owner-change proposals") holds the ioctls of the live-update
 * threads that never landed: seed 000's CHANGE_MM and Steve Sistare's V1
 * series "vfio: change dma owner" (Dec 2022: VFIO_CHANGE_DMA_OWNER, the
 * redefined VFIO_DMA_MAP_FLAG_VADDR, close_dma_owner), beside the in-tree
 * VADDR owner change (vfio_change_dma_owner) they would replace. Everything
 * here runs under iommu->lock in the kernel, so each function is one atomic
 * step; the paths that drop a lock are assembled from these steps in
 * type1-notify.ts. No default export: this is not a model.
 *
 * Abstractions (spec/container.md "Abstraction"): a dma is one page at a
 * fixed iova, so an UNMAP range is a list of dma indices in iova order and
 * the v2 bisect rule never applies; unless a caller passes its
 * RLIMIT_MEMLOCK (the exec-handoff model does), the rlimit check always
 * passes (the mapper has CAP_IPC_LOCK, which still charges locked_vm); a
 * driver pins a page at most once (pfn_list ref_count: the devices holding
 * the page); a vaddr is a name ('A', 'B'), and what it maps is looked up in
 * the model's AddressSpaces (mm.ts).
 */
import type { Mutex } from './locks.ts';
import {
  type AccountResult,
  type AddressSpaces,
  accountLockedVm,
  type LockLimit,
  type Mms,
  objectAt,
} from './mm.ts';

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

/**
 * A page pinned by vfio_pin_pages() (a struct vfio_pfn in dma->pfn_list),
 * with where it came from (for noPinWithoutPageProvider).
 */
export interface Pin {
  /** The mm whose page tables the first pin walked (vfio_pin_page_external's mm). */
  readonly from: string;
  /** The mm whose address space dma->vaddr belonged to at that moment; null if it was invalid. */
  readonly vaddrMm: string | null;
  /**
   * The devices holding the page, sorted: vpfn->ref_count is their number.
   * The kernel keeps only the count; each driver knows what it pinned, and
   * a compliant one unpins only that.
   */
  readonly refs: readonly string[];
}

/** Does `dev` hold the page of dma `i`? */
export const holds = (t1: Type1, i: number, dev: string): boolean =>
  t1.dmas[i].pin?.refs.includes(dev) ?? false;

/** struct vfio_dma, one page. An unmapped slot is exactly NO_DMA so that equal states encode equally. */
export interface Dma {
  readonly mapped: boolean;
  /** The mm whose address space dma->vaddr refers to; null while vaddr_invalid. */
  readonly vaddrMm: string | null;
  /** dma->vaddr by name; null exactly when vaddrMm is (vaddr_invalid, or no dma). */
  readonly va: string | null;
  /** V1's dma->new_vaddr (patch 6/8): registered by MAP_DMA(VADDR), applied by the next VFIO_CHANGE_DMA_OWNER. */
  readonly newVa: string | null;
  /** The mm pages come from and locked_vm is charged to: dma->mm (7.3), dma->task->mm (6.1). */
  readonly mm: string | null;
  /** dma->locked_vm: pages of this dma charged to `mm`. */
  readonly lockedVm: number;
  /** The pfn_list: the page a driver pinned in this dma, if any. */
  readonly pin: Pin | null;
}

export const NO_DMA: Dma = {
  mapped: false,
  vaddrMm: null,
  va: null,
  newVa: null,
  mm: null,
  lockedVm: 0,
  pin: null,
};

/** The vaddr every dma of the container and device-close models has (they never change a VA, only its mm). */
export const VA0 = 'A';

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
  /**
   * V1's iommu->task (patch 2/8): the one task allowed to pin, whose mm is
   * charged for every dma; null in the in-tree kernels (dma->task, dma->mm).
   */
  readonly task: string | null;
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
    task: null,
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

/** The container and device-close models' mapper: CAP_IPC_LOCK, so the rlimit never refuses (locked_vm is still charged). */
export const CAP_IPC_LOCK: LockLimit = { rlimit: 0, capIpcLock: true };

/**
 * vfio_lock_acct(dma, npage, async=true) / mm_lock_acct() on `mm`: a dead mm
 * (mmget_not_zero fails) is ESRCH and nothing changes; otherwise
 * mm/util.c:__account_locked_vm() (mm.ts) under `limit` (by default
 * CAP_IPC_LOCK: never ENOMEM). A decrement below zero wraps in the kernel
 * (WARN_ON_ONCE, then subtract): a negative number here, which
 * accountingConserved looks for.
 */
export function lockAcct(
  mms: Mms,
  mm: string | null,
  delta: number,
  limit: LockLimit = CAP_IPC_LOCK,
): { mms: Mms; ok: boolean; err?: AccountResult['err'] } {
  if (mm === null) return { mms, ok: false };
  const r = accountLockedVm(mms, mm, delta, limit);
  return { mms: r.mms, ok: r.err === undefined, err: r.err };
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
export function mapDma(k: Kstate, i: number, callerMm: string, va: string = VA0): { k: Kstate; ret: Ret } {
  if (k.t1.dmas[i].mapped) return { k, ret: 'EEXIST' };
  const dma: Dma = { mapped: true, vaddrMm: callerMm, va, newVa: null, mm: callerMm, lockedVm: 0, pin: null };
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
    t1 = setDma(t1, i, { ...d, vaddrMm: null, va: null });
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
 * which the caller does (type1-wait.ts) when `woke` is set. The new owner is
 * charged under `opts.limit` (its RLIMIT_MEMLOCK, or CAP_IPC_LOCK); the VA it
 * passes is `opts.va` and is not checked against anything (T1:vfio_dma_do_map
 * only compares iova and size).
 */
export function mapVaddr(
  k: Kstate,
  i: number,
  callerMm: string,
  design: Type1Design,
  opts: { va?: string; limit?: LockLimit } = {},
): { k: Kstate; ret: Ret; woke: boolean } {
  const d = k.t1.dmas[i];
  const va = opts.va ?? VA0;
  if (!d.mapped) return { k, ret: 'ENOENT', woke: false };
  if (d.vaddrMm !== null) return { k, ret: 'EINVAL', woke: false };
  if (design.kernel === '6.1') {
    return { k: { ...k, t1: setDma(k.t1, i, { ...d, vaddrMm: callerMm, va }) }, ret: '0', woke: true };
  }
  let mms = k.mms;
  if (d.mm !== callerMm) {
    // T1:vfio_change_dma_owner: charge the caller first (mm_lock_acct with its rlimit) ...
    const charged = lockAcct(mms, callerMm, d.lockedVm, opts.limit);
    if (!charged.ok) return { k, ret: 'ENOMEM', woke: false };
    // ... then the old owner, only if mmget_not_zero(dma->mm) succeeds.
    mms = lockAcct(charged.mms, d.mm, -d.lockedVm).mms;
  }
  const owned: Dma = { ...d, vaddrMm: callerMm, va, mm: callerMm };
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
 * vfio_pin_pages() of one page in dma `i` by the registered device `dev`
 * (VMAIN:vfio_pin_pages -> T1:vfio_iommu_type1_pin_pages), under iommu->lock.
 * 7.3: any invalid vaddr is EBUSY (with a WARN_ONCE). 6.1: an invalid vaddr
 * of *this* dma (vfio_find_dma_valid) means sleeping in vfio_wait(): the
 * result 'wait', which the caller turns into a waiter. Then: an empty device
 * list is EINVAL, no dma is EINVAL. A page another device pinned already is
 * shared (vfio_iova_get_vfio_pfn: ref_count++), without looking at the mm or
 * charging again. Otherwise a dead source mm is ENODEV (mmget_not_zero in
 * 7.3, get_task_mm in 6.1), and the new page is charged only when no IOMMU
 * domain exists (do_accounting).
 */
export function pinPage(k: Kstate, i: number, design: Type1Design, dev: string): PinOutcome {
  const { t1 } = k;
  const d = t1.dmas[i];
  if (design.kernel === '7.3' && vaddrInvalidCount(t1) > 0) return { k, ret: 'EBUSY' };
  if (design.kernel === '6.1' && vaddrInvalidCount(t1) > 0) {
    if (!d.mapped) return { k, ret: 'EINVAL' };
    if (d.vaddrMm === null) return { k, ret: 'wait' };
  }
  if (t1.devices.length === 0) return { k, ret: 'EINVAL' };
  if (!d.mapped) return { k, ret: 'EINVAL' };
  if (d.pin !== null) {
    const shared = { ...d.pin, refs: sortedAdd(d.pin.refs, dev) };
    return { k: { ...k, t1: setDma(t1, i, { ...d, pin: shared }) }, ret: '0' };
  }
  if (d.mm === null || !k.mms[d.mm]?.alive) return { k, ret: 'ENODEV' };
  const pinned = { ...k, t1: setDma(t1, i, { ...d, pin: { from: d.mm, vaddrMm: d.vaddrMm, refs: [dev] } }) };
  return { k: t1.domain ? pinned : chargeDma(pinned, i, 1), ret: '0' };
}

/**
 * vfio_unpin_pages() by `dev` of its page in dma `i`
 * (T1:vfio_iommu_type1_unpin_pages -> vfio_unpin_page_external): a page with
 * no vpfn is skipped silently (and the model's drivers unpin only what they
 * hold); vfio_iova_put_vfio_pfn drops one reference, and only the last one
 * frees the page, with the uncharge only without an IOMMU domain, and only
 * if dma->mm lives.
 */
export function unpinPage(k: Kstate, i: number, dev: string): Kstate {
  const d = k.t1.dmas[i];
  if (!d.mapped || d.pin === null || !d.pin.refs.includes(dev)) return k;
  const refs = without(d.pin.refs, dev);
  if (refs.length > 0) return { ...k, t1: setDma(k.t1, i, { ...d, pin: { ...d.pin, refs } }) };
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

// ---------------------------------------------------------------- owner-change proposals (seeds 000, 001)

/** Who makes an owner-change call: current->group_leader, current->mm, and how its charge is limited. */
export interface Caller {
  readonly pid: string;
  readonly mm: string;
  readonly limit: LockLimit;
}

/** The mapped dmas' indices. */
const mappedDmas = (t1: Type1): number[] => t1.dmas.flatMap((d, i) => (d.mapped ? [i] : []));

/**
 * Seed 000's CHANGE_MM ("switch all maps to this mm"), which never existed:
 * read as T1:vfio_change_dma_owner over every dma with one charge up front
 * (all or nothing): charge the caller for the dmas it does not own yet,
 * uncharge each old owner that is still alive, move. The vaddrs are not
 * looked at: the caller asserts its address space maps the same memory at
 * the same VAs ("The new process should re-establish the same mappings at
 * the same VA").
 */
export function changeMm(k: Kstate, caller: Caller): { k: Kstate; ret: Ret } {
  const moving = mappedDmas(k.t1).filter((i) => k.t1.dmas[i].mm !== caller.mm);
  const total = moving.reduce((n, i) => n + k.t1.dmas[i].lockedVm, 0);
  let mms = k.mms;
  if (total > 0) {
    const charged = lockAcct(mms, caller.mm, total, caller.limit);
    if (!charged.ok) return { k, ret: 'ENOMEM' };
    mms = charged.mms;
  }
  let t1 = k.t1;
  for (const i of moving) {
    const d = t1.dmas[i];
    mms = lockAcct(mms, d.mm, -d.lockedVm).mms; // skipped when the old mm is dead
    t1 = setDma(t1, i, { ...d, mm: caller.mm, vaddrMm: d.vaddrMm === null ? null : caller.mm });
  }
  return { k: { t1, mms }, ret: '0' };
}

/**
 * How the model reads VFIO_CHANGE_DMA_OWNER:
 * - 'v1': the V1 series as posted. MAP_DMA(VADDR) overwrites dma->new_vaddr
 *   (6/8: `dma->new_vaddr = vaddr`), from any process holding the container;
 *   change_dma_owner() (8/8) returns ESRCH if get_task_mm(iommu->task)
 *   fails, then checks every dma with same_file_mapping() (ENXIO) before
 *   "if any vaddrs change, all must change" (EINVAL).
 * - 'norestage': this model's earlier reading, from the thread alone: a
 *   second registration of a dma is EINVAL ("there is no interface to cancel
 *   the new vaddr's"), and EINVAL is checked before ENXIO.
 * - 'nocheck': the array form as this model first read it: the caller's
 *   vaddrs are taken on trust (no same_file_mapping()).
 */
export type DmaOwnerReading = 'v1' | 'norestage' | 'nocheck';

/**
 * V1 6/8, VFIO_IOMMU_MAP_DMA with VFIO_DMA_MAP_FLAG_VADDR: "prepare to change
 * the base virtual address for iova to vaddr ... The change takes effect
 * after the next call to VFIO_CHANGE_DMA_OWNER". No dma is ENOENT.
 */
export function stageVaddr(
  t1: Type1,
  i: number,
  va: string,
  reading: DmaOwnerReading,
): { t1: Type1; ret: Ret } {
  const d = t1.dmas[i];
  if (!d.mapped) return { t1, ret: 'ENOENT' };
  if (reading === 'norestage' && d.newVa !== null) return { t1, ret: 'EINVAL' };
  return { t1: setDma(t1, i, { ...d, newVa: va }), ret: '0' };
}

/**
 * V1 8/8 same_file_mapping(mm1, vaddr1, mm2, vaddr2): both VAs lie in a
 * shared file mapping of the same inode, offset, length and flags. Here: both
 * name the same memory object, and it is the guest memfd ('G'; anything else
 * stands for memory that is not that file).
 */
export const sameFileMapping = (
  as: AddressSpaces,
  mm1: string,
  va1: string | null,
  mm2: string,
  va2: string | null,
): boolean => {
  const o = objectAt(as, mm1, va1);
  return o === 'G' && objectAt(as, mm2, va2) === o;
};

/**
 * V1 8/8 change_dma_owner(), under iommu->lock: every dma moves to the caller
 * and its new vaddr (if one was staged) takes effect, or nothing changes.
 * `taskMm` is get_task_mm(): the mm of a live process, null once it exited.
 * The charge is mm_lock_vm(new_task, new_mm, +npages) over every dma, then
 * mm_lock_vm(old_task, old_mm, -npages) ("should always succeed"); when the
 * caller already owns the dmas both go to the same mm, so the caller needs
 * room for twice its pages for a moment.
 */
export function changeDmaOwner(
  k: Kstate,
  caller: Caller,
  taskMm: (pid: string) => string | null,
  as: AddressSpaces,
  reading: DmaOwnerReading,
): { k: Kstate; ret: Ret } {
  const oldTask = k.t1.task;
  if (oldTask === null) return { k, ret: '0' }; // nothing mapped, nothing to do
  const oldMm = taskMm(oldTask);
  if (oldMm === null) return { k, ret: 'ESRCH' }; // "owning task is dead"
  const idx = mappedDmas(k.t1);
  const dmas = idx.map((i) => k.t1.dmas[i]);
  const staged = dmas.filter((d) => d.newVa !== null).length;
  const partial = staged > 0 && staged < dmas.length;
  const mismatch =
    reading !== 'nocheck' && dmas.some((d) => !sameFileMapping(as, oldMm, d.va, caller.mm, d.newVa ?? d.va));
  if (reading === 'norestage' && partial) return { k, ret: 'EINVAL' };
  if (mismatch) return { k, ret: 'ENXIO' };
  if (partial) return { k, ret: 'EINVAL' };
  const npages = dmas.reduce((n, d) => n + d.lockedVm, 0);
  let mms = k.mms;
  if (npages > 0) {
    const charged = lockAcct(mms, caller.mm, npages, caller.limit);
    if (!charged.ok) return { k, ret: 'ENOMEM' };
    mms = lockAcct(charged.mms, oldMm, -npages).mms;
  }
  let t1: Type1 = { ...k.t1, task: caller.pid };
  for (const i of idx) {
    const d = t1.dmas[i];
    const va = d.newVa ?? d.va;
    t1 = setDma(t1, i, { ...d, va, newVa: null, vaddrMm: caller.mm, mm: caller.mm });
  }
  return { k: { t1, mms }, ret: '0' };
}

/**
 * Seed 001's alternative, in V1's code: one VFIO_CHANGE_DMA_OWNER carrying
 * (iova, new vaddr) for the dmas in `entries` (null: not in the array). The
 * entries stand in for staged vaddrs, so the checks are change_dma_owner()'s
 * (an array that misses a dma is "some but not all": EINVAL); nothing stays
 * staged whatever the result.
 */
export function changeDmaOwnerArray(
  k: Kstate,
  caller: Caller,
  taskMm: (pid: string) => string | null,
  as: AddressSpaces,
  entries: readonly (string | null)[],
  reading: DmaOwnerReading,
): { k: Kstate; ret: Ret } {
  const t1 = { ...k.t1, dmas: k.t1.dmas.map((d, i) => (d.mapped ? { ...d, newVa: entries[i] ?? null } : d)) };
  const r = changeDmaOwner({ ...k, t1 }, caller, taskMm, as, reading);
  return r.ret === '0' ? r : { k, ret: r.ret };
}

/**
 * V1 3/8 + 4/8: a process's mm closes (exit or exec; its canary vma's close
 * callback) and vfio_iommu_type1_close_dma_owner() runs in it: if it is
 * iommu->task, vfio_iommu_unmap_unpin_all() removes every dma. Each uncharge
 * goes through vfio_lock_acct(async): get_task_mm(iommu->task), which is
 * `ownerMmNow`: null for an exiting task (-ESRCH, nothing uncharged), the new
 * mm after exec (which was never charged: the counter wraps). iommu->task
 * stays set (only an UNMAP that empties the list, or release, clears it).
 */
export function closeDmaOwner(k: Kstate, pid: string, ownerMmNow: string | null): Kstate {
  if (k.t1.task !== pid) return k;
  let mms = k.mms;
  for (const i of mappedDmas(k.t1)) {
    if (ownerMmNow !== null) mms = lockAcct(mms, ownerMmNow, -k.t1.dmas[i].lockedVm).mms;
  }
  return { mms, t1: { ...k.t1, dmas: k.t1.dmas.map((d) => (d.mapped ? NO_DMA : d)) } };
}

/** VFIO_IOMMU_UNMAP_DMA of one whole dma (no pins, so no notification): vfio_remove_dma(). */
export function unmapOne(k: Kstate, i: number, design: Type1Design): { k: Kstate; ret: Ret } {
  if (!k.t1.dmas[i].mapped) return { k, ret: '0' }; // an empty range unmaps nothing
  return { k: removeDma(k, i, design), ret: '0' };
}
