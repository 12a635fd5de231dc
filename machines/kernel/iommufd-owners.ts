/**
 * Who owns each mapping, and the owner-change history variable the
 * invariants read. A mapping is an iommufd area (its pages object's
 * source_mm) or a type1 vfio_dma (dma->mm); the two handoff families share
 * these views so that one set of invariants judges every design.
 */
import type { Iommufd } from './iommufd-ioas.ts';
import type { AddressSpaces } from './mm.ts';
import { type Type1, VA0 } from './type1.ts';

export interface Mapping {
  /** The owner's mm (pages->source_mm or dma->mm). */
  readonly owner: string;
  /** What supplies the pages on a (re)pin: the owner's address space, or a file reference (MAP_FILE). */
  readonly provider: 'mm' | 'file';
  readonly pinned: boolean;
  /** Whether the kernel would take a new pin request on it at all (type1 refuses every pin while a vaddr is invalid). */
  readonly pinnable: boolean;
  /** A vaddr change that is started but not finished (invalid or staged vaddr). */
  readonly pending: boolean;
  /**
   * The VA the kernel reads the pages through in the owner's address space
   * (a type1 dma->vaddr, an iommufd user-VA map's uptr); null for a MAP_FILE
   * area (no VA) and for an invalid vaddr.
   */
  readonly va: string | null;
}

/** The slice of a model's context the views read: iommufd state, and a type1 container and address spaces if the model has them. */
export interface OwnedState {
  readonly k: Iommufd;
  readonly t1?: Type1 | null;
  readonly as?: AddressSpaces;
}

export function mappings(s: OwnedState): Mapping[] {
  const areas = s.k.areas.map((a): Mapping => {
    const p = s.k.pages[a.pages]!;
    return {
      owner: p.mm,
      provider: p.type === 'file' ? 'file' : 'mm',
      pinned: p.npinned > 0,
      // prevent_access (set by an unmap that notified accesses) makes new pins EINVAL.
      pinnable: !a.prevent,
      pending: false,
      // pages->uptr of an IOMMU_IOAS_MAP: the VMM's guest memory VA.
      va: p.type === 'user' ? VA0 : null,
    };
  });
  const mapped = (s.t1?.dmas ?? []).filter((d) => d.mapped);
  // vfio_iommu_type1_pin_pages: EBUSY for every pin while vaddr_invalid_count != 0.
  const anyInvalid = mapped.some((d) => d.vaddrMm === null);
  const dmas = mapped.map((d): Mapping => ({
    owner: d.mm as string,
    provider: 'mm',
    pinned: d.lockedVm > 0,
    pinnable: !anyInvalid,
    pending: d.vaddrMm === null || d.newVa !== null,
    va: d.va,
  }));
  return [...areas, ...dmas];
}

export const providerLive = (s: OwnedState, m: Mapping): boolean =>
  m.provider === 'file' || s.k.mms[m.owner]?.alive === true;

/** What an owner-change call could change: owners, vaddr states and every accounting counter. */
interface OwnerSummary {
  readonly owners: string;
  readonly pending: string;
  /** Accounting counters (mms, users, last_npinned per pages). */
  readonly acct: string;
}

/**
 * History variable (TLA+ style) written by every owner-change call: what it
 * returned, who owns each mapping right after it, and which parts of the
 * state it changed. It stays until the next owner-change call, so the
 * invariants can judge the call from any later state.
 */
export interface OwnerLog {
  readonly by: string;
  readonly call: string;
  readonly ret: string;
  readonly callerMm: string;
  /** Indices (in mappings() order) of the mappings the call was asked to move. */
  readonly targets: readonly number[];
  /** Each mapping's owner right after the call. */
  readonly owners: readonly string[];
  /** What the call changed: 'owners', 'pending' (vaddr states), 'acct' (any counter). */
  readonly changed: readonly ('owners' | 'pending' | 'acct')[];
}

/** JSON with sorted keys, so that equal counters give equal strings whatever order they were written in. */
function stableJson(x: unknown): string {
  if (Array.isArray(x)) return `[${x.map(stableJson).join(',')}]`;
  if (x !== null && typeof x === 'object') {
    const o = x as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${stableJson(o[key])}`)
      .join(',')}}`;
  }
  return JSON.stringify(x);
}

function summary(s: OwnedState): OwnerSummary {
  const ms = mappings(s);
  return {
    owners: stableJson(ms.map((m) => m.owner)),
    pending: stableJson(ms.map((m) => m.pending)),
    acct: stableJson({ mms: s.k.mms, users: s.k.users, last: s.k.pages.map((p) => p?.lastNpinned ?? null) }),
  };
}

/** The log entry of an owner-change call that took the state from `before` to `after`. */
export function ownerLog(
  before: OwnedState,
  after: OwnedState,
  call: Pick<OwnerLog, 'by' | 'call' | 'ret' | 'callerMm' | 'targets'>,
): OwnerLog {
  const b = summary(before);
  const a = summary(after);
  const parts = ['owners', 'pending', 'acct'] as const;
  return {
    ...call,
    owners: mappings(after).map((m) => m.owner),
    changed: parts.filter((p) => a[p] !== b[p]),
  };
}

/** Accounting expected from the pinned pages: per mm pinned_vm and locked_vm, per uid user locked_vm. */
export function expectedCharges(s: OwnedState): {
  lockedVm: Record<string, number>;
  pinnedVm: Record<string, number>;
  users: Record<string, number>;
} {
  const lockedVm: Record<string, number> = {};
  const pinnedVm: Record<string, number> = {};
  const users: Record<string, number> = {};
  const add = (r: Record<string, number>, key: string, n: number) => {
    r[key] = (r[key] ?? 0) + n;
  };
  for (const p of s.k.pages) {
    if (!p) continue;
    add(pinnedVm, p.mm, p.npinned);
    if (p.mode === 'mm') add(lockedVm, p.mm, p.npinned);
    if (p.mode === 'user') add(users, p.user, p.npinned);
  }
  for (const d of s.t1?.dmas ?? []) if (d.mapped && d.mm !== null) add(lockedVm, d.mm, d.lockedVm);
  return { lockedVm, pinnedVm, users };
}
