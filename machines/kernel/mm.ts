/**
 * Processes' address spaces (mm_struct) and the locked_vm / pinned_vm
 * counters that both VFIO type1 and iommufd charge. Pure functions over plain
 * data, shared by the container and iommufd models.
 */

export interface Mm {
  /** False once the process exited or exec'd: mmget_not_zero() fails from then on. */
  readonly alive: boolean;
  /** mm->locked_vm in pages (VmLck). */
  readonly lockedVm: number;
  /** mm->pinned_vm in pages (VmPin). */
  readonly pinnedVm: number;
}

export type Mms = Readonly<Record<string, Mm>>;

export const liveMm = (): Mm => ({ alive: true, lockedVm: 0, pinnedVm: 0 });

export interface LockLimit {
  /** RLIMIT_MEMLOCK in pages. */
  readonly rlimit: number;
  /** CAP_IPC_LOCK bypasses the rlimit check, but locked_vm is still charged. */
  readonly capIpcLock: boolean;
}

export type AccountResult =
  { readonly mms: Mms; readonly err?: undefined } | { readonly mms: Mms; readonly err: 'ENOMEM' | 'ESRCH' };

/**
 * mm/util.c:__account_locked_vm(), reached through mmget_not_zero() by its
 * callers (vfio_lock_acct, mm_lock_acct): a dead mm is ESRCH and nothing
 * changes; an increment over the rlimit without CAP_IPC_LOCK is ENOMEM. A
 * decrement below zero is not clamped: the kernel does
 * WARN_ON_ONCE(pages > locked_vm) and subtracts anyway, so the unsigned
 * counter wraps; here it goes negative, for invariants to catch.
 */
export function accountLockedVm(mms: Mms, mm: string, delta: number, limit: LockLimit): AccountResult {
  const cur = mms[mm];
  if (!cur?.alive) return { mms, err: 'ESRCH' };
  const next = cur.lockedVm + delta;
  if (delta > 0 && !limit.capIpcLock && next > limit.rlimit) return { mms, err: 'ENOMEM' };
  return { mms: { ...mms, [mm]: { ...cur, lockedVm: next } } };
}

/** atomic64_add(npages, &mm->pinned_vm): no limit, no liveness check (the mm is mmgrab'd). */
export function addPinnedVm(mms: Mms, mm: string, delta: number): Mms {
  const cur = mms[mm];
  if (!cur) return mms;
  return { ...mms, [mm]: { ...cur, pinnedVm: cur.pinnedVm + delta } };
}

/** exit() or exec(): the old mm is gone for every later mmget_not_zero(). */
export function killMm(mms: Mms, mm: string): Mms {
  const cur = mms[mm];
  if (!cur) return mms;
  return { ...mms, [mm]: { ...cur, alive: false } };
}
