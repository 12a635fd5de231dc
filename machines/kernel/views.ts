/**
 * Views (`--view`, explorer/view.ts, TLC's VIEW): a model's state with
 * history that can no longer matter normalised away, history the models keep
 * for their reports and invariants and no guard or assign reads. Each piece
 * is one function over the context fields it needs, and a model composes
 * those that hold for its properties; the explorer checks the composition by
 * stepping a state and its view side by side and stops with a model error if
 * their futures ever part.
 */
import type { Mms } from './mm.ts';
import type { Type1Ctx } from './type1-notify.ts';

/**
 * Each actor's last result, which the reports read on traces replayed from
 * the real initial state and nothing in the machines does (every model here).
 */
export function forgetResults<C extends { readonly ret: Readonly<Record<string, string | null>> }>(c: C): C {
  if (Object.values(c.ret).every((r) => r === null)) return c;
  return { ...c, ret: Object.fromEntries(Object.keys(c.ret).map((a) => [a, null])) as C['ret'] };
}

/**
 * A dead mm's counters: mmget_not_zero() fails on it from then on, so
 * __account_locked_vm (mm.ts accountLockedVm) neither reads nor changes
 * them, and accountingConserved judges live mms only.
 */
export function forgetDeadCounters<C extends { readonly mms: Mms }>(c: C): C {
  if (Object.values(c.mms).every((m) => m.alive || (m.lockedVm === 0 && m.pinnedVm === 0))) return c;
  const mms = Object.fromEntries(
    Object.entries(c.mms).map(([n, m]) => [n, m.alive ? m : { ...m, lockedVm: 0, pinnedVm: 0 }]),
  );
  return { ...c, mms };
}

/**
 * A `lastUnmap` entry for a dma that is unmapped, unpinned and not leaked:
 * unmapLeavesNoPins fails for it only once it is pinned or leaked, which
 * takes a MAP_DMA of it first (pinPage is EINVAL and removeDma a no-op on an
 * unmapped dma, type1.ts), and that MAP drops it from the range. An empty
 * range is no range. Only for a model whose properties read `lastUnmap`
 * through unmapLeavesNoPins alone (device-close's unmapReturns witness reads
 * whether an unmap returned, so it keeps the record).
 */
export function forgetSpentUnmaps<C extends Type1Ctx>(c: C): C {
  const { t1 } = c;
  const matters = (i: number) =>
    t1.dmas[i].mapped || t1.dmas[i].pin !== null || t1.leaked.some((l) => l.dma === i);
  const ranges = Object.entries(c.lastUnmap).map(([actor, r]) => {
    const kept = r?.filter(matters) ?? [];
    return [actor, kept.length > 0 ? kept : null] as const;
  });
  if (ranges.every(([actor, r]) => (r?.length ?? -1) === (c.lastUnmap[actor]?.length ?? -1))) return c;
  return { ...c, lastUnmap: Object.fromEntries(ranges) };
}
