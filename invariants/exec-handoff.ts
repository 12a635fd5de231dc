/**
 * Properties of the exec-handoff designs (spec/exec-handoff.md). The state
 * invariants are the IOAS ones (invariants/ioas.ts) that make sense for both
 * the type1 and the iommufd designs, plus four of the handoff's own:
 * sameMemory, mmRefcountsBalanced, kernelMemorySafe, mappingsKept.
 * `oneLiveOwner` is the goal state of `recoverable` (AG EF oneLiveOwner);
 * `guestRuns` and `newQemuRuns` are what the QEMU variants' liveness and
 * reachability properties ask for.
 */
import type { ModelSnapshot, StatePredicate } from '../explorer/model.ts';
import { GUEST, type HandoffCtx, NMAPS } from '../machines/handoff/context.ts';
import { DRAFT_TYPE_CONFUSION } from '../machines/kernel/iommufd-change-process.ts';
import { mappings } from '../machines/kernel/iommufd-owners.ts';
import { objectAt } from '../machines/kernel/mm.ts';
import {
  accountingConserved,
  accountingNonNegative,
  alwaysPageProvider,
  atomicOwnerChange,
  changeReachesCaller,
  failedChangeIsNoop,
  lastNpinnedSynced,
  noChangeProcessUnchargeWarn,
  noLockedVmUnderflowWarn,
  pinnableHasProvider,
} from './ioas.ts';

type Pred = StatePredicate<HandoffCtx>;

/**
 * One live process owns every mapping and no vaddr change is half done
 * (no invalid or staged vaddr): the state a VMM must always be able to get
 * back to. seeds/001: "If the change can fail then we can get stuck in a
 * situation where we cannot revert and the fork cannot be exited".
 */
export const oneLiveOwner: Pred = (s) => {
  const ms = mappings(s.context);
  const owners = new Set(ms.map((m) => m.owner));
  if (owners.size !== 1) return false;
  const [owner] = owners;
  return s.context.k.mms[owner]?.alive === true && ms.every((m) => !m.pending);
};

/**
 * Every mapping's VA, read in its owner's address space, names the memory it
 * was mapped from (the guest memfd). seeds/001 (VFIO_CHANGE_DMA_OWNER): "the
 * old vaddr and address space must map to the same memory object as the new
 * vaddr and address space ... else ... dma may target the wrong user pages";
 * V1 8/8 checks it with same_file_mapping(). A dead owner is not read
 * (nothing can fault through it), nor is an invalid vaddr or a MAP_FILE area
 * (no VA).
 */
export const sameMemory: Pred = (s) =>
  mappings(s.context).every(
    (m) =>
      m.va === null ||
      s.context.k.mms[m.owner]?.alive !== true ||
      objectAt(s.context.as, m.owner, m.va) === GUEST,
  );

/**
 * mm_users of every mm is the number of running processes whose mm it is,
 * and mm_count (beyond the users' shared reference) the number of iommufd
 * pages objects that hold it as source_mm (pages.c:iopt_alloc_pages mmgrab,
 * iopt_release_pages mmdrop, ioas.c:change_mm mmgrab/mmdrop). An extra
 * mmput tears down a live process's address space (__mmput → exit_mmap); a
 * missing mmdrop leaks the mm_struct. type1's dma->mm references are not
 * counted (T1:vfio_change_dma_owner balances them, L1673-1675).
 */
export const mmRefcountsBalanced: Pred = (s) => {
  const { k, running } = s.context;
  return Object.entries(k.mmRefs ?? {}).every(([mm, r]) => {
    const users = running.filter((pid) => k.procs[pid]?.mm === mm).length;
    const count = k.pages.filter((p) => p !== null && p.mm === mm).length;
    return r.users === users && r.count === count;
  });
};

/** No kernel code treats an object as a type it is not (the draft's inverted IOAS test: container_of a device as an IOAS). */
export const kernelMemorySafe: Pred = (s) => !s.context.k.warn.includes(DRAFT_TYPE_CONFUSION);

/**
 * The guest's DMA mappings survive the handoff: every mapping the VMM made is
 * still there unless the application unmapped it (the point of every design
 * is that DMA continues; V1's close_dma_owner() unmaps a dead owner's).
 */
export const mappingsKeptOf =
  (n: number): Pred =>
  (s) =>
    mappings(s.context).length === n - s.context.unmapped;
export const mappingsKept: Pred = mappingsKeptOf(NMAPS);

/** The invariants with `n` mappings (the parameter `maps`); `handoffInvariants` at the default size. */
export const handoffInvariantsOf = (n: number): Readonly<Record<string, Pred>> => ({
  ...handoffInvariants,
  mappingsKept: mappingsKeptOf(n),
});

export const handoffInvariants: Readonly<Record<string, Pred>> = {
  alwaysPageProvider,
  pinnableHasProvider,
  atomicOwnerChange,
  failedChangeIsNoop,
  changeReachesCaller,
  accountingConserved,
  accountingNonNegative,
  lastNpinnedSynced,
  noChangeProcessUnchargeWarn,
  noLockedVmUnderflowWarn,
  sameMemory,
  mmRefcountsBalanced,
  kernelMemorySafe,
  mappingsKept,
};

// ---------------------------------------------------------------- QEMU's live update

const value = (s: ModelSnapshot<HandoffCtx>, actor: string): string =>
  (s.value as Record<string, string>)[actor] ?? '';

/** The old QEMU stopped the VM for the update (its pre_save ran). */
export const updateStarted: Pred = (s) => s.context.sig.vmm !== 'start';

/** The new QEMU runs the guest (its load succeeded), and one live process owns every mapping. */
export const newQemuRuns: Pred = (s) =>
  (value(s, 'image') === 'done' || value(s, 'image') === 'unmapped') && oneLiveOwner(s);

/** Some QEMU runs the guest again, the new one or the old one resumed, and one live process owns every mapping. */
export const guestRuns: Pred = (s) => (newQemuRuns(s) || s.context.sig.vmm === 'resumed') && oneLiveOwner(s);
