/**
 * vfio-pci BAR mmap against memory disable, reset and power changes (issue 8,
 * seed 003, UAPI-FACTS §5). spec/bar-mmap.md is the prose version with the
 * kernel citations and the verdict table.
 *
 * Actors (top-level regions):
 * - `userA`, `userB`: one thread each of two processes (two mms) sharing the
 *   device: mmap one BAR page, touch it (a load that may fault), munmap.
 * - `guest`: config-space writes through the device fd (what a VMM forwards
 *   for its guest): PCI_COMMAND memory off/on, PM control D3hot/D0.
 * - `vmm`: VFIO_DEVICE_RESET from another thread, concurrent with `guest`.
 *   Both device threads may make any number of calls and may stop between
 *   calls (GuestQuit, VmmQuit).
 *
 * Kernel objects (context): the VMAs (linked into the device inode's i_mmap
 * tree or not, with or without a PTE on the BAR pfn), the virtual COMMAND
 * memory bit and the power state, and the locks: each mm's mmap_lock, the
 * mapping's i_mmap_rwsem, and vdev->memory_lock. Every lock acquisition that
 * can sleep is its own event, so lock-order inversions show up as deadlocks.
 *
 * One factory (`buildMachine`) makes every variant from a `Design`.
 */
import { assign, setup } from 'xstate';
import { defineModel, leadsTo, type StatePredicate } from '../explorer/model.ts';
import {
  accessAfterEnablePending,
  accessAfterEnableServed,
  callInProgress,
  callReturned,
  noPteWhileDisabled,
  noSigbusAfterEnable,
  noStalePteAfterZap,
} from '../invariants/bar-mmap.ts';
import {
  canRead,
  canWrite,
  downRead,
  downWrite,
  RWSEM_FREE,
  type RwSem,
  upRead,
  upWrite,
} from './kernel/locks.ts';
import {
  firstUnpopulated,
  memoryEnabled,
  NEW_VMA,
  noCallInProgress,
  populateLinked,
  setPte,
  type Vmas,
  zapLinked,
} from './kernel/pci-mmap.ts';

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
  /** Each device thread's call that has not returned yet (including its remap walk), or null. */
  readonly call: Readonly<Record<Dev, DeviceCall | null>>;
  /** The mm each device thread's remap walk chose (seed 003's cur_mm), while it works on it. */
  readonly walk: Readonly<Record<Dev, User | null>>;
  /** Each actor's last call result: '0', 'SIGBUS' (touch), or 'blocked' while the call has not returned. */
  readonly ret: Readonly<Record<Actor, string | null>>;
}

const USER_STEPS = [
  'Mmap',
  'MmapHook',
  'MmapLink',
  'MmapComplete',
  'Touch',
  'FaultInsert',
  'Munmap',
  'MunmapUnlink',
] as const;
type UserStep = (typeof USER_STEPS)[number];
type UserPrefix = 'UserA' | 'UserB';
export type UserEv = { type: `${UserPrefix}${UserStep}` };

const DEV_STEPS = [
  'ZapBars',
  'Commit',
  'RemapScan',
  'RemapLockMm',
  'RemapLockMemory',
  'RemapVmas',
  'Quit',
] as const;
type DevStep = (typeof DEV_STEPS)[number];
type DevPrefix = 'Guest' | 'Vmm';
export type DeviceEv =
  | { type: 'GuestCommandWrite'; memory: boolean }
  | { type: 'GuestPowerWrite'; d3: boolean }
  | { type: 'VmmReset' }
  | { type: `${DevPrefix}${DevStep}` };
export type Ev = UserEv | DeviceEv;

export interface Design {
  /**
   * Where a new VMA first gets its PTE:
   * - 'mmapHook': in the driver's f_op->mmap, before mm links the VMA (seed 003's race);
   * - 'afterLink': in a hook that runs after vma_link_file() (the extra fop the thread asks for);
   * - 'fault': nowhere in mmap; only a fault or the remap walk installs it.
   */
  readonly populate: 'mmapHook' | 'afterLink' | 'fault';
  /** The fault handler: 'sigbus' always (seed 003's design) or 'insert' under memory_lock read when enabled (7.3). */
  readonly fault: 'sigbus' | 'insert';
  /** On enable, walk i_mmap and remap every unpopulated VMA under its mm's mmap write lock (seed 003). */
  readonly remapOnEnable: boolean;
  /** The walk runs before up_write(memory_lock) instead of after it (the natural spot inside vfio_basic_config_write). */
  readonly remapUnderWriteLock: boolean;
  /**
   * The walk gives up when, re-testing under memory_lock read, it finds
   * memory disabled again. Seed 003's sketch loops `while (1)` until no
   * linked VMA lacks a PTE, which never happens while memory stays disabled.
   */
  readonly walkAbortsWhenDisabled: boolean;
  /**
   * Deliberate bugs, used only by the tests to show an invariant firing:
   * - 'noZap': a disable does not call vfio_pci_zap_bars();
   * - 'faultUnlocked': the fault handler tests memory enable and inserts the pfn without memory_lock.
   */
  readonly mutate?: 'noZap' | 'faultUnlocked';
}

type Args = { context: Ctx; event: Ev };
type Guard = (a: Args) => boolean;
type Update = (c: Ctx, e: Ev) => Partial<Ctx>;
interface T {
  readonly guard?: Guard;
  readonly target: string;
  readonly actions: ReturnType<typeof assign<Ctx, Ev, undefined, Ev, never>>;
}

/** One transition: a guard, a target, and one assign applying `update` (a pure function of context and event). */
const t = (target: string, update: Update, guard?: Guard): T => ({
  ...(guard && { guard }),
  target,
  actions: assign(({ context, event }: Args) => update(context, event)),
});

const and =
  (...gs: (Guard | undefined)[]): Guard =>
  (a) =>
    gs.every((g) => g === undefined || g(a));

const ret = (c: Ctx, actor: Actor, r: string | null): Ctx['ret'] => ({ ...c.ret, [actor]: r });
const enabled = (c: Ctx): boolean => memoryEnabled(c);
const settled = (c: Ctx): boolean => noCallInProgress(c.call);

// ---------------------------------------------------------------- users

const prefix = (u: User): UserPrefix => (u === 'userA' ? 'UserA' : 'UserB');
const ev = (u: User, step: UserStep) => `${prefix(u)}${step}` as UserEv['type'];

function userRegion(u: User, d: Design) {
  const mmapW = (c: Ctx) => ({ ...c.mmapLock, [u]: downWrite(c.mmapLock[u], u) });
  const mmapWUp = (c: Ctx) => ({ ...c.mmapLock, [u]: upWrite(c.mmapLock[u]) });
  const canMmapW: Guard = ({ context }) => canWrite(context.mmapLock[u]);
  const canMmapR: Guard = ({ context }) => canRead(context.mmapLock[u]);
  const canMemR: Guard = ({ context }) => canRead(context.memoryLock);
  const canIMmapW: Guard = ({ context }) => canWrite(context.iMmap);
  const hasPte: Guard = ({ context }) => context.vma[u]?.pte === true;

  /** vm_mmap_pgoff(): mmap_write_lock_killable(mm); mmap_region() allocates the VMA and calls f_op->mmap. */
  const mmap = t(
    d.populate === 'mmapHook' ? 'mmapHook' : 'mmapLink',
    (c) => ({ mmapLock: mmapW(c), vma: { ...c.vma, [u]: NEW_VMA }, ret: ret(c, u, 'blocked') }),
    canMmapW,
  );
  /**
   * seed 003's remap-on-enable: vfio_pci_core_mmap() itself populates the VMA
   * (remap_pfn_range) when memory is enabled, under memory_lock read, still
   * inside mm/vma.c:__mmap_new_file_vma() -> mmap_file(), before vma_link_file().
   */
  const hook = t('mmapLink', (c) => ({ vma: setPte(c.vma, u, enabled(c)) }), canMemR);
  /** mm/vma.c:vma_link_file(): i_mmap_lock_write, insert into the i_mmap tree, unlock. */
  const linkThenReturn = t(
    'mapped',
    (c) => ({
      vma: { ...c.vma, [u]: { ...c.vma[u]!, linked: true } },
      mmapLock: mmapWUp(c),
      ret: ret(c, u, '0'),
    }),
    canIMmapW,
  );
  const linkThenComplete = t(
    'mmapComplete',
    (c) => ({ vma: { ...c.vma, [u]: { ...c.vma[u]!, linked: true } } }),
    canIMmapW,
  );
  /**
   * The fixed design: populate after the VMA is linked (the shape of
   * mm/util.c:mmap_action_complete() in 7.3, run from __mmap_region() after
   * __mmap_new_vma()), testing memory enable under memory_lock read; then
   * mmap_write_unlock and return.
   */
  const complete = t(
    'mapped',
    (c) => ({ vma: setPte(c.vma, u, enabled(c)), mmapLock: mmapWUp(c), ret: ret(c, u, '0') }),
    canMemR,
  );

  // A touch is a load from the mapping. With a PTE the MMU serves it and no
  // kernel code runs. Without one it faults: handle_mm_fault() under the
  // VMA lock or mmap_lock read calls vm_ops->fault.
  const touchOk = t('touchOk', (c) => ({ ret: ret(c, u, '0') }), hasPte);
  /** Seed 003's fault handler: "simply trigger SIGBUS". The state records whether the device had settled with memory enabled (for noSigbusAfterEnable). */
  const sigbus = (update: Update, guard: Guard): T[] => [
    t(
      'sigbusWhileEnabled',
      (c, e) => ({ ...update(c, e), ret: ret(c, u, 'SIGBUS') }),
      and(guard, ({ context }) => settled(context) && enabled(context)),
    ),
    t('touchSigbus', (c, e) => ({ ...update(c, e), ret: ret(c, u, 'SIGBUS') }), guard),
  ];
  const touchSigbus = sigbus(() => ({}), canMmapR);
  /** 7.3: the fault path takes mmap_lock (or the VMA lock) for read, then vfio_pci_mmap_huge_fault takes memory_lock. */
  const touchFault = t(
    'faulting',
    (c) => ({ mmapLock: { ...c.mmapLock, [u]: downRead(c.mmapLock[u], u) }, ret: ret(c, u, 'blocked') }),
    d.mutate === 'faultUnlocked' ? and(canMmapR, ({ context }) => enabled(context)) : canMmapR,
  );
  const mmapRUp = (c: Ctx) => ({ ...c.mmapLock, [u]: upRead(c.mmapLock[u], u) });
  const touch =
    d.fault === 'sigbus'
      ? [touchOk, ...touchSigbus]
      : [touchOk, touchFault, ...(d.mutate === 'faultUnlocked' ? touchSigbus : [])];
  /**
   * VPCI:vfio_pci_mmap_huge_fault -> vfio_pci_vmf_insert_pfn under
   * scoped_guard(rwsem_read, memory_lock): VM_FAULT_SIGBUS unless
   * __vfio_pci_memory_enabled, else vmf_insert_pfn. Then the fault drops the
   * mmap/VMA lock. (The mutant tested enable before and inserts here without the lock.)
   */
  const faultInsert =
    d.mutate === 'faultUnlocked'
      ? [t('touchOk', (c) => ({ vma: setPte(c.vma, u, true), mmapLock: mmapRUp(c), ret: ret(c, u, '0') }))]
      : [
          t(
            'touchOk',
            (c) => ({ vma: setPte(c.vma, u, true), mmapLock: mmapRUp(c), ret: ret(c, u, '0') }),
            and(canMemR, ({ context }) => enabled(context)),
          ),
          ...sigbus((c) => ({ mmapLock: mmapRUp(c) }), canMemR),
        ];
  /** __vm_munmap(): mmap_write_lock_killable(mm). */
  const munmap = t('munmapping', (c) => ({ mmapLock: mmapW(c), ret: ret(c, u, 'blocked') }), canMmapW);
  /**
   * mm/vma.c:vms_complete_munmap_vmas(): unmap_vmas() clears the PTEs, then
   * free_pgtables() -> unlink_file_vma_batch_*() takes i_mmap_lock_write and
   * unlinks the VMA; mmap_write_unlock. (The mmap-lock downgrade is not modelled.)
   */
  const munmapUnlink = t(
    'done',
    (c) => ({ vma: { ...c.vma, [u]: null }, mmapLock: mmapWUp(c), ret: ret(c, u, '0') }),
    canIMmapW,
  );

  const mapped = { on: { [ev(u, 'Touch')]: touch, [ev(u, 'Munmap')]: munmap } };
  return {
    initial: 'idle',
    states: {
      idle: { on: { [ev(u, 'Mmap')]: mmap } },
      mmapHook: { on: { [ev(u, 'MmapHook')]: hook } },
      mmapLink: {
        on: { [ev(u, 'MmapLink')]: d.populate === 'afterLink' ? linkThenComplete : linkThenReturn },
      },
      mmapComplete: { on: { [ev(u, 'MmapComplete')]: complete } },
      mapped,
      touchOk: mapped,
      touchSigbus: mapped,
      sigbusWhileEnabled: mapped,
      faulting: { on: { [ev(u, 'FaultInsert')]: faultInsert } },
      munmapping: { on: { [ev(u, 'MunmapUnlink')]: munmapUnlink } },
      done: { type: 'final' },
    },
  };
}

// ---------------------------------------------------------------- device threads

/** The decode state a call leaves behind once it has done its work. */
function after(call: DeviceCall, c: Ctx): Pick<Ctx, 'cmdMemory' | 'd3'> {
  switch (call) {
    case 'memoryOff':
      return { cmdMemory: false, d3: c.d3 };
    case 'memoryOn':
      return { cmdMemory: true, d3: c.d3 };
    case 'd3':
      return { cmdMemory: c.cmdMemory, d3: true };
    case 'd0':
      return { cmdMemory: c.cmdMemory, d3: false };
    case 'reset':
      // VPCI:vfio_pci_ioctl_reset: vfio_pci_set_power_state(D0) first; pci_try_reset_function()
      // saves and restores config space around the reset, so COMMAND comes back as it was.
      return { cmdMemory: c.cmdMemory, d3: false };
  }
}

const devPrefix = (x: Dev): DevPrefix => (x === 'guest' ? 'Guest' : 'Vmm');
const dev = (x: Dev, step: DevStep) => `${devPrefix(x)}${step}` as DeviceEv['type'];

function deviceRegion(x: Dev, d: Design) {
  const canMemW: Guard = ({ context }) => canWrite(context.memoryLock);
  const canIMmapR: Guard = ({ context }) => canRead(context.iMmap);
  const walkMm = (c: Ctx): User => c.walk[x]!;
  /** Return from the call: '0', memory_lock released if this thread still holds it for write. */
  const finish = (c: Ctx): Partial<Ctx> => ({
    call: { ...c.call, [x]: null },
    walk: { ...c.walk, [x]: null },
    memoryLock: c.memoryLock.writer === x ? upWrite(c.memoryLock) : c.memoryLock,
    ret: ret(c, x, '0'),
  });
  /**
   * The end of a call's memory_lock write section: with remap-on-enable and
   * memory now enabled, start the walk (after up_write, unless the design
   * keeps the lock); else up_write and return.
   */
  const ending = (apply: Update, guard?: Guard): T[] => {
    const applied = (c: Ctx, e: Ev): Ctx => ({ ...c, ...apply(c, e) });
    return [
      t(
        'remapScan',
        (c, e) => {
          const n = applied(c, e);
          return { ...apply(c, e), memoryLock: d.remapUnderWriteLock ? n.memoryLock : upWrite(n.memoryLock) };
        },
        and(guard, ({ context, event }) => d.remapOnEnable && enabled(applied(context, event))),
      ),
      t('idle', (c, e) => ({ ...apply(c, e), ...finish(applied(c, e)) }), guard),
    ];
  };
  /** Entry of a call that disables memory: vfio_pci_zap_and_down_write_memory_lock() starts with down_write. */
  const disable = (call: DeviceCall, guard: Guard): T =>
    t(
      'locked',
      (c) => ({
        memoryLock: downWrite(c.memoryLock, x),
        call: { ...c.call, [x]: call },
        ret: ret(c, x, 'blocked'),
      }),
      and(canMemW, guard),
    );
  /** A call that enables memory: down_write, update vconfig or the power state, up_write: one lock window. */
  const enable = (call: DeviceCall, guard: Guard): T[] =>
    ending(
      (c) => ({
        ...after(call, c),
        memoryLock: downWrite(c.memoryLock, x),
        call: { ...c.call, [x]: call },
        ret: ret(c, x, 'blocked'),
      }),
      and(canMemW, guard),
    );

  const calls =
    x === 'guest'
      ? {
          /** VCFG:vfio_basic_config_write, offset PCI_COMMAND: zap + down_write when MEMORY is cleared, down_write when set. */
          GuestCommandWrite: [
            disable('memoryOff', ({ event }) => event.type === 'GuestCommandWrite' && !event.memory),
            ...enable('memoryOn', ({ event }) => event.type === 'GuestCommandWrite' && event.memory),
          ],
          /** VCFG:vfio_pm_config_write -> vfio_lock_and_set_power_state: zap + down_write for D3hot, down_write for D0. */
          GuestPowerWrite: [
            disable('d3', ({ event }) => event.type === 'GuestPowerWrite' && event.d3),
            ...enable('d0', ({ event }) => event.type === 'GuestPowerWrite' && !event.d3),
          ],
        }
      : {
          /** VPCI:vfio_pci_ioctl_reset: vfio_pci_zap_and_down_write_memory_lock first. */
          VmmReset: disable('reset', () => true),
        };

  return {
    initial: 'idle',
    states: {
      idle: {
        on: {
          ...calls,
          /**
           * Not a kernel step: the thread makes no more calls (it may stop
           * only between calls). Lets the search reach "the device settled
           * for good", which accessAfterEnableWorks needs.
           */
          [dev(x, 'Quit')]: t('done', () => ({})),
        },
      },
      locked: {
        on: {
          /**
           * VPCI:vfio_pci_zap_bars -> unmap_mapping_range(vdev->inode->i_mapping, BAR0..ROM):
           * i_mmap_lock_read, clear the PTEs of every linked VMA.
           */
          [dev(x, 'ZapBars')]: t(
            'zapped',
            (c) => (d.mutate === 'noZap' ? {} : { vma: zapLinked(c.vma) }),
            canIMmapR,
          ),
        },
      },
      zapped: {
        /**
         * Still under memory_lock write: the config or power write, or the
         * reset itself (pci_try_reset_function), the vconfig update; then
         * up_write (or the walk).
         */
        on: { [dev(x, 'Commit')]: ending((c) => after(c.call[x]!, c)) },
      },
      /** Seed 003's walk, first loop: i_mmap_lock_read, find a linked VMA without PTE, remember its mm. */
      remapScan: {
        on: {
          [dev(x, 'RemapScan')]: [
            t(
              'remapLockMm',
              (c) => ({ walk: { ...c.walk, [x]: firstUnpopulated(c.vma) } }),
              and(canIMmapR, ({ context }) => firstUnpopulated(context.vma) !== null),
            ),
            t('idle', finish, canIMmapR),
          ],
        },
      },
      /** mmap_write_lock(cur_mm). */
      remapLockMm: {
        on: {
          [dev(x, 'RemapLockMm')]: t(
            'remapLockMemory',
            (c) => ({ mmapLock: { ...c.mmapLock, [walkMm(c)]: downWrite(c.mmapLock[walkMm(c)], x) } }),
            ({ context }) => canWrite(context.mmapLock[walkMm(context)]),
          ),
        },
      },
      /**
       * down_read(memory_lock), so that the enable test and the remap are
       * atomic against a disable from the other thread (a walk that does
       * not re-test could remap right after a zap). Nothing to take when
       * this thread still holds it for write.
       */
      remapLockMemory: {
        on: {
          [dev(x, 'RemapLockMemory')]: t(
            'remapVmas',
            (c) => (c.memoryLock.writer === x ? {} : { memoryLock: downRead(c.memoryLock, x) }),
            ({ context }) => context.memoryLock.writer === x || canRead(context.memoryLock),
          ),
        },
      },
      /**
       * i_mmap_lock_read; remap_pfn_range every VMA of cur_mm when memory is
       * enabled; i_mmap_unlock_read, up_read, mmap_write_unlock(cur_mm), and
       * scan again (or, when the design says so, return once memory is off).
       */
      remapVmas: {
        on: {
          [dev(x, 'RemapVmas')]: [
            t(
              'idle',
              (c) => ({ ...unlockWalk(c, x), ...finish({ ...c, ...unlockWalk(c, x) }) }),
              and(canIMmapR, ({ context }) => d.walkAbortsWhenDisabled && !enabled(context)),
            ),
            t(
              'remapScan',
              (c) => ({
                vma: enabled(c) ? populateLinked(c.vma, walkMm(c)) : c.vma,
                ...unlockWalk(c, x),
              }),
              canIMmapR,
            ),
          ],
        },
      },
      done: { type: 'final' },
    },
  };
}

/** The walk drops what it took for cur_mm: memory_lock read (unless it holds it for write) and cur_mm's mmap_lock. */
function unlockWalk(c: Ctx, x: Dev): Partial<Ctx> {
  const mm = c.walk[x]!;
  return {
    memoryLock: c.memoryLock.writer === x ? c.memoryLock : upRead(c.memoryLock, x),
    mmapLock: { ...c.mmapLock, [mm]: upWrite(c.mmapLock[mm]) },
    walk: { ...c.walk, [x]: null },
  };
}

// ---------------------------------------------------------------- machine and model

export const initialContext: Ctx = {
  cmdMemory: true,
  d3: false,
  memoryLock: RWSEM_FREE,
  iMmap: RWSEM_FREE,
  mmapLock: { userA: RWSEM_FREE, userB: RWSEM_FREE },
  vma: { userA: null, userB: null },
  call: { guest: null, vmm: null },
  walk: { guest: null, vmm: null },
  ret: { userA: null, userB: null, guest: null, vmm: null },
};

export function buildMachine(d: Design) {
  if (d.fault === 'sigbus' && d.populate === 'fault' && !d.remapOnEnable) {
    throw new Error('bar-mmap: nothing would ever install a PTE (fault: sigbus, populate: fault, no remap)');
  }
  if ((d.remapUnderWriteLock || d.walkAbortsWhenDisabled) && !d.remapOnEnable) {
    throw new Error('bar-mmap: remapUnderWriteLock and walkAbortsWhenDisabled need remapOnEnable');
  }
  return setup({ types: { context: {} as Ctx, events: {} as Ev } }).createMachine({
    id: 'bar-mmap',
    type: 'parallel',
    context: initialContext,
    states: {
      userA: userRegion('userA', d),
      userB: userRegion('userB', d),
      guest: deviceRegion('guest', d),
      vmm: deviceRegion('vmm', d),
    },
  } as any);
}

const remap = { fault: 'sigbus', remapOnEnable: true, remapUnderWriteLock: false } as const;
export const DESIGNS = {
  /** Seed 003 as written: populate in f_op->mmap, SIGBUS on fault, the `while (1)` walk on enable. */
  'remap-on-enable': { ...remap, populate: 'mmapHook', walkAbortsWhenDisabled: false },
  /** Both fixes: populate only after vma_link_file(); the walk returns when it finds memory disabled again. */
  'remap-on-enable-fixed': { ...remap, populate: 'afterLink', walkAbortsWhenDisabled: true },
  /** Kernel 7.3 (UAPI-FACTS §5). */
  current: {
    populate: 'fault',
    fault: 'insert',
    remapOnEnable: false,
    remapUnderWriteLock: false,
    walkAbortsWhenDisabled: false,
  },
  /** remap-on-enable-fixed with the walk before up_write(memory_lock). */
  'remap-on-enable-locked': {
    ...remap,
    populate: 'afterLink',
    walkAbortsWhenDisabled: true,
    remapUnderWriteLock: true,
  },
} as const satisfies Record<string, Design>;

const USER_EVENTS: UserEv[] = USERS.flatMap((u) => USER_STEPS.map((s) => ({ type: ev(u, s) })));
const DEV_EVENTS = DEVS.flatMap((x) => DEV_STEPS.map((s) => ({ type: dev(x, s) }) as DeviceEv));

/**
 * Candidate events: every step (guards pick the ones that apply), and the
 * device calls that change something: COMMAND and power writes toggle the
 * current value (writing the same value again is not generated), reset.
 */
export function events(s: { context: Ctx }): Ev[] {
  return [
    ...USER_EVENTS,
    { type: 'GuestCommandWrite', memory: !s.context.cmdMemory },
    { type: 'GuestPowerWrite', d3: !s.context.d3 },
    { type: 'VmmReset' },
    ...DEV_EVENTS,
  ];
}

/** The calls the conformance adapter replays: mmap/munmap, a load from the mapping, the config and power writes, the reset ioctl. */
export const CALLS: readonly Ev['type'][] = [
  ...USERS.flatMap((u) => [ev(u, 'Mmap'), ev(u, 'Touch'), ev(u, 'Munmap')]),
  'GuestCommandWrite',
  'GuestPowerWrite',
  'VmmReset',
];

const invariants: Record<string, StatePredicate<Ctx>> = {
  noPteWhileDisabled,
  noStalePteAfterZap,
  noSigbusAfterEnable,
};

export default defineModel<Ctx, Ev>({
  id: 'bar-mmap',
  description: 'vfio-pci BAR mmap against memory disable, reset and D3 (seed 003)',
  machine: buildMachine(DESIGNS.current),
  events,
  calls: CALLS,
  invariants,
  properties: {
    accessAfterEnableWorks: leadsTo(accessAfterEnablePending('userA'), accessAfterEnableServed('userA')),
    guestCallsReturn: leadsTo(callInProgress('guest'), callReturned('guest')),
    vmmCallsReturn: leadsTo(callInProgress('vmm'), callReturned('vmm')),
  },
  fairness: { weak: 'all' },
  variants: {
    'remap-on-enable': {
      description:
        "seed 003's design: remap on enable, SIGBUS in the fault handler, populate in the mmap hook",
      machine: buildMachine(DESIGNS['remap-on-enable']),
      expect: {
        violated: [
          'noPteWhileDisabled',
          'noStalePteAfterZap',
          'noSigbusAfterEnable',
          'accessAfterEnableWorks',
          'vmmCallsReturn',
        ],
        states: 41812,
      },
    },
    'remap-on-enable-fixed': {
      description:
        'remap on enable, SIGBUS in the fault handler, populate only after the VMA is linked; the walk stops when memory is off',
      machine: buildMachine(DESIGNS['remap-on-enable-fixed']),
      expect: { violated: [], states: 24108 },
    },
    current: {
      description:
        'kernel 7.3: nothing mapped at mmap; the fault inserts under memory_lock read; disable zaps under memory_lock write',
      machine: buildMachine(DESIGNS.current),
      expect: { violated: [], states: 6608 },
    },
    'remap-on-enable-locked': {
      description:
        'remap-on-enable-fixed with the walk run before up_write(memory_lock): mmap_lock nests inside memory_lock',
      machine: buildMachine(DESIGNS['remap-on-enable-locked']),
      expect: { violated: ['deadlock', 'guestCallsReturn', 'vmmCallsReturn'], states: 10100 },
    },
  },
  defaultVariant: 'current',
});
