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

/** A read-write semaphore (struct rw_semaphore). Readers kept sorted so equal states fingerprint equally. */
export interface RwSem {
  readonly writer: string | null;
  readonly readers: readonly string[];
}

export const RWSEM_FREE: RwSem = { writer: null, readers: [] };

export const canRead = (s: RwSem): boolean => s.writer === null;
export const canWrite = (s: RwSem): boolean => s.writer === null && s.readers.length === 0;

export const downRead = (s: RwSem, actor: string): RwSem => ({
  writer: s.writer,
  readers: [...s.readers, actor].sort(),
});

export const upRead = (s: RwSem, actor: string): RwSem => {
  const i = s.readers.indexOf(actor);
  if (i < 0) throw new Error(`up_read by ${actor}, which does not hold the rwsem`);
  return { writer: s.writer, readers: [...s.readers.slice(0, i), ...s.readers.slice(i + 1)] };
};

export const downWrite = (_s: RwSem, actor: string): RwSem => ({ writer: actor, readers: [] });
export const upWrite = (s: RwSem): RwSem => ({ writer: null, readers: s.readers });
