/**
 * vfio-pci BAR mmap against memory disable, reset and power changes (issues
 * 8 and 14, seed 003, UAPI-FACTS §5). spec/bar-mmap.md is the prose version
 * with the kernel citations and the verdict table.
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
 * Kernel objects (context, machines/kernel/bar-mmap-state.ts): the VMAs
 * (linked into the device inode's i_mmap tree or not, with or without a PTE
 * on the BAR pfn), the virtual COMMAND memory bit and the power state, and
 * the locks: each mm's mmap_lock, the mapping's i_mmap_rwsem,
 * vdev->memory_lock (writer-fair rwsems, machines/kernel/locks.ts), and
 * before aac6db75a9fc vdev->vma_lock with vdev->vma_list. Every lock
 * acquisition that can sleep is its own event; an actor that finds an rwsem
 * unavailable first queues on it (`<Actor>Wait`), as rwsem.c's slow path does.
 *
 * One factory (`buildMachine`) makes every variant from a `Design`.
 */
import { assign, setup } from 'xstate';
import {
  defineModel,
  leadsTo,
  type ModelSnapshot,
  sometimes,
  type StatePredicate,
} from '../explorer/model.ts';
import {
  accessAfterEnablePending,
  accessAfterEnableServed,
  callInProgress,
  callReturned,
  everyMmGrabDropped,
  noDoubleRemap,
  noPteWhileDisabled,
  noSigbusAfterEnable,
  noStalePteAfterZap,
  remapHoldsMmapWriteLock,
} from '../invariants/bar-mmap.ts';
import {
  type Actor,
  type Ctx,
  type Dev,
  DEVS,
  type DeviceCall,
  enabled,
  LOCK_NAMES,
  type LockKey,
  lockOf,
  queuedOn,
  regionState,
  settled,
  type User,
  USERS,
  withLock,
} from './kernel/bar-mmap-state.ts';
import {
  canRead,
  canWrite,
  downRead,
  downWrite,
  enqueue,
  holders,
  mustWait,
  RWSEM_FREE,
  type RwMode,
  readWindow,
  upRead,
  upWrite,
  writeWindow,
} from './kernel/locks.ts';
import {
  NEW_VMA,
  populateLinked,
  remapLinked,
  setPte,
  unpopulatedLinked,
  zapLinked,
} from './kernel/pci-mmap.ts';

export { type Actor, type Ctx, type Dev, DEVS, type DeviceCall, type User, USERS };

const USER_STEPS = [
  'Mmap',
  'MmapHook',
  'MmapLink',
  'MmapComplete',
  'Touch',
  'FaultLock',
  'FaultInsert',
  'FaultLockVma',
  'FaultLockMemory',
  'FaultRemap',
  'Munmap',
  'MunmapLock',
  'MunmapUnlink',
  'MunmapClose',
] as const;
type UserStep = (typeof USER_STEPS)[number];
type UserPrefix = 'UserA' | 'UserB';
const DEV_STEPS = [
  'LockMemory',
  'ZapLock',
  'ZapBars',
  'ZapListLock',
  'ZapMmLock',
  'ZapListZap',
  'ZapDownWrite',
  'Commit',
  'RemapScan',
  'RemapLockMm',
  'RemapLockMemory',
  'RemapVmas',
  'Quit',
] as const;
type DevStep = (typeof DEV_STEPS)[number];
type DevPrefix = 'Guest' | 'Vmm';
type Prefix = UserPrefix | DevPrefix;

/** rwsem.c's slow path: the actor finds the lock unavailable, queues on its wait list in `mode`, and sleeps. */
export type WaitEv = { type: `${Prefix}Wait`; mode: RwMode };
/** After a BUG_ON (designs with seed 003's walk): the actor stops where it is. */
export type HaltEv = { type: `${Prefix}Halt` };
export type UserEv = { type: `${UserPrefix}${UserStep}` } | WaitEv | HaltEv;
export type DeviceEv =
  | { type: 'GuestCommandWrite'; memory: boolean }
  | { type: 'GuestPowerWrite'; d3: boolean }
  | { type: 'VmmReset' }
  | { type: `${DevPrefix}${DevStep}` };
export type Ev = UserEv | DeviceEv;

export interface Design {
  /**
   * Where a new VMA first gets its PTE:
   * - 'mmapHook': in the driver's f_op->mmap, before mm links the VMA (seed 003's sketch);
   * - 'afterLink': in a step after vma_link_file() (the extra fop the thread asks for);
   * - 'fault': nowhere in mmap; only a fault or the remap walk installs it.
   */
  readonly populate: 'mmapHook' | 'afterLink' | 'fault';
  /**
   * 'afterLink' only: vma_link_file(vma, hold_rmap_lock = true) keeps
   * i_mmap_rwsem held for write until the populate is done, as 7.3's
   * mmap_prepare actions do with hide_from_rmap_until_complete
   * (mm/vma.c:__mmap_new_vma, mm/internal.h:maybe_rmap_unlock_action).
   */
  readonly hideFromRmap: boolean;
  /**
   * The fault handler:
   * - 'sigbus': always SIGBUS (seed 003);
   * - 'insert': vmf_insert_pfn under memory_lock read when enabled (aac6db75a9fc and later, 7.3);
   * - 'remapVma': before aac6db75a9fc: vma_lock, memory_lock read, io_remap_pfn_range of the whole VMA, add it to vma_list.
   */
  readonly fault: 'sigbus' | 'insert' | 'remapVma';
  /**
   * How a disable reaches the mappings:
   * - 'mapping': down_write(memory_lock), then unmap_mapping_range over the device inode's i_mmap tree (aac6db75a9fc and later);
   * - 'vmaList': before aac6db75a9fc, vfio_pci_zap_and_vma_lock(): per mm on vma_list, mmap_read_lock + vma_lock + zap_vma_ptes; then down_write(memory_lock).
   */
  readonly zap: 'mapping' | 'vmaList';
  /**
   * On enable, walk i_mmap and remap every VMA without PTE under its mm's mmap write lock:
   * - 'none';
   * - 'sketch': seed 003 as written: the first loop mmgrab()s the mm of every unpopulated VMA and keeps the last as cur_mm (one mmdrop);
   *   the second loop runs vfio_remap_vma() on every VMA of cur_mm, populated or not (BUG_ON in remap_pte_range on a populated one),
   *   without memory_lock and without testing memory enable;
   * - 'retest': the project's walk: the first loop grabs the first unpopulated VMA's mm and stops; memory_lock read inside
   *   mmap_lock; the second loop remaps only the VMAs vma_populated() finds empty, and only if memory is still enabled; return when it is not.
   */
  readonly walk: 'none' | 'sketch' | 'retest';
  /** The walk runs before up_write(memory_lock) instead of after it (the natural spot inside vfio_basic_config_write). */
  readonly walkUnderWriteLock: boolean;
  /**
   * Deliberate bugs, used only by the tests to show an invariant firing:
   * - 'noZap': a disable does not zap;
   * - 'faultUnlocked': the 'insert' fault tests memory enable and inserts the pfn without memory_lock;
   * - 'faultNoVmaLock': the 'remapVma' fault does not take vma_lock, leaving only the mmap read lock around io_remap_pfn_range.
   */
  readonly mutate?: 'noZap' | 'faultUnlocked' | 'faultNoVmaLock';
}

type Args = { context: Ctx; event: Ev };
type Guard = (a: Args) => boolean;
type Update = (c: Ctx, e: Ev) => Ctx;
/** What a step sleeps on first: an rwsem (computed from the context for the walk's cur_mm) in a mode. */
interface Acq {
  readonly lock: LockKey | ((c: Ctx) => LockKey);
  readonly mode: RwMode;
}
interface T {
  readonly guard: Guard;
  readonly target?: string;
  readonly actions: ReturnType<typeof assign<Ctx, Ev, undefined, Ev, never>>;
}

const lockKey = (c: Ctx, a: Acq): LockKey => (typeof a.lock === 'function' ? a.lock(c) : a.lock);
const always: Guard = () => true;
const and =
  (...gs: Guard[]): Guard =>
  (a) =>
    gs.every((g) => g(a));
const when =
  (p: (c: Ctx) => boolean): Guard =>
  ({ context }) =>
    p(context);

/**
 * One transition of `actor`. With `acq`, it is enabled only when the actor
 * may take that rwsem now (locks.ts: fast path, or woken from the wait list);
 * without, only when the actor sleeps on no wait list. `update` is a pure
 * function of context and event and does the locking itself.
 */
function tr(actor: Actor, target: string | undefined, update: Update, guard: Guard = always, acq?: Acq): T {
  return {
    // The lock test comes first: `guard` may look at the state after the update, which takes the lock.
    guard: (args) => {
      if (args.context.kernelBug) return false; // the kernel is dead: only the Halt steps remain
      const q = queuedOn(args.context, actor);
      if (!acq) return q === null && guard(args);
      const k = lockKey(args.context, acq);
      if (q && (q.lock !== k || q.mode !== acq.mode)) return false;
      const s = lockOf(args.context, k);
      return (acq.mode === 'read' ? canRead(s, actor) : canWrite(s, actor)) && guard(args);
    },
    ...(target !== undefined && { target }),
    actions: assign(({ context, event }: Args) => update(context, event)),
  };
}

/** Lock operations of one actor on context. */
function lockOps(a: Actor) {
  const on = (c: Ctx, acq: Acq) => ({ k: lockKey(c, acq), s: lockOf(c, lockKey(c, acq)) });
  return {
    take: (c: Ctx, acq: Acq): Ctx => {
      const { k, s } = on(c, acq);
      return withLock(c, k, acq.mode === 'read' ? downRead(s, a) : downWrite(s, a));
    },
    release: (c: Ctx, acq: Acq): Ctx => {
      const { k, s } = on(c, acq);
      return withLock(c, k, acq.mode === 'read' ? upRead(s, a) : upWrite(s));
    },
    /** Take and release in one step: a lock window with nothing else taken inside. */
    window: (c: Ctx, acq: Acq): Ctx => {
      const { k, s } = on(c, acq);
      return withLock(c, k, acq.mode === 'read' ? readWindow(s, a) : writeWindow(s, a));
    },
  };
}

/**
 * The rwsem each state's next step sleeps on, by mode, with the kernel
 * function that takes it and the condition under which the step needs it.
 * The machine's Wait transitions, the event labels and waitingFor() all read
 * this one table.
 */
interface Need {
  readonly acq: Acq;
  readonly fn: string;
  readonly when?: (c: Ctx) => boolean;
  /** The call queued on the lock as it entered (its state means "asleep on it"): no Wait step here. */
  readonly entered?: true;
}
type Needs = Readonly<Record<string, Partial<Record<RwMode, Need>>>>;

const MEMORY_R: Acq = { lock: 'memory', mode: 'read' };
const MEMORY_W: Acq = { lock: 'memory', mode: 'write' };
const IMMAP_R: Acq = { lock: 'iMmap', mode: 'read' };
const IMMAP_W: Acq = { lock: 'iMmap', mode: 'write' };

/** Whether some path holds i_mmap_rwsem across steps, so that a link or unlink can find it taken. */
const iMmapHeldAcross = (d: Design): boolean => d.zap === 'mapping' || d.hideFromRmap;
/** Whether another thread takes a process's mmap_lock for write (the walk), so that a fault can find it taken. */
const mmapWrittenByOthers = (d: Design): boolean => d.walk !== 'none';
/** Whether another thread takes a process's mmap_lock at all (the walk; the old zap for read), so that munmap can find it taken. */
const mmapTakenByOthers = (d: Design): boolean => d.walk !== 'none' || d.zap === 'vmaList';

function userNeeds(u: User, d: Design): Needs {
  return {
    // No Wait in idle: nothing takes a process's mmap_lock before the process has mapped the BAR.
    mmapHook: { read: { acq: MEMORY_R, fn: 'f_op->mmap (seed 003: remap_pfn_range if enabled)' } },
    // i_mmap_rwsem is held across steps only by unmap_mapping_range and a hidden rmap;
    // before aac6db75a9fc nobody did, and a link or unlink never had to sleep on it.
    ...(iMmapHeldAcross(d) && { mmapLink: { write: { acq: IMMAP_W, fn: 'vma_link_file' } } }),
    mmapComplete: { read: { acq: MEMORY_R, fn: 'the populate after vma_link_file' } },
    touchQueued: {
      read: { acq: { lock: u, mode: 'read' }, fn: 'the page fault (lock_mm_and_find_vma)', entered: true },
    },
    munmapQueued: { write: { acq: { lock: u, mode: 'write' }, fn: '__vm_munmap', entered: true } },
    ...(d.mutate !== 'faultUnlocked' && {
      faulting: { read: { acq: MEMORY_R, fn: 'vfio_pci_mmap_huge_fault' } },
    }),
    faultLockMemory: { read: { acq: MEMORY_R, fn: 'vfio_pci_mmap_fault' } },
    ...(iMmapHeldAcross(d) && {
      munmapping: { write: { acq: IMMAP_W, fn: 'vms_complete_munmap_vmas (unlink_file_vma_batch_process)' } },
    }),
  };
}

function devNeeds(x: Dev, d: Design): Needs {
  const curMm = (c: Ctx): User => c.walk[x]!;
  const call = { acq: MEMORY_W, fn: 'the call: down_write(memory_lock)', entered: true } as const;
  return {
    disableQueued: { write: call },
    enableQueued: { write: call },
    locked: { read: { acq: IMMAP_R, fn: 'vfio_pci_zap_bars (unmap_mapping_range)' } },
    zapMmLock: { read: { acq: { lock: curMm, mode: 'read' }, fn: 'vfio_pci_zap_and_vma_lock' } },
    zapDownWrite: { write: { acq: MEMORY_W, fn: 'vfio_pci_zap_and_down_write_memory_lock' } },
    remapScan: { read: { acq: IMMAP_R, fn: 'the remap walk, first loop' } },
    remapLockMm: {
      write: { acq: { lock: curMm, mode: 'write' }, fn: 'the remap walk (mmap_write_lock(cur_mm))' },
    },
    // The walk under memory_lock write takes nothing here.
    ...(!d.walkUnderWriteLock && { remapLockMemory: { read: { acq: MEMORY_R, fn: 'the remap walk' } } }),
    remapVmas: { read: { acq: IMMAP_R, fn: 'the remap walk, second loop' } },
  };
}

/** The Wait transitions of one state: queue on the rwsem its step needs, when that step would have to sleep. */
function waits(actor: Actor, need: Partial<Record<RwMode, Need>> | undefined): T[] {
  return (['read', 'write'] as const).flatMap((mode) => {
    const n = need?.[mode];
    if (!n || n.entered) return [];
    const guard: Guard = ({ context, event }) =>
      !context.kernelBug &&
      event.type.endsWith('Wait') &&
      (event as WaitEv).mode === mode &&
      (n.when?.(context) ?? true) &&
      queuedOn(context, actor) === null &&
      mustWait(lockOf(context, lockKey(context, n.acq)), actor, mode);
    return [
      {
        guard,
        actions: assign(({ context }: Args) => {
          const k = lockKey(context, n.acq);
          return withLock(context, k, enqueue(lockOf(context, k), actor, mode));
        }),
      },
    ];
  });
}

/** A BUG_ON can fire in this design: seed 003's walk remaps a VMA of cur_mm whatever its PTE. */
const canBug = (d: Design): boolean => d.walk === 'sketch';

/** After a BUG the actor's one step: to its final `halted` state, from wherever it is, queued or not. */
const HALT: T = {
  guard: ({ context }) => context.kernelBug,
  target: 'halted',
  actions: assign((a: Args) => a.context),
};

type StateConfig = { on?: Record<string, T | T[]>; type?: 'final' };

/**
 * Add each state's Wait transitions under its actor's Wait event; in a design that can BUG, a
 * `<Prefix>Halt` step from every state that is not final, and the final `halted` state.
 */
function withWaits(
  actor: Actor,
  prefix: Prefix,
  needs: Needs,
  states: Record<string, StateConfig>,
  d: Design,
) {
  const out = Object.entries(states).map(([name, st]): [string, StateConfig] => {
    if (st.type === 'final') return [name, st];
    const w = waits(actor, needs[name]);
    const on = {
      ...st.on,
      ...(w.length && { [`${prefix}Wait`]: w }),
      ...(canBug(d) && { [`${prefix}Halt`]: HALT }),
    };
    return [name, { ...st, on }];
  });
  return Object.fromEntries(canBug(d) ? [...out, ['halted', { type: 'final' }]] : out);
}

const ret = (c: Ctx, actor: Actor, r: string | null): Ctx['ret'] => ({ ...c.ret, [actor]: r });

// ---------------------------------------------------------------- users

const prefix = (u: User): UserPrefix => (u === 'userA' ? 'UserA' : 'UserB');
const ev = (u: User, step: UserStep) => `${prefix(u)}${step}` as `${UserPrefix}${UserStep}`;

function userRegion(u: User, d: Design) {
  const { take, release, window } = lockOps(u);
  const needs = userNeeds(u, d);
  const mmapR: Acq = { lock: u, mode: 'read' };
  const mmapW: Acq = { lock: u, mode: 'write' };
  /** A call that finds `acq` unavailable queues on it as it enters (rwsem.c slow path) and sleeps in `target`. */
  const queue = (target: string, acq: Acq, guard: Guard = always): T =>
    tr(
      u,
      target,
      (c) => ({ ...withLock(c, u, enqueue(lockOf(c, u), u, acq.mode)), ret: ret(c, u, 'blocked') }),
      and(
        guard,
        when((c) => mustWait(lockOf(c, u), u, acq.mode)),
      ),
    );
  const hasPte = when((c) => c.vma[u]?.pte === true);
  const noPte = when((c) => c.vma[u]?.pte !== true);
  const link = (c: Ctx): Ctx => ({ ...c, vma: { ...c.vma, [u]: { ...c.vma[u]!, linked: true } } });
  const returns = (c: Ctx, r: string): Ctx => ({ ...c, ret: ret(c, u, r) });

  /** vm_mmap_pgoff(): mmap_write_lock_killable(mm); mmap_region() allocates the VMA and calls f_op->mmap. */
  const mmap = tr(
    u,
    d.populate === 'mmapHook' ? 'mmapHook' : 'mmapLink',
    (c) => returns({ ...take(c, mmapW), vma: { ...c.vma, [u]: NEW_VMA } }, 'blocked'),
    always,
    mmapW,
  );
  /**
   * Seed 003: vfio_pci_core_mmap() itself populates the VMA (remap_pfn_range)
   * when memory is enabled, tested under memory_lock read, still inside
   * mm/vma.c:__mmap_new_file_vma() -> mmap_file(), before vma_link_file().
   */
  const hook = tr(
    u,
    'mmapLink',
    (c) => ({ ...window(c, MEMORY_R), vma: setPte(c.vma, u, enabled(c)) }),
    always,
    MEMORY_R,
  );
  /**
   * mm/vma.c:vma_link_file(): i_mmap_lock_write, __vma_link_file, and
   * i_mmap_unlock_write unless hold_rmap_lock. Without a populate step after
   * it, mmap returns: mmap_write_unlock.
   */
  const linkStep =
    d.populate === 'afterLink'
      ? tr(
          u,
          'mmapComplete',
          (c) => link(d.hideFromRmap ? take(c, IMMAP_W) : window(c, IMMAP_W)),
          always,
          IMMAP_W,
        )
      : tr(u, 'mapped', (c) => returns(release(link(window(c, IMMAP_W)), mmapW), '0'), always, IMMAP_W);
  /**
   * The proposed populate after vma_link_file(): memory_lock read, the pfns
   * if memory is enabled, up_read; then the rmap lock if it was held
   * (maybe_rmap_unlock_action), mmap_write_unlock, and mmap returns.
   */
  const complete = tr(
    u,
    'mapped',
    (c) => {
      const n = { ...window(c, MEMORY_R), vma: setPte(c.vma, u, enabled(c)) };
      return returns(release(d.hideFromRmap ? release(n, IMMAP_W) : n, mmapW), '0');
    },
    always,
    MEMORY_R,
  );

  // A touch is a load from the mapping. With a PTE the MMU serves it and no
  // kernel code runs. Without one it faults: handle_mm_fault() under the
  // VMA lock or mmap_lock read calls vm_ops->fault.
  const touchOk = tr(u, 'touchOk', (c) => returns(c, '0'), hasPte);
  /** A SIGBUS; the state records whether the device had settled with memory enabled (for noSigbusAfterEnable). */
  const sigbus = (update: (c: Ctx) => Ctx, guard: Guard, acq?: Acq): T[] => [
    tr(
      u,
      'sigbusWhileEnabled',
      (c) => returns(update(c), 'SIGBUS'),
      and(
        guard,
        when((c) => settled(c) && enabled(c)),
      ),
      acq,
    ),
    tr(u, 'touchSigbus', (c) => returns(update(c), 'SIGBUS'), guard, acq),
  ];
  /** A SIGBUS that only happens with memory off: no ghost state needed. */
  const sigbusOff = (update: (c: Ctx) => Ctx, guard: Guard, acq?: Acq): T =>
    tr(
      u,
      'touchSigbus',
      (c) => returns(update(c), 'SIGBUS'),
      and(
        guard,
        when((c) => !enabled(c)),
      ),
      acq,
    );
  const faultEntry = (target: string, guard: Guard) =>
    tr(u, target, (c) => returns(take(c, mmapR), 'blocked'), guard, mmapR);
  /** What the fault does once it holds mmap_lock read, with `guard` on top of the PTE test. */
  const faultBody = (guard: Guard): T[] =>
    ({
      /** Seed 003's fault handler: "simply trigger SIGBUS". */
      sigbus: () => sigbus((c) => window(c, mmapR), guard, mmapR),
      insert: () =>
        d.mutate === 'faultUnlocked'
          ? [
              faultEntry('faulting', and(guard, when(enabled))),
              sigbusOff((c) => window(c, mmapR), guard, mmapR),
            ]
          : [faultEntry('faulting', guard)],
      remapVma: () => [faultEntry('faultVmaLock', guard)],
    })[d.fault]();
  const touch = [
    touchOk,
    ...faultBody(noPte),
    ...(mmapWrittenByOthers(d) ? [queue('touchQueued', mmapR, noPte)] : []),
  ];
  /**
   * Woken with mmap_lock read: the fault goes on; a PTE that appeared while
   * it slept makes it a spurious fault, and the load is retried and served.
   */
  const faultLock = [
    tr(u, 'touchOk', (c) => returns(window(c, mmapR), '0'), hasPte, mmapR),
    ...faultBody(noPte),
  ];

  /**
   * VPCI:vfio_pci_mmap_huge_fault -> vfio_pci_vmf_insert_pfn under
   * scoped_guard(rwsem_read, memory_lock): VM_FAULT_SIGBUS unless
   * __vfio_pci_memory_enabled, else vmf_insert_pfn. Then the fault drops the
   * mmap/VMA lock. (The mutant tested enable before and inserts here without the lock.)
   */
  const insertDone = (c: Ctx): Ctx => returns(release({ ...c, vma: setPte(c.vma, u, true) }, mmapR), '0');
  const faultInsert =
    d.mutate === 'faultUnlocked'
      ? [tr(u, 'touchOk', insertDone)]
      : [
          tr(u, 'touchOk', (c) => insertDone(window(c, MEMORY_R)), when(enabled), MEMORY_R),
          sigbusOff((c) => release(window(c, MEMORY_R), mmapR), always, MEMORY_R),
        ];

  // Before aac6db75a9fc, drivers/vfio/pci/vfio_pci_core.c:vfio_pci_mmap_fault():
  // mutex_lock(vma_lock); down_read(memory_lock); SIGBUS unless enabled; done
  // if the VMA is on vma_list already; io_remap_pfn_range() of the whole VMA;
  // __vfio_pci_add_vma(); up_read; mutex_unlock.
  const noVmaLock = d.mutate === 'faultNoVmaLock';
  const unlockFault = (c: Ctx): Ctx =>
    release({ ...window(c, MEMORY_R), vmaLock: c.vmaLock === u ? null : c.vmaLock }, mmapR);
  const faultLockVma = tr(
    u,
    'faultLockMemory',
    (c) => (noVmaLock ? c : { ...c, vmaLock: u }),
    noVmaLock ? always : when((c) => c.vmaLock === null),
  );
  const listed = (c: Ctx) => c.vmaList.includes(u);
  const faultLockMemory = [
    sigbusOff(unlockFault, always, MEMORY_R),
    tr(
      u,
      'touchOk',
      (c) => returns(unlockFault(c), '0'),
      when((c) => enabled(c) && listed(c)),
      MEMORY_R,
    ),
    /** io_remap_pfn_range() -> remap_pfn_range_notrack() -> vm_flags_set(): here the mmap_lock assertion runs. */
    tr(
      u,
      'faultRemapping',
      (c) => take(c, MEMORY_R),
      when((c) => enabled(c) && !listed(c)),
      MEMORY_R,
    ),
  ];
  /** The PTEs are in; __vfio_pci_add_vma(); up_read(memory_lock); mutex_unlock(vma_lock); the fault returns. */
  const faultRemap = tr(u, 'touchOk', (c) => {
    // io_remap_pfn_range() of a populated VMA is the BUG_ON the vma_list check avoids ("will
    // trigger a BUG_ON if we ask it to fill the same range again"). With one thread per process
    // only the process's own fault fills its VMA; reaching it would be a model error, not a verdict.
    if (c.vma[u]?.pte) throw new Error(`bar-mmap: ${u}'s old fault remaps a populated VMA (not modelled)`);
    return returns(
      release(
        {
          ...release(c, MEMORY_R),
          vma: setPte(c.vma, u, true),
          vmaList: [...c.vmaList, u].sort(),
          vmaLock: c.vmaLock === u ? null : c.vmaLock,
        },
        mmapR,
      ),
      '0',
    );
  });

  /** __vm_munmap(): mmap_write_lock_killable(mm). */
  const munmap = [
    tr(u, 'munmapping', (c) => returns(take(c, mmapW), 'blocked'), always, mmapW),
    ...(mmapTakenByOthers(d) ? [queue('munmapQueued', mmapW)] : []),
  ];
  const munmapLock = tr(u, 'munmapping', (c) => take(c, mmapW), always, mmapW);
  /**
   * mm/vma.c:vms_complete_munmap_vmas(): unmap_vmas() clears the PTEs, then
   * free_pgtables() -> unlink_file_vma_batch_process() takes
   * i_mmap_lock_write and unlinks the VMA; remove_vma() calls vm_ops->close
   * (before aac6db75a9fc, vfio_pci_mmap_close(): vma_lock, off vma_list);
   * mmap_write_unlock. (The mmap-lock downgrade is not modelled.)
   */
  const unlinked = (c: Ctx): Ctx => ({ ...window(c, IMMAP_W), vma: { ...c.vma, [u]: null } });
  const munmapUnlink =
    d.zap === 'vmaList'
      ? tr(u, 'munmapClosing', unlinked, always, IMMAP_W)
      : tr(u, 'done', (c) => returns(release(unlinked(c), mmapW), '0'), always, IMMAP_W);
  const munmapClose = tr(
    u,
    'done',
    (c) => returns(release({ ...c, vmaList: c.vmaList.filter((x) => x !== u) }, mmapW), '0'),
    when((c) => c.vmaLock === null),
  );

  const mapped = { on: { [ev(u, 'Touch')]: touch, [ev(u, 'Munmap')]: munmap } };
  return {
    initial: 'idle',
    // Only the states the design uses: a state no path of the design enters would be a
    // transition that never fires.
    states: withWaits(
      u,
      prefix(u),
      needs,
      {
        idle: { on: { [ev(u, 'Mmap')]: mmap } },
        ...(d.populate === 'mmapHook' && { mmapHook: { on: { [ev(u, 'MmapHook')]: hook } } }),
        mmapLink: { on: { [ev(u, 'MmapLink')]: linkStep } },
        ...(d.populate === 'afterLink' && { mmapComplete: { on: { [ev(u, 'MmapComplete')]: complete } } }),
        mapped,
        touchOk: mapped,
        touchSigbus: mapped,
        // The ghost of noSigbusAfterEnable: only seed 003's fault handler can SIGBUS with memory on.
        ...(d.fault === 'sigbus' && { sigbusWhileEnabled: mapped }),
        ...(mmapWrittenByOthers(d) && { touchQueued: { on: { [ev(u, 'FaultLock')]: faultLock } } }),
        ...(mmapTakenByOthers(d) && { munmapQueued: { on: { [ev(u, 'MunmapLock')]: munmapLock } } }),
        ...(d.fault === 'insert' && { faulting: { on: { [ev(u, 'FaultInsert')]: faultInsert } } }),
        ...(d.fault === 'remapVma' && {
          faultVmaLock: { on: { [ev(u, 'FaultLockVma')]: faultLockVma } },
          faultLockMemory: { on: { [ev(u, 'FaultLockMemory')]: faultLockMemory } },
          faultRemapping: { on: { [ev(u, 'FaultRemap')]: faultRemap } },
          munmapClosing: { on: { [ev(u, 'MunmapClose')]: munmapClose } },
        }),
        munmapping: { on: { [ev(u, 'MunmapUnlink')]: munmapUnlink } },
        done: { type: 'final' },
      },
      d,
    ),
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
const dev = (x: Dev, step: DevStep) => `${devPrefix(x)}${step}` as `${DevPrefix}${DevStep}`;

function deviceRegion(x: Dev, d: Design) {
  const { take, release, window } = lockOps(x);
  const needs = devNeeds(x, d);
  const curMm = (c: Ctx): User => c.walk[x]!;
  const mmAcq = (mode: RwMode): Acq => ({ lock: curMm, mode });
  /** Return from the call: '0', memory_lock released if this thread still holds it for write. */
  const finish = (c: Ctx): Ctx => ({
    ...c,
    call: { ...c.call, [x]: null },
    walk: { ...c.walk, [x]: null },
    memoryLock: c.memoryLock.writer === x ? upWrite(c.memoryLock) : c.memoryLock,
    ret: ret(c, x, '0'),
  });
  const entered = (c: Ctx, call: DeviceCall): Ctx => ({
    ...c,
    call: { ...c.call, [x]: call },
    ret: ret(c, x, 'blocked'),
  });
  /**
   * The end of a call's memory_lock write section: with a remap walk and
   * memory now enabled, start the walk (after up_write, unless the design
   * keeps the lock); else up_write and return.
   */
  const ending = (apply: Update, guard: Guard = always, acq?: Acq): T[] => [
    ...(d.walk === 'none'
      ? []
      : [
          tr(
            x,
            'remapScan',
            (c, e) => {
              const n = apply(c, e);
              return d.walkUnderWriteLock ? n : { ...n, memoryLock: upWrite(n.memoryLock) };
            },
            and(guard, ({ context, event }) => enabled(apply(context, event))),
            acq,
          ),
        ]),
    tr(x, 'idle', (c, e) => finish(apply(c, e)), guard, acq),
  ];
  /**
   * Entry of a call that disables memory. 7.3:
   * vfio_pci_zap_and_down_write_memory_lock() starts with down_write; before
   * aac6db75a9fc it started with the vma_list zap, and took the lock after.
   */
  /** A call that finds memory_lock unavailable queues on it as it enters (rwsem.c slow path) and sleeps in `target`. */
  const queue = (target: string, call: DeviceCall, guard: Guard): T =>
    tr(
      x,
      target,
      (c) => entered({ ...c, memoryLock: enqueue(c.memoryLock, x, 'write') }, call),
      and(
        guard,
        when((c) => mustWait(c.memoryLock, x, 'write')),
      ),
    );
  const disable = (call: DeviceCall, guard: Guard): T[] =>
    d.zap === 'mapping'
      ? [
          tr(x, 'locked', (c) => entered(take(c, MEMORY_W), call), guard, MEMORY_W),
          queue('disableQueued', call, guard),
        ]
      : [tr(x, 'zapList', (c) => entered(c, call), guard)];
  /** A call that enables memory: down_write, update vconfig or the power state, up_write: one lock window. */
  const enableBody = (c: Ctx): Ctx => ({ ...take(c, MEMORY_W), ...after(c.call[x]!, c) });
  const enable = (call: DeviceCall, guard: Guard): T[] => [
    ...ending((c) => enableBody(entered(c, call)), guard, MEMORY_W),
    queue('enableQueued', call, guard),
  ];
  const isCommand =
    (memory: boolean): Guard =>
    ({ event }) =>
      event.type === 'GuestCommandWrite' && event.memory === memory;
  const isPower =
    (d3: boolean): Guard =>
    ({ event }) =>
      event.type === 'GuestPowerWrite' && event.d3 === d3;

  const calls: Record<string, T[]> =
    x === 'guest'
      ? {
          /** VCFG:vfio_basic_config_write, offset PCI_COMMAND: zap + down_write when MEMORY is cleared, down_write when set. */
          GuestCommandWrite: [
            ...disable('memoryOff', isCommand(false)),
            ...enable('memoryOn', isCommand(true)),
          ],
          /** VCFG:vfio_pm_config_write -> vfio_lock_and_set_power_state: zap + down_write for D3hot, down_write for D0. */
          GuestPowerWrite: [...disable('d3', isPower(true)), ...enable('d0', isPower(false))],
        }
      : {
          /** VPCI:vfio_pci_ioctl_reset: vfio_pci_zap_and_down_write_memory_lock first. */
          VmmReset: disable('reset', always),
        };

  /** VPCI:vfio_pci_zap_bars -> unmap_mapping_range(): i_mmap_lock_read, then the tree walk clears the PTE of every linked VMA, i_mmap_unlock_read. */
  const zapLock = tr(x, 'zapping', (c) => take(c, IMMAP_R), always, IMMAP_R);
  const zapBars = tr(x, 'zapped', (c) =>
    release(d.mutate === 'noZap' ? c : { ...c, vma: zapLinked(c.vma) }, IMMAP_R),
  );

  // Before aac6db75a9fc, vfio_pci_zap_and_vma_lock(vdev, false): under
  // vma_lock, take the first VMA's mm from vma_list; drop vma_lock;
  // mmap_read_lock(mm); vma_lock again; zap_vma_ptes() and unlist every VMA
  // of that mm; unlock both; repeat until the list is empty, and return
  // holding vma_lock. vfio_pci_zap_and_down_write_memory_lock() then takes
  // memory_lock for write and drops vma_lock.
  const vmaLockFree = when((c) => c.vmaLock === null);
  const zapListLock = [
    tr(
      x,
      'zapDownWrite',
      (c) => ({ ...c, vmaLock: x }),
      and(
        vmaLockFree,
        when((c) => c.vmaList.length === 0),
      ),
    ),
    tr(
      x,
      'zapMmLock',
      (c) => ({ ...c, walk: { ...c.walk, [x]: c.vmaList[0] } }),
      and(
        vmaLockFree,
        when((c) => c.vmaList.length > 0),
      ),
    ),
  ];
  const zapMmLock = tr(x, 'zapRelock', (c) => take(c, mmAcq('read')), always, mmAcq('read'));
  const zapListZap = tr(
    x,
    'zapList',
    (c) => {
      const mm = curMm(c);
      const zapped = c.vmaList.includes(mm) && d.mutate !== 'noZap' ? setPte(c.vma, mm, false) : c.vma;
      const n = { ...c, vma: zapped, vmaList: c.vmaList.filter((y) => y !== mm) };
      return { ...release(n, mmAcq('read')), walk: { ...c.walk, [x]: null } };
    },
    vmaLockFree,
  );
  const zapDownWrite = tr(x, 'zapped', (c) => ({ ...take(c, MEMORY_W), vmaLock: null }), always, MEMORY_W);

  /**
   * The walk's first loop: i_mmap_lock_read, find the mm of a linked VMA without PTE and mmgrab()
   * it, unlock; none: the call returns. Seed 003 grabs the mm of every such VMA and keeps the last
   * in cur_mm; the project's walk grabs the first and stops.
   */
  const found = (c: Ctx): User[] =>
    d.walk === 'sketch' ? unpopulatedLinked(c.vma) : unpopulatedLinked(c.vma).slice(0, 1);
  const remapScan = [
    tr(
      x,
      'remapLockMm',
      (c) => {
        const mms = found(c);
        return {
          ...window(c, IMMAP_R),
          walk: { ...c.walk, [x]: mms.at(-1)! },
          grabs: { ...c.grabs, [x]: [...c.grabs[x], ...mms].sort() },
        };
      },
      when((c) => found(c).length > 0),
      IMMAP_R,
    ),
    tr(
      x,
      'idle',
      (c) => finish(window(c, IMMAP_R)),
      when((c) => found(c).length === 0),
      IMMAP_R,
    ),
  ];
  /** mmap_write_lock(cur_mm). */
  const remapLockMm = tr(
    x,
    d.walk === 'retest' ? 'remapLockMemory' : 'remapVmas',
    (c) => take(c, mmAcq('write')),
    always,
    mmAcq('write'),
  );
  /** The project's walk: down_read(memory_lock) inside mmap_lock, so that the enable test and the remap are atomic against a disable. */
  const remapLockMemory = d.walkUnderWriteLock
    ? tr(x, 'remapVmas', (c) => c) // it holds memory_lock for write already
    : tr(x, 'remapVmas', (c) => take(c, MEMORY_R), always, MEMORY_R);
  /**
   * The walk drops what it took for cur_mm: memory_lock read (unless it holds it for write),
   * cur_mm's mmap_lock, and mmdrop(cur_mm). A grab of another mm still held then is one the walk
   * has no pointer left to drop (seed 003 overwrote cur_mm): its mm_count stays raised for good.
   */
  const unlockWalk = (c: Ctx): Ctx => {
    const n = d.walk === 'retest' && c.memoryLock.writer !== x ? release(c, MEMORY_R) : c;
    const held = [...c.grabs[x]];
    held.splice(held.indexOf(curMm(c)), 1);
    return {
      ...release(n, mmAcq('write')),
      walk: { ...c.walk, [x]: null },
      grabs: { ...c.grabs, [x]: [] },
      leakedMm: held.length ? [...new Set([...c.leakedMm, ...held])].sort() : c.leakedMm,
    };
  };
  /**
   * The second loop: i_mmap_lock_read; remap_pfn_range the linked VMAs of cur_mm (seed 003:
   * every one, and one that has its PTE already is the BUG_ON; the project's walk: if memory is
   * still enabled, those without a PTE, else return); i_mmap_unlock_read; drop the walk's locks
   * and cur_mm; scan again.
   */
  const remapVmas =
    d.walk === 'sketch'
      ? [
          tr(
            x,
            'remapScan',
            (c) => unlockWalk({ ...window(c, IMMAP_R), vma: remapLinked(c.vma, curMm(c)) as Ctx['vma'] }),
            when((c) => remapLinked(c.vma, curMm(c)) !== 'BUG'),
            IMMAP_R,
          ),
          // The oops kills the thread inside the loop, holding i_mmap_rwsem and cur_mm's mmap_lock.
          tr(
            x,
            'remapBug',
            (c) => ({ ...take(c, IMMAP_R), kernelBug: true }),
            when((c) => remapLinked(c.vma, curMm(c)) === 'BUG'),
            IMMAP_R,
          ),
        ]
      : [
          tr(
            x,
            'idle',
            (c) => finish(unlockWalk(window(c, IMMAP_R))),
            when((c) => !enabled(c)),
            IMMAP_R,
          ),
          tr(
            x,
            'remapScan',
            (c) => unlockWalk({ ...window(c, IMMAP_R), vma: populateLinked(c.vma, curMm(c)) }),
            when(enabled),
            IMMAP_R,
          ),
        ];

  return {
    initial: 'idle',
    states: withWaits(
      x,
      devPrefix(x),
      needs,
      {
        idle: {
          on: {
            ...calls,
            /**
             * Not a kernel step: the thread makes no more calls (it may stop
             * only between calls). Lets the search reach "the device settled
             * for good", which accessAfterEnableWorks needs.
             */
            [dev(x, 'Quit')]: tr(x, 'done', (c) => c),
          },
        },
        /** Woken with memory_lock write: the call goes on. */
        ...(d.zap === 'mapping' && {
          disableQueued: {
            on: { [dev(x, 'LockMemory')]: tr(x, 'locked', (c) => take(c, MEMORY_W), always, MEMORY_W) },
          },
          locked: { on: { [dev(x, 'ZapLock')]: zapLock } },
          zapping: { on: { [dev(x, 'ZapBars')]: zapBars } },
        }),
        // Only the guest makes calls that enable memory.
        ...(x === 'guest' && {
          enableQueued: { on: { [dev(x, 'LockMemory')]: ending(enableBody, always, MEMORY_W) } },
        }),
        ...(d.zap === 'vmaList' && {
          zapList: { on: { [dev(x, 'ZapListLock')]: zapListLock } },
          zapMmLock: { on: { [dev(x, 'ZapMmLock')]: zapMmLock } },
          zapRelock: { on: { [dev(x, 'ZapListZap')]: zapListZap } },
          zapDownWrite: { on: { [dev(x, 'ZapDownWrite')]: zapDownWrite } },
        }),
        /**
         * Still under memory_lock write: the config or power write, or the
         * reset itself (pci_try_reset_function), the vconfig update; then
         * up_write (or the walk).
         */
        zapped: { on: { [dev(x, 'Commit')]: ending((c) => ({ ...c, ...after(c.call[x]!, c) })) } },
        ...(d.walk !== 'none' && {
          remapScan: { on: { [dev(x, 'RemapScan')]: remapScan } },
          remapLockMm: { on: { [dev(x, 'RemapLockMm')]: remapLockMm } },
          remapVmas: { on: { [dev(x, 'RemapVmas')]: remapVmas } },
        }),
        ...(d.walk === 'retest' && {
          remapLockMemory: { on: { [dev(x, 'RemapLockMemory')]: remapLockMemory } },
        }),
        done: { type: 'final' },
        // The thread that hit the BUG_ON: the oops kills it inside the walk.
        ...(canBug(d) && { remapBug: { type: 'final' } }),
      },
      d,
    ),
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
  vmaLock: null,
  vmaList: [],
  call: { guest: null, vmm: null },
  walk: { guest: null, vmm: null },
  ret: { userA: null, userB: null, guest: null, vmm: null },
  kernelBug: false,
  grabs: { guest: [], vmm: [] },
  leakedMm: [],
};

export function buildMachine(d: Design) {
  if (d.fault === 'sigbus' && d.populate === 'fault' && d.walk === 'none') {
    throw new Error('bar-mmap: nothing would ever install a PTE (fault: sigbus, populate: fault, no walk)');
  }
  if (d.walkUnderWriteLock && d.walk === 'none') {
    throw new Error('bar-mmap: walkUnderWriteLock needs a walk');
  }
  if (d.hideFromRmap && d.populate !== 'afterLink') {
    throw new Error('bar-mmap: hideFromRmap needs populate: afterLink');
  }
  if ((d.fault === 'remapVma') !== (d.zap === 'vmaList')) {
    throw new Error('bar-mmap: the remapVma fault and the vmaList zap come together (vma_list)');
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

const base = { hideFromRmap: false, zap: 'mapping', walkUnderWriteLock: false } as const;
const proposedWalk = { ...base, fault: 'sigbus', walk: 'retest' } as const;
export const DESIGNS = {
  /** Kernel 7.3.4 (aac6db75a9fc and later): nothing at mmap, vmf_insert_pfn in the fault, unmap_mapping_range. */
  current: { ...base, populate: 'fault', fault: 'insert', walk: 'none' },
  /** Kernels v5.8 to v6.9, the one seed 003's thread patches: io_remap_pfn_range in the fault, vma_list. */
  'pre-aac6db75': { ...base, populate: 'fault', fault: 'remapVma', zap: 'vmaList', walk: 'none' },
  /** Seed 003 as written: populate in f_op->mmap, SIGBUS faults, the sketched walk on enable. */
  'jason-sketch': { ...base, populate: 'mmapHook', fault: 'sigbus', walk: 'sketch' },
  /** Proposed (this project): populate after vma_link_file with the rmap hidden until done, as 7.3's mm does it; the re-testing walk. */
  'proposed-fixed': { ...proposedWalk, populate: 'afterLink', hideFromRmap: true },
  /** Proposed: as proposed-fixed, with i_mmap_rwsem dropped between the link and the populate (a hook 7.3's mm does not have). */
  'proposed-fixed-unhidden': { ...proposedWalk, populate: 'afterLink' },
  /** Proposed: proposed-fixed-unhidden with the walk before up_write(memory_lock). */
  'proposed-locked': { ...proposedWalk, populate: 'afterLink', walkUnderWriteLock: true },
  /** Proposed: no populate at mmap (7.3's fault inserts) plus the re-testing walk on enable. */
  'proposed-fault-only': { ...base, populate: 'fault', fault: 'insert', walk: 'retest' },
} as const satisfies Record<string, Design>;

const USER_EVENTS: Ev[] = USERS.flatMap((u) => [
  ...USER_STEPS.map((s) => ({ type: ev(u, s) }) as Ev),
  ...(['read', 'write'] as const).map((mode) => ({ type: `${prefix(u)}Wait`, mode }) as Ev),
]);
const DEV_EVENTS: Ev[] = DEVS.flatMap((x) => [
  ...DEV_STEPS.map((s) => ({ type: dev(x, s) }) as Ev),
  ...(['read', 'write'] as const).map((mode) => ({ type: `${devPrefix(x)}Wait`, mode }) as Ev),
]);
const HALT_EVENTS: Ev[] = (['UserA', 'UserB', 'Guest', 'Vmm'] as const).map(
  (p) => ({ type: `${p}Halt` }) as Ev,
);

/**
 * Candidate events: every step (guards pick the ones that apply), and the
 * device calls that change something: COMMAND and power writes toggle the
 * current value (writing the same value again is not generated), reset.
 */
export function events(s: { context: Ctx }): Ev[] {
  if (s.context.kernelBug) return HALT_EVENTS;
  return [
    ...USER_EVENTS,
    { type: 'GuestCommandWrite', memory: !s.context.cmdMemory },
    { type: 'GuestPowerWrite', d3: !s.context.d3 },
    { type: 'VmmReset' },
    ...DEV_EVENTS,
  ];
}

/** Every event type of every variant (conformance/adapters/bar-mmap.ts matches exhaustively over them). */
export const BAR_MMAP_EVENT_TYPES = [
  ...USERS.flatMap((u) => [
    ...USER_STEPS.map((st) => ev(u, st)),
    `${prefix(u)}Wait` as const,
    `${prefix(u)}Halt` as const,
  ]),
  'GuestCommandWrite',
  'GuestPowerWrite',
  'VmmReset',
  ...DEVS.flatMap((x) => [
    ...DEV_STEPS.map((st) => dev(x, st)),
    `${devPrefix(x)}Wait` as const,
    `${devPrefix(x)}Halt` as const,
  ]),
] as const satisfies readonly Ev['type'][];

/**
 * What the model predicts a load observes besides its result, from the state the load is made
 * in: with a PTE for the BAR page the MMU serves it and no fault is taken; without one it faults,
 * and mm/memory.c:mm_account_fault counts the fault in the thread's ru_minflt when it completes
 * (VM_FAULT_NOPAGE from vmf_insert_pfn or the old remap, 0 from a spurious fault on a PTE that
 * appeared meanwhile), not when it ends in VM_FAULT_SIGBUS (part of VM_FAULT_ERROR). The shim's
 * `load` reports both (sigbus, the ru_minflt delta); the conformance replay compares them.
 */
export function loadFacts(before: Ctx, u: User, result: string): { sigbus: number; minflt: number } {
  return {
    sigbus: result === 'SIGBUS' ? 1 : 0,
    minflt: before.vma[u]?.pte !== true && result === '0' ? 1 : 0,
  };
}

/** The calls the conformance adapter replays: mmap/munmap, a load from the mapping, the config and power writes, the reset ioctl. */
export const CALLS: readonly Ev['type'][] = [
  ...USERS.flatMap((u) => [ev(u, 'Mmap'), ev(u, 'Touch'), ev(u, 'Munmap')]),
  'GuestCommandWrite',
  'GuestPowerWrite',
  'VmmReset',
];

// ---------------------------------------------------------------- reports: labels and waits

const ACTOR_OF: Readonly<Record<Prefix, Actor>> = {
  UserA: 'userA',
  UserB: 'userB',
  Guest: 'guest',
  Vmm: 'vmm',
};
const actorOf = (type: string): Actor => ACTOR_OF[type.match(/^(UserA|UserB|Guest|Vmm)/)![1] as Prefix];
const stepOf = (type: string): string => type.replace(/^(UserA|UserB|Guest|Vmm)/, '');

/** The needs of every state of `actor`, for any design (the Wait label only needs the lock's name). */
const needsOf = (actor: Actor): Needs =>
  actor === 'guest' || actor === 'vmm'
    ? devNeeds(actor, DESIGNS['proposed-fixed'])
    : userNeeds(actor, DESIGNS.current);

const CALL_LABELS: Readonly<Record<DeviceCall, string>> = {
  memoryOff: 'pwrite(config, PCI_COMMAND, MEM=0)',
  memoryOn: 'pwrite(config, PCI_COMMAND, MEM=1)',
  d3: 'pwrite(config, PCI_PM_CTRL, D3hot)',
  d0: 'pwrite(config, PCI_PM_CTRL, D0)',
  reset: 'ioctl(device, VFIO_DEVICE_RESET)',
};

const STEP_LABELS: Readonly<Record<string, string>> = {
  Mmap: 'mmap(device, BAR0)',
  MmapHook: 'f_op->mmap: remap_pfn_range if enabled',
  MmapLink: 'vma_link_file()',
  MmapComplete: 'populate after vma_link_file()',
  Touch: 'load(BAR0)',
  FaultLock: 'the page fault: mmap_lock read granted',
  FaultInsert: 'vfio_pci_mmap_huge_fault: vmf_insert_pfn if enabled',
  FaultLockVma: 'vfio_pci_mmap_fault: mutex_lock(vma_lock)',
  FaultLockMemory: 'vfio_pci_mmap_fault: down_read(memory_lock)',
  FaultRemap: 'io_remap_pfn_range(), __vfio_pci_add_vma()',
  Munmap: 'munmap(BAR0)',
  MunmapLock: '__vm_munmap: mmap_lock write granted',
  MunmapUnlink: 'vms_complete_munmap_vmas(): zap, unlink',
  MunmapClose: 'vfio_pci_mmap_close(): off vma_list',
  LockMemory: 'down_write(memory_lock) granted',
  ZapLock: 'unmap_mapping_range(): i_mmap_lock_read',
  ZapBars: 'unmap_mapping_range(): zap linked VMAs',
  ZapListLock: 'vfio_pci_zap_and_vma_lock(): vma_list',
  ZapMmLock: 'vfio_pci_zap_and_vma_lock(): mmap_read_lock(mm)',
  ZapListZap: 'vfio_pci_zap_and_vma_lock(): zap_vma_ptes(mm)',
  ZapDownWrite: 'down_write(memory_lock), mutex_unlock(vma_lock)',
  Commit: 'update, up_write(memory_lock)',
  RemapScan: 'walk: scan i_mmap',
  RemapLockMm: 'walk: mmap_write_lock(cur_mm)',
  RemapLockMemory: 'walk: down_read(memory_lock)',
  RemapVmas: 'walk: remap cur_mm',
  Quit: '(makes no more calls)',
  Halt: '(stops: the kernel hit a BUG)',
};

/** How an event reads in the thread's language (the ModelSpec `label`). */
export function label(e: Ev, before: ModelSnapshot<Ctx>): string {
  switch (e.type) {
    case 'GuestCommandWrite':
      return CALL_LABELS[e.memory ? 'memoryOn' : 'memoryOff'];
    case 'GuestPowerWrite':
      return CALL_LABELS[e.d3 ? 'd3' : 'd0'];
    case 'VmmReset':
      return CALL_LABELS.reset;
  }
  const actor = actorOf(e.type);
  const step = stepOf(e.type);
  if (step !== 'Wait') return STEP_LABELS[step];
  const mode = (e as WaitEv).mode;
  const need = needsOf(actor)[regionState(before, actor)]?.[mode];
  const lock = need ? LOCK_NAMES[lockKey(before.context, need.acq)] : 'a lock';
  return `${need?.fn ?? 'a kernel path'}: down_${mode}(${lock}) sleeps`;
}

const VMA_LOCK_STATES: Readonly<Record<string, string>> = {
  faultVmaLock: 'vfio_pci_mmap_fault',
  zapList: 'vfio_pci_zap_and_vma_lock',
  zapRelock: 'vfio_pci_zap_and_vma_lock',
  munmapClosing: 'vfio_pci_mmap_close',
};

/** What a blocked actor waits for, in the kernel's words (the ModelSpec `waitingFor`). */
export function waitingFor(s: ModelSnapshot<Ctx>, actor: string): string | undefined {
  const a = actor as Actor;
  const c = s.context;
  const q = queuedOn(c, a);
  const state = regionState(s, a);
  if (q) {
    const fn = needsOf(a)[state]?.[q.mode]?.fn ?? 'a kernel path';
    const sem = lockOf(c, q.lock);
    return `in ${fn}: down_${q.mode}(${LOCK_NAMES[q.lock]}), queued; held by ${holders(sem)}`;
  }
  const fn = VMA_LOCK_STATES[state];
  if (fn && c.vmaLock !== null && c.vmaLock !== a)
    return `in ${fn}: mutex_lock(vma_lock), held by ${c.vmaLock}`;
  return undefined;
}

// ---------------------------------------------------------------- transitions that knowingly never fire

/** No fault of a process's own: nothing else inserts a PTE in 7.3's and the old kernel's designs. */
const OWN_FAULT_ONLY = {
  'user*.mapped#User*Touch[0]':
    'no PTE in mapped: nothing maps the BAR at mmap time, and only the process’s own fault inserts one (which leaves it in touchOk)',
  'user*.touchSigbus#User*Touch[0]': 'a SIGBUS leaves no PTE, and only the process’s own fault inserts one',
} as const;
const GUEST_WALKS_ONLY_ON_ENABLE = {
  'guest.zapped#GuestCommit[0]':
    'the guest’s disabling calls (COMMAND memory off, D3hot) leave memory off, so no walk starts from them; only a reset’s commit can re-enable',
} as const;
const GUEST_WALK_SEES_MEMORY_ON = {
  'guest.remapVmas#GuestRemapVmas[0]':
    'the walk’s exit needs memory off: only the guest turns it off, never while its own walk runs, and a reset leaves it as it was',
} as const;
/** noSigbusAfterEnable holds in these variants: its ghost branches and state are never reached. */
const NO_GHOST_SIGBUS = {
  'user*.mapped#User*Touch[1]':
    'noSigbusAfterEnable holds: no touch gets SIGBUS with memory on once the device settled',
  'user*.touchOk#User*Touch[1]': 'noSigbusAfterEnable holds',
  'user*.touchSigbus#User*Touch[1]': 'noSigbusAfterEnable holds',
  'user*.touchQueued#User*FaultLock[1]': 'noSigbusAfterEnable holds',
  'user*.sigbusWhileEnabled#*': 'noSigbusAfterEnable holds: the ghost state is never entered',
} as const;
const PROPOSED_WALK = { ...NO_GHOST_SIGBUS, ...GUEST_WALKS_ONLY_ON_ENABLE, ...GUEST_WALK_SEES_MEMORY_ON };

const invariants: Record<string, StatePredicate<Ctx>> = {
  noPteWhileDisabled,
  noStalePteAfterZap,
  noSigbusAfterEnable,
  remapHoldsMmapWriteLock,
  noDoubleRemap,
  everyMmGrabDropped,
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
    // Reachability witnesses: the interesting states are reached at all, so an
    // invariant that holds does not hold because its antecedent never occurs.
    aLoadIsServedByAPte: sometimes(
      (s) => regionState(s, 'userA') === 'touchOk' && s.context.vma.userA?.pte === true,
    ),
    aDisableMeetsAMapping: sometimes(
      (s) =>
        (s.matches({ guest: 'zapped' }) || s.matches({ vmm: 'zapped' })) &&
        s.context.vma.userA?.linked === true,
    ),
    aLoadGetsSigbusWhileOff: sometimes(
      (s) => regionState(s, 'userA') === 'touchSigbus' && !enabled(s.context),
    ),
  },
  fairness: { weak: 'all' },
  label,
  waitingFor,
  variants: {
    current: {
      description:
        'kernel 7.3.4: nothing mapped at mmap; the fault inserts under memory_lock read; disable zaps under memory_lock write',
      machine: buildMachine(DESIGNS.current),
      expect: { violated: [], states: 40222 },
      unreachable: OWN_FAULT_ONLY,
    },
    'pre-aac6db75': {
      description:
        "kernels v5.8-v6.9 (the thread's): the fault io_remap_pfn_range()s the VMA under vma_lock and memory_lock read, holding mmap_lock only for read; the zap walks vma_list",
      machine: buildMachine(DESIGNS['pre-aac6db75']),
      unreachable: {
        ...OWN_FAULT_ONLY,
        'user*.mapped#User*Munmap[1]':
          'the old zap takes the mmap_lock only of a process on vma_list, and a process is listed only after a fault, which leaves it in touchOk',
        'user*.faultLockMemory#User*FaultLockMemory[1]':
          'finding the VMA listed already needs a second thread of the process faulting the same VMA; the model has one thread per process',
      },
      expect: { violated: ['remapHoldsMmapWriteLock', 'guestCallsReturn', 'vmmCallsReturn'], states: 54186 },
    },
    'jason-sketch': {
      description:
        "seed 003's sketch as written: populate in f_op->mmap, SIGBUS faults, on enable the walk over i_mmap (mmgrab of every unpopulated VMA's mm, the last as cur_mm, no lock, no re-test, every VMA of cur_mm remapped)",
      machine: buildMachine(DESIGNS['jason-sketch']),
      unreachable: {
        ...GUEST_WALKS_ONLY_ON_ENABLE,
        'user*.touchOk#User*Touch[1]':
          'a VMA that was touched is linked, and every enable’s walk repopulates linked VMAs before the device settles: only a fresh mapping (state mapped) can miss the walk',
        'user*.touchSigbus#User*Touch[1]':
          'as touchOk: a touched VMA is linked and repopulated by the enable’s walk',
        'user*.touchQueued#User*FaultLock[1]':
          'a touch queues only behind a walk, which is a call in progress',
        '*.zapped#*Halt':
          'the BUG needs cur_mm’s VMA populated after the walk’s scan, which only the other device thread’s walk does; a thread in zapped has cleared every linked VMA since its last walk',
        'guest.enableQueued#GuestHalt':
          'after the walk that populated cur_mm’s VMA memory is on, so the guest’s next call is a disable (calls toggle), whose zap clears that VMA before the guest can queue for another enable',
      },
      expect: {
        violated: [
          'noPteWhileDisabled',
          'noStalePteAfterZap',
          'noSigbusAfterEnable',
          'noDoubleRemap',
          'everyMmGrabDropped',
          'accessAfterEnableWorks',
        ],
        states: 460892,
      },
    },
    'proposed-fixed': {
      description:
        "proposed (ours): populate after vma_link_file with i_mmap_rwsem held until done (7.3's hide_from_rmap_until_complete); SIGBUS faults; the walk re-tests under memory_lock read and returns when memory is off",
      machine: buildMachine(DESIGNS['proposed-fixed']),
      unreachable: PROPOSED_WALK,
      expect: { violated: ['deadlock', 'guestCallsReturn', 'vmmCallsReturn'], states: 155938 },
    },
    'proposed-fixed-unhidden': {
      description:
        'proposed (ours): proposed-fixed with i_mmap_rwsem dropped between the link and the populate: needs an mm hook 7.3 does not have',
      machine: buildMachine(DESIGNS['proposed-fixed-unhidden']),
      unreachable: PROPOSED_WALK,
      expect: { violated: [], states: 187412 },
    },
    'proposed-locked': {
      description:
        'proposed (ours): proposed-fixed-unhidden with the walk run before up_write(memory_lock): mmap_lock nests inside memory_lock',
      machine: buildMachine(DESIGNS['proposed-locked']),
      unreachable: {
        ...PROPOSED_WALK,
        'vmm.remapVmas#VmmRemapVmas[0]':
          'the walk holds memory_lock for write: nothing turns memory off while it runs',
        '*.remapVmas#*Wait':
          'the walk holds memory_lock for write, so no zap holds i_mmap_rwsem, and the link takes it in one step: the second loop never sleeps',
      },
      expect: { violated: ['deadlock', 'guestCallsReturn', 'vmmCallsReturn'], states: 58381 },
    },
    'proposed-fault-only': {
      description:
        "proposed (ours): 7.3's fault-time insert plus the re-testing walk on enable (Jason's 'rely exclusively on the fault handler to populate', with a prefault)",
      machine: buildMachine(DESIGNS['proposed-fault-only']),
      unreachable: { ...GUEST_WALKS_ONLY_ON_ENABLE, ...GUEST_WALK_SEES_MEMORY_ON },
      expect: { violated: [], states: 202965 },
    },
  },
  defaultVariant: 'current',
});
