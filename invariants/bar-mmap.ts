/**
 * Properties of the vfio-pci BAR mmap protocol (machines/bar-mmap.ts,
 * spec/bar-mmap.md). Each is stated once, over the snapshot only; they read
 * the model's state (machines/kernel/bar-mmap-state.ts), never the machine.
 */
import { match, P } from 'ts-pattern';
import type { ModelSnapshot, StatePredicate } from '../explorer/model.ts';
import {
  type Ctx,
  type Dev,
  DEVS,
  enabled,
  otherDev,
  regionState,
  settled,
  type User,
  USERS,
} from '../machines/kernel/bar-mmap-state.ts';
import { mappedBy } from '../machines/kernel/pci-mmap.ts';

type S = ModelSnapshot<Ctx>;

/**
 * No PTE maps a BAR pfn while memory decode is disabled (virtual COMMAND
 * memory bit clear, or D3hot). UAPI-FACTS §6.26-27: pfns are inserted only
 * under memory_lock read with memory enabled (VPCI:vfio_pci_vmf_insert_pfn),
 * and every transition to disabled zaps under memory_lock write first
 * (VPCI:vfio_pci_zap_and_down_write_memory_lock). A VMA that is not linked
 * yet counts: its PTE is in the mm's page table, reachable by the MMU.
 */
export const noPteWhileDisabled: StatePredicate<Ctx> = (s: S) =>
  enabled(s.context) || mappedBy(s.context.vma).length === 0;

/**
 * Once a disabling call has run its zap, and while it still holds
 * memory_lock for write, no VMA of any process maps the BAR: the zap reached
 * every mapping and nothing re-inserted one. This is the step the kernel's
 * argument rests on (VPCI:vfio_pci_zap_bars -> unmap_mapping_range over the
 * device inode's i_mmap tree, UAPI-FACTS §5), and the one seed 003 says the
 * mmap-hook populate breaks.
 */
export const noStalePteAfterZap: StatePredicate<Ctx> = (s: S) =>
  !(s.matches({ guest: 'zapped' }) || s.matches({ vmm: 'zapped' })) || mappedBy(s.context.vma).length === 0;

/**
 * The safety form of accessAfterEnableWorks: a touch that faults while the
 * device has settled (no device call in progress on either thread, so any
 * enable and its remap walk have finished) with memory enabled does not get SIGBUS. The
 * user region records such a SIGBUS as state `sigbusWhileEnabled` (a ghost:
 * the real process just gets SIGBUS). Seed 003: "the fault handler should
 * simply trigger SIGBUS if userspace races things" — only a race may see it.
 */
export const noSigbusAfterEnable: StatePredicate<Ctx> = (s: S) =>
  !USERS.some((u) => s.matches({ [u]: 'sigbusWhileEnabled' }));

/**
 * The assertion the thread is about: whoever changes a VMA's flags holds its
 * mm's mmap_lock for write. io_remap_pfn_range() -> remap_pfn_range_notrack()
 * called vm_flags_set(vma, VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP)
 * in the kernels before aac6db75a9fc; vm_flags_set() -> vma_start_write() ->
 * mmap_assert_write_locked() (include/linux/mm.h, include/linux/mmap_lock.h;
 * a WARN without lockdep since rwsem_assert_held_write()). The user state
 * `faultRemapping` is the fault handler inside io_remap_pfn_range().
 */
export const remapHoldsMmapWriteLock: StatePredicate<Ctx> = (s: S) =>
  USERS.every((u) => regionState(s, u) !== 'faultRemapping' || s.context.mmapLock[u].writer === u);

/**
 * Seed 003's second loop remaps every VMA of cur_mm, and remap_pfn_range() on
 * a range that is already populated is BUG_ON(!pte_none(ptep_get(pte))) in
 * mm/memory.c:remap_pte_range (the very BUG the pre-aac6db75 fault's vma_list
 * check avoided: "io_remap_pfn_range() will trigger a BUG_ON if we ask it to
 * fill the same range again"). The device thread that does it ends in state
 * `remapBug`.
 */
export const noDoubleRemap: StatePredicate<Ctx> = (s: S) =>
  DEVS.every((x) => regionState(s, x) !== 'remapBug');

/**
 * Every mmgrab() is matched by an mmdrop(): a remap walk holds at most one mm
 * reference, that of its cur_mm, which it drops at the end of the pass; and no
 * mm has been left with a reference nobody will drop. Seed 003's first loop
 * grabs the mm of every unpopulated VMA but keeps only the last in cur_mm and
 * drops that one: with two unpopulated VMAs of two mms the first grab is
 * leaked the moment cur_mm is overwritten, and the mm_struct is never freed.
 */
export const everyMmGrabDropped: StatePredicate<Ctx> = (s: S) =>
  s.context.leakedMm.length === 0 &&
  DEVS.every(
    (x) => s.context.grabs[x].every((u) => u === s.context.walk[x]) && s.context.grabs[x].length <= 1,
  );

/**
 * p of accessAfterEnableWorks: user `u` has a mapping and no successful
 * touch since it got it (fresh, or its last touch got SIGBUS), while the
 * device has settled with memory enabled.
 */
export const accessAfterEnablePending =
  (u: User): StatePredicate<Ctx> =>
  (s: S) =>
    settled(s.context) &&
    enabled(s.context) &&
    match(regionState(s, u))
      .with(P.union('mapped', 'touchSigbus', 'sigbusWhileEnabled'), () => true)
      .otherwise(() => false);

/**
 * q of accessAfterEnableWorks: `u`'s last touch succeeded, or `u` gave the
 * mapping up, or the device changed again (a new call started, or memory is
 * off): the promise covers an enable that stays. Without the "new call"
 * escape a device thread that resets forever would starve the touch through
 * memory_lock, which weak fairness allows and which is not this property.
 */
export const accessAfterEnableServed =
  (u: User): StatePredicate<Ctx> =>
  (s: S) =>
    s.context.kernelBug || // the kernel is dead: noDoubleRemap reports it
    !settled(s.context) ||
    !enabled(s.context) ||
    match(regionState(s, u))
      .with(P.union('touchOk', 'munmapping', 'munmapClosing', 'done'), () => true)
      .otherwise(() => false);

/**
 * p and q of guestCallsReturn / vmmCallsReturn: a device call that entered
 * the kernel returns once the other device thread stops making calls. The
 * condition on the other thread leaves out a loop kept busy by endless calls
 * from it (resets that zap what a walk remaps).
 */
export const callInProgress =
  (x: Dev): StatePredicate<Ctx> =>
  (s: S) =>
    s.context.call[x] !== null && s.context.call[otherDev(x)] === null;
export const callReturned =
  (x: Dev): StatePredicate<Ctx> =>
  (s: S) =>
    s.context.kernelBug || s.context.call[x] === null || s.context.call[otherDev(x)] !== null;
