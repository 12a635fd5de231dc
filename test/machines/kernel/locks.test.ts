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

  it('a reader phase grants every queued reader, also those behind a writer (rwsem_mark_wake)', () => {
    let s = downWrite(RWSEM_FREE, 'x');
    s = enqueue(enqueue(enqueue(s, 'r1', 'read'), 'w', 'write'), 'r2', 'read');
    s = upWrite(s);
    expect(canRead(s, 'r1')).toBe(true);
    expect(canRead(s, 'r2')).toBe(true);
    expect(canWrite(s, 'w')).toBe(false);
    s = downRead(downRead(s, 'r1'), 'r2');
    expect(s.waiters).toEqual([{ actor: 'w', mode: 'write' }]);
    expect(canWrite(s, 'w')).toBe(false);
    expect(canWrite(upRead(upRead(s, 'r1'), 'r2'), 'w')).toBe(true);
  });

  it('a read window takes and drops the lock in one step, leaving only its wait-list entry gone', () => {
    const s = upWrite(enqueue(downWrite(RWSEM_FREE, 'x'), 'r', 'read'));
    expect(readWindow(s, 'r')).toEqual(RWSEM_FREE);
  });

  it('misuse is an error: queueing twice, taking a held lock, releasing a lock not held', () => {
    expect(() => enqueue(enqueue(RWSEM_FREE, 'a', 'read'), 'a', 'read')).toThrow(/already queued/);
    expect(() => downWrite(readers('a'), 'w')).toThrow(/on a held rwsem/);
    expect(() => downRead(downWrite(RWSEM_FREE, 'w'), 'r')).toThrow(/holds the rwsem for write/);
    expect(() => upRead(RWSEM_FREE, 'a')).toThrow(/does not hold/);
  });
});
