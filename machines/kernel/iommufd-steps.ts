/**
 * Turning plain step functions into XState transitions. A kernel step is a
 * function (context, event) → { next, ctx } | null: null when the step cannot
 * run now (its thread waits for a lock), else the state the actor moves to
 * and the new context. One guarded transition is generated per possible
 * target, so the machine stays a static table the compiled engine accepts,
 * while the logic stays in ordinary, testable functions.
 */
import { assign } from 'xstate';

export interface StepResult<C> {
  readonly next: string;
  readonly ctx: C;
}
export type StepFn<C, E> = (ctx: C, ev: E) => StepResult<C> | null;

/** Cache the last result: the guard and the assign of the taken transition call the step with the same objects. */
function memoLast<C, E>(f: StepFn<C, E>): StepFn<C, E> {
  let lastCtx: C | undefined;
  let lastEv: E | undefined;
  let last: StepResult<C> | null = null;
  return (ctx, ev) => {
    if (ctx !== lastCtx || ev !== lastEv) {
      last = f(ctx, ev);
      lastCtx = ctx;
      lastEv = ev;
    }
    return last;
  };
}

/** Transitions for one event in one state: one per target the step may choose. */
export function transitions<C, E>(f: StepFn<C, E>, targets: readonly string[]) {
  const step = memoLast(f);
  return targets.map((target) => ({
    guard: ({ context, event }: { context: C; event: E }) => step(context, event)?.next === target,
    target,
    actions: assign(({ context, event }: { context: C; event: E }) => step(context, event)!.ctx as any),
  }));
}
