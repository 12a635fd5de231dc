/**
 * The writer-fair rw_semaphore of machines/kernel/locks.ts against the
 * behaviour of kernel/locking/rwsem.c it stands for.
 */
import { describe, expect, it } from 'vitest';
import {
  canRead,
  canWrite,
  downRead,
  downWrite,
  enqueue,
  isQueued,
  mustWait,
  RWSEM_FREE,
  type RwSem,
  readWindow,
  upRead,
  upWrite,
} from '../../../machines/kernel/locks.ts';

const readers = (...rs: string[]): RwSem => rs.reduce((s, r) => downRead(s, r), RWSEM_FREE);

describe('writer-fair rwsem', () => {
  it('a free lock goes to whoever asks, readers share it', () => {
    expect(canRead(RWSEM_FREE, 'a')).toBe(true);
    expect(canWrite(RWSEM_FREE, 'a')).toBe(true);
    const s = readers('a', 'b');
    expect(s.readers).toEqual(['a', 'b']);
    expect(canRead(s, 'c')).toBe(true);
    expect(canWrite(s, 'w')).toBe(false);
    expect(mustWait(s, 'w', 'write')).toBe(true);
  });

  it('a queued writer shuts out new readers (rwsem_read_trylock fails on RWSEM_FLAG_WAITERS)', () => {
    let s = enqueue(readers('a'), 'w', 'write');
    expect(canRead(s, 'b')).toBe(false);
    expect(mustWait(s, 'b', 'read')).toBe(true);
    s = enqueue(s, 'b', 'read');
    expect(canRead(s, 'b')).toBe(false); // queued behind the writer: the first waiter is not a reader
    s = upRead(s, 'a');
    expect(canWrite(s, 'w')).toBe(true); // the first waiter takes the free lock
    expect(canRead(s, 'b')).toBe(false);
    s = downWrite(s, 'w');
    expect(isQueued(s, 'w')).toBe(false);
    s = upWrite(s);
    expect(canRead(s, 'b')).toBe(true);
  });

  it('the old unfair lock starved a waiting writer; this one does not: readers taking turns cannot keep it out', () => {
    // Two readers alternate, each re-taking the lock while the other holds it.
    // With readers admitted past a waiting writer the writer never got a
    // free lock; here the first reader to come back after the writer queued
    // has to queue too, so the lock drains.
    let s = enqueue(readers('a'), 'w', 'write');
    expect(canRead(s, 'b')).toBe(false);
    s = upRead(s, 'a');
    expect(canRead(s, 'a')).toBe(false);
    expect(canWrite(s, 'w')).toBe(true);
  });

  it('nobody overtakes the first waiter of a free lock (RWSEM_FLAG_HANDOFF as fairness)', () => {
    const s = enqueue(enqueue(downWrite(RWSEM_FREE, 'x'), 'w1', 'write'), 'w2', 'write');
    const free = upWrite(s);
    expect(canWrite(free, 'w1')).toBe(true);
    expect(canWrite(free, 'w2')).toBe(false);
    expect(canWrite(free, 'new')).toBe(false);
    expect(canRead(free, 'new')).toBe(false);
  });

  it('a reader phase grants every queued reader at wake time, also those behind a writer (rwsem_mark_wake)', () => {
    let s = downWrite(RWSEM_FREE, 'x');
    s = enqueue(enqueue(enqueue(s, 'r1', 'read'), 'w', 'write'), 'r2', 'read');
    s = upWrite(s);
    // Granted by up_write(): both hold the lock before either has run, and left the wait list.
    expect(s).toEqual({
      writer: null,
      readers: ['r1', 'r2'],
      waiters: [{ actor: 'w', mode: 'write' }],
      granted: ['r1', 'r2'],
    });
    expect(canRead(s, 'r1')).toBe(true);
    expect(canRead(s, 'r2')).toBe(true);
    expect(canWrite(s, 'w')).toBe(false);
    // r1 runs its read section and drops the lock: r2 still holds it, w waits.
    s = upRead(downRead(s, 'r1'), 'r1');
    expect(canWrite(s, 'w')).toBe(false);
    expect(canRead(s, 'r2')).toBe(true);
    s = upRead(downRead(s, 'r2'), 'r2');
    expect(canWrite(s, 'w')).toBe(true);
  });

  it('a writer first on the list is woken alone: readers behind it stay queued', () => {
    let s = downWrite(RWSEM_FREE, 'x');
    s = upWrite(enqueue(enqueue(s, 'w', 'write'), 'r', 'read'));
    expect(s.granted).toEqual([]);
    expect(canRead(s, 'r')).toBe(false);
    expect(canWrite(s, 'w')).toBe(true);
    s = upWrite(downWrite(s, 'w'));
    expect(s.granted).toEqual(['r']);
  });

  it('a read window takes and drops the lock in one step, consuming the grant', () => {
    const s = upWrite(enqueue(downWrite(RWSEM_FREE, 'x'), 'r', 'read'));
    expect(s.granted).toEqual(['r']);
    expect(readWindow(s, 'r')).toEqual(RWSEM_FREE);
  });

  it('misuse is an error: queueing twice, taking a held lock, releasing a lock not held', () => {
    const held = downWrite(RWSEM_FREE, 'w');
    expect(() => enqueue(enqueue(held, 'a', 'read'), 'a', 'read')).toThrow(/already queued/);
    expect(() => enqueue(held, 'w', 'read')).toThrow(/queues on an rwsem it holds/);
    expect(() => downRead(enqueue(held, 'a', 'read'), 'a')).toThrow(/holds the rwsem for write/);
    expect(() => downRead(readers('a'), 'a')).toThrow(/holds the rwsem already/);
    expect(() => downWrite(readers('a'), 'w')).toThrow(/on a held rwsem/);
    expect(() => downRead(downWrite(RWSEM_FREE, 'w'), 'r')).toThrow(/holds the rwsem for write/);
    expect(() => upRead(RWSEM_FREE, 'a')).toThrow(/does not hold/);
    const grantedOnly = upWrite(enqueue(held, 'g', 'read'));
    expect(() => upRead(grantedOnly, 'g')).toThrow(/does not hold/); // granted but never ran its step
  });
});
