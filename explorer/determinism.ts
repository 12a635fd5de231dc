/**
 * Checking mode's guard against hidden non-determinism: while model code
 * runs under it (a step's guards and assigns, the initial context), the
 * clock and the random sources throw, so that `Date.now()` in an assign is a
 * model error on its first call. Comparing a step run twice (model-checks.ts)
 * catches such a step only by chance: two calls within the same millisecond
 * agree, and a transition is run twice only on its first firings, so the
 * model sometimes passed with a state graph that depended on when it was
 * explored.
 *
 * The traps are installed once, over the globals, and do nothing outside
 * model code (the explorer's own timing goes through them untouched).
 */

/** What a trap throws; the engines name the model function it came from (ModelFunctionError). */
export class NonDeterministicCall extends Error {
  override name = 'NonDeterministicCall';
  constructor(readonly call: string) {
    super(
      `${call} in model code: a step must depend only on the state and the event ` +
        '(checking mode; the clock and randomness make the state graph depend on when it is explored; ' +
        'put what varies into the events or the context)',
    );
  }
}

let depth = 0;
let installed = false;

/** Run model code with the clock and the random sources trapped. */
export function deterministic<T>(fn: () => T): T {
  install();
  depth++;
  try {
    return fn();
  } finally {
    depth--;
  }
}

function install(): void {
  if (installed) return;
  installed = true;
  const trap = <F extends (...args: any[]) => any>(call: string, original: F, self: unknown): F =>
    function (this: unknown, ...args: Parameters<F>) {
      if (depth > 0) throw new NonDeterministicCall(call);
      return original.apply(this ?? self, args);
    } as F;
  Date.now = trap('Date.now()', Date.now, Date);
  Math.random = trap('Math.random()', Math.random, Math);
  performance.now = trap('performance.now()', performance.now, performance);
  const c = globalThis.crypto;
  if (c) {
    c.getRandomValues = trap('crypto.getRandomValues()', c.getRandomValues, c);
    c.randomUUID = trap('crypto.randomUUID()', c.randomUUID, c);
  }
  // `new Date()` and `Date()` read the clock; `new Date(0)` does not.
  const RealDate = Date;
  globalThis.Date = new Proxy(RealDate, {
    construct(target, args, newTarget) {
      if (depth > 0 && args.length === 0) throw new NonDeterministicCall('new Date()');
      return Reflect.construct(target, args, newTarget);
    },
    apply(target, self, args) {
      if (depth > 0) throw new NonDeterministicCall('Date()');
      return Reflect.apply(target, self, args);
    },
  });
}
