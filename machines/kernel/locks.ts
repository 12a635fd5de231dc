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
 * - a queued reader is eligible once no writer holds the lock and the first
 *   waiter is a reader: rwsem_mark_wake() then grants every queued reader
 *   ("phase-fair"), also those queued behind a writer;
 * - a writer not queued gets the lock only when it is free and nobody waits
 *   (rwsem_write_trylock(): cmpxchg from RWSEM_UNLOCKED_VALUE);
 * - a queued writer is eligible when it is the first waiter and the lock is
 *   free (rwsem_try_write_lock()).
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
  readonly readers: readonly string[];
  readonly waiters: readonly RwWaiter[];
}

export const RWSEM_FREE: RwSem = { writer: null, readers: [], waiters: [] };

const queuedAt = (s: RwSem, actor: string): number => s.waiters.findIndex((w) => w.actor === actor);

/** Whether `actor` is on the wait list. */
export const isQueued = (s: RwSem, actor: string): boolean => queuedAt(s, actor) >= 0;

/** Whether `actor` may take the lock for read now (fast path, or woken as a queued reader). */
export function canRead(s: RwSem, actor: string): boolean {
  if (s.writer !== null) return false;
  return isQueued(s, actor) ? s.waiters[0].mode === 'read' : s.waiters.length === 0;
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

/** The slow path: add `actor` to the tail of the wait list and sleep. */
export function enqueue(s: RwSem, actor: string, mode: RwMode): RwSem {
  if (isQueued(s, actor)) throw new Error(`${actor} is already queued on the rwsem`);
  return { ...s, waiters: [...s.waiters, { actor, mode }] };
}

const dequeue = (s: RwSem, actor: string): readonly RwWaiter[] => s.waiters.filter((w) => w.actor !== actor);

export function downRead(s: RwSem, actor: string): RwSem {
  if (s.writer !== null) throw new Error(`down_read by ${actor} while ${s.writer} holds the rwsem for write`);
  return { writer: null, readers: [...s.readers, actor].sort(), waiters: dequeue(s, actor) };
}

export function upRead(s: RwSem, actor: string): RwSem {
  const i = s.readers.indexOf(actor);
  if (i < 0) throw new Error(`up_read by ${actor}, which does not hold the rwsem`);
  return { ...s, readers: [...s.readers.slice(0, i), ...s.readers.slice(i + 1)] };
}

export function downWrite(s: RwSem, actor: string): RwSem {
  if (s.writer !== null || s.readers.length > 0) throw new Error(`down_write by ${actor} on a held rwsem`);
  return { writer: actor, readers: [], waiters: dequeue(s, actor) };
}

export const upWrite = (s: RwSem): RwSem => ({ ...s, writer: null });

/** down_read() and up_read() in one step (a read section that takes nothing else): only the wait-list entry goes. */
export const readWindow = (s: RwSem, actor: string): RwSem => upRead(downRead(s, actor), actor);
/** down_write() and up_write() in one step. */
export const writeWindow = (s: RwSem, actor: string): RwSem => upWrite(downWrite(s, actor));

/** A short description of who holds `s` and who waits, for waitingFor() reports. */
export function holders(s: RwSem): string {
  if (s.writer !== null) return `${s.writer} (write)`;
  return s.readers.length ? `${s.readers.join(', ')} (read)` : 'nobody';
}
