/**
 * iommufd IOAS objects, areas and the in-kernel access, as plain data with the
 * kernel steps the models take over them (drivers/iommu/iommufd/ioas.c,
 * io_pagetable.c, device.c). Functions named after the kernel function they
 * model update a private copy of the context (see iommufd-pages.ts).
 *
 * Abstraction: an IOAS holds areas at fixed "slots" (one IOVA range each);
 * every area covers a whole pages object; either every IOAS has a domain
 * (pinning at map time, the selftest MOCK_DOMAIN fixture) or none has (lazy
 * pinning by accesses only). domains_rwsem is not modelled: no model attaches
 * or detaches a domain while running.
 */

import { type Acct, clone, type Errno, freePages, type Pages, pinAll, unpinAll } from './iommufd-pages.ts';
import type { RwSem } from './locks.ts';

/** struct iopt_area at one slot of one IOAS. */
export interface Area {
  readonly ioas: number;
  readonly slot: number;
  /** The pages object (the kernel keeps it in a local while area->pages is NULL). */
  readonly pages: number;
  /** area->pages == NULL: "still being setup" or being torn down (io_pagetable.h, struct iopt_area). */
  busy: boolean;
  /** Loaded into the IOAS's domains (iopt_area_fill_domains): holds a pin when there is a domain. */
  filled: boolean;
  /** area->num_accesses: access pins inside this area. */
  accesses: number;
  /** area->prevent_access: set by an unmap that notified accesses; later pins get EINVAL. */
  prevent: boolean;
}

/** struct iommufd_ioas with its object refcount and iopt.iova_rwsem. */
export interface IoasObj {
  readonly id: number;
  /** False between iommufd_object_alloc (XA_ZERO_ENTRY, invisible to xa_for_each) and iommufd_object_finalize. */
  live: boolean;
  /** obj->users: 1 for the xarray, +1 per attached access, +1 for an attached domain's HWPT, +1 while CHANGE_PROCESS holds it. */
  users: number;
  iova: RwSem;
}

/** An in-kernel access (iommufd_access_create + attach), e.g. an emulated device or the selftest access. */
export interface AccessObj {
  ioas: number | null;
  /** Slots of its IOAS it pinned (one item a slot; iommufd_access_pin_pages over the whole area). */
  pins: number[];
  /** Whether its ops->unmap callback unpins what it pinned, as iommufd_access_notify_unmap requires. */
  readonly compliant: boolean;
}

export interface Iommufd extends Acct {
  /** ictx->account_mode (IOMMU_OPTION RLIMIT_MODE): 'user' (the /dev/iommu default) or 'mm'. */
  readonly ctxMode: 'user' | 'mm';
  readonly domain: boolean;
  /** Sorted by id (xarray order). */
  ioas: IoasObj[];
  /** Sorted by (ioas, slot): the iteration order of for_each_ioas_area. */
  areas: Area[];
  /** ictx->ioas_creation_lock. */
  creation: RwSem;
  access: AccessObj | null;
}

export const ioasOf = (k: Iommufd, id: number): IoasObj | undefined => k.ioas.find((i) => i.id === id);
export const liveIoas = (k: Iommufd, id: number): IoasObj | undefined => {
  const i = ioasOf(k, id);
  return i?.live ? i : undefined;
};
export const areaAt = (k: Iommufd, ioas: number, slot: number): Area | undefined =>
  k.areas.find((a) => a.ioas === ioas && a.slot === slot);

/** Whether `actor` could take iova_rwsem of this IOAS for write now (no other holder). */
export const iovaFreeFor = (k: Iommufd, ioas: number, actor: string): boolean => {
  const i = ioasOf(k, ioas);
  return !i || i.iova.writer === null || i.iova.writer === actor;
};

const byPosition = (x: Area, y: Area): number => x.ioas - y.ioas || x.slot - y.slot;

export function insertArea(k: Iommufd, area: Area): void {
  k.areas = [...k.areas, area].sort(byPosition);
}

export function setIoas(k: Iommufd, id: number, f: (i: IoasObj) => IoasObj): void {
  k.ioas = k.ioas.map((i) => (i.id === id ? f(i) : i));
}

/** Does anything still need this pages object pinned: a filled area in a domain, or an access pin. */
export function wantPinned(k: Iommufd, id: number): boolean {
  const areas = k.areas.filter((a) => a.pages === id);
  if (k.domain && areas.some((a) => a.filled)) return true;
  const acc = k.access;
  return acc !== null && areas.some((a) => a.ioas === acc.ioas && acc.pins.includes(a.slot));
}

/** Bring the pin state of a pages object in line with its users (pin on first user, unpin after the last). */
export function syncPins(k: Iommufd, id: number, current: string | null): Errno | null {
  const p = k.pages[id] as Pages;
  if (wantPinned(k, id)) return pinAll(k, p, current);
  unpinAll(k, p, current);
  return null;
}

/** kref_put(&pages->kref): freed when no area refers to it any more. */
export function putPages(k: Iommufd, id: number): void {
  if (!k.areas.some((a) => a.pages === id)) freePages(k, id);
}

/**
 * The end of an area: iopt_area_unfill_domains + iopt_abort_area +
 * iopt_put_pages. The unpin is charged back from `current`'s point of view
 * (update_unpinned runs in the unmapping thread).
 */
export function removeArea(k: Iommufd, ioas: number, slot: number, current: string | null): void {
  const area = areaAt(k, ioas, slot);
  if (!area) return;
  k.areas = k.areas.filter((a) => a !== area);
  syncPins(k, area.pages, current);
  putPages(k, area.pages);
}

/**
 * The access pin of one whole area (iommufd_access_pin_pages → iopt_area_add_access): with no
 * domain holding the pages, PAGES:pfn_reader_user_pin pins them and PAGES:iopt_pages_update_pinned
 * charges them (PAGES:incr_user_locked_vm in USER mode).
 */
export function accessPin(k: Iommufd, slot: number): Errno | null {
  const acc = k.access;
  if (!acc || acc.ioas === null) return 'ENOENT';
  const area = areaAt(k, acc.ioas, slot);
  // iopt_for_each_contig_area stops at a missing area or one with pages == NULL: ENOENT.
  if (!area || area.busy) return 'ENOENT';
  if (area.prevent) return 'EINVAL';
  area.accesses += 1;
  k.access = { ...acc, pins: [...acc.pins, slot].sort() };
  // The driver's thread is not the mapper: source_mm is remote (current = null).
  const err = syncPins(k, area.pages, null);
  if (err) {
    area.accesses -= 1;
    k.access = acc;
  }
  return err;
}

/**
 * iommufd_access_unpin_pages of one item (iopt_area_remove_access); the last user of the pages
 * unpins and uncharges them (PAGES:iopt_pages_update_pinned, PAGES:decr_user_locked_vm).
 */
export function accessUnpin(k: Iommufd, slot: number, current: string | null): void {
  const acc = k.access;
  if (!acc || acc.ioas === null || !acc.pins.includes(slot)) return;
  k.access = { ...acc, pins: acc.pins.filter((s) => s !== slot) };
  const area = areaAt(k, acc.ioas, slot);
  if (!area) return;
  area.accesses -= 1;
  syncPins(k, area.pages, current);
}

/** Run `f` on a private copy and return it: how every assign uses the functions above. */
export function update<T>(x: T, f: (copy: T) => void): T {
  const copy = clone(x);
  f(copy);
  return copy;
}
