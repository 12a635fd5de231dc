/**
 * Invariants of the iommufd IOAS protocol (spec/ioas.md). Each is one named
 * predicate over a snapshot, citing the kernel assumption or the seed thread
 * it checks; compound ones are split so a violation names the broken part.
 * They read the owner views of machines/kernel/iommufd-owners.ts, so the
 * exec-handoff model (invariants/exec-handoff.ts) shares them.
 */
import { match, P } from 'ts-pattern';
import type { ModelSnapshot, StatePredicate } from '../explorer/model.ts';
import type { Iommufd } from '../machines/kernel/iommufd-ioas.ts';
import {
  expectedCharges,
  mappings,
  type OwnedState,
  type OwnerLog,
  providerLive,
} from '../machines/kernel/iommufd-owners.ts';
import { WARN } from '../machines/kernel/iommufd-pages.ts';

type Ctx = OwnedState & { readonly log: OwnerLog | null };
type Pred = StatePredicate<Ctx>;

/**
 * Each pinned page has a live provider: an mm that is alive, or a file
 * reference (seeds/000: "the kernel is never left without a page provider
 * for the maps"). A user-VA pages object keeps its pins after its source mm
 * dies, but nothing can re-pin or fault it in again.
 */
export const alwaysPageProvider: Pred = (s) =>
  mappings(s.context).every((m) => !m.pinned || providerLive(s.context, m));

/**
 * Every mapping the kernel would accept a new pin on has a live provider, so
 * a device's pin request cannot fail for want of one (pages.c:pfn_reader_user_pin
 * gives EFAULT on a dead remote mm; type1 vfio_pin_page_external ENODEV).
 * Weaker than alwaysPageProvider where pins are refused outright (type1 while
 * a vaddr is invalid: vfio_iommu_type1_pin_pages EBUSY).
 */
export const pinnableHasProvider: Pred = (s) =>
  mappings(s.context).every((m) => !m.pinnable || providerLive(s.context, m));

/** After a successful owner-change call, every mapping has one owner (seeds/001: "make the whole thing atomic"). */
export const atomicOwnerChange: Pred = (s) =>
  match(s.context.log)
    .with(null, () => true)
    .with({ ret: '0' }, (log) => new Set(log.owners).size <= 1)
    .otherwise(() => true);

/**
 * A failed owner-change call changed nothing, accounting included: the uapi
 * comment of IOMMU_IOAS_CHANGE_PROCESS ("If the ioctl returns a failure
 * status, then nothing is changed") and seeds/001 ("if it fails then nothing changes").
 */
export const failedChangeIsNoop: Pred = (s) =>
  match(s.context.log)
    .with(P.union(null, { ret: '0' }), () => true)
    .otherwise((log) => log.changed.length === 0);

/** A successful owner-change call left every mapping it was asked to move owned by the caller. */
export const changeReachesCaller: Pred = (s) =>
  match(s.context.log)
    .with({ ret: '0' }, (log) => log.targets.every((i) => log.owners[i] === log.callerMm))
    .otherwise(() => true);

/**
 * Per live owner, the charge equals the pinned pages: pinned_vm (every mode)
 * and locked_vm (MM mode, and type1) per mm, user->locked_vm (USER mode) per
 * uid (pages.c:iopt_pages_update_pinned; io_pagetable.h: accounting is per
 * pages object, not per area). A dead mm's counters are not read any more
 * and are left out (type1 deliberately skips uncharging them).
 */
export const accountingConserved: Pred = (s) => {
  const want = expectedCharges(s.context);
  const k = s.context.k;
  const mmsOk = Object.entries(k.mms).every(
    ([name, m]) =>
      !m.alive || (m.lockedVm === (want.lockedVm[name] ?? 0) && m.pinnedVm === (want.pinnedVm[name] ?? 0)),
  );
  const uids = new Set([...Object.keys(k.users), ...Object.keys(want.users)]);
  return mmsOk && [...uids].every((u) => (k.users[u] ?? 0) === (want.users[u] ?? 0));
};

/** No accounting counter goes negative (mm/util.c:__account_locked_vm WARN_ON_ONCE; the kernel's unsigned counters wrap). */
export const accountingNonNegative: Pred = (s) => {
  const k = s.context.k;
  return (
    Object.values(k.mms).every((m) => m.lockedVm >= 0 && m.pinnedVm >= 0) &&
    Object.values(k.users).every((n) => n >= 0)
  );
};

/**
 * Outside a pin or unpin in progress npinned == last_npinned for every pages
 * object: the comment in ioas.c:iommufd_ioas_change_process ("Since we are
 * under all the locks, npinned == last_npinned") and the WARN_ON in
 * pages.c:update_unpinned. A stale last_npinned makes later uncharges wrong.
 */
export const lastNpinnedSynced: Pred = (s) =>
  s.context.k.pages.every((p) => p === null || p.npinned === p.lastNpinned);

/**
 * Access pins live inside areas that count them: an unmap never removes an
 * area an access still pins (iopt_unmap_iova_range notifies and retries;
 * iommufd_access_notify_unmap's contract; WARN_ONs in iopt_area_remove_access
 * and iopt_release_pages).
 */
export const accessPinsInsideAreas: Pred = (s) => {
  const k = s.context.k;
  const acc = k.access;
  const pins = acc?.pins ?? [];
  const inside = pins.every((slot) => (areaOfPin(k, acc!.ioas, slot)?.accesses ?? 0) > 0);
  const counted = k.areas.reduce((n, a) => n + a.accesses, 0) === pins.length;
  return inside && counted;
};

const areaOfPin = (k: Iommufd, ioas: number | null, slot: number) =>
  k.areas.find((a) => a.ioas === ioas && a.slot === slot);

const noWarn =
  (...sites: string[]): Pred =>
  (s) =>
    !s.context.k.warn.some((w) => sites.includes(w));

/** io_pagetable.c:iopt_unmap_iova_range: WARN_ON(tries > 100), the unmapper gives up with EDEADLOCK. */
export const noUnmapRetryWarn = noWarn(WARN.unmapTries);
/** ioas.c:iommufd_ioas_change_process: WARN_ON(r) when uncharging the old owner fails. */
export const noChangeProcessUnchargeWarn = noWarn(WARN.changeProcessUncharge);
/** pages.c:decr_user_locked_vm and mm/util.c:__account_locked_vm underflow WARNs. */
export const noLockedVmUnderflowWarn = noWarn(WARN.userUnderflow, WARN.mmUnderflow);

export const ioasInvariants: Readonly<Record<string, Pred>> = {
  alwaysPageProvider,
  pinnableHasProvider,
  atomicOwnerChange,
  failedChangeIsNoop,
  changeReachesCaller,
  accountingConserved,
  accountingNonNegative,
  lastNpinnedSynced,
  accessPinsInsideAreas,
  noUnmapRetryWarn,
  noChangeProcessUnchargeWarn,
  noLockedVmUnderflowWarn,
};

/** For tests and reports: the snapshot type the predicates take. */
export type IoasSnapshot = ModelSnapshot<Ctx>;
