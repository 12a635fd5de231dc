/**
 * iommufd's page objects (struct iopt_pages) and their accounting, as plain
 * data shared by the IOAS model (machines/ioas.ts) and the exec-handoff model
 * (machines/exec-handoff.ts).
 *
 * The kernel functions here work on a private copy of the model context (the
 * caller clones it inside an `assign`), so they may update it in place; from
 * XState's point of view every assign stays pure.
 *
 * Abstraction: a pages object is pinned all or nothing (npinned is 0 or
 * npages): the models pin whole areas only, and COPY copies whole areas. This
 * keeps the counters exact while dropping the per-index interval trees.
 */
import { applyRef, type Mm, type MmRefs, type RefOp } from './mm.ts';

/** enum { IOPT_PAGES_ACCOUNT_NONE, _USER, _MM } (io_pagetable.h); the array order is the enum order. */
export const ACCOUNT_MODES = ['none', 'user', 'mm'] as const;
export type AccountMode = (typeof ACCOUNT_MODES)[number];

/** A process (task group leader) as the accounting sees it. */
export interface Proc {
  /** current->mm: changes on exec. */
  readonly mm: string;
  /** current_user(): the user_struct whose locked_vm USER mode charges. */
  readonly uid: string;
  /** task_rlimit(task, RLIMIT_MEMLOCK) in pages. */
  readonly rlimit: number;
  /** capable(CAP_IPC_LOCK): pages it maps are IOPT_PAGES_ACCOUNT_NONE (pages.c:iopt_alloc_pages). */
  readonly cap: boolean;
}

/** struct iopt_pages, reduced to what the protocols read. */
export interface Pages {
  /** IOPT_ADDRESS_USER (IOMMU_IOAS_MAP of a user VA) or IOPT_ADDRESS_FILE (IOMMU_IOAS_MAP_FILE of a memfd). */
  readonly type: 'user' | 'file';
  readonly mode: AccountMode;
  /** pages->source_mm (mmgrab'd: the struct outlives exec, mmget_not_zero() on it fails). */
  mm: string;
  /** pages->source_task (a pid): whose RLIMIT_MEMLOCK is checked. */
  task: string;
  /** pages->source_user (a uid). */
  user: string;
  readonly npages: number;
  npinned: number;
  lastNpinned: number;
}

/** The accounting slice of a model's context. */
export interface Acct {
  procs: Record<string, Proc>;
  mms: Record<string, Mm>;
  /** user_struct->locked_vm per uid (USER mode, "io_uring style"). */
  users: Record<string, number>;
  /** Pages objects by id; null marks a freed id (ids are reused lowest first, so equal states encode equally). */
  pages: (Pages | null)[];
  /** Kernel WARN_ON sites reached so far (sorted, unique): a reached WARN is a broken kernel assumption. */
  warn: string[];
  /** The patched kernel's fixes (absent: 7.3.4 as released). Constant for a design. */
  readonly fixes?: readonly KernelFix[];
  /**
   * mm_users and mm_count per mm, for the models that check them
   * (exec-handoff); absent elsewhere, and then the reference operations below
   * change nothing.
   */
  mmRefs?: Record<string, MmRefs>;
}

export const hasFix = (a: Pick<Acct, 'fixes'>, f: KernelFix): boolean => a.fixes?.includes(f) ?? false;

/**
 * Kernel patches a design runs with (conformance/kernel/patches/, spec/findings/):
 * - 'F1': pages.c:update_mm_locked_vm() treats the uncharge of a dead mm as done (its locked_vm
 *   went with it), so CHANGE_PROCESS after exec cannot fail half way and last_npinned follows;
 * - 'F2': ioas.c:need_charge_update() moves NONE pages when the mm changes, so their
 *   pinned_vm moves with source_mm.
 */
export type KernelFix = 'F1' | 'F2';

export type Errno = 'ENOMEM' | 'EINVAL' | 'EFAULT' | 'EBUSY' | 'ENOENT' | 'EEXIST' | 'EDEADLOCK' | 'ENXIO';

/** Kernel WARN sites the models can reach, named file:function:condition. */
export const WARN = {
  unmapTries: 'io_pagetable.c:iopt_unmap_iova_range:tries>100',
  unpinnedAhead: 'pages.c:update_unpinned:npinned>last_npinned',
  userUnderflow: 'pages.c:decr_user_locked_vm:locked_vm<npages',
  mmUnderflow: 'mm/util.c:__account_locked_vm:pages>locked_vm',
  changeProcessUncharge: 'ioas.c:iommufd_ioas_change_process:WARN_ON(r)',
} as const;

export function warn(a: Acct, site: string): void {
  if (!a.warn.includes(site)) a.warn = [...a.warn, site].sort();
}

/** The mm of a process, or null for a kernel context (an access's driver thread: every mm is remote). */
export const mmOf = (a: Acct, pid: string | null): string | null => (pid === null ? null : a.procs[pid].mm);

/**
 * pages.c:iopt_pages_update_pinned(pages, npages, inc, user). `reader` is true
 * when a pfn_reader_user is passed (the pin paths): then update_mm_locked_vm()
 * already holds the mm (or pins a file) and skips mmget_not_zero(); with
 * user == NULL (unpin, CHANGE_PROCESS) a remote source_mm that is dead gives
 * EINVAL and nothing changes, last_npinned included; with fix F1 an uncharge of a
 * dead mm skips only the locked_vm update (the mm's counters went with it).
 */
export function updatePinned(
  a: Acct,
  p: Pages,
  npages: number,
  inc: boolean,
  current: string | null,
  reader: boolean,
): Errno | null {
  if (p.mode === 'user') {
    const cur = a.users[p.user] ?? 0;
    if (inc) {
      // incr_user_locked_vm: checked against the *source task's* rlimit.
      if (cur + npages > a.procs[p.task].rlimit) return 'ENOMEM';
      a.users = { ...a.users, [p.user]: cur + npages };
    } else if (cur < npages) {
      warn(a, WARN.userUnderflow); // decr_user_locked_vm returns without subtracting
    } else {
      a.users = { ...a.users, [p.user]: cur - npages };
    }
  } else if (p.mode === 'mm') {
    const m = a.mms[p.mm];
    // update_mm_locked_vm: mmget_not_zero() only for a remote mm without a reader.
    const dead = !reader && p.mm !== current && !m.alive;
    if (dead && (inc || !hasFix(a, 'F1'))) return 'EINVAL';
    if (dead) {
      // F1: `return inc ? -EINVAL : 0;` nothing to uncharge.
    } else if (inc) {
      // __account_locked_vm(..., bypass_rlim=false): the rlimit applies even with CAP_IPC_LOCK.
      if (m.lockedVm + npages > a.procs[p.task].rlimit) return 'ENOMEM';
    } else if (npages > m.lockedVm) {
      warn(a, WARN.mmUnderflow); // the kernel's unsigned counter wraps; the model goes negative
    }
    if (!dead) a.mms = { ...a.mms, [p.mm]: { ...m, lockedVm: m.lockedVm + (inc ? npages : -npages) } };
  }
  p.lastNpinned = p.npinned;
  // atomic64_add/sub(npages, &pages->source_mm->pinned_vm): every mode, no liveness check.
  const m = a.mms[p.mm];
  a.mms = { ...a.mms, [p.mm]: { ...m, pinnedVm: m.pinnedVm + (inc ? npages : -npages) } };
  return null;
}

/** pages.c:update_unpinned(): uncharge what was unpinned since the last update; errors are ignored. */
export function updateUnpinned(a: Acct, p: Pages, current: string | null): void {
  if (p.npinned > p.lastNpinned) {
    warn(a, WARN.unpinnedAhead);
    return;
  }
  if (p.npinned === p.lastNpinned) return;
  updatePinned(a, p, p.lastNpinned - p.npinned, false, current, false);
}

/**
 * Pin every page of a pages object and charge it (pfn_reader_user_pin, then
 * pfn_reader_user_update_pinned). A user-VA pages whose remote source_mm is
 * dead gives EFAULT (mmget_not_zero in pfn_reader_user_pin); a file pins
 * through memfd_pin_folios and needs no mm. A failed charge unpins again.
 */
export function pinAll(a: Acct, p: Pages, current: string | null): Errno | null {
  if (p.npinned === p.npages) return null;
  if (p.type === 'user' && p.mm !== current && !a.mms[p.mm].alive) return 'EFAULT';
  p.npinned = p.npages;
  if (p.npinned === p.lastNpinned) return null;
  if (p.npinned < p.lastNpinned) {
    updatePinned(a, p, p.lastNpinned - p.npinned, false, current, true);
    return null;
  }
  const err = updatePinned(a, p, p.npinned - p.lastNpinned, true, current, true);
  if (err) p.npinned = 0; // the error unwind unpins what was just pinned
  return err;
}

/** Unpin every page (iopt_pages_unfill_xarray / iopt_area_unfill_domain) and uncharge it. */
export function unpinAll(a: Acct, p: Pages, current: string | null): void {
  if (p.npinned === 0) return;
  p.npinned = 0;
  updateUnpinned(a, p, current);
}

/**
 * mmget/mmput/mmgrab/mmdrop on `mm` when the model tracks reference counts.
 * An mmput that drops mm_users to 0 is __mmput(): exit_mmap() tears the
 * address space down, so mmget_not_zero() fails from then on.
 */
export function mmRef(a: Acct, mm: string, op: RefOp): void {
  if (!a.mmRefs) return;
  a.mmRefs = applyRef(a.mmRefs, mm, op);
  if (op === 'mmput' && a.mmRefs[mm].users === 0 && a.mms[mm]?.alive) {
    a.mms = { ...a.mms, [mm]: { ...a.mms[mm], alive: false } };
  }
}

/** pages.c:iopt_alloc_pages(): the caller becomes the source; CAP_IPC_LOCK gives NONE, else USER, upgraded to MM by the ctx (io_pagetable.c:iopt_map_common). */
export function allocPages(
  a: Acct,
  type: Pages['type'],
  pid: string,
  ctxMode: 'user' | 'mm',
  npages: number,
): number {
  const proc = a.procs[pid];
  const mode: AccountMode = proc.cap ? 'none' : ctxMode;
  const p: Pages = { type, mode, mm: proc.mm, task: pid, user: proc.uid, npages, npinned: 0, lastNpinned: 0 };
  mmRef(a, proc.mm, 'mmgrab'); // pages.c:iopt_alloc_pages: mmgrab(pages->source_mm)
  const free = a.pages.indexOf(null);
  if (free >= 0) {
    a.pages = a.pages.map((x, i) => (i === free ? p : x));
    return free;
  }
  a.pages = [...a.pages, p];
  return a.pages.length - 1;
}

/** kref_put on the last reference: iopt_release_pages (trailing freed ids are trimmed so equal states encode equally). */
export function freePages(a: Acct, id: number): void {
  const p = a.pages[id];
  if (p) mmRef(a, p.mm, 'mmdrop'); // pages.c:iopt_release_pages: mmdrop(pages->source_mm)
  const next = a.pages.map((x, i) => (i === id ? null : x));
  while (next.length > 0 && next[next.length - 1] === null) next.pop();
  a.pages = next;
}

/**
 * exec() or exit(): the process drops its mm_users reference (exec_mmap() /
 * exit_mm() → mmput), after which the old mm is dead for every later
 * mmget_not_zero(); exec gives it a fresh one.
 */
export function killProcMm(a: Acct, pid: string, newMm: string | null): void {
  const old = a.procs[pid].mm;
  if (a.mmRefs) mmRef(a, old, 'mmput');
  else a.mms = { ...a.mms, [old]: { ...a.mms[old], alive: false } };
  if (newMm !== null) {
    a.mms = { ...a.mms, [newMm]: { alive: true, lockedVm: 0, pinnedVm: 0 } };
    mmRef(a, newMm, 'mmget');
    a.procs = { ...a.procs, [pid]: { ...a.procs[pid], mm: newMm } };
  }
}

/** Deep copy of plain model data, so a kernel function can update its own copy in place. */
export const clone = <T>(x: T): T => structuredClone(x);
