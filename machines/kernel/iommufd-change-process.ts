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
  mmRef,
  type Pages,
  type Proc,
  updatePinned,
  WARN,
  warn,
} from './iommufd-pages.ts';

export type ChangeImpl = '7.3' | 'draft';

/**
 * The seed-001 draft as written, flaw by flaw (each false/zero gives the
 * draft's evident intent, which is how the model read it before):
 * - `junk`: what the uninitialised `unsigned long all_npinned[3]` held, per
 *   slot (IOPT_PAGES_ACCOUNT_NONE, _USER, _MM);
 * - `mmput`: change_mm() does `mmgrab(new); mmput(old_mm)` on pages that hold
 *   an mmgrab reference (pages.c:iopt_alloc_pages), i.e. drops an mm_users
 *   reference the pages never took, on the old owner's mm;
 * - `literalIoasTest`: iommufd_take_all_iova_rwsem() skips objects with
 *   `obj->type == IOMMUFD_OBJ_IOAS` (7.3: `!=`): it locks no IOAS and
 *   container_of()s every other object (the device, the HWPT of the domain)
 *   as an IOAS.
 */
export interface DraftFlaws {
  readonly junk?: Readonly<Partial<Record<AccountMode, number>>>;
  readonly mmput?: boolean;
  readonly literalIoasTest?: boolean;
}

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

/**
 * ioas.c:change_mm: the pages now belong to the caller; 7.3 does
 * mmgrab(new), mmdrop(old), the draft mmgrab(new), mmput(old) (task and
 * user references are not tracked).
 */
function changeMm(a: Acct, p: Pages, caller: Proc, pid: string, put: 'mmdrop' | 'mmput' = 'mmdrop'): void {
  const old = p.mm;
  p.mm = caller.mm;
  mmRef(a, p.mm, 'mmgrab');
  mmRef(a, old, put);
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
    changeMm(k, p, caller, pid); // unconditional: NONE pages switch owner without moving pinned_vm
  }
  return rc;
}

/**
 * The site the draft's inverted IOAS test reaches: container_of() of a
 * device or HWPT object as a struct iommufd_ioas, then down_write() on what
 * it takes for iopt.iova_rwsem (memory corruption, not a WARN).
 */
export const DRAFT_TYPE_CONFUSION = 'ioas.c(draft):iommufd_take_all_iova_rwsem:container_of(non-IOAS object)';

/**
 * The IOASes the draft's iommufd_take_all_iova_rwsem() holds. With its test
 * as written no IOAS is taken, and every other object in ictx->objects (with
 * a domain attached: the device and the HWPT_PAGING) is treated as one, which
 * the model records as a kernel memory-safety violation and reads as holding
 * nothing (its "areas" are whatever that memory holds).
 */
function draftHeld(k: Iommufd, held: readonly number[], flaws: DraftFlaws): number[] {
  if (!flaws.literalIoasTest) return [...held];
  if (k.domain) warn(k, DRAFT_TYPE_CONFUSION);
  return [];
}

/**
 * The seed-001 draft body. Differences from 7.3: no EBUSY/EINVAL area checks
 * (MAP_FILE did not exist yet), the draft's need_charge_update, and
 * change_mm() only for pages that needed a charge update, with the old
 * owner's uncharge result ignored; plus the flaws of `DraftFlaws`.
 */
function changeProcessDraft(
  k: Iommufd,
  held0: readonly number[],
  pid: string,
  flaws: DraftFlaws,
): Errno | null {
  const caller = k.procs[pid];
  const held = draftHeld(k, held0, flaws);
  const pages = areaPages(k, held) as Pages[];
  // The uninitialised all_npinned[]: whatever the stack held in each slot.
  const all: Record<AccountMode, number> = { none: 0, user: 0, mm: 0, ...flaws.junk };
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
    changeMm(k, p, caller, pid, flaws.mmput ? 'mmput' : 'mmdrop');
  }
  return rc;
}

export function changeProcessBody(
  k: Iommufd,
  held: readonly number[],
  pid: string,
  impl: ChangeImpl,
  flaws: DraftFlaws = {},
): Errno | null {
  return impl === '7.3' ? changeProcess73(k, held, pid) : changeProcessDraft(k, held, pid, flaws);
}
