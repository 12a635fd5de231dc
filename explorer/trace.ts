/**
 * Traces: the events along a path, re-executed with xstate's own
 * `transition()` (the reference engine) to turn them into readable steps.
 * A counterexample found by the compiled engine is confirmed this way before
 * it is printed: each event must be accepted and each state must have the
 * fingerprint the search stored. A user's trace file goes through the same
 * replay, so a rejected event is reported by its index and type.
 */
import type { AnyMachineSnapshot, EventObject } from 'xstate';
import { canonical } from './canonical.ts';
import { createReferenceEngine } from './engine-reference.ts';
import type { Fingerprint } from './fingerprint.ts';
import { ModelError, type ResolvedVariant } from './model.ts';
import type { Change, TraceStep } from './result.ts';

export interface Replay {
  readonly steps: TraceStep[];
  /** Reference snapshots: the initial one, then one per step. */
  readonly snapshots: AnyMachineSnapshot[];
}

/** An event of a trace was not accepted by the machine. */
export class RejectedEvent extends ModelError {
  constructor(
    readonly index: number,
    readonly event: EventObject,
    model: string,
  ) {
    super(
      `model '${model}': step ${index + 1}, event '${event.type}' ${JSON.stringify(event)} is not accepted in that state`,
    );
  }
}

/**
 * Replay `events` from the initial state on the reference engine. With
 * `expected` fingerprints (initial state first), every state must match them.
 */
export function replay(
  variant: ResolvedVariant,
  events: readonly EventObject[],
  expected?: readonly Fingerprint[],
): Replay {
  const engine = createReferenceEngine(variant.machine);
  let s = engine.initial();
  const snapshots = [s];
  const steps: TraceStep[] = [];
  confirm(s, 0);
  events.forEach((event, i) => {
    const actors = engine.actorsOf(s, event);
    const next = actors.length > 0 ? engine.step(s, event) : null;
    if (next === null) throw new RejectedEvent(i, event, variant.modelId);
    confirm(next, i + 1);
    const actor = actors.join('+');
    const label = variant.label?.(event, s);
    steps.push({
      actor,
      event,
      ...(label !== undefined && { label }),
      state: next.value,
      call: variant.calls.has(event.type),
      result: variant.result(s, next, actor, event),
      changes: diff(s.context, next.context),
    });
    snapshots.push(next);
    s = next;
  });
  return { steps, snapshots };

  function confirm(snapshot: AnyMachineSnapshot, k: number) {
    if (!expected) return;
    const got = engine.fingerprint(snapshot);
    const want = expected[k];
    if (got.hi !== want.hi || got.lo !== want.lo) {
      throw new ModelError(
        `model '${variant.modelId}': the counterexample does not replay on xstate's transition() at step ${k}: ` +
          `the model's steps are not a function of (state, event), or it changes its context in place ` +
          `(explore without --no-check names where); with checking mode on, this is a vfio-mc bug: please report it`,
      );
    }
  }
}

/**
 * Leaf-level differences between two contexts, as dotted paths. A list that
 * grew or shrank is one change that also says which elements came and went,
 * so a report can show `waiters: +{mdev, dma0}` rather than both whole lists.
 */
export function diff(before: unknown, after: unknown, path = ''): Change[] {
  if (Object.is(before, after)) return [];
  const bothObjects =
    typeof before === 'object' && before !== null && typeof after === 'object' && after !== null;
  if (!bothObjects || Array.isArray(before) !== Array.isArray(after)) {
    return [{ path: path || '(context)', before, after }];
  }
  if (Array.isArray(before) && before.length !== (after as unknown[]).length) {
    return [{ path: path || '(context)', before, after, ...listDelta(before, after as unknown[]) }];
  }
  const b = before as Record<string, unknown>;
  const a = after as Record<string, unknown>;
  const keys = [...new Set([...Object.keys(b), ...Object.keys(a)])];
  const at = (k: string) => (Array.isArray(before) ? `${path}[${k}]` : path ? `${path}.${k}` : k);
  return keys.flatMap((k) => diff(b[k], a[k], at(k)));
}

/** The multiset difference of two lists, elements compared as canonical JSON. */
function listDelta(before: readonly unknown[], after: readonly unknown[]) {
  const key = (x: unknown) => {
    try {
      return canonical(x);
    } catch {
      return String(x);
    }
  };
  const left = new Map<string, number>();
  for (const x of before) left.set(key(x), (left.get(key(x)) ?? 0) + 1);
  const added: unknown[] = [];
  for (const x of after) {
    const n = left.get(key(x)) ?? 0;
    if (n > 0) left.set(key(x), n - 1);
    else added.push(x);
  }
  const removed: unknown[] = [];
  for (const x of before) {
    const n = left.get(key(x)) ?? 0;
    if (n > 0) {
      left.set(key(x), n - 1);
      removed.push(x);
    }
  }
  return { added, removed };
}
