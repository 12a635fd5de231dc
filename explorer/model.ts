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
 * branch of that event in that state, or with `*` for any run of characters
 * (`*#VmmHalt`: that event from every state). `npm start` fails on a
 * transition that never fires and is not listed here, and on a listed one
 * that fires or a key that matches no transition.
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
  /** Interchangeable ids (`--symmetry`): see Symmetry. */
  readonly symmetry?: Symmetry<TContext>;
  /** What each actor's transitions read and write (`--por`): see Footprints. */
  readonly footprints?: Footprints;
  /** What of a state matters to the future (`--view`): see View. */
  readonly view?: View<TContext>;
}

/**
 * What each actor's transitions may read and write of the context, for
 * partial-order reduction (`--por`, por.ts). Paths are dotted patterns over
 * the context, `*` standing for any one key or index: `t1.dmas.*.pin`,
 * `mms.*.lockedVm`, `vmm.deviceFd`; a pattern covers everything below it
 * (`t1.dmas` covers `t1.dmas.0.pin`). Declared, never trusted: every step the
 * reduced search evaluates, and a sample of the unreduced graph, is recorded
 * and checked against it (`vfio-mc explore MODEL --por=propose` prints one
 * learnt from random walks, to review and paste).
 */
export interface Footprints {
  /** Per actor (top-level region); an actor left out is dependent on every other one. */
  readonly actors: Readonly<Record<string, ActorFootprint>>;
  /** Context paths the event generator reads (default: none). */
  readonly events?: readonly string[];
  /** Paths to treat as visible beyond those the invariants are seen to read. */
  readonly visible?: readonly string[];
}

export interface FootprintSpec {
  readonly reads?: readonly string[];
  readonly writes?: readonly string[];
}

export interface ActorFootprint extends FootprintSpec {
  /**
   * Refinements per state node of the actor, by its path ('idle',
   * 'unmap.walking'): in that node (or below it) the actor's transitions
   * read and write only these; the deepest node that matches wins.
   */
  readonly states?: Readonly<Record<string, FootprintSpec>>;
}

/**
 * Ids a variant treats alike (TLC's SYMMETRY sets): dma0 and dma1 are
 * interchangeable when every guard, assign and property treats them the
 * same way. With `--symmetry` the explorer stores one representative of each
 * set of states that differ only by a renaming of those ids (symmetry.ts),
 * checking on every state it stores that each renaming keeps every judged
 * property's value and maps the state's steps onto its renamed copy's;
 * `--symmetry=unchecked` assumes it instead, and every verdict says so.
 */
export interface Symmetry<TContext = any> {
  /** Each set of interchangeable ids and its size: ids 0..size-1 (e.g. `{ dma: params.dmas }`). */
  readonly sets: Readonly<Record<string, number>>;
  /**
   * The context with the ids renamed: id i of set k becomes `perm[k][i]`
   * everywhere it appears (array positions, fields, lists). Returns new
   * objects (the context it gets is frozen). The state value is given for
   * models whose context refers to it; actors themselves are not renamed.
   */
  readonly permute: (
    context: TContext,
    perm: Readonly<Record<string, readonly number[]>>,
    value: StateValue,
  ) => TContext;
  /**
   * Optional: a sortable summary of what belongs to one id (its dma record,
   * say), the same for an id and its renamed copy. The representative is then
   * sought only among the renamings that sort the ids by key (trying every
   * order of ids with equal keys), not among all n! of them. A key that is not
   * a function of the id's own data costs reduction, never soundness: the
   * representative is still in the state's orbit.
   */
  readonly key?: (context: TContext, set: string, id: number) => string | number;
}

/**
 * TLC's VIEW, Spin's dead-variable reduction: the state with what cannot
 * matter any more forgotten, such as the last call's result that only the
 * reports show, or the counters of an mm that is dead. With `--view` the
 * explorer stores one state per view (view.ts).
 *
 * A checked view is a Projection: it forgets declared fields (sets them to a
 * canonical value) where declared. The explorer proves it on every step it
 * evaluates (explorer/README.md, Reductions): nothing reads a forgotten field,
 * and a forgotten field is, after each step, written by it or forgotten
 * again. An arbitrary function of the context cannot be checked: it runs only
 * with `--view=unchecked`, and every verdict then says it rests on it.
 */
export type View<TContext = any> = Projection<TContext> | UncheckedView<TContext>;

/** A view as any function of the state (`--view=unchecked` only). */
export type UncheckedView<TContext = any> = (context: TContext, value: StateValue) => TContext;

export interface Projection<TContext = any> {
  readonly forget: readonly Forget<TContext>[];
}

/** Fields forgotten together: where, and to what value. */
export interface Forget<TContext = any> {
  /**
   * Context paths, dotted, `*` standing for any one key or index: `ret.*`,
   * `mms.*.lockedVm`. A path that is not in the context forgets nothing.
   */
  readonly fields: readonly string[];
  /** The canonical value the fields take (plain data, the same for every state). */
  readonly value: null | boolean | number | string;
  /** The control states (`matches()` arguments) where they are forgotten, any of them; default: every state. */
  readonly in?: readonly StateValue[];
  /**
   * A further condition, given the keys the field's `*`s stand for (`['mm1']`
   * for `mms.mm1.lockedVm`). It must not read any field a projection of the
   * model may forget (checked), so a state and its view agree on it.
   */
  readonly when?: (s: ModelSnapshot<TContext>, keys: readonly string[]) => boolean;
}

/** Whether a declared view is a Projection (checked) rather than a function (unchecked only). */
export const isProjection = (v: View): v is Projection =>
  typeof v === 'object' && v !== null && 'forget' in v;

/**
 * A model parameter (TLC's CONSTANTS, Spin's `#define`): an integer size of
 * the configuration, such as the number of DMA mappings. `--set dmas=3`.
 */
export interface ParamSpec {
  readonly default: number;
  readonly min: number;
  readonly max: number;
  readonly description: string;
}

export type ParamSpecs = Readonly<Record<string, ParamSpec>>;
export type Params = Readonly<Record<string, number>>;

/** The body of a model: everything but its id, description and parameters. */
export interface ModelBody<TContext = any, TEvent extends EventObject = EventObject> extends VariantSpec<
  TContext,
  TEvent
> {
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

/** A model without parameters: its body given directly. */
export interface ModelSpec<TContext = any, TEvent extends EventObject = EventObject> extends ModelBody<
  TContext,
  TEvent
> {
  /** Short kebab-case id, used on the command line. */
  readonly id: string;
}

/**
 * A model with parameters: the body is built from their resolved values, so
 * the machine, the events and the properties can all depend on them.
 */
export interface ParameterisedModelSpec<TContext = any, TEvent extends EventObject = EventObject> {
  readonly id: string;
  readonly description?: string;
  readonly params: ParamSpecs;
  readonly build: (params: Params) => ModelBody<TContext, TEvent>;
}

/** One variant with everything inherited filled in: what the explorer runs. */
/** Where a variant can be built again (by a worker thread or process): its model file, variant and parameters. */
export interface VariantSource {
  readonly file: string;
  readonly variant: string;
  readonly params: Params;
}

export interface ResolvedVariant<TContext = any, TEvent extends EventObject = any> {
  readonly modelId: string;
  readonly name: string;
  /** How to load this very variant elsewhere; absent for a model not loaded from a file. */
  readonly source?: VariantSource;
  /** The parameter values this variant was built with (empty for a model without parameters). */
  readonly params: Params;
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
  readonly symmetry: Symmetry<TContext> | undefined;
  readonly footprints: Footprints | undefined;
  readonly view: View<TContext> | undefined;
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
  /** Declared parameters (empty for a model without any). */
  readonly params: ParamSpecs;
  readonly variantNames: readonly string[];
  readonly defaultVariant: string;
  /** A variant at the given parameter values (each defaults to its declared default). */
  variant(name?: string, params?: Params): ResolvedVariant<TContext, TEvent>;
  /** The file the model was loaded from (set by the registry), so workers can load it too. */
  origin?: string;
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
  spec: ModelSpec<TContext, TEvent> | ParameterisedModelSpec<TContext, TEvent>,
): Model<TContext, TEvent> {
  if (!MODEL_ID.test(spec.id)) throw new ModelError(`model id '${spec.id}' must be kebab-case`);
  const declared: ParamSpecs = 'build' in spec ? spec.params : {};
  checkParamSpecs(spec.id, declared);
  const bodies = new Map<string, ModelBody<TContext, TEvent>>();
  const bodyAt = (values: Params): ModelBody<TContext, TEvent> => {
    const key = JSON.stringify(values);
    let body = bodies.get(key);
    if (body === undefined) {
      body = 'build' in spec ? spec.build(values) : spec;
      checkBody(spec.id, body);
      bodies.set(key, body);
    }
    return body;
  };
  const defaults = resolveParams(spec.id, declared, {});
  const first = bodyAt(defaults);
  const names = Object.keys(first.variants ?? { default: {} });
  const defaultVariant = first.defaultVariant ?? names[0];
  if (!names.includes(defaultVariant)) {
    throw new ModelError(`model '${spec.id}': defaultVariant '${defaultVariant}' is not a variant`);
  }
  const model: Model<TContext, TEvent> = {
    kind: 'vfio-mc/model',
    id: spec.id,
    description: spec.description ?? '',
    params: declared,
    variantNames: names,
    defaultVariant,
    variant(name = defaultVariant, given: Params = {}) {
      const values = resolveParams(spec.id, declared, given);
      const body = bodyAt(values);
      const variants = body.variants ?? { default: {} };
      if (!(name in variants)) {
        throw new ModelError(
          `model '${spec.id}' has no variant '${name}' (variants: ${Object.keys(variants).join(', ')})`,
        );
      }
      const resolved = resolveVariant(spec.id, spec.description, body, name, variants[name], values);
      return model.origin
        ? { ...resolved, source: { file: model.origin, variant: name, params: values } }
        : resolved;
    },
  };
  return model;
}

function checkBody(id: string, body: ModelBody<any, any>): void {
  if (typeof body.events !== 'function') throw new ModelError(`model '${id}': events must be a function`);
  if (body.variants && Object.keys(body.variants).length === 0)
    throw new ModelError(`model '${id}': variants is empty`);
}

function resolveVariant<TContext, TEvent extends EventObject>(
  id: string,
  description: string | undefined,
  spec: ModelBody<TContext, TEvent>,
  name: string,
  v: VariantSpec<TContext, TEvent>,
  params: Params,
): ResolvedVariant<TContext, TEvent> {
  const calls = new Set(spec.calls ?? []);
  return {
    modelId: id,
    name,
    params,
    description: v.description ?? spec.description ?? description ?? '',
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
    symmetry: v.symmetry ?? spec.symmetry,
    footprints: v.footprints ?? spec.footprints,
    view: v.view ?? spec.view,
    result: spec.result
      ? (_before, after, actor, event) => spec.result?.(after, actor, event)
      : (defaultResult(calls) as ResolvedVariant<TContext, TEvent>['result']),
  };
}

function checkParamSpecs(id: string, specs: ParamSpecs): void {
  for (const [name, p] of Object.entries(specs)) {
    const ok =
      /^[a-z][A-Za-z0-9]*$/.test(name) &&
      [p.default, p.min, p.max].every(Number.isSafeInteger) &&
      p.min <= p.default &&
      p.default <= p.max;
    if (!ok)
      throw new ModelError(
        `model '${id}': parameter '${name}' must have a camelCase name and integers min <= default <= max`,
      );
  }
}

/** The declared parameters with `given` laid over their defaults; a ModelError for anything else. */
export function resolveParams(id: string, specs: ParamSpecs, given: Params): Params {
  const known = Object.keys(specs);
  for (const [name, value] of Object.entries(given)) {
    const p = specs[name];
    if (p === undefined) {
      throw new ModelError(
        `model '${id}' has no parameter '${name}'` +
          (known.length ? ` (parameters: ${known.join(', ')})` : ' (it has no parameters)'),
      );
    }
    if (!Number.isSafeInteger(value) || value < p.min || value > p.max) {
      throw new ModelError(
        `model '${id}': ${name} must be an integer from ${p.min} to ${p.max}, got ${value}`,
      );
    }
  }
  return Object.fromEntries(known.map((k) => [k, given[k] ?? specs[k].default]));
}

/** `dmas=3,mdevs=2` → { dmas: 3, mdevs: 2 }; a ModelError naming what is malformed. */
export function parseParamAssignments(text: string): Params {
  const out: Record<string, number> = {};
  for (const part of text.split(',').filter((x) => x.trim() !== '')) {
    const m = /^\s*([A-Za-z][A-Za-z0-9]*)\s*=\s*(-?\d+)\s*$/.exec(part);
    if (!m) throw new ModelError(`--set expects name=integer[,name=integer...], got '${part}'`);
    if (m[1] in out) throw new ModelError(`--set gives '${m[1]}' twice`);
    out[m[1]] = Number(m[2]);
  }
  return out;
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
  /** The events that reached the state where the problem showed, when the search knows them. */
  trace?: readonly EventObject[];
}

/**
 * A function of the model (a guard, an assign, the event generator, an
 * invariant, a property, a label) threw. `what` names it the way the reports
 * do: "guard of vmm.idle#VmmUnmapDma[0]", "invariant 'noStaleAfterRemap'".
 */
export class ModelFunctionError extends ModelError {
  override name = 'ModelFunctionError';
  constructor(
    readonly what: string,
    override readonly cause: unknown,
  ) {
    const e = cause instanceof Error ? cause : new Error(String(cause));
    super(`${what} threw ${e.name}: ${wholeMessage(e.message)}`);
  }
}

/**
 * An error's message whole, its later lines indented: XState puts the cause on the second line
 * ("Invalid transition definition for state node 'm.a':" then "Child state 'x' does not exist").
 */
export function wholeMessage(message: string): string {
  return message
    .trimEnd()
    .split('\n')
    .map((l, i) => (i === 0 ? l : `  ${l}`))
    .join('\n');
}

/** Call a model function; what it throws becomes a ModelFunctionError naming it. */
export function callModel<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof ModelError) throw e;
    throw new ModelFunctionError(what, e);
  }
}
