/**
 * The state of the bar-mmap model (machines/bar-mmap.ts): its actors, its
 * context, and the predicates over them that both the machine and
 * invariants/bar-mmap.ts read. Kept apart from the machine so that the
 * invariants depend on the model's data, never on the machine that imports
 * them.
 */
import type { ModelSnapshot } from '../../explorer/model.ts';
import type { Mutex, RwMode, RwSem } from './locks.ts';
import { memoryEnabled, noCallInProgress, type Vmas } from './pci-mmap.ts';

export const USERS = ['userA', 'userB'] as const;
export type User = (typeof USERS)[number];
export const DEVS = ['guest', 'vmm'] as const;
export type Dev = (typeof DEVS)[number];
export type Actor = User | Dev;

/** A device call in progress, named by its effect on memory decode. */
export type DeviceCall = 'memoryOff' | 'memoryOn' | 'd3' | 'd0' | 'reset';

export interface Ctx {
  /** vconfig PCI_COMMAND & PCI_COMMAND_MEMORY (the virtual bit __vfio_pci_memory_enabled reads). */
  readonly cmdMemory: boolean;
  /** pdev->current_state >= PCI_D3hot. */
  readonly d3: boolean;
  /** vdev->memory_lock. */
  readonly memoryLock: RwSem;
  /** The device inode's mapping->i_mmap_rwsem. */
  readonly iMmap: RwSem;
  /** mm->mmap_lock of each process, named after its thread. */
  readonly mmapLock: Readonly<Record<User, RwSem>>;
  /** Each process's VMA on the BAR page, null when it has none. */
  readonly vma: Vmas<User>;
  /** Before aac6db75a9fc: vdev->vma_lock, the mutex over vdev->vma_list. */
  readonly vmaLock: Mutex;
  /** Before aac6db75a9fc: the processes whose VMA is on vdev->vma_list (faulted in since the last zap), sorted. */
  readonly vmaList: readonly User[];
  /** Each device thread's call that has not returned yet (including its remap walk), or null. */
  readonly call: Readonly<Record<Dev, DeviceCall | null>>;
  /** The mm a device thread's loop works on: seed 003's cur_mm, or the old zap's mm from vma_list. */
  readonly walk: Readonly<Record<Dev, User | null>>;
  /** Each actor's last call result: '0', 'SIGBUS' (touch), or 'blocked' while the call has not returned. */
  readonly ret: Readonly<Record<Actor, string | null>>;
  /**
   * A BUG_ON fired: seed 003's walk ran remap_pfn_range() over a VMA whose PTE is already there
   * (mm/memory.c:remap_pte_range, BUG_ON(!pte_none(ptep_get(pte)))). The kernel is dead from then
   * on: every other actor halts (as in the type1 models, machines/kernel/type1-xstate.ts).
   */
  readonly kernelBug: boolean;
  /** The mm references (mmgrab) each device thread's remap walk holds and has not dropped, sorted. */
  readonly grabs: Readonly<Record<Dev, readonly User[]>>;
  /** The mms whose mm_count a walk left raised for good: a grab it can no longer drop (sorted, sticky). */
  readonly leakedMm: readonly User[];
}

/** The locks an actor can sleep on in a wait list: memory_lock, i_mmap_rwsem, or a process's mmap_lock (named by its user). */
export type LockKey = 'memory' | 'iMmap' | User;

export const LOCK_NAMES: Readonly<Record<LockKey, string>> = {
  memory: 'memory_lock',
  iMmap: 'i_mmap_rwsem',
  userA: "userA's mmap_lock",
  userB: "userB's mmap_lock",
};

export const lockOf = (c: Ctx, k: LockKey): RwSem =>
  k === 'memory' ? c.memoryLock : k === 'iMmap' ? c.iMmap : c.mmapLock[k];

export function withLock(c: Ctx, k: LockKey, s: RwSem): Ctx {
  if (k === 'memory') return { ...c, memoryLock: s };
  if (k === 'iMmap') return { ...c, iMmap: s };
  return { ...c, mmapLock: { ...c.mmapLock, [k]: s } };
}

const LOCK_KEYS: readonly LockKey[] = ['memory', 'iMmap', ...USERS];

/** The wait list `actor` sleeps on, and for which mode; null when it is not queued anywhere. */
export function queuedOn(c: Ctx, actor: Actor): { lock: LockKey; mode: RwMode } | null {
  for (const lock of LOCK_KEYS) {
    const w = lockOf(c, lock).waiters.find((x) => x.actor === actor);
    if (w) return { lock, mode: w.mode };
  }
  return null;
}

/** Memory decode is on (VCFG:__vfio_pci_memory_enabled). */
export const enabled = (c: Ctx): boolean => memoryEnabled(c);

/** No device call is in progress on either thread: every enable or disable started (walk included) has returned. */
export const settled = (c: Ctx): boolean => noCallInProgress(c.call);

/** The leaf state of one actor (top-level region). */
export const regionState = (s: ModelSnapshot<Ctx>, actor: Actor): string =>
  String((s.value as Record<string, unknown>)[actor]);

export const otherDev = (x: Dev): Dev => (x === 'guest' ? 'vmm' : 'guest');
