/**
 * Kernel locks as model state. A lock is part of the shared context; an actor
 * that wants it is a guard ("free?") followed by an assign ("take"), so a path
 * that drops and re-takes a lock is several events and other actors may run in
 * between. Deadlock shows up as the explorer's "no event enabled" check.
 */

/** A mutex (struct mutex): the actor holding it, or null. */
export type Mutex = string | null;

export const mutexFree = (m: Mutex): boolean => m === null;
export const mutexHeldBy = (m: Mutex, actor: string): boolean => m === actor;

export type RwMode = 'read' | 'write';

/** One entry of an rw_semaphore's wait list (struct rwsem_waiter: task and type). */
export interface RwWaiter {
  readonly actor: string;
  readonly mode: RwMode;
}

/**
 * A read-write semaphore (struct rw_semaphore) with the kernel's fairness
 * (kernel/locking/rwsem.c). Readers are kept sorted so that equal states
 * fingerprint equally; `waiters` is the wait list, oldest first.
 *
 * An actor that cannot take the lock at once queues (`enqueue`, the slow
 * path's list_add_tail) and sleeps until it is eligible:
 * - a reader not queued gets the lock only when no writer holds it and the
 *   wait list is empty: rwsem_read_trylock() fails on RWSEM_FLAG_WAITERS
 *   (RWSEM_READ_FAILED_MASK), so a queued writer shuts out new readers;
 * - queued readers are granted the lock at wake time: whenever no writer
 *   holds it and the first waiter is a reader, rwsem_mark_wake() adds
 *   RWSEM_READER_BIAS for every queued reader (up to MAX_READERS_WAKEUP),
 *   also those queued behind a writer ("phase-fair"), takes them off the
 *   list and only then wakes them. They hold the lock from that moment
 *   (`readers`, and `granted` until each runs the step that needed it), so
 *   a writer queued behind the first of them cannot take the lock before
 *   the last granted reader has dropped it;
 * - a writer not queued gets the lock only when it is free and nobody waits
 *   (rwsem_write_trylock(): cmpxchg from RWSEM_UNLOCKED_VALUE);
 * - a queued writer is eligible when it is the first waiter and the lock is
 *   free (rwsem_try_write_lock()); rwsem_mark_wake() wakes it alone.
 *
 * Modelled as fairness, not as time: the kernel lets a reader steal a free
 * lock past a sleeping writer (rwsem_down_read_slowpath(), "reader optimistic
 * lock stealing") and a writer steal before the woken first waiter runs,
 * until the first waiter has slept RWSEM_WAIT_TIMEOUT (4 ms) and sets
 * RWSEM_FLAG_HANDOFF, after which nobody may overtake it. The model grants
 * the handoff at once: nobody overtakes the first waiter. A steal only
 * reorders an acquisition that the model also reaches by letting the stealer
 * arrive before the waiter queued.
 */
export interface RwSem {
  readonly writer: string | null;
  /** Every reader holding the lock, sorted: those in a read section and those granted at wake time. */
  readonly readers: readonly string[];
  readonly waiters: readonly RwWaiter[];
  /**
   * Readers rwsem_mark_wake() granted the lock (they are in `readers`) that have not yet run the
   * step that slept for it; sorted. Their step takes nothing more: down_read() returned for them.
   */
  readonly granted: readonly string[];
}

export const RWSEM_FREE: RwSem = { writer: null, readers: [], waiters: [], granted: [] };

const queuedAt = (s: RwSem, actor: string): number => s.waiters.findIndex((w) => w.actor === actor);

/** Whether `actor` is on the wait list. */
export const isQueued = (s: RwSem, actor: string): boolean => queuedAt(s, actor) >= 0;

/** Whether `actor` may take the lock for read now: granted at wake time, or the fast path. */
export function canRead(s: RwSem, actor: string): boolean {
  if (s.granted.includes(actor)) return true;
  return s.writer === null && s.waiters.length === 0 && !isQueued(s, actor);
}

/** Whether `actor` may take the lock for write now (fast path, or first waiter of a free lock). */
export function canWrite(s: RwSem, actor: string): boolean {
  if (s.writer !== null || s.readers.length > 0) return false;
  const i = queuedAt(s, actor);
  return i < 0 ? s.waiters.length === 0 : i === 0;
}

/** Whether `actor` wanting the lock in `mode` must queue: it is not queued yet and cannot take it now. */
export const mustWait = (s: RwSem, actor: string, mode: RwMode): boolean =>
  !isQueued(s, actor) && !(mode === 'read' ? canRead(s, actor) : canWrite(s, actor));

/**
 * rwsem_mark_wake() as the wake-ups call it (up_read/up_write via rwsem_wake(), the slow paths
 * when they find no writer): with no writer holding the lock and a reader first on the wait
 * list, every queued reader is granted the lock and leaves the list; a writer first on the list
 * is only woken (it takes the lock in its own step, canWrite).
 */
function markWake(s: RwSem): RwSem {
  if (s.writer !== null || s.waiters[0]?.mode !== 'read') return s;
  const woken = s.waiters.filter((w) => w.mode === 'read').map((w) => w.actor);
  return {
    writer: null,
    readers: [...s.readers, ...woken].sort(),
    waiters: s.waiters.filter((w) => w.mode !== 'read'),
    granted: [...s.granted, ...woken].sort(),
  };
}

/** The slow path: add `actor` to the tail of the wait list and sleep (rwsem_down_{read,write}_slowpath). */
export function enqueue(s: RwSem, actor: string, mode: RwMode): RwSem {
  if (isQueued(s, actor)) throw new Error(`${actor} is already queued on the rwsem`);
  if (s.readers.includes(actor) || s.writer === actor)
    throw new Error(`${actor} queues on an rwsem it holds`);
  return markWake({ ...s, waiters: [...s.waiters, { actor, mode }] });
}

const without = (xs: readonly string[], x: string): readonly string[] => {
  const i = xs.indexOf(x);
  return i < 0 ? xs : [...xs.slice(0, i), ...xs.slice(i + 1)];
};

/** down_read(): the fast path, or, for a reader granted at wake time, the return from its sleep. */
export function downRead(s: RwSem, actor: string): RwSem {
  if (s.granted.includes(actor)) return { ...s, granted: without(s.granted, actor) };
  if (s.writer !== null) throw new Error(`down_read by ${actor} while ${s.writer} holds the rwsem for write`);
  if (isQueued(s, actor)) throw new Error(`down_read by ${actor}, queued and not granted the rwsem`);
  if (s.readers.includes(actor)) throw new Error(`down_read by ${actor}, which holds the rwsem already`);
  return { ...s, readers: [...s.readers, actor].sort() };
}

export function upRead(s: RwSem, actor: string): RwSem {
  if (!s.readers.includes(actor) || s.granted.includes(actor))
    throw new Error(`up_read by ${actor}, which does not hold the rwsem`);
  return markWake({ ...s, readers: without(s.readers, actor) });
}

export function downWrite(s: RwSem, actor: string): RwSem {
  if (s.writer !== null || s.readers.length > 0) throw new Error(`down_write by ${actor} on a held rwsem`);
  return { ...s, writer: actor, waiters: s.waiters.filter((w) => w.actor !== actor) };
}

export const upWrite = (s: RwSem): RwSem => markWake({ ...s, writer: null });

/** down_read() and up_read() in one step (a read section that takes nothing else): only a grant at wake time is left behind by neither. */
export const readWindow = (s: RwSem, actor: string): RwSem => upRead(downRead(s, actor), actor);
/** down_write() and up_write() in one step. */
export const writeWindow = (s: RwSem, actor: string): RwSem => upWrite(downWrite(s, actor));

/** A short description of who holds `s` and who waits, for waitingFor() reports. */
export function holders(s: RwSem): string {
  if (s.writer !== null) return `${s.writer} (write)`;
  return s.readers.length ? `${s.readers.join(', ')} (read)` : 'nobody';
}
