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

/**
 * What each address space maps at the virtual addresses the protocols use:
 * mm → VA name → memory object ('G' the guest memory memfd, 'X' anything
 * else). A VA is a name ('A' where the VMM mapped guest memory, 'B' another
 * address), not a number: the protocols only ask whether two VAs in two mms
 * name the same object (seeds/001's same_file_mapping()).
 */
export type AddressSpaces = Readonly<Record<string, Readonly<Record<string, string>>>>;

/** The object mapped at `va` in `mm`, or null (nothing mapped there). */
export const objectAt = (as: AddressSpaces, mm: string | null, va: string | null): string | null =>
  mm === null || va === null ? null : (as[mm]?.[va] ?? null);

/**
 * An mm_struct's two reference counts (include/linux/mm_types.h): mm_users
 * (mmget/mmput: the address space is torn down by __mmput() when it reaches
 * 0) and mm_count (mmgrab/mmdrop: the struct itself is freed at 0). `count`
 * leaves out the one reference all users share, so both start at 0 for a
 * struct nobody holds.
 */
export interface MmRefs {
  readonly users: number;
  readonly count: number;
}

export type RefOp = 'mmget' | 'mmput' | 'mmgrab' | 'mmdrop';

const REF_DELTA: Record<RefOp, Partial<MmRefs>> = {
  mmget: { users: 1 },
  mmput: { users: -1 },
  mmgrab: { count: 1 },
  mmdrop: { count: -1 },
};

/** Apply one reference operation to `mm`'s counts (a missing entry counts from zero). */
export function applyRef(refs: Readonly<Record<string, MmRefs>>, mm: string, op: RefOp) {
  const cur = refs[mm] ?? { users: 0, count: 0 };
  const d = REF_DELTA[op];
  return { ...refs, [mm]: { users: cur.users + (d.users ?? 0), count: cur.count + (d.count ?? 0) } };
}
