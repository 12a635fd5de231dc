/**
 * A small example, not a VFIO protocol: two kernel threads that each take two
 * mutexes and bump a shared counter. It shows the model contract end to end
 * and the two kinds of safety violation the explorer reports:
 *
 * - `abba`: thread B takes the locks in the opposite order: the classic
 *   lock-order inversion, found as a deadlock (no event enabled while both
 *   threads are still running).
 * - `unlocked-count`: the read-modify-write of the counter happens before the
 *   locks are taken: a lost update, found as a violation of `noLostUpdate`.
 * - `ordered` (default): same order, counter under the locks: everything holds.
 *
 * spec/example-locks.md walks through it.
 */
import { assign, setup } from 'xstate';
import { defineModel, type ModelSnapshot, sometimes } from '../explorer/model.ts';
import { type Mutex, mutexFree } from './kernel/locks.ts';

type Lock = 'l1' | 'l2';
type Thread = 'threadA' | 'threadB';

interface Ctx {
  readonly locks: Readonly<Record<Lock, Mutex>>;
  readonly count: number;
  /** Each thread's private copy of the counter between its read and its write. */
  readonly local: Readonly<Record<Thread, number | null>>;
  /** Ghost variable: increments completed so far (what `count` should equal). */
  readonly completed: number;
}

const STEPS = ['TakeFirst', 'TakeSecond', 'ReadCount', 'WriteCount', 'Unlock'] as const;
type Step = (typeof STEPS)[number];
type Ev = { type: `${Capitalize<Thread>}${Step}` };

const evType = (t: Thread, step: Step) => `${t[0].toUpperCase()}${t.slice(1)}${step}` as Ev['type'];

interface Design {
  /** Lock order of each thread. */
  readonly order: Readonly<Record<Thread, readonly [Lock, Lock]>>;
  /** Whether the read-modify-write happens while both locks are held. */
  readonly countUnderLock: boolean;
}

function buildMachine(d: Design) {
  const thread = (t: Thread) => {
    const [first, second] = d.order[t];
    const phases: Step[] = d.countUnderLock
      ? ['TakeFirst', 'TakeSecond', 'ReadCount', 'WriteCount', 'Unlock']
      : ['ReadCount', 'WriteCount', 'TakeFirst', 'TakeSecond', 'Unlock'];
    const effect = {
      TakeFirst: {
        guard: ({ context }: { context: Ctx }) => mutexFree(context.locks[first]),
        actions: assign({ locks: ({ context }: { context: Ctx }) => ({ ...context.locks, [first]: t }) }),
      },
      TakeSecond: {
        guard: ({ context }: { context: Ctx }) => mutexFree(context.locks[second]),
        actions: assign({ locks: ({ context }: { context: Ctx }) => ({ ...context.locks, [second]: t }) }),
      },
      ReadCount: {
        actions: assign({
          local: ({ context }: { context: Ctx }) => ({ ...context.local, [t]: context.count }),
        }),
      },
      WriteCount: {
        actions: assign(({ context }: { context: Ctx }) => ({
          count: (context.local[t] ?? 0) + 1,
          completed: context.completed + 1,
          local: { ...context.local, [t]: null },
        })),
      },
      Unlock: {
        actions: assign({
          locks: ({ context }: { context: Ctx }) => ({ ...context.locks, [first]: null, [second]: null }),
        }),
      },
    } as const;
    const states: Record<string, object> = {};
    phases.forEach((step, i) => {
      const next = i + 1 < phases.length ? phases[i + 1] : 'done';
      // A state is named for the step the thread takes next: 'beforeTakeSecond' holds the first lock.
      const target = next === 'done' ? 'done' : `before${next}`;
      states[`before${step}`] = { on: { [evType(t, step)]: { ...effect[step], target } } };
    });
    states.done = { type: 'final' };
    return { initial: `before${phases[0]}`, states };
  };
  return setup({ types: { context: {} as Ctx, events: {} as Ev } }).createMachine({
    id: 'example-locks',
    type: 'parallel',
    context: {
      locks: { l1: null, l2: null },
      count: 0,
      local: { threadA: null, threadB: null },
      completed: 0,
    },
    states: { threadA: thread('threadA'), threadB: thread('threadB') },
  } as any);
}

const ALL_EVENTS: Ev[] = (['threadA', 'threadB'] as const).flatMap((t) =>
  STEPS.map((s) => ({ type: evType(t, s) })),
);

const DEFAULT_DESIGN: Design = {
  order: { threadA: ['l1', 'l2'], threadB: ['l1', 'l2'] },
  countUnderLock: true,
};

/** Which thread and step an event is, and the lock it takes in a design. */
function decode(e: Ev): { thread: Thread; step: Step } {
  const thread: Thread = e.type.startsWith('ThreadA') ? 'threadA' : 'threadB';
  return { thread, step: e.type.slice('ThreadA'.length) as Step };
}

/** The kernel calls each step stands for: `thread A: mutex_lock(l1)`. */
const labelIn =
  (d: Design) =>
  (e: Ev): string => {
    const { thread, step } = decode(e);
    const [first, second] = d.order[thread];
    const who = `thread ${thread.slice(-1)}`;
    switch (step) {
      case 'TakeFirst':
        return `${who}: mutex_lock(${first})`;
      case 'TakeSecond':
        return `${who}: mutex_lock(${second})`;
      case 'ReadCount':
        return `${who}: tmp = count`;
      case 'WriteCount':
        return `${who}: count = tmp + 1`;
      case 'Unlock':
        return `${who}: mutex_unlock(${second}), mutex_unlock(${first})`;
    }
  };

/** A thread about to take a lock another thread holds sleeps in mutex_lock(). */
const waitingIn = (d: Design) => (s: ModelSnapshot<Ctx>, actor: string) => {
  const t = actor as Thread;
  const state = (s.value as Record<string, string>)[t];
  const lock =
    state === 'beforeTakeFirst' ? d.order[t][0] : state === 'beforeTakeSecond' ? d.order[t][1] : null;
  const holder = lock === null ? null : s.context.locks[lock];
  return holder !== null && holder !== t ? `in mutex_lock(${lock}), held by ${holder}` : undefined;
};

function designVariant(d: Design) {
  return { machine: buildMachine(d), label: labelIn(d), waitingFor: waitingIn(d) };
}

export default defineModel<Ctx, Ev>({
  id: 'example-locks',
  description: 'Example: two threads, two mutexes, a shared counter (lock-order deadlock and lost update)',
  ...designVariant(DEFAULT_DESIGN),
  events: () => ALL_EVENTS,
  invariants: {
    /** Every completed increment is visible in the counter. */
    noLostUpdate: (s) => s.context.count === s.context.completed,
    /** A mutex is held by at most the thread that took it: never both locks by different threads while one is done. */
    locksReleasedAtExit: (s) =>
      s.status !== 'done' || (s.context.locks.l1 === null && s.context.locks.l2 === null),
  },
  properties: {
    /** Both threads can finish: the protocol is not vacuously safe. */
    bothFinish: sometimes((s) => s.status === 'done'),
  },
  variants: {
    ordered: { description: 'both threads take l1 then l2; the count is updated under both locks' },
    abba: {
      description: 'thread B takes l2 then l1: lock-order inversion',
      ...designVariant({ order: { threadA: ['l1', 'l2'], threadB: ['l2', 'l1'] }, countUnderLock: true }),
      expect: { violated: ['deadlock'] },
    },
    'unlocked-count': {
      description: 'the count is read and written before the locks are taken',
      ...designVariant({ ...DEFAULT_DESIGN, countUnderLock: false }),
      expect: { violated: ['noLostUpdate'] },
    },
  },
  bounds: { depth: 50 },
});
