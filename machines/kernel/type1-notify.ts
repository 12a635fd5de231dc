/**
 * The type1 kernel paths that drop or nest locks, as actor states:
 *
 * - VFIO_IOMMU_UNMAP_DMA (T1:vfio_dma_do_unmap) with its DMA-unmap
 *   notification (T1:vfio_notify_dma_unmap), one event per lock window:
 *     <P>UnmapDma       mutex_lock(iommu->lock); walk (type1.ts walkUnmap)
 *     <P>UnmapListLock  mutex_lock(device_list_lock); mutex_unlock(iommu->lock)
 *     <P>UnmapCallback  one device's ops->dma_unmap(); a compliant driver's
 *                       vfio_unpin_pages() takes iommu->lock inside it
 *     <P>UnmapListUnlock mutex_unlock(device_list_lock)
 *     <P>UnmapRelock    mutex_lock(iommu->lock); goto again (walk)
 *   The windows are where seed 004's re-pin race and U6's lock-order
 *   inversion live.
 * - register_device / unregister_device (T1:vfio_iommu_type1_register_device,
 *   _unregister_device): mutex_lock(iommu->lock) then
 *   mutex_lock(device_list_lock), two events.
 *
 * Used by the container and device-close models; an actor gets these states
 * by spreading the returned tables into its own.
 */
import type { Mms } from './mm.ts';
import {
  addDevice,
  forgetFreed,
  type Kstate,
  type LockOrder,
  newWalk,
  removeDevice,
  type Type1,
  type Type1Design,
  type Walk,
  type WalkOutcome,
  walkUnmap,
} from './type1.ts';
import type { BugCtx, States, Tr } from './type1-xstate.ts';

/** The context fields the type1 paths read and write; a model's context extends it. */
export interface Type1Ctx extends BugCtx {
  readonly t1: Type1;
  readonly mms: Mms;
  /** Each actor's last call result: '0', an errno name, 'blocked' while it has not returned. */
  readonly ret: Readonly<Record<string, string | null>>;
  /** Each unmapping actor's vfio_dma_do_unmap() in progress. */
  readonly walk: Readonly<Record<string, Walk | null>>;
  /** Each unmapping actor's last UNMAP_DMA that returned 0: its range (for unmapLeavesNoPins). */
  readonly lastUnmap: Readonly<Record<string, readonly number[] | null>>;
}

/** An UNMAP_DMA range: one dma, or VFIO_DMA_UNMAP_FLAG_ALL. */
export type Range = number | 'all';

export const rangeOf = (r: Range, dmas: number): readonly number[] =>
  r === 'all' ? Array.from({ length: dmas }, (_x, i) => i) : [r];

export interface RangeEvent {
  readonly type: string;
  readonly range?: Range;
}

export const kstate = (c: Type1Ctx): Kstate => ({ t1: c.t1, mms: c.mms });

export interface UnmapPathSpec<C extends Type1Ctx> {
  /** The actor (region) making the call, and its event prefix (Vmm). */
  readonly actor: string;
  readonly prefix: string;
  readonly design: Type1Design;
  /** The state the actor is in before the call and returns to after it. */
  readonly home: string;
  /** Whether the actor can make the call at all (its fd is open, it is alive). */
  readonly canCall: (c: C) => boolean;
  /** A registered device's dma_unmap callback for dma `i`. */
  readonly callback: (c: C, dev: string, i: number) => Callback<C>;
}

export interface Callback<C> {
  /** It calls vfio_unpin_pages(), so it needs iommu->lock free at this step. */
  readonly needsLock: boolean;
  readonly apply: (c: C) => Partial<C>;
}

/**
 * The UNMAP_DMA call and its notification states. Returns the transitions of
 * the call event (to put on `home`) and the extra states of the path.
 * Kernel: T1:vfio_dma_do_unmap, its notification T1:vfio_notify_dma_unmap
 * (a compliant driver's VMAIN:vfio_unpin_pages → T1:vfio_iommu_type1_unpin_pages
 * inside it), then T1:vfio_remove_dma for each dma in the range.
 */
export function unmapPath<C extends Type1Ctx, E extends RangeEvent>(s: UnmapPathSpec<C>) {
  const { actor, prefix, design, home } = s;
  const st = {
    notify: 'unmapListLock',
    listWait: 'unmapListWait',
    callbacks: 'unmapCallbacks',
    relock: 'unmapRelock',
  };
  const lockFree = (c: C) => c.t1.lock === null;
  const walkOf = (c: C) => c.walk[actor] as Walk;
  const outcome = (k: Kstate, w: Walk) => walkUnmap(k, w, design);

  /** The context after a walk that ended one way or the other; the lock is ours during it. */
  const settle = (c0: C, o: WalkOutcome): Partial<C> => {
    // The other threads' walks forget the dmas this walk freed.
    const walks = Object.fromEntries(
      Object.entries(c0.walk).map(([a, w]) => [
        a,
        a === actor || w === null ? w : forgetFreed(w, c0.t1, o.k.t1, design),
      ]),
    );
    const c = { ...c0, walk: walks };
    const base = { t1: o.k.t1, mms: o.k.mms, walk: walks } as Partial<C>;
    if (o.kind === 'bug') {
      // BUG_ON: the task dies holding iommu->lock.
      return {
        ...base,
        t1: { ...o.k.t1, lock: actor },
        walk: { ...c.walk, [actor]: o.walk },
        kernelBug: true,
        ret: { ...c.ret, [actor]: 'BUG' },
      } as Partial<C>;
    }
    if (o.kind === 'notify') {
      return {
        ...base,
        t1: { ...o.k.t1, lock: actor },
        walk: { ...c.walk, [actor]: o.walk },
        ret: { ...c.ret, [actor]: 'blocked' },
      } as Partial<C>;
    }
    const range = walkOf(c)?.range ?? null;
    return {
      ...base,
      t1: { ...o.k.t1, lock: null },
      walk: { ...c.walk, [actor]: null },
      ret: { ...c.ret, [actor]: '0' },
      lastUnmap: { ...c.lastUnmap, [actor]: range },
    } as Partial<C>;
  };

  /** Three transitions for one walk: BUG, notify, return. */
  const walkTransitions = (
    enabled: (c: C) => boolean,
    start: (c: C, e: E) => { k: Kstate; w: Walk },
  ): Tr<C, E>[] => {
    const run = (c: C, e: E) => {
      const { k, w } = start(c, e);
      return outcome(k, w);
    };
    const withWalk = (c: C, e: E): C => ({ ...c, walk: { ...c.walk, [actor]: start(c, e).w } });
    return (['bug', 'notify', 'done'] as const).map((kind) => ({
      guard: ({ context, event }) => enabled(context) && run(context, event).kind === kind,
      update: ({ context, event }) => settle(withWalk(context, event), run(context, event)),
      target: kind === 'bug' ? 'kernelBug' : kind === 'notify' ? st.notify : home,
    }));
  };

  const call = walkTransitions(
    (c) => s.canCall(c) && lockFree(c),
    (c, e) => ({ k: kstate(c), w: newWalk(rangeOf(e.range ?? 'all', c.t1.dmas.length)) }),
  );

  const takeList: Tr<C, E> = {
    guard: ({ context }) => context.t1.listLock === null,
    update: ({ context }) => ({ t1: { ...context.t1, listLock: actor, lock: null } }) as Partial<C>,
    target: st.callbacks,
  };
  // 'list-first' (the U6 patch): mutex_unlock(iommu->lock), then mutex_lock(device_list_lock),
  // two steps of the same event; 7.3.4 takes device_list_lock with iommu->lock still held.
  const notifyStates: States<C, E> =
    design.lockOrder === 'list-first'
      ? {
          [st.notify]: {
            [`${prefix}UnmapListLock`]: [
              {
                update: ({ context }) => ({ t1: { ...context.t1, lock: null } }) as Partial<C>,
                target: st.listWait,
              },
            ],
          },
          [st.listWait]: { [`${prefix}UnmapListLock`]: [takeList] },
        }
      : { [st.notify]: { [`${prefix}UnmapListLock`]: [takeList] } };
  const states: States<C, E> = {
    ...notifyStates,
    [st.callbacks]: {
      [`${prefix}UnmapCallback`]: [
        {
          guard: ({ context }) => {
            const w = walkOf(context);
            if (w.called >= context.t1.devices.length) return false;
            const cb = s.callback(context, context.t1.devices[w.called], w.target as number);
            return !cb.needsLock || lockFree(context);
          },
          update: ({ context }) => {
            const w = walkOf(context);
            const cb = s.callback(context, context.t1.devices[w.called], w.target as number);
            const applied = cb.apply(context);
            return {
              ...applied,
              walk: { ...context.walk, [actor]: { ...w, called: w.called + 1 } },
            } as Partial<C>;
          },
        },
      ],
      [`${prefix}UnmapListUnlock`]: [
        {
          guard: ({ context }) => walkOf(context).called >= context.t1.devices.length,
          update: ({ context }) =>
            ({
              t1: { ...context.t1, listLock: null },
              walk: { ...context.walk, [actor]: { ...walkOf(context), target: null, called: 0 } },
            }) as Partial<C>,
          target: st.relock,
        },
      ],
    },
    [st.relock]: {
      [`${prefix}UnmapRelock`]: walkTransitions(lockFree, (c) => ({ k: kstate(c), w: walkOf(c) })),
    },
    kernelBug: 'final',
  };
  return { call, states };
}

export interface LockPairSpec<C extends Type1Ctx> {
  readonly actor: string;
  /** Event names of the two steps, the state between them and the state after. */
  readonly lockEvent: string;
  readonly listEvent: string;
  readonly middle: string;
  readonly next: string;
  /** Whether the first step may start. */
  readonly when: (c: C) => boolean;
  /** Bookkeeping of the first step besides taking iommu->lock (a call recording 'blocked'). */
  readonly start?: (c: C) => Partial<C>;
  /** What happens with both locks held (list_add or list_del, plus any bookkeeping). */
  readonly apply: (c: C) => Partial<C>;
  /** 'list-first' (the U6 patch): device_list_lock is the first step, iommu->lock the second. */
  readonly order?: LockOrder;
}

/**
 * mutex_lock(&iommu->lock); mutex_lock(&iommu->device_list_lock); ...; both
 * unlocked: the shape of register_device and unregister_device (with the U6
 * patch the other way round). Returns the first step's transitions (for the
 * state the actor is in) and the middle state.
 */
export function lockPair<C extends Type1Ctx, E>(s: LockPairSpec<C>) {
  const [outer, inner] =
    s.order === 'list-first' ? (['listLock', 'lock'] as const) : (['lock', 'listLock'] as const);
  const first: Tr<C, E>[] = [
    {
      guard: ({ context }) => s.when(context) && context.t1[outer] === null,
      update: ({ context }) =>
        ({ ...s.start?.(context), t1: { ...context.t1, [outer]: s.actor } }) as Partial<C>,
      target: s.middle,
    },
  ];
  const middle: States<C, E> = {
    [s.middle]: {
      [s.listEvent]: [
        {
          guard: ({ context }) => context.t1[inner] === null,
          update: ({ context }) => {
            const applied = s.apply(context);
            const t1 = (applied.t1 as Type1 | undefined) ?? context.t1;
            return { ...applied, t1: { ...t1, lock: null, listLock: null } } as Partial<C>;
          },
          target: s.next,
        },
      ],
    },
  };
  return { first, middle };
}

/** list_add(&vdev->iommu_entry, &iommu->device_list) for a lockPair. */
export const registerDevice =
  <C extends Type1Ctx>(dev: string) =>
  (c: C): Partial<C> =>
    ({ t1: addDevice(c.t1, dev) }) as Partial<C>;

/** list_del(&vdev->iommu_entry) for a lockPair. */
export const unregisterDevice =
  <C extends Type1Ctx>(dev: string) =>
  (c: C): Partial<C> =>
    ({ t1: removeDevice(c.t1, dev) }) as Partial<C>;
