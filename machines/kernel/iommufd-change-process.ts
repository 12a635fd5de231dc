/**
 * IOMMU_IOAS_CHANGE_PROCESS: the body that runs once every iova_rwsem is held
 * (ioas.c:iommufd_ioas_change_process in 7.3), and the draft Jason Gunthorpe
 * posted in the VFIO_CHANGE_DMA_OWNER thread (seeds/001), so the explorer can
 * compare the two. Lock acquisition (ioas_creation_lock, then every IOAS's
 * iova_rwsem in ID order) is the caller's business: machines/ioas.ts models it
 * step by step; machines/exec-handoff.ts runs the body atomically.
 */
import type { Iommufd } from './iommufd-ioas.ts';
import {
  ACCOUNT_MODES,
  type AccountMode,
  type Acct,
  type Errno,
  hasFix,
  type Pages,
  type Proc,
  updatePinned,
  WARN,
  warn,
} from './iommufd-pages.ts';

export type ChangeImpl = '7.3' | 'draft';

/**
 * ioas.c:need_charge_update (7.3): USER also moves when only the mm changes, "because it also
 * accounts in mm->pinned_vm"; NONE never does, unless the kernel has fix F2 (pinned_vm too).
 */
function needCharge73(p: Pages, caller: Proc, f2: boolean): boolean {
  switch (p.mode) {
    case 'none':
      return f2 && p.mm !== caller.mm;
    case 'mm':
      return p.mm !== caller.mm;
    case 'user':
      return p.user !== caller.uid || p.mm !== caller.mm;
  }
}

/**
 * The draft's need_charge_update (seeds/001): USER pages of the same user are
 * skipped whatever the mm, and since the draft calls change_mm() only for
 * pages that need a charge update, their owner is never switched.
 */
function needChargeDraft(p: Pages, caller: Proc, pid: string): boolean {
  if (p.task === pid && p.mm === caller.mm && p.user === caller.uid) return false;
  switch (p.mode) {
    case 'none':
      return false;
    case 'user':
      return p.user !== caller.uid;
    case 'mm':
      return p.mm !== caller.mm;
  }
}

/** ioas.c:charge_current: charge every mode's total to the caller at once, undoing the modes already charged on failure. */
function chargeCurrent(
  a: Acct,
  all: Record<AccountMode, number>,
  pid: string,
  skipZeroOnUndo: boolean,
): Errno | null {
  const caller = a.procs[pid];
  const tmp = (mode: AccountMode): Pages => ({
    type: 'file',
    mode,
    mm: caller.mm,
    task: pid,
    user: caller.uid,
    npages: 0,
    npinned: 0,
    lastNpinned: 0,
  });
  for (let i = 0; i < ACCOUNT_MODES.length; i++) {
    const mode = ACCOUNT_MODES[i];
    if (!all[mode]) continue;
    const err = updatePinned(a, tmp(mode), all[mode], true, caller.mm, false);
    if (!err) continue;
    for (let j = i - 1; j >= 0; j--) {
      const undo = ACCOUNT_MODES[j];
      // 7.3 skips modes it did not charge; the draft "uncharges" 0 pages, a no-op.
      if (skipZeroOnUndo && !all[undo]) continue;
      updatePinned(a, tmp(undo), all[undo], false, caller.mm, false);
    }
    return err;
  }
  return null;
}

/** ioas.c:change_mm: the pages now belong to the caller (mmgrab/mmdrop, task and user refs). */
function changeMm(p: Pages, caller: Proc, pid: string): void {
  p.mm = caller.mm;
  p.task = pid;
  p.user = caller.uid;
}

/** The pages of the areas in the held IOASes, in for_each_ioas_area order (a shared pages object appears once per area). */
function areaPages(k: Iommufd, held: readonly number[]): (Pages | null)[] {
  return k.areas.filter((x) => held.includes(x.ioas)).map((x) => (x.busy ? null : k.pages[x.pages]));
}

/** 7.3 body, after iommufd_take_all_iova_rwsem. Returns the errno or null for success. */
function changeProcess73(k: Iommufd, held: readonly number[], pid: string): Errno | null {
  const caller = k.procs[pid];
  const visits = areaPages(k, held);
  for (const p of visits) {
    if (!p) return 'EBUSY'; // !area->pages: a map, copy or unmap is in flight
    if (p.type !== 'file') return 'EINVAL'; // only IOMMU_IOAS_MAP_FILE maps can move
  }
  const pages = visits as Pages[];
  const all: Record<AccountMode, number> = { none: 0, user: 0, mm: 0 };
  for (const p of pages) {
    if (!needCharge73(p, caller, hasFix(k, 'F2'))) continue;
    all[p.mode] += p.lastNpinned;
    p.lastNpinned = 0; // dedup of pages shared by several areas (COPY)
  }
  const err = chargeCurrent(k, all, pid, true);
  if (err) {
    for (const p of pages) p.lastNpinned = p.npinned;
    return err;
  }
  let rc: Errno | null = null;
  for (const p of pages) {
    if (needCharge73(p, caller, hasFix(k, 'F2'))) {
      // Uncharge the old owner (also restores last_npinned); a dead remote mm in MM mode fails here.
      const r = updatePinned(k, p, p.npinned, false, caller.mm, false);
      if (r) {
        warn(k, WARN.changeProcessUncharge);
        rc = r;
      }
    }
    changeMm(p, caller, pid); // unconditional: NONE pages switch owner without moving pinned_vm
  }
  return rc;
}

/**
 * The seed-001 draft body. Differences from 7.3: no EBUSY/EINVAL area checks
 * (MAP_FILE did not exist yet), all_npinned[] is not initialised (`junk` is
 * what the stack held, added to the ctx mode's slot), the draft's
 * need_charge_update, and change_mm() only for pages that needed a charge
 * update, with the old owner's uncharge result ignored.
 */
function changeProcessDraft(k: Iommufd, held: readonly number[], pid: string, junk: number): Errno | null {
  const caller = k.procs[pid];
  const pages = areaPages(k, held) as Pages[];
  const all: Record<AccountMode, number> = { none: 0, user: 0, mm: 0 };
  all[k.ctxMode] += junk;
  for (const p of pages) {
    if (!needChargeDraft(p, caller, pid)) continue;
    all[p.mode] += p.lastNpinned;
    p.lastNpinned = 0;
  }
  const rc = chargeCurrent(k, all, pid, false);
  for (const p of pages) {
    if (!needChargeDraft(p, caller, pid)) continue;
    p.lastNpinned = p.npinned;
    if (rc) continue;
    updatePinned(k, p, p.npinned, false, caller.mm, false); // return value ignored in the draft
    changeMm(p, caller, pid);
  }
  return rc;
}

export function changeProcessBody(
  k: Iommufd,
  held: readonly number[],
  pid: string,
  impl: ChangeImpl,
  junk = 0,
): Errno | null {
  return impl === '7.3' ? changeProcess73(k, held, pid) : changeProcessDraft(k, held, pid, junk);
}
