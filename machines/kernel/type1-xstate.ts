/**
 * Small helpers that turn the type1 models' actor tables into XState v5
 * region configs the compiled engine accepts (flat regions, guarded
 * transitions with one `assign`, final states), plus the one piece of
 * behaviour every type1 actor shares: a kernel BUG stops everyone.
 *
 * BUG_ON() is modelled as a halt (panic_on_oops): the actor that hits it goes
 * to its final `kernelBug` state and sets `context.kernelBug`; from then on
 * every other transition is disabled and each actor has one `<Prefix>Halt`
 * step to its final `halted` state, so the stopped machine ends as `done`
 * rather than being reported as a deadlock. (With panic_on_oops=0 the
 * unmapping task would die holding iommu->lock and every later user of the
 * container would hang on it; the container is lost either way.)
 */
import { assign } from 'xstate';

export interface BugCtx {
  readonly kernelBug: boolean;
}

export interface Args<C, E> {
  readonly context: C;
  readonly event: E;
}

/** One guarded transition of an actor: guard, then the context update, then the target state. */
export interface Tr<C, E> {
  readonly guard?: (a: Args<C, E>) => boolean;
  readonly update?: (a: Args<C, E>) => Partial<C>;
  /** A sibling state of the same actor; omitted: stay. */
  readonly target?: string;
}

/** An actor's states: each maps event types to candidate transitions (first enabled wins), or is final. */
export type States<C, E> = Record<string, 'final' | Record<string, readonly Tr<C, E>[]>>;

/**
 * The actor's region config, with the halt wiring added. `prefix` is its
 * event prefix (Vmm, Mdev ...). `accepts`, when given, narrows every
 * transition of the region (its halt too) to the events it returns true for:
 * two actors of one kind (two mdevs' workers) share the event types and tell
 * their events apart by a field.
 */
export function region<C extends BugCtx, E>(
  prefix: string,
  initial: string,
  states: States<C, E>,
  accepts?: (e: E) => boolean,
) {
  const out: Record<string, unknown> = {};
  for (const [name, on] of Object.entries(states)) {
    if (on === 'final') {
      out[name] = { type: 'final' };
      continue;
    }
    const transitions: Record<string, unknown[]> = {};
    for (const [type, list] of Object.entries(on)) transitions[type] = list.map((t) => compile(t, accepts));
    transitions[`${prefix}Halt`] = [compile<C, E>({ target: 'halted' }, accepts, true)];
    out[name] = { on: transitions };
  }
  out.halted ??= { type: 'final' };
  return { initial, states: out };
}

/** One transition: disabled after a BUG (or, for a halt, only after one), and only for accepted events. */
function compile<C extends BugCtx, E>(t: Tr<C, E>, accepts?: (e: E) => boolean, halt = false) {
  const g = t.guard;
  const bug = halt ? (a: Args<C, E>) => a.context.kernelBug : (a: Args<C, E>) => !a.context.kernelBug;
  const own = accepts ? (a: Args<C, E>) => bug(a) && accepts(a.event) : bug;
  return {
    guard: g ? (a: Args<C, E>) => own(a) && g(a) : own,
    ...(t.update && { actions: assign(t.update as any) }),
    ...(t.target && { target: t.target }),
  };
}

/** The `<Prefix>Halt` events of the given actor prefixes, for the events() generator. */
export const haltEvents = <P extends string>(prefixes: readonly P[]) =>
  prefixes.map((p) => ({ type: `${p}Halt` as `${P}Halt` }));
