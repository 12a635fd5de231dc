/**
 * explore(): one variant, one bounded exhaustive search, one result.
 * Options are resolved once here (defaults, validation); the search runs on
 * the compiled engine when the machine allows it, else on the reference one;
 * every violation is turned into a trace confirmed on the reference engine.
 */

import { availableParallelism } from 'node:os';
import type { AnyMachineSnapshot } from 'xstate';
import { type CutBy, type Progress, type SearchOutcome, search, searchInSlices } from './bfs.ts';
import { type Checkpoint, type CheckpointPolicy, checkResumable } from './checkpoint.ts';
import { parallelSearch } from './parallel-bfs.ts';
import type { BrokerTarget } from './broker-link.ts';
import { distributedSearch } from './distributed-bfs.ts';
import { coverageOf } from './coverage.ts';
import type { AnyEngine } from './engine.ts';
import { chooseEngine, type EngineChoice, judged, pickEngine, wrapped } from './engine-choice.ts';
import { createReferenceEngine } from './engine-reference.ts';
import { collisionProbability } from './fingerprint.ts';
import { callModel, ModelError, requirePositiveIntegers, type ResolvedVariant } from './model.ts';
import { concreteEvents } from './representative.ts';
import { ASSUMING_SYMMETRY, type SymmetryMode, UNCHECKED_SYMMETRY } from './symmetry.ts';
import { ASSUMING_VIEW, UNCHECKED_VIEW, type ViewMode } from './view.ts';
import {
  checkSample,
  Declared,
  type PorOptions,
  type PorStats,
  Visible,
  VisibleGrew,
  watched,
  withPor,
} from './por.ts';
import type { ExploreResult, PropertyVerdict, Violation, Waiting } from './result.ts';
import { checkTemporal, hasTemporal, temporalLabels } from './temporal.ts';
import { replay } from './trace.ts';

export interface ExploreConfig {
  /** Maximum BFS depth (events from the initial state). @default variant bounds, else 100 */
  readonly depth: number;
  /** Whether `depth` was chosen (the options, the variant's bounds, a checkpoint's non-default one). */
  readonly depthExplicit: boolean;
  /** Maximum number of distinct states. @default variant bounds, else 1_000_000 */
  readonly maxStates: number;
  /** 'auto' uses the compiled engine when the machine allows it. @default 'auto' */
  readonly engine: EngineChoice;
  /** Checking mode (model-checks.ts): catch in-place changes, non-determinism, non-plain data. @default true */
  readonly check: boolean;
  /** Bytes the search may use: past it the frontier spills to disk; a visited set that outgrows it ends the search. */
  readonly memoryLimit?: number;
  /**
   * Worker threads (parallel-bfs.ts); 1: the one-thread search (bfs.ts).
   * 'auto': the one-thread search if it finishes within AUTO_PROBE_STATES
   * states, else the parallel one on every core (started afresh: small
   * models do not pay for starting threads, large ones lose a second).
   * @default 1
   */
  readonly workers: number | 'auto';
  /** Write checkpoints (runs the parallel search, with one worker thread if `workers` is 1). */
  readonly checkpoint?: CheckpointPolicy;
  /** Continue a checkpointed search: its workers and bounds, on this variant (which must be the one it names). */
  readonly resume?: Checkpoint;
  /**
   * Symmetry reduction (symmetry.ts): one state of each orbit under the
   * model's id renamings, the group proved on every stored state;
   * 'unchecked': not proved, and the result says it assumes it.
   */
  readonly symmetry: SymmetryMode;
  /**
   * View reduction (view.ts): one state per view, the model's projection
   * forgetting what cannot matter any more, checked on every step; 'unchecked':
   * any view function, unchecked, and the result says it assumes it.
   */
  readonly view: ViewMode;
  /** Partial-order reduction (por.ts): in a state, one actor's steps only, where that loses no violation. */
  readonly por: boolean;
  /** The reduction's options (its test hook). */
  readonly porOptions?: PorOptions;
  /** Under --por, search the unreduced graph again to each violation's depth, for a shortest counterexample. */
  readonly shortest: boolean;
  /** Called about four times a second with the search's progress. */
  readonly onProgress?: (p: Progress) => void;
  /**
   * Asked a few times a second (the one-thread search), or between levels (the parallel one):
   * true ends the search with a partial result cut by 'interrupted' (the CLI's SIGINT, SIGTERM).
   */
  readonly stopRequested?: () => boolean;
  /** Run as node 0 of a distributed search over this broker (distributed-bfs.ts); `workers` is ignored. */
  readonly broker?: BrokerTarget & { readonly log?: (line: string) => void };
}

export type ExploreOptions = Partial<ExploreConfig>;

export const DEFAULT_DEPTH = 100;
/** With workers 'auto': the size a search must outgrow before it is run on threads. */
export const AUTO_PROBE_STATES = 20_000;
export const DEFAULT_MAX_STATES = 1_000_000;

export function resolveExploreOptions(variant: ResolvedVariant, options: ExploreOptions = {}): ExploreConfig {
  const depth = options.resume?.bounds.depth ?? options.depth ?? variant.bounds.depth ?? DEFAULT_DEPTH;
  const maxStates =
    options.resume?.bounds.maxStates ?? options.maxStates ?? variant.bounds.maxStates ?? DEFAULT_MAX_STATES;
  requirePositiveIntegers('bound', { depth, maxStates });
  // A checkpoint continues only the search it was taken on (the same model files, tool, variant, parameters).
  if (options.resume) checkResumable(options.resume, variant);
  const depthExplicit = options.resume
    ? options.resume.bounds.depth !== DEFAULT_DEPTH
    : options.depth !== undefined || variant.bounds.depth !== undefined;
  if (options.workers !== 'auto') requirePositiveIntegers('option', { workers: options.workers ?? 1 });
  return {
    depth,
    depthExplicit,
    maxStates,
    engine: options.engine ?? 'auto',
    check: options.resume?.check ?? options.check ?? true,
    memoryLimit: options.memoryLimit,
    workers: options.resume?.workers ?? options.workers ?? 1,
    checkpoint: options.checkpoint,
    resume: options.resume,
    symmetry: options.resume?.symmetry ?? options.symmetry ?? false,
    view: options.resume?.view ?? options.view ?? false,
    por: options.por ?? false,
    ...(options.porOptions && { porOptions: options.porOptions }),
    shortest: options.shortest ?? false,
    onProgress: options.onProgress,
    ...(options.stopRequested && { stopRequested: options.stopRequested }),
    broker: options.broker,
  };
}

export async function explore(full: ResolvedVariant, options: ExploreOptions = {}): Promise<ExploreResult> {
  const cfg = resolveExploreOptions(full, options);
  if (cfg.view === 'unchecked' && (cfg.checkpoint || cfg.resume))
    throw new ModelError(
      '--view=unchecked cannot be checkpointed or resumed: a checkpoint records a checked view only',
    );
  if (cfg.symmetry === 'unchecked' && (cfg.checkpoint || cfg.resume))
    throw new ModelError(
      '--symmetry=unchecked cannot be checkpointed or resumed: a checkpoint records a checked symmetry only',
    );
  if (cfg.por) return exploreReduced(full, cfg);
  return exploreWith(full, cfg);
}

async function exploreWith(
  full: ResolvedVariant,
  cfg: ExploreConfig,
  reduced?: ReducedSearch,
): Promise<ExploreResult> {
  const { variant, skipped } = judged(full, cfg);
  const { engine, note } = reduced ?? chooseEngine(variant, cfg.engine, cfg.check, cfg.symmetry, cfg.view);
  const searchConfig = {
    depth: cfg.depth,
    maxStates: cfg.maxStates,
    recordEdges: hasTemporal(variant),
    freeze: cfg.check,
    memoryLimit: cfg.memoryLimit,
    labels: temporalLabels(variant),
    onProgress: cfg.onProgress,
    ...(cfg.stopRequested && { stop: cfg.stopRequested }),
  };
  let workers = cfg.broker ? cfg.broker.nodes : cfg.workers === 'auto' ? 1 : cfg.workers;
  let outcome: SearchOutcome | undefined;
  if (cfg.broker) {
    const { log, ...broker } = cfg.broker;
    outcome = await distributedSearch(variant, {
      ...searchConfig,
      check: cfg.check,
      symmetry: cfg.symmetry,
      view: cfg.view,
      checkpoint: cfg.checkpoint,
      resume: cfg.resume,
      broker,
      ...(log && { log }),
    });
  } else if (cfg.workers === 'auto') {
    const cores = availableParallelism();
    const probe = Math.min(cfg.maxStates, AUTO_PROBE_STATES);
    outcome = await searchInSlices(variant, engine, {
      ...searchConfig,
      maxStates: cores > 1 && variant.source ? probe : cfg.maxStates,
    });
    if (outcome.cutBy === 'maxStates' && probe < cfg.maxStates && cores > 1 && variant.source) {
      outcome = undefined;
      workers = cores;
    }
  }
  const parallel = workers > 1 || cfg.checkpoint !== undefined || cfg.resume !== undefined;
  outcome ??= reduced
    ? await searchInSlices(reduced.variant, engine, {
        ...searchConfig,
        labels: temporalLabels(reduced.variant),
      })
    : parallel
      ? await searchInParallel(variant, {
          ...searchConfig,
          workers,
          check: cfg.check,
          symmetry: cfg.symmetry,
          view: cfg.view,
          checkpoint: cfg.checkpoint,
          resume: cfg.resume,
        })
      : await searchInSlices(variant, engine, searchConfig);
  const violations: Violation[] = [];
  const verdicts: PropertyVerdict[] = [];
  const cut = outcome.complete ? undefined : `search cut off by ${boundName(outcome.cutBy)}`;

  for (const name of [...Object.keys(variant.invariants), 'deadlock']) {
    const at = outcome.firstViolation.get(name);
    const kind = name === 'deadlock' ? 'deadlock' : 'invariant';
    if (at === undefined) {
      verdicts.push({ name, kind, status: 'holds', ...(cut && { note: `within the bounds (${cut})` }) });
      continue;
    }
    verdicts.push({ name, kind, status: 'violated' });
    const trace = confirmedTrace(variant, outcome, at, undefined, cfg);
    violations.push({
      property: name,
      kind,
      ...trace,
      ...(kind === 'deadlock' && { waiting: waitingAt(variant, trace.last) }),
      ...(cfg.por && { reducedOnly: true }),
    });
  }
  const temporal = checkTemporal(variant, engine, outcome);
  for (const [name, kind] of skipped) {
    verdicts.push({
      name,
      kind,
      status: 'not checked',
      note: `not under ${[cfg.symmetry && '--symmetry', cfg.por && '--por'].filter(Boolean).join(' and ')} (run without it to judge)`,
    });
  }
  for (const t of temporal) {
    verdicts.push(t.verdict);
    if (t.violation) {
      const { initial, trace, last } = confirmedTrace(variant, outcome, -1, t.violation.path, cfg);
      const stutters = t.violation.kind === 'liveness' && t.violation.cycleStart === trace.length;
      violations.push({
        property: t.verdict.name,
        kind: t.violation.kind,
        initial,
        trace,
        ...(t.violation.cycleStart !== undefined && { cycleStart: t.violation.cycleStart }),
        ...(stutters && { waiting: waitingAt(variant, last) }),
      });
    }
  }

  const states = outcome.store.size;
  // An unchecked reduction: every verdict, and so every line that prints one, says what it rests on.
  const assumed = [
    ...(cfg.view === 'unchecked' ? [{ assumption: UNCHECKED_VIEW, note: ASSUMING_VIEW }] : []),
    ...(cfg.symmetry === 'unchecked' ? [{ assumption: UNCHECKED_SYMMETRY, note: ASSUMING_SYMMETRY }] : []),
  ];
  const assuming = assumed.map((a) => a.note).join('; ');
  const judgedVerdicts =
    assumed.length > 0
      ? verdicts.map((v) => ({ ...v, note: v.note ? `${v.note}; ${assuming}` : assuming }))
      : verdicts;
  return {
    model: variant.modelId,
    variant: variant.name,
    params: variant.params,
    engine: engine.kind,
    ...(note && { engineNote: note }),
    checking: cfg.check,
    reductions: [
      ...(cfg.view ? [cfg.view === 'unchecked' ? 'view (unchecked)' : 'view'] : []),
      ...(cfg.symmetry ? [cfg.symmetry === 'unchecked' ? 'symmetry (unchecked)' : 'symmetry'] : []),
      ...(cfg.por ? ['por'] : []),
    ],
    workers,
    ...(reduced && {
      partialOrder: { ...reduced.stats, restarts: reduced.restarts, checked: cfg.check },
    }),
    ...(assumed.length > 0 && { assumptions: assumed.map((a) => a.assumption) }),
    complete: outcome.complete,
    ...(outcome.cutBy && { cutBy: outcome.cutBy }),
    bounds: { depth: cfg.depth, maxStates: cfg.maxStates },
    depthExplicit: cfg.depthExplicit,
    states,
    transitions: outcome.transitions,
    depth: outcome.maxDepth,
    seconds: outcome.seconds,
    statesPerSecond: outcome.seconds > 0 ? states / outcome.seconds : states,
    peakMemoryMB: Math.round(outcome.peakRss / 2 ** 20),
    spilledMB: Math.round((outcome.spilledBytes / 2 ** 20) * 10) / 10,
    collisionProbability: collisionProbability(states, outcome.transitions + 1),
    properties: judgedVerdicts,
    violations,
    coverage: coverageOf(
      variant,
      { transitionIds: engine.transitionIds, fired: outcome.fired },
      outcome.offered,
    ),
  };
}

/** Every actor that has not terminated in `s`, with what the model says it waits for. */
function waitingAt(variant: ResolvedVariant, s: AnyMachineSnapshot): Waiting[] {
  const engine = createReferenceEngine(variant.machine);
  const done = engine.terminated(s);
  return engine.actors
    .filter((_, i) => !done[i])
    .map((actor) => {
      const why = callModel(`waitingFor(…, '${actor}')`, () => variant.waitingFor?.(s, actor));
      return { actor, for: why ?? (variant.waitingFor ? 'not blocked' : 'no event enabled for it') };
    });
}

/**
 * The trace to state `at` (or along an explicit path of (state, event id)
 * pairs), replayed and confirmed on the reference engine.
 */
function confirmedTrace(
  variant: ResolvedVariant,
  outcome: SearchOutcome,
  at: number,
  path: readonly { state: number; event: number }[] | undefined,
  classes: Pick<ExploreConfig, 'symmetry' | 'view'>,
): Pick<Violation, 'initial' | 'trace'> & { last: AnyMachineSnapshot } {
  const { store, events } = outcome;
  const steps =
    path ??
    store
      .pathTo(at)
      .slice(1)
      .map((i) => ({ state: i, event: store.event(i) }));
  const fingerprints = [store.fingerprint(0), ...steps.map((s) => store.fingerprint(s.state))];
  // Under symmetry or a view the stored states are class representatives: find the concrete run through them.
  const r =
    classes.symmetry || classes.view
      ? replay(variant, concreteEvents(variant, fingerprints, classes))
      : replay(
          variant,
          steps.map((s) => events[s.event]),
          fingerprints,
        );
  return { initial: r.snapshots[0].value, trace: r.steps, last: r.snapshots[r.snapshots.length - 1] };
}

/** How a report names the bound that cut a search. */
export function boundName(cutBy: CutBy | undefined): string {
  return cutBy === 'depth'
    ? '--depth'
    : cutBy === 'memory'
      ? '--memory'
      : cutBy === 'interrupted'
        ? 'an interrupt (SIGINT or SIGTERM)'
        : '--max-states';
}

/**
 * The parallel search; a model error in a worker is reported as the
 * one-thread search reports it (with the trace to the state), by running
 * that search again: model errors are rare, and their traces cross partitions.
 */
async function searchInParallel(
  variant: ResolvedVariant,
  cfg: Parameters<typeof parallelSearch>[1],
): Promise<SearchOutcome> {
  try {
    return await parallelSearch(variant, cfg);
  } catch (e) {
    if (!(e instanceof ModelError) || e.message.includes('--workers needs') || cfg.resume) throw e;
    const { engine } = chooseEngine(variant, 'auto', cfg.check);
    search(variant, engine, cfg);
    throw e;
  }
}

/** A search under partial-order reduction: its engine, the variant whose predicates record the visible set, its counts. */
interface ReducedSearch {
  readonly engine: AnyEngine;
  readonly note?: string;
  readonly variant: ResolvedVariant;
  readonly stats: PorStats;
  readonly restarts: number;
}

/** Restarts allowed when an invariant reads a path not yet visible; each adds at least one path. */
const MAX_RESTARTS = 8;

/**
 * `--por`: the declaration checked on a sample of the unreduced graph, then
 * the one-thread BFS with the reduction (its cycle proviso asks the visited
 * set, which worker partitions split). An invariant that reads a path not
 * yet visible restarts the search with it.
 */
async function exploreReduced(full: ResolvedVariant, cfg: ExploreConfig): Promise<ExploreResult> {
  if ((typeof cfg.workers === 'number' && cfg.workers > 1) || cfg.checkpoint || cfg.resume || cfg.broker)
    throw new ModelError(
      '--por runs on the one-thread search (--workers 1, no --checkpoint, --resume or --broker): ' +
        'its cycle proviso asks the visited set, which the partitions of a parallel search split',
    );
  if (full.footprints === undefined)
    throw new ModelError(
      `--por: model '${full.modelId}' declares no footprints (vfio-mc explore ${full.modelId} --por=propose prints a proposal)`,
    );
  const one = { ...cfg, workers: 1 };
  const { variant } = judged(full, one);
  const sample = pickEngine(variant, cfg.engine).engine;
  const declared = new Declared(full.footprints, sample.actors);
  const visible = new Visible(declared.extraVisible);
  checkSample(variant, sample, declared, visible);
  for (let restarts = 0; ; restarts++) {
    const { engine: base, note } = pickEngine(variant, cfg.engine);
    const stats: PorStats = { expanded: 0, reduced: 0 };
    const seen = watched(variant, visible, base.actors);
    const por = (inner: AnyEngine) =>
      withPor(inner, base, seen, declared, visible, { check: cfg.check, ...cfg.porOptions }, stats);
    const engine = wrapped(base, variant, cfg.check, cfg.symmetry, cfg.view, por);
    try {
      const result = await exploreWith(full, one, {
        engine,
        ...(note && { note }),
        variant: seen,
        stats,
        restarts,
      });
      return cfg.shortest ? await shortestViolations(full, one, result) : result;
    } catch (e) {
      if (!(e instanceof VisibleGrew) || restarts >= MAX_RESTARTS) throw e;
    }
  }
}

/** `--shortest`: the unreduced search to the depth of the longest violation found, whose traces are shortest. */
async function shortestViolations(
  full: ResolvedVariant,
  cfg: ExploreConfig,
  reduced: ExploreResult,
): Promise<ExploreResult> {
  if (reduced.violations.length === 0) return reduced;
  const depth = Math.max(...reduced.violations.map((v) => v.trace.length));
  const plain = await exploreWith(full, { ...cfg, por: false, depth });
  const violations = reduced.violations.map(
    (v) => plain.violations.find((w) => w.property === v.property && w.kind === v.kind) ?? v,
  );
  return { ...reduced, violations };
}
