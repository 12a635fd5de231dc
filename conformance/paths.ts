/**
 * Conformance paths: model executions to replay on a real kernel. A path set
 * covers, within the bounds, every machine transition of a uAPI call and
 * every (call, predicted result) pair at least once, each by a shortest path
 * (breadth-first, on the explorer's engines). A path that is a prefix of
 * another is folded into it. Paths are plain JSON files, to be reviewed,
 * stored and replayed later; a counterexample or a walk trace can be turned
 * into one too.
 */
import type { EventObject, StateNode } from 'xstate';
import { type AnyEngine, transitionId } from '../explorer/engine.ts';
import { chooseEngine } from '../explorer/engine-choice.ts';
import { resolveExploreOptions } from '../explorer/explore.ts';
import { ModelError, type ResolvedVariant } from '../explorer/model.ts';
import { StateStore } from '../explorer/state-store.ts';
import { replay } from '../explorer/trace.ts';
import { homeStates, leafOf } from './replay-model.ts';

export const PATH_FORMAT = 'vfio-mc/paths@1';

export interface PathStep {
  readonly actor: string;
  readonly event: EventObject;
  /** A uAPI call (replayed on the kernel) or an internal step (not observable). */
  readonly call: boolean;
  /**
   * The model's predicted result of a call ('0', an errno name, or 'blocked'), or, on an
   * internal step that ends a call, the result it records for that call.
   */
  readonly result?: string;
}

export interface ConformancePath {
  readonly id: string;
  /** The coverage items this path was chosen for. */
  readonly covers: readonly string[];
  readonly steps: readonly PathStep[];
}

export interface Coverage {
  /** Machine transitions whose event is a uAPI call, by transition id. */
  readonly transitions: {
    readonly total: number;
    readonly covered: number;
    readonly uncovered: readonly string[];
  };
  /** (call, predicted result) pairs seen within the bounds, as 'Event→result'. */
  readonly results: readonly string[];
}

export interface PathFile {
  readonly format: typeof PATH_FORMAT;
  readonly model: string;
  readonly variant: string;
  /** The model parameters the paths were chosen at (absent in files written before parameters existed). */
  readonly params?: Readonly<Record<string, number>>;
  readonly bounds: { readonly depth: number; readonly maxStates: number };
  /** True when the search that chose the paths was complete. */
  readonly complete: boolean;
  readonly coverage: Coverage;
  readonly paths: readonly ConformancePath[];
}

/** Every transition of the machine whose event type is a uAPI call (the coverage universe). */
export function callTransitions(variant: ResolvedVariant): string[] {
  const ids: string[] = [];
  const visit = (n: StateNode<any, any>) => {
    for (const [eventType, defs] of n.transitions) {
      if (!variant.calls.has(eventType)) continue;
      for (let i = 0; i < defs.length; i++) ids.push(transitionId(n.id, eventType, i));
    }
    for (const child of Object.values(n.states)) visit(child as StateNode<any, any>);
  };
  visit(variant.machine.root);
  return ids.sort();
}

export interface PathOptions {
  readonly depth?: number;
  readonly maxStates?: number;
}

export function generatePaths(variant: ResolvedVariant, options: PathOptions = {}): PathFile {
  if (variant.calls.size === 0) {
    throw new ModelError(
      `model '${variant.modelId}' declares no uAPI calls ('calls'): nothing to replay on a kernel`,
    );
  }
  const cfg = resolveExploreOptions(variant, options);
  const { engine } = chooseEngine(variant, 'auto');
  const universe = new Set(callTransitions(variant));
  const homes = homeStates(variant);
  const covered = new Set<string>();
  const results = new Set<string>();
  const chosen: { events: EventObject[]; covers: string[] }[] = [];

  // Breadth-first, keeping states (the models replayed on kernels are small) and each state's events from init.
  const store = new StateStore();
  const states: unknown[] = [engine.initial()];
  const pathEvents: EventObject[][] = [[]];
  store.add(engine.fingerprint(states[0]), -1, -1);
  let complete = true;
  for (let i = 0; i < states.length; i++) {
    const s = states[i];
    if (pathEvents[i].length >= cfg.depth) {
      complete = false;
      continue;
    }
    for (const event of variant.events(engine.view(s))) {
      const next = engine.step(s, event);
      if (next === null) continue;
      const keys = [
        ...coverageKeys(variant, engine, s, next, event),
        ...completionKeys(variant, engine, homes, pathEvents[i], s, next, event),
      ];
      const fresh = keys.filter((k) => !covered.has(k));
      if (fresh.length) {
        for (const k of fresh) covered.add(k);
        chosen.push({ events: [...pathEvents[i], event], covers: fresh });
      }
      const index = store.add(engine.fingerprint(next), i, -1);
      if (index < 0) continue;
      if (store.size > cfg.maxStates) {
        complete = false;
        break;
      }
      states.push(next);
      pathEvents.push([...pathEvents[i], event]);
    }
  }
  for (const k of covered) if (k.includes('→')) results.add(k);

  const paths = foldPrefixes(chosen).map((p, n) => ({
    id: `${variant.modelId}/${variant.name}/p${String(n + 1).padStart(3, '0')}`,
    covers: p.covers,
    steps: pathSteps(variant, p.events),
  }));
  const uncovered = [...universe].filter((t) => !covered.has(t));
  return {
    format: PATH_FORMAT,
    model: variant.modelId,
    variant: variant.name,
    params: variant.params,
    bounds: { depth: cfg.depth, maxStates: cfg.maxStates },
    complete,
    coverage: {
      transitions: { total: universe.size, covered: universe.size - uncovered.length, uncovered },
      results: [...results].sort(),
    },
    paths,
  };
}

/** The coverage items a step covers: its uAPI transitions and, for a call, 'Event→result'. */
function coverageKeys(
  variant: ResolvedVariant,
  engine: AnyEngine,
  s: unknown,
  next: unknown,
  e: EventObject,
): string[] {
  if (!variant.calls.has(e.type)) return [];
  const keys = engine.transitionsOf(s, e);
  const actor = engine.actorsOf(s, e).join('+');
  const result = variant.result(engine.view(s), engine.view(next), actor, e);
  if (result !== undefined) keys.push(`${e.type}→${result}`);
  return keys;
}

/**
 * A call whose result is recorded only when it returns (a multi-step kernel path:
 * the model sets ret at its last internal step) is covered as 'Call→result' by the
 * internal step that brings its actor back home; the call is the actor's last call
 * event on the path.
 */
export function completionKeys(
  variant: ResolvedVariant,
  engine: AnyEngine,
  homes: Map<string, Set<string>>,
  events: readonly EventObject[],
  s: unknown,
  next: unknown,
  e: EventObject,
): string[] {
  if (variant.calls.has(e.type)) return [];
  const actor = engine.actorsOf(s, e)[0];
  const home = homes.get(actor);
  if (!home) return [];
  const at = (x: unknown) => leafOf((engine.view(x).value as Record<string, unknown>)[actor]);
  const wasHome = home.has(at(s) ?? '');
  if (wasHome || !home.has(at(next) ?? '')) return [];
  const result = variant.result(engine.view(s), engine.view(next), actor, e);
  if (result === undefined || result === 'blocked') return [];
  const call = [...events]
    .reverse()
    .find((x) => variant.calls.has(x.type) && actorOfType(variant, x.type) === actor);
  return call ? [`${call.type}→${result}`] : [];
}

const typeActors = new WeakMap<object, Map<string, string>>();
/** The actor (top-level region) whose states handle an event type. */
function actorOfType(variant: ResolvedVariant, type: string): string | undefined {
  let m = typeActors.get(variant.machine);
  if (!m) {
    m = new Map();
    const root = variant.machine.root as StateNode<any, any>;
    for (const [actor, region] of Object.entries(root.states) as [string, StateNode<any, any>][]) {
      const visit = (n: StateNode<any, any>) => {
        for (const t of n.transitions.keys()) m?.set(t, actor);
        for (const c of Object.values(n.states)) visit(c as StateNode<any, any>);
      };
      visit(region);
    }
    typeActors.set(variant.machine, m);
  }
  return m.get(type);
}

/** Drop every path that is a prefix of a longer one, moving its coverage items onto the longer one. */
function foldPrefixes(paths: { events: EventObject[]; covers: string[] }[]) {
  const key = (events: EventObject[]) => events.map((e) => JSON.stringify(e)).join('\n');
  const byLength = [...paths].sort((a, b) => b.events.length - a.events.length);
  const kept: { events: EventObject[]; covers: string[]; key: string }[] = [];
  for (const p of byLength) {
    const k = key(p.events);
    const host = kept.find((q) => q.key === k || q.key.startsWith(`${k}\n`));
    if (host) host.covers.push(...p.covers);
    else kept.push({ ...p, covers: [...p.covers], key: k });
  }
  return kept.sort((a, b) => a.events.length - b.events.length || (a.key < b.key ? -1 : 1));
}

/** Events replayed on the model (xstate's transition()), as path steps with their predicted results. */
function pathSteps(variant: ResolvedVariant, events: readonly EventObject[]): PathStep[] {
  return replay(variant, events).steps.map(({ actor, event, call, result }) => ({
    actor,
    event,
    call,
    ...(result !== undefined && { result }),
  }));
}

/** A trace (from explore --json, walk --json, or a bare event list) as a one-path file. */
export function pathFromTrace(
  variant: ResolvedVariant,
  events: readonly EventObject[],
  id: string,
): PathFile {
  const steps = pathSteps(variant, events);
  return {
    format: PATH_FORMAT,
    model: variant.modelId,
    variant: variant.name,
    params: variant.params,
    bounds: { depth: events.length, maxStates: events.length + 1 },
    complete: false,
    coverage: { transitions: { total: 0, covered: 0, uncovered: [] }, results: [] },
    paths: [{ id, covers: [], steps }],
  };
}

/** Read back a path file, checking its shape and that every step still replays on the model. */
export function checkPathFile(data: unknown, file: string, variant: ResolvedVariant): PathFile {
  const f = data as Partial<PathFile>;
  if (f?.format !== PATH_FORMAT)
    throw new ModelError(`${file}: not a vfio-mc path file (format must be '${PATH_FORMAT}')`);
  if (f.model !== variant.modelId || f.variant !== variant.name) {
    throw new ModelError(
      `${file}: paths of ${f.model}/${f.variant}, not of ${variant.modelId}/${variant.name}`,
    );
  }
  const at = (p: Readonly<Record<string, number>> | undefined) => JSON.stringify(p ?? {});
  if (f.params !== undefined && at(f.params) !== at(variant.params)) {
    throw new ModelError(
      `${file}: paths chosen at ${at(f.params)}, replayed at ${at(variant.params)}: give the same --set`,
    );
  }
  if (!Array.isArray(f.paths)) throw new ModelError(`${file}: field 'paths' must be an array`);
  for (const p of f.paths) {
    if (!Array.isArray(p?.steps)) throw new ModelError(`${file}: path '${p?.id}' has no steps array`);
    try {
      replay(
        variant,
        p.steps.map((s: PathStep) => s.event),
      );
    } catch (e) {
      throw new ModelError(`${file}: path '${p.id}': ${(e as Error).message}`);
    }
  }
  return f as PathFile;
}

export function formatCoverage(f: PathFile): string {
  const t = f.coverage.transitions;
  const pct = t.total ? ((100 * t.covered) / t.total).toFixed(1) : '100.0';
  const steps = f.paths.reduce((n, p) => n + p.steps.length, 0);
  const calls = f.paths.reduce((n, p) => n + p.steps.filter((s) => s.call).length, 0);
  const lines = [
    `${f.model} / ${f.variant}: ${f.paths.length} paths, ${steps} steps (${calls} uAPI calls)` +
      `${f.complete ? '' : ' (search cut off by a bound)'}`,
    `  uAPI transitions covered: ${t.covered}/${t.total} (${pct}%)`,
    `  predicted results covered: ${f.coverage.results.join(', ') || '-'}`,
  ];
  if (t.uncovered.length)
    lines.push('  not covered within the bounds:', ...t.uncovered.map((u) => `    ${u}`));
  return lines.join('\n');
}
