/**
 * Breadth-first search on worker threads (`--workers N`). Each worker owns a
 * partition of the fingerprint space and the states that hash into it
 * (worker.ts); successors travel to their owners in batches (exchange.ts).
 * This coordinator runs the levels: every partition expands its share of
 * level d and sends what it does not own, then takes in what it was sent;
 * level d+1 starts when all have. Levels being synchronous, every state's
 * depth is its BFS depth, so the first violation found is a shortest one,
 * and state and transition counts are those of the one-thread search
 * (bfs.ts) for every N (test/explorer/parallel.test.ts checks this on
 * every registered variant).
 *
 * At the end the coordinator gathers the partitions' states, in BFS order,
 * into one store, so that counterexamples, temporal properties and coverage
 * are computed as for a one-thread search (explore.ts).
 */
import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';
import type { EventObject } from 'xstate';
import {
  type CutBy,
  dataBudget,
  EdgeList,
  type Progress,
  type SearchConfig,
  type SearchOutcome,
} from './bfs.ts';
import { canonical } from './canonical.ts';
import {
  CHECKPOINT_FORMAT,
  type Checkpoint,
  type CheckpointPolicy,
  StoppedAtCheckpoint,
  modelRecord,
  writeCheckpoint,
} from './checkpoint.ts';
import { TOOL_VERSION } from './model-digest.ts';
import { ModelError, type ResolvedVariant } from './model.ts';
import type { SymmetryMode } from './symmetry.ts';
import type { ViewMode } from './view.ts';
import { GatheredStates } from './state-store.ts';
import {
  type Command,
  type LevelReport,
  localOf,
  type PartitionDump,
  type PartitionSave,
  partitionOf,
  type WorkerInit,
} from './worker.ts';

export interface ParallelConfig extends SearchConfig {
  readonly workers: number;
  readonly check: boolean;
  readonly symmetry: SymmetryMode;
  readonly view?: ViewMode;
  /** Write checkpoints (checkpoint.ts). */
  readonly checkpoint?: CheckpointPolicy;
  /** Continue a checkpointed search instead of starting one. */
  readonly resume?: Checkpoint;
}

/** A partition the coordinator can send commands to: a worker thread, or a node of a distributed search. */
export interface PartitionHandle {
  ask<T>(c: Command): Promise<T>;
}

/** A worker thread and a promise-returning way to send it one command at a time. */
export class PartitionThread implements PartitionHandle {
  private waiting: ((m: { ok?: unknown; error?: { name: string; message: string } }) => void) | undefined;
  private failure: Error | undefined;

  constructor(readonly worker: Worker) {
    worker.on('message', (m) => this.settle(m));
    worker.on('error', (e) => {
      this.failure = e;
      this.settle({ error: { name: e.name, message: e.message } });
    });
    worker.on('exit', (code) => {
      if (code !== 0) this.settle({ error: { name: 'Error', message: `worker exited with code ${code}` } });
    });
  }

  private settle(m: { ok?: unknown; error?: { name: string; message: string } }): void {
    const w = this.waiting;
    this.waiting = undefined;
    w?.(m);
  }

  /** The next message from the worker (its answer to the last command). */
  next<T>(): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiting = (m) => {
        if (m.error) {
          const E =
            m.error.name === 'ModelError' || m.error.name === 'ModelFunctionError' ? ModelError : Error;
          reject(new E(m.error.message));
        } else resolve(m.ok as T);
      };
    });
  }

  ask<T>(c: Command): Promise<T> {
    const answer = this.next<T>();
    this.worker.postMessage(c);
    return answer;
  }
}

const ENTRY = new URL('./worker-entry.mjs', import.meta.url);
/** What a worker thread itself takes (its heap, tsx, the model), measured: about 60 MB. */
const WORKER_BYTES = 64 * 2 ** 20;

export async function parallelSearch(variant: ResolvedVariant, cfg: ParallelConfig): Promise<SearchOutcome> {
  if (variant.source === undefined) {
    throw new ModelError(
      `model '${variant.modelId}': --workers needs a model loaded from a file (a registered id or a path)`,
    );
  }
  const started = performance.now() - (cfg.resume?.coordinator.seconds ?? 0) * 1000;
  const threads = startThreads(variant, cfg);
  try {
    await Promise.all(threads.map((t) => t.next<string>()));
    if (cfg.resume) {
      const saved = cfg.resume.partitions;
      await Promise.all(threads.map((t, i) => t.ask({ cmd: 'restore', saved: saved[i] })));
    }
    const run = await runLevels(threads, cfg, started, variant);
    const dumps = await Promise.all(threads.map((t) => t.ask<PartitionDump>({ cmd: 'dump' })));
    return merge(dumps, run, started);
  } finally {
    await Promise.all(threads.map((t) => t.worker.terminate()));
  }
}

function startThreads(variant: ResolvedVariant, cfg: ParallelConfig): PartitionThread[] {
  const n = cfg.workers;
  // Each worker thread costs about what the main thread does (node, tsx, the model): set that aside too.
  const data =
    cfg.memoryLimit === undefined ? undefined : (dataBudget(cfg.memoryLimit) ?? 0) - n * WORKER_BYTES;
  const ports: (MessagePort | undefined)[][] = Array.from({ length: n }, () => new Array(n).fill(undefined));
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const { port1, port2 } = new MessageChannel();
      ports[i][j] = port1;
      ports[j][i] = port2;
    }
  }
  return ports.map((mine, partition) => {
    const init: WorkerInit = {
      source: variant.source!,
      partition,
      partitions: n,
      cfg: {
        check: cfg.check,
        symmetry: cfg.symmetry,
        view: cfg.view ?? false,
        recordEdges: cfg.recordEdges,
        ...(data !== undefined && { dataBytes: data / n }),
      },
      ports: mine,
    };
    const transfer = mine.filter((p): p is MessagePort => p !== undefined);
    return new PartitionThread(new Worker(ENTRY, { workerData: init, transferList: transfer }));
  });
}

export interface LevelsOutcome {
  transitions: number;
  cutBy?: CutBy;
  /** Property -> [partition, its state number] of the first violation (at the shallowest depth). */
  firstViolation: Map<string, [number, number]>;
  peakRss: number;
}

export async function runLevels(
  threads: readonly PartitionHandle[],
  cfg: ParallelConfig,
  started: number,
  variant: ResolvedVariant,
): Promise<LevelsOutcome> {
  const resumed = cfg.resume?.coordinator;
  const out: LevelsOutcome = {
    transitions: resumed?.transitions ?? 0,
    firstViolation: new Map(resumed?.firstViolation ?? []),
    peakRss: process.memoryUsage().rss,
  };
  let lastCheckpoint = performance.now();
  // The model as this search loaded it (a resumed one: as checked against the checkpoint).
  const modelAtStart =
    cfg.checkpoint === undefined ? undefined : (cfg.resume?.model ?? modelRecord(variant.source!));
  /** Between levels: write the checkpoint when it is due or asked for; stop when asked. */
  const checkpointAfter = async (depth: number, states: number) => {
    const policy = cfg.checkpoint;
    if (policy === undefined) return;
    const stop = policy.stopRequested();
    if (!stop && performance.now() - lastCheckpoint < policy.everySeconds * 1000) return;
    const partitions = await Promise.all(threads.map((t) => t.ask<PartitionSave>({ cmd: 'save' })));
    writeCheckpoint(policy.file, {
      format: CHECKPOINT_FORMAT,
      version: 2,
      tool: TOOL_VERSION,
      source: variant.source!,
      model: modelAtStart!,
      workers: threads.length,
      bounds: { depth: cfg.depth, maxStates: cfg.maxStates },
      check: cfg.check,
      symmetry: cfg.symmetry === true,
      view: cfg.view === true,
      coordinator: {
        depth,
        states,
        transitions: out.transitions,
        firstViolation: [...out.firstViolation],
        seconds: (performance.now() - started) / 1000,
      },
      partitions,
    });
    lastCheckpoint = performance.now();
    if (stop) throw new StoppedAtCheckpoint(policy.file, depth, states);
  };
  const note = (reports: LevelReport[]) => {
    reports.forEach((r, p) => {
      out.transitions += r.transitions;
      for (const [name, local] of Object.entries(r.violations)) {
        if (!out.firstViolation.has(name)) out.firstViolation.set(name, [p, local]);
      }
    });
    // A deadlock is found while expanding: at this level's depth, before any invariant of the next.
    reports.forEach((r, p) => {
      if (r.deadlock >= 0 && !out.firstViolation.has('deadlock'))
        out.firstViolation.set('deadlock', [p, r.deadlock]);
    });
    out.peakRss = Math.max(out.peakRss, process.memoryUsage().rss);
  };
  let states = resumed?.states ?? 1;
  if (!resumed) note(await Promise.all(threads.map((t) => t.ask<LevelReport>({ cmd: 'seed' }))));
  for (let depth = resumed?.depth ?? 0; ; depth++) {
    await checkpointAfter(depth, states);
    const atBound = depth >= cfg.depth;
    const sent = await Promise.all(threads.map((t) => t.ask<number[]>({ cmd: 'expand', atBound })));
    const expect = threads.map((_, to) => sent.reduce((n, s) => n + s[to], 0));
    const reports = await Promise.all(
      threads.map((t, i) => t.ask<LevelReport>({ cmd: 'drain', expect: [expect[i]] })),
    );
    note(reports);
    const added = reports.reduce((n, r) => n + r.added, 0);
    states += added;
    cfg.onProgress?.({
      states,
      depth: depth + 1,
      frontier: added,
      transitions: out.transitions,
      seconds: (performance.now() - started) / 1000,
    } satisfies Progress);
    if (atBound) {
      if (reports.some((r) => r.cutByDepth)) out.cutBy = 'depth';
      break;
    }
    if (added === 0) break;
    // A signal (cfg.stop) ends the search after the level, with the partial outcome, as a bound would.
    const stop = cfg.stop?.() === true;
    if (states >= cfg.maxStates || reports.some((r) => r.memoryExhausted) || stop) {
      out.cutBy = stop ? 'interrupted' : states >= cfg.maxStates ? 'maxStates' : 'memory';
      await Promise.all(threads.map((t) => t.ask({ cmd: 'unexpanded' })));
      break;
    }
  }
  return out;
}

/** The partitions' states as one store, numbered in BFS order (level by level, partition by partition). */
export function merge(dumps: PartitionDump[], run: LevelsOutcome, started: number): SearchOutcome {
  const levelCount = Math.max(...dumps.map((d) => d.levels.length));
  const sizeOf = (d: PartitionDump) => d.hi.length;
  const countAt = (d: PartitionDump, l: number) =>
    l >= d.levels.length ? 0 : (l + 1 < d.levels.length ? d.levels[l + 1] : sizeOf(d)) - d.levels[l];
  // base[l][p]: the global number of partition p's first state of level l.
  const base: number[][] = [];
  let next = 0;
  for (let l = 0; l < levelCount; l++) {
    base.push(
      dumps.map((d) => {
        const b = next;
        next += countAt(d, l);
        return b;
      }),
    );
  }
  const levelOf = (d: PartitionDump, i: number) => {
    let lo = 0;
    let hi = d.levels.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (d.levels[mid] <= i) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  };
  const globalOf = (p: number, i: number) => {
    const l = levelOf(dumps[p], i);
    return base[l][p] + (i - dumps[p].levels[l]);
  };
  const fromGid = (g: number) => (g < 0 ? -1 : globalOf(partitionOf(g), localOf(g)));

  // One event table: each partition's events by their canonical form.
  const events: EventObject[] = [];
  const ids = new Map<string, number>();
  const eventMap = dumps.map((d) =>
    d.eventTable.map((e) => {
      const key = canonical(e);
      let id = ids.get(key);
      if (id === undefined) {
        id = events.length;
        events.push(e);
        ids.set(key, id);
      }
      return id;
    }),
  );

  const hi = new Uint32Array(next);
  const lo = new Uint32Array(next);
  const parents = new Float64Array(next);
  const eventIds = new Int32Array(next);
  const levels: number[] = [];
  const labelCount = dumps[0].labels.length;
  const labels = Array.from({ length: labelCount }, () => new Uint8Array(Math.max(1, next)));
  let g = 0;
  for (let l = 0; l < levelCount; l++) {
    levels.push(g);
    dumps.forEach((d) => {
      const first = l < d.levels.length ? d.levels[l] : 0;
      for (let i = first; i < first + countAt(d, l); i++, g++) {
        const parent = d.parents[i];
        hi[g] = d.hi[i];
        lo[g] = d.lo[i];
        parents[g] = fromGid(parent);
        eventIds[g] = parent < 0 ? -1 : eventMap[partitionOf(parent)][d.events[i]];
        for (let k = 0; k < labelCount; k++) labels[k][g] = d.labels[k][i];
      }
    });
  }
  const store = new GatheredStates(levels, hi, lo, parents, eventIds);

  let edges: EdgeList | undefined;
  if (dumps[0].edges) {
    edges = new EdgeList();
    dumps.forEach((d, p) => {
      const e = d.edges!;
      for (let k = 0; k < e.to.length; k++) {
        const from = e.from[k];
        edges!.push(
          fromGid(from),
          globalOf(p, e.to[k]),
          eventMap[partitionOf(from)][e.event[k]],
          e.actors[k],
        );
      }
    });
  }
  const fired = new Uint8Array(dumps[0].fired.length);
  for (const d of dumps) d.fired.forEach((b, k) => (fired[k] |= b));
  const offered = new Map<string, boolean>();
  for (const d of dumps)
    for (const [type, enabled] of d.offered) offered.set(type, offered.get(type) === true || enabled);
  const firstViolation = new Map<string, number>();
  for (const [name, [p, i]] of run.firstViolation) firstViolation.set(name, globalOf(p, i));

  return {
    store,
    events,
    complete: run.cutBy === undefined,
    cutBy: run.cutBy,
    transitions: run.transitions,
    maxDepth: store.depth(store.size - 1),
    seconds: (performance.now() - started) / 1000,
    peakRss: Math.max(run.peakRss, ...dumps.map((d) => d.peakRss)),
    firstViolation,
    edges,
    unexpanded: new Set(dumps.flatMap((d) => d.unexpanded.map(fromGid))),
    terminal: new Set(dumps.flatMap((d, p) => d.terminal.map((i) => globalOf(p, i)))),
    labels,
    offered,
    fired,
    spilledBytes: dumps.reduce((n, d) => n + d.spilledBytes, 0),
  };
}
