/**
 * The model contract: what a protocol author writes, and what the explorer,
 * the reports and the conformance adapter read. Kept deliberately small, in
 * the spirit of Stateright's `Model` trait: a machine (init + next state), the
 * candidate events in a state (actions), and named properties.
 *
 * A model file's default export is `defineModel({...})`. See
 * explorer/README.md for the whole contract with a worked example.
 */
import type { AnyStateMachine, EventObject, StateValue } from 'xstate';

/**
 * What properties and event generators see of a state. Both engines (xstate's
 * own `transition()` and the compiled one) provide exactly this, so a property
 * must not reach for anything else on an xstate snapshot (children, tags,
 * output): the differential test would not cover it.
 */
export interface ModelSnapshot<TContext = unknown> {
  readonly value: StateValue;
  readonly context: TContext;
  /** 'done' once every actor (top-level region) has reached a final state. */
  readonly status: 'active' | 'done' | 'error' | 'stopped';
  matches(value: StateValue): boolean;
}

/** A state predicate: an invariant must hold in every reachable state. */
export type StatePredicate<TContext = unknown> = (s: ModelSnapshot<TContext>) => boolean;

/**
 * Temporal properties, checked over the explored graph (not state by state).
 * - `leadsTo`: p ~> q, whenever p holds, q holds then or later, on every fair path.
 * - `eventually`: <>q from the initial state (true ~> q evaluated at init).
 * - `recoverable`: AG EF p, from every reachable state some p-state stays reachable.
 * Build them with the helpers `leadsTo`, `eventually`, `recoverable` below.
 */
export type TemporalProperty<TContext = unknown> =
  | {
      readonly kind: 'leadsTo';
      readonly p: StatePredicate<TContext>;
      readonly q: StatePredicate<TContext>;
    }
  | { readonly kind: 'eventually'; readonly q: StatePredicate<TContext> }
  | { readonly kind: 'recoverable'; readonly p: StatePredicate<TContext> }
  | { readonly kind: 'sometimes'; readonly p: StatePredicate<TContext> };

/**
 * Fairness for temporal properties. `weak` lists the actors (top-level
 * regions) that are weakly fair: an actor continuously enabled from some point
 * on eventually takes a step. `'all'` makes every actor weakly fair. Without
 * fairness any actor may stall forever, which is what a hung kernel path is.
 */
export interface Fairness {
  readonly weak?: readonly string[] | 'all';
}

export interface Bounds {
  /** Stop expanding states at this BFS depth (number of events from init). */
  readonly depth?: number;
  /** Stop after this many distinct states. */
  readonly maxStates?: number;
}

/**
 * What a variant is expected to show at its default bounds. `npm start` and
 * the verdict tests compare the explorer's findings with it, so a model change
 * that silently turns a verdict around fails CI.
 */
export interface Expectation {
  /** Properties (invariant names, temporal property names, or 'deadlock') expected to be violated; every other one must hold. */
  readonly violated?: readonly string[];
  /** Pinned distinct state count (as TLA+ manifests do): a regression check. */
  readonly states?: number;
}

export type EventGenerator<TContext, TEvent extends EventObject> = (
  s: ModelSnapshot<TContext>,
) => readonly TEvent[];

/**
 * How an event reads in the mailing-list thread's language: the uAPI call or
 * kernel step it stands for, without its result, e.g.
 * `ioctl(container, VFIO_IOMMU_UNMAP_DMA, VADDR, dma0)` or
 * `mdev: vfio_pin_pages(dma1)`. `before` is the state the event is fired in.
 * The reports append the predicted result (` = 0`, ` = EBUSY`, or a note that
 * the call blocks).
 */
export type EventLabel<TContext, TEvent extends EventObject> = (
  event: TEvent,
  before: ModelSnapshot<TContext>,
) => string;

/**
 * What `actor` is waiting for in `s`, when it cannot move there, in the words
 * of the kernel path ("in vfio_wait() for dma0's vaddr"; "in close(), waiting
 * for the release to finish"); undefined when it is not blocked. The deadlock
 * and liveness reports print it for every actor that has not terminated.
 */
export type WaitingFor<TContext> = (s: ModelSnapshot<TContext>, actor: string) => string | undefined;

/**
 * Transitions a variant knows can never fire, each with the reason. Keys name
 * machine transitions as the coverage report prints them:
 * `<actor>.<state path>#<EventType>[<branch>]` (for example
 * `release.notifying#ReleaseRetry[0]`), or without `[<branch>]` for every
 * branch of that event in that state. `npm start` fails on a transition that
 * never fires and is not listed here, and on a listed one that fires.
 */
export type Unreachable = Readonly<Record<string, string>>;

/** What may differ between variants of one model. Unset fields are inherited from the model. */
export interface VariantSpec<TContext = any, TEvent extends EventObject = EventObject> {
  readonly description?: string;
  readonly machine?: AnyStateMachine;
  readonly events?: EventGenerator<TContext, TEvent>;
  /** Merged over the model's invariants; an entry of the same name replaces it. */
  readonly invariants?: Readonly<Record<string, StatePredicate<TContext>>>;
  /** Merged over the model's temporal properties, likewise. */
  readonly properties?: Readonly<Record<string, TemporalProperty<TContext>>>;
  readonly fairness?: Fairness;
  readonly bounds?: Bounds;
  readonly expect?: Expectation;
  readonly label?: EventLabel<TContext, TEvent>;
  readonly waitingFor?: WaitingFor<TContext>;
  /** Merged over the model's list. */
  readonly unreachable?: Unreachable;
}

export interface ModelSpec<TContext = any, TEvent extends EventObject = EventObject> extends VariantSpec<
  TContext,
  TEvent
> {
  /** Short kebab-case id, used on the command line. */
  readonly id: string;
  readonly machine: AnyStateMachine;
  readonly events: EventGenerator<TContext, TEvent>;
  readonly invariants: Readonly<Record<string, StatePredicate<TContext>>>;
  /** Named alternatives (design variants). Without any, the model has one variant, 'default'. */
  readonly variants?: Readonly<Record<string, VariantSpec<TContext, TEvent>>>;
  /** Which variant runs when none is named; default: the first one. */
  readonly defaultVariant?: string;
  /**
   * Event types that are uAPI calls (ioctl, open, close, mmap ...). The rest
   * are kernel-internal or driver steps. The trace marks calls, and the
   * conformance adapter replays only them.
   */
  readonly calls?: readonly string[];
  /**
   * The result a step predicts, read from the state after it. Default:
   * `context.ret[actor]` when the step is a call or changed it. Models record
   * '0' or an errno name there ('EBUSY'), or 'blocked' for a call that sleeps.
   */
  readonly result?: (after: ModelSnapshot<TContext>, actor: string, event: TEvent) => string | undefined;
}

/** One variant with everything inherited filled in: what the explorer runs. */
export interface ResolvedVariant<TContext = any, TEvent extends EventObject = any> {
  readonly modelId: string;
  readonly name: string;
  readonly description: string;
  readonly machine: AnyStateMachine;
  readonly events: EventGenerator<TContext, TEvent>;
  readonly invariants: Readonly<Record<string, StatePredicate<TContext>>>;
  readonly properties: Readonly<Record<string, TemporalProperty<TContext>>>;
  readonly fairness: Fairness;
  readonly bounds: Bounds;
  readonly expect: Expectation | undefined;
  readonly calls: ReadonlySet<string>;
  readonly label: EventLabel<TContext, TEvent> | undefined;
  readonly waitingFor: WaitingFor<TContext> | undefined;
  readonly unreachable: Unreachable;
  readonly result: (
    before: ModelSnapshot<TContext>,
    after: ModelSnapshot<TContext>,
    actor: string,
    event: TEvent,
  ) => string | undefined;
}

export interface Model<TContext = any, TEvent extends EventObject = any> {
  readonly kind: 'vfio-mc/model';
  readonly id: string;
  readonly description: string;
  readonly variantNames: readonly string[];
  readonly defaultVariant: string;
  variant(name?: string): ResolvedVariant<TContext, TEvent>;
}

const MODEL_ID = /^[a-z][a-z0-9-]*$/;

function defaultResult(calls: ReadonlySet<string>): ResolvedVariant['result'] {
  const retOf = (s: ModelSnapshot, actor: string): string | undefined => {
    const ret = (s.context as { ret?: Record<string, unknown> } | undefined)?.ret;
    const v = ret?.[actor];
    return v === undefined || v === null ? undefined : String(v);
  };
  return (before, after, actor, event) => {
    const now = retOf(after, actor);
    if (calls.has(event.type) || now !== retOf(before, actor)) return now;
    return undefined;
  };
}

/** Declare a model. Throws (a ModelError, reported as exit 2) on a malformed declaration. */
export function defineModel<TContext, TEvent extends EventObject>(
  spec: ModelSpec<TContext, TEvent>,
): Model<TContext, TEvent> {
  if (!MODEL_ID.test(spec.id)) throw new ModelError(`model id '${spec.id}' must be kebab-case`);
  if (typeof spec.events !== 'function')
    throw new ModelError(`model '${spec.id}': events must be a function`);
  const variants = spec.variants ?? { default: {} };
  const names = Object.keys(variants);
  if (names.length === 0) throw new ModelError(`model '${spec.id}': variants is empty`);
  const defaultVariant = spec.defaultVariant ?? names[0];
  if (!(defaultVariant in variants)) {
    throw new ModelError(`model '${spec.id}': defaultVariant '${defaultVariant}' is not a variant`);
  }
  const calls = new Set(spec.calls ?? []);
  const resolve = (name: string): ResolvedVariant<TContext, TEvent> => {
    const v = variants[name];
    return {
      modelId: spec.id,
      name,
      description: v.description ?? spec.description ?? '',
      machine: v.machine ?? spec.machine,
      events: v.events ?? spec.events,
      invariants: { ...spec.invariants, ...v.invariants },
      properties: { ...spec.properties, ...v.properties },
      fairness: v.fairness ?? spec.fairness ?? {},
      bounds: { ...spec.bounds, ...v.bounds },
      expect: v.expect ?? spec.expect,
      calls,
      label: v.label ?? spec.label,
      waitingFor: v.waitingFor ?? spec.waitingFor,
      unreachable: { ...spec.unreachable, ...v.unreachable },
      result: spec.result
        ? (_before, after, actor, event) => spec.result?.(after, actor, event)
        : (defaultResult(calls) as ResolvedVariant<TContext, TEvent>['result']),
    };
  };
  return {
    kind: 'vfio-mc/model',
    id: spec.id,
    description: spec.description ?? '',
    variantNames: names,
    defaultVariant,
    variant(name = defaultVariant) {
      if (!(name in variants)) {
        throw new ModelError(`model '${spec.id}' has no variant '${name}' (variants: ${names.join(', ')})`);
      }
      return resolve(name);
    },
  };
}

export function isModel(x: unknown): x is Model {
  return typeof x === 'object' && x !== null && (x as Model).kind === 'vfio-mc/model';
}

/** p ~> q: whenever p holds, q holds then or later (on every fair path). */
export const leadsTo = <C>(p: StatePredicate<C>, q: StatePredicate<C>): TemporalProperty<C> => ({
  kind: 'leadsTo',
  p,
  q,
});
/** <>q: every fair path from the initial state reaches a q-state. */
export const eventually = <C>(q: StatePredicate<C>): TemporalProperty<C> => ({ kind: 'eventually', q });
/** AG EF p: from every reachable state, a p-state is still reachable. */
export const recoverable = <C>(p: StatePredicate<C>): TemporalProperty<C> => ({ kind: 'recoverable', p });
/** EF p: some reachable state satisfies p (a witness that the model can get there at all). */
export const sometimes = <C>(p: StatePredicate<C>): TemporalProperty<C> => ({ kind: 'sometimes', p });

/** Throws a ModelError unless every named value is a positive integer (bounds, walk sizes). */
export function requirePositiveIntegers(what: string, values: Readonly<Record<string, number>>): void {
  for (const [name, v] of Object.entries(values)) {
    if (!Number.isSafeInteger(v) || v <= 0)
      throw new ModelError(`${what} ${name} must be a positive integer, got ${v}`);
  }
}

/** A problem with a model or its input (exit code 2), as opposed to a violation (exit 1). */
export class ModelError extends Error {
  override name = 'ModelError';
}
